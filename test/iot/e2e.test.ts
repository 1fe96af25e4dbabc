/**
 * Goal: simulator → MQTT → gateway → chain end to end on a real one-validator node: a sudden stop
 * raises an ALERT within the configured windows, a tampered reading fails (at ingest and against
 * its proof), a SIGKILLed gateway loses no acknowledged reading and anchors no window twice, and
 * the lender's report renders in headless Chromium.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Aedes } from 'aedes';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { bytesEqual, fromHex, toHex, type Bytes } from '../../core/bytes.ts';
import { saveKeyFile } from '../../node/keystore.ts';
import { unpackCanonical, type Value } from '../../core/codec.ts';
import { verifyMerkleProof } from '../../core/merkle.ts';
import { decodeEnvelope, openEnvelope } from '../../iot/gateway/envelope.ts';
import { decodeLeaf, encodeLeaf, readingToJson, signReading } from '../../iot/gateway/reading.ts';
import { buildReport, reportHash } from '../../iot/report.ts';
import { createGateway } from '../../iot/gateway/gateway.ts';
import {
  createSimulator,
  deviceKey,
  PLANT,
  provisionSite,
  WAREHOUSE,
  type Simulator,
} from '../../iot/simulate.ts';
import { startIotNetwork, testKey, waitFor, type IotNetwork } from './network.ts';

const BASE_PORT = 24300;
const MQTT_PORT = 24380;
const HTTP_PORT = 24381;
const GATEWAY = 'gw-plant';
const WINDOW_MS = 1000;
const HEARTBEAT_MS = 3000;
const ALERT_AFTER = Number(PLANT.indicators.find((i) => i['id'] === 'plant-power')!['alertAfter']);
const EXT_BROKER_PORT = 24382;
const SCREENSHOT_DIR = join(tmpdir(), 'trellis-iot-report');
const BIN = fileURLToPath(new URL('../../bin/trellis.js', import.meta.url));

let net: IotNetwork;
let gateway: ChildProcess;
let gatewayDir: string;
let startedAt: number;

const http = async (path: string) => {
  const res = await fetch(`http://127.0.0.1:${HTTP_PORT}${path}`, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};
const status = async () => (await http('/status')).body;

async function events(name: string): Promise<Array<{ height: number; data: Record<string, Value> }>> {
  const out: Array<{ height: number; data: Record<string, Value> }> = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await net.client.call('events_query', {
      contract: 'iot',
      name,
      limit: 1000,
      ...(cursor === undefined ? {} : { cursor: cursor as never }),
    });
    out.push(...page.events.map((e) => ({ height: e.height, data: e.data as Record<string, Value> })));
    if (page.next === undefined || page.events.length === 0) return out;
    cursor = page.next as never;
  }
}

function startGateway(): ChildProcess {
  return net.startGateway({ id: GATEWAY, dir: gatewayDir, mqttPort: MQTT_PORT, httpPort: HTTP_PORT });
}

async function runSim(
  scenario: Parameters<typeof createSimulator>[0]['scenario'],
  ms: number,
  eventAfterMs = 3_000,
): Promise<Simulator> {
  const sim = createSimulator({
    mqttUrl: `mqtt://127.0.0.1:${MQTT_PORT}`,
    gatewayId: GATEWAY,
    site: PLANT,
    scenario,
    intervalMs: 100,
    eventAfterMs,
  });
  await sim.start();
  await new Promise((r) => setTimeout(r, ms));
  await sim.stop(10_000);
  return sim;
}

/** Checks a reading's proof from the gateway against the root anchored on chain. */
async function provenOnChain(id: string): Promise<{ ok: boolean; tamperedOk: boolean; seqNo: number }> {
  const [device, n] = id.split(':') as [string, string];
  const { status: code, body } = await http(`/proof?device=${device}&n=${n}`);
  if (code !== 200) throw new Error(`proof of ${id}: ${code} ${JSON.stringify(body)}`);
  const seqNo = body['seqNo'] as number;
  const anchor = (await net.client.view('iot', 'anchorOf', { gateway: GATEWAY, seqNo })) as {
    root: Bytes;
  } | null;
  if (anchor === null) throw new Error(`window ${seqNo} is not anchored`);
  const p = body['proof'] as { index: number; size: number; path: string[] };
  const proof = { index: p.index, size: p.size, path: p.path.map((h) => fromHex(h)) };
  const leaf = fromHex(body['leaf'] as string);
  const reading = decodeLeaf(leaf);
  const forged = encodeLeaf({ ...reading, value: reading.value + 1n });
  return {
    ok:
      bytesEqual(anchor.root, fromHex(body['root'] as string)) && verifyMerkleProof(anchor.root, leaf, proof),
    tamperedOk: verifyMerkleProof(anchor.root, forged, proof),
    seqNo,
  };
}

beforeAll(async () => {
  net = await startIotNetwork({ validators: 1, basePort: BASE_PORT });
  startedAt = Date.now();
  await provisionSite(net.client, net.admin, {
    enterprise: 'acme',
    gatewayId: GATEWAY,
    gatewayPublicKey: net.gatewayKey.publicKey,
    site: PLANT,
    windowMs: WINDOW_MS,
    heartbeatMs: HEARTBEAT_MS,
    lenders: [{ lender: 'harbour-bank', encryptionKey: net.lenderKey.publicKey }],
  });
  gatewayDir = join(net.dir, 'gateway');
  gateway = startGateway();
  await waitFor('the gateway to answer /health', async () => (await http('/health')).body['ok'] === true);
}, 120_000);

afterAll(async () => {
  await net?.stop();
});

describe('IoT end to end (one validator)', () => {
  beforeEach(() => onTestFailed(() => console.log(net.logTail(`gateway-${GATEWAY}.log`))));

  it('a sudden stop raises an ALERT event within the configured number of windows', async () => {
    const sim = await runSim('sudden-stop', 9_000, 4_000);
    expect(sim.eventAt).not.toBeNull();
    await waitFor('an IndicatorAlert for plant-power', async () =>
      (await events('IndicatorAlert')).some((e) => e.data['indicator'] === 'plant-power'),
    );
    const alert = (await events('IndicatorAlert')).find((e) => e.data['indicator'] === 'plant-power')!.data;
    const anchors = (await events('BatchAnchored'))
      .map((e) => e.data)
      .filter((d) => d['gateway'] === GATEWAY);
    // The window in which the machines stopped, then the configured number of windows.
    const stopWindow = anchors.find((d) => Number(d['windowEnd']) > sim.eventAt!)!;
    expect(stopWindow).toBeDefined();
    expect(Number(alert['seqNo']) - Number(stopWindow['seqNo'])).toBeLessThanOrEqual(ALERT_AFTER);
    expect(alert).toMatchObject({ enterprise: 'acme', to: 'ALERT', reason: 'drop' });
    // The gateway accepted every signed reading and rejected none.
    const s = await status();
    expect(s['rejected']).toBe(0);
    expect(sim.unacked.size).toBe(0);
  }, 60_000);

  it('a reading proves against its anchor, a tampered one does not; tampered publishes are refused at ingest', async () => {
    const before = (await status())['rejectedByReason'] as Record<string, number>;
    // HTTP ingest: a signed reading is accepted once, a repeat is a duplicate, strangers are refused.
    const viaHttp = signReading(
      { device: 'plant-power', n: 1, ts: Date.now(), value: 4242n },
      deviceKey('demo', 'plant-power').secretKey,
    );
    const post = async (body: unknown) => {
      const res = await fetch(`http://127.0.0.1:${HTTP_PORT}/readings`, {
        method: 'POST',
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
      return {
        status: res.status,
        body: (await res.json()) as { results?: Array<{ status: string; error?: string }> },
      };
    };
    expect((await post([readingToJson(viaHttp)])).body.results).toEqual([{ status: 'accepted' }]);
    expect((await post(readingToJson(viaHttp))).body.results).toEqual([{ status: 'duplicate' }]);
    expect(
      (await post({ ...readingToJson(viaHttp), device: 'nobody', n: 2 })).body.results![0],
    ).toMatchObject({ status: 'rejected', error: 'UNKNOWN_DEVICE' });
    expect((await post('{not json')).status).toBe(400);
    const sim = await runSim('tampered', 3_000, 500);
    expect(sim.tampered.length).toBeGreaterThan(0);
    await waitFor('the gateway to anchor what it received', async () => {
      const s = await status();
      return s['pendingAnchors'] === 0 && (s['openWindows'] as number) <= 1;
    });
    await new Promise((r) => setTimeout(r, 2 * WINDOW_MS));
    const after = (await status())['rejectedByReason'] as Record<string, number>;
    expect((after['BAD_SIGNATURE'] ?? 0) - (before['BAD_SIGNATURE'] ?? 0)).toBe(sim.tampered.length);
    const tamperedIds = new Set(sim.tampered.map((r) => `${r.device}:${r.n}`));
    const honest = ['plant-power:1', ...[...sim.acked].filter((id) => !tamperedIds.has(id)).slice(0, 5)];
    for (const id of honest) {
      const r = await provenOnChain(id);
      expect(r.ok).toBe(true);
      expect(r.tamperedOk).toBe(false);
    }
    // A tampered reading never made it into a batch: there is no proof of it.
    const [device, n] = [...tamperedIds][0]!.split(':');
    expect((await http(`/proof?device=${device}&n=${n}`)).status).toBe(404);
    // The lender can open the kept batch of that window; the leaves give the anchored root.
    const { seqNo } = await provenOnChain(honest[1]!);
    const env = decodeEnvelope(
      readFileSync(join(gatewayDir, 'batches', `${String(seqNo).padStart(12, '0')}.env`)),
    );
    const leaves = unpackCanonical(openEnvelope(env, net.lenderKey.secretKey), 'leaves') as Bytes[];
    expect(leaves.some((l) => `${decodeLeaf(l).device}:${decodeLeaf(l).n}` === honest[1])).toBe(true);
  }, 60_000);

  it('a gateway killed mid-window loses no acknowledged reading and anchors no window twice; the chain sees it OFFLINE meanwhile', async () => {
    const sim = createSimulator({
      mqttUrl: `mqtt://127.0.0.1:${MQTT_PORT}`,
      gatewayId: GATEWAY,
      site: PLANT,
      scenario: 'normal',
      intervalMs: 100,
    });
    await sim.start();
    await new Promise((r) => setTimeout(r, 2_500));
    // Mid-window: half-way through the current one.
    await new Promise((r) => setTimeout(r, (WINDOW_MS * 1.5 - (Date.now() % WINDOW_MS)) % WINDOW_MS));
    const ackedBeforeKill = sim.acked.size;
    const exited = new Promise((r) => gateway.once('exit', r));
    gateway.kill('SIGKILL');
    await exited;
    const offlineBefore = (await events('GatewayOffline')).length;
    await waitFor(
      'GatewayOffline on chain',
      async () => (await events('GatewayOffline')).length > offlineBefore,
      20_000,
    );
    gateway = startGateway();
    await waitFor('the restarted gateway', async () => (await http('/health')).body['ok'] === true);
    await new Promise((r) => setTimeout(r, 2_000));
    await sim.stop(15_000);
    expect(sim.unacked.size).toBe(0);
    expect(sim.acked.size).toBeGreaterThan(ackedBeforeKill);
    await waitFor('every window anchored', async () => {
      const s = await status();
      return s['pendingAnchors'] === 0 && (s['openWindows'] as number) <= 1;
    });
    await new Promise((r) => setTimeout(r, 2 * WINDOW_MS));
    // No acknowledged reading is lost: each has a proof against an anchored root.
    for (const id of sim.acked) {
      const r = await provenOnChain(id);
      expect(r.ok, id).toBe(true);
    }
    // No window anchored twice, and no reading in two windows.
    const seqs = (await events('BatchAnchored'))
      .filter((e) => e.data['gateway'] === GATEWAY)
      .map((e) => Number(e.data['seqNo']));
    expect(new Set(seqs).size).toBe(seqs.length);
    const ids: string[] = [];
    for (const f of readdirSync(join(gatewayDir, 'batches')).filter((x) => x.endsWith('.leaves'))) {
      for (const l of unpackCanonical(readFileSync(join(gatewayDir, 'batches', f)), 'leaves') as Bytes[]) {
        const r = decodeLeaf(l);
        ids.push(`${r.device}:${r.n}`);
      }
    }
    expect(new Set(ids).size).toBe(ids.length);
    // The site came back online with the next anchor.
    expect((await events('GatewayOnline')).length).toBeGreaterThan(0);
  }, 120_000);

  it('a gateway also ingests from an external MQTT broker by URL', async () => {
    const broker = await Aedes.createBroker();
    const server = createNetServer(broker.handle);
    await new Promise<void>((r) => server.listen(EXT_BROKER_PORT, '127.0.0.1', () => r()));
    const key = testKey('gateway-ext');
    await provisionSite(net.client, net.admin, {
      enterprise: 'acme',
      gatewayId: 'gw-wh',
      gatewayPublicKey: key.publicKey,
      site: WAREHOUSE,
      windowMs: WINDOW_MS,
      heartbeatMs: 60_000,
    });
    const gw = createGateway({
      dir: join(net.dir, 'gateway-ext'),
      gatewayId: 'gw-wh',
      key,
      rpcUrl: net.rpcUrl,
      mqtt: { url: `mqtt://127.0.0.1:${EXT_BROKER_PORT}` },
      httpPort: null,
      log: () => undefined,
    });
    await gw.start();
    try {
      const sim = createSimulator({
        mqttUrl: `mqtt://127.0.0.1:${EXT_BROKER_PORT}`,
        gatewayId: 'gw-wh',
        site: WAREHOUSE,
        scenario: 'normal',
        intervalMs: 100,
      });
      await sim.start();
      await new Promise((r) => setTimeout(r, 2_500));
      await sim.stop(10_000);
      await waitFor(
        'the external-broker readings anchored',
        () =>
          gw.stats.accepted === sim.acked.size &&
          gw.stats.pendingAnchors === 0 &&
          gw.stats.windowsAnchored > 2,
      );
      await new Promise((r) => setTimeout(r, 2 * WINDOW_MS));
      await gw.closeDueWindows();
      await waitFor('the last window anchored', () => gw.stats.pendingAnchors === 0);
      for (const id of [...sim.acked].slice(0, 20)) {
        const [device, n] = id.split(':') as [string, string];
        const p = gw.proof(device, Number(n));
        const onChain = (await net.client.view('iot', 'anchorOf', { gateway: 'gw-wh', seqNo: p.seqNo })) as {
          root: Bytes;
        };
        expect(verifyMerkleProof(onChain.root, p.leaf, p.proof)).toBe(true);
      }
      expect(gw.stats.rejected).toBe(0);
    } finally {
      await gw.stop();
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    }
  }, 60_000);

  it('trellis iot simulate --provision registers what is missing and publishes through the CLI', async () => {
    const adminKeyFile = join(net.dir, 'acme-admin.key.json');
    await saveKeyFile(adminKeyFile, testKey('acme-admin'), { unencrypted: true });
    const gwPub = toHex(net.gatewayKey.publicKey);
    const res = spawnSync(
      process.execPath,
      [
        BIN,
        'iot',
        'simulate',
        '--gateway',
        GATEWAY,
        '--site',
        'plant',
        '--scenario',
        'normal',
        '--mqtt',
        `mqtt://127.0.0.1:${MQTT_PORT}`,
        '--interval-ms',
        '100',
        '--duration-ms',
        '1500',
        '--provision',
        '--rpc',
        net.rpcUrl,
        '--key',
        adminKeyFile,
        '--enterprise',
        'acme',
        '--gateway-public-key',
        gwPub,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(res.status, res.stderr).toBe(0);
    expect(res.stdout).toContain('provisioned gateway gw-plant');
    const m = /published (\d+), acknowledged (\d+), unacknowledged 0, tampered 0/.exec(res.stdout);
    expect(m, res.stdout).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(0);
    expect(m![2]).toBe(m![1]);
  }, 60_000);

  it('the lender report renders in headless Chromium (screenshot written to a file)', async (ctx) => {
    const head = await net.client.head();
    // Up to a settled point of the chain: the gateway keeps anchoring newer windows meanwhile.
    const to = head!.header.timestamp - 3_000;
    const r = await buildReport(net.client, { enterprise: 'acme', from: startedAt - 60_000, to });
    expect(r.anchors.length).toBeGreaterThan(10);
    expect(r.states.some((s) => s.to === 'ALERT' && s.indicator === 'plant-power')).toBe(true);
    expect(reportHash(r.html)).toBe(r.hash);
    expect(reportHash(r.html.replace('Operations score', 'Operations sc0re'))).not.toBe(r.hash);
    // The same chain gives the same bytes.
    const again = await buildReport(net.client, {
      enterprise: 'acme',
      from: startedAt - 60_000,
      to,
      atHeight: r.atHeight,
    });
    if (again.hash !== r.hash) {
      writeFileSync(join(tmpdir(), 'iot-report-a.html'), r.html);
      writeFileSync(join(tmpdir(), 'iot-report-b.html'), again.html);
    }
    expect(again.hash).toBe(r.hash);
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    const htmlFile = join(SCREENSHOT_DIR, 'report.html');
    const png = join(SCREENSHOT_DIR, 'report.png');
    writeFileSync(htmlFile, r.html);
    // The CLI writes the same report.
    const cliOut = join(SCREENSHOT_DIR, 'report-cli.html');
    const cli = spawnSync(
      process.execPath,
      [
        BIN,
        'iot',
        'report',
        '--enterprise',
        'acme',
        '--from',
        String(startedAt - 60_000),
        '--to',
        String(to),
        '--at-height',
        String(r.atHeight),
        '--rpc',
        net.rpcUrl,
        '--out',
        cliOut,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(cli.status, cli.stderr).toBe(0);
    expect(cli.stdout).toContain(`hash ${r.hash}`);
    expect(readFileSync(cliOut, 'utf8')).toBe(r.html);
    const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
    if (chromium === undefined) {
      ctx.skip(
        'no chromium binary: the report was built and checked, not rendered (apt-get install -y chromium)',
      );
      return;
    }
    const res = spawnSync(
      chromium,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
        '--disable-sync',
        `--user-data-dir=${join(SCREENSHOT_DIR, 'profile')}`,
        '--hide-scrollbars',
        '--window-size=1280,3000',
        `--screenshot=${png}`,
        `file://${htmlFile}`,
      ],
      { timeout: 60_000, encoding: 'utf8' },
    );
    expect(res.status, res.stderr).toBe(0);
    const bytes = readFileSync(png);
    expect(bytes.subarray(1, 4).toString()).toBe('PNG');
    expect(bytes.length).toBeGreaterThan(20_000);
    console.log(`report screenshot: ${png} (${bytes.length} bytes), html ${htmlFile}, hash ${r.hash}`);
  }, 90_000);
});
