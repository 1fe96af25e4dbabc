/**
 * Goal: the same pipeline on a 4-validator consortium (separate processes): simulator → MQTT →
 * gateway → chain, a sudden stop raises an ALERT within the configured windows, every validator
 * serves the same anchored roots, against which a reading's proof verifies, and a gateway killed
 * mid-window loses no acknowledged reading and anchors no window twice.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bytesEqual, fromHex, type Bytes } from '../../core/bytes.ts';
import type { Value } from '../../core/codec.ts';
import { verifyMerkleProof } from '../../core/merkle.ts';
import { createSimulator, PLANT, provisionSite } from '../../iot/simulate.ts';
import { createClient } from '../../rpc/sdk/index.ts';
import { auditGatewayBatches, startIotNetwork, waitFor, type IotNetwork } from './network.ts';

const MQTT_PORT = 24390;
const HTTP_PORT = 24391;
const GATEWAY = 'gw-plant4';
const ALERT_AFTER = Number(PLANT.indicators.find((i) => i['id'] === 'plant-power')!['alertAfter']);

let net: IotNetwork;
let gateway: ChildProcess;
const gatewayDir = () => join(net.dir, 'gateway');
const startGateway = () =>
  net.startGateway({ id: GATEWAY, dir: gatewayDir(), mqttPort: MQTT_PORT, httpPort: HTTP_PORT });
const health = async () => (await fetch(`http://127.0.0.1:${HTTP_PORT}/health`)).ok;

beforeAll(async () => {
  net = await startIotNetwork({ validators: 4, basePort: 24320 });
  await provisionSite(net.client, net.admin, {
    enterprise: 'acme',
    gatewayId: GATEWAY,
    gatewayPublicKey: net.gatewayKey.publicKey,
    site: PLANT,
    windowMs: 1000,
    heartbeatMs: 5000,
  });
  gateway = startGateway();
  await waitFor('the gateway', health);
}, 120_000);

afterAll(async () => {
  await net?.stop();
});

it('4 validators: a sudden stop raises an ALERT; every validator holds the same anchors and the proof verifies against any of them', async () => {
  expect(gateway.pid).toBeDefined();
  const sim = createSimulator({
    mqttUrl: `mqtt://127.0.0.1:${MQTT_PORT}`,
    gatewayId: GATEWAY,
    site: PLANT,
    scenario: 'sudden-stop',
    intervalMs: 100,
    eventAfterMs: 4_000,
  });
  await sim.start();
  await new Promise((r) => setTimeout(r, 8_000));
  await sim.stop(10_000);
  expect(sim.unacked.size).toBe(0);
  const query = async (name: string) =>
    (await net.client.call('events_query', { contract: 'iot', name, limit: 1000 })).events.map(
      (e) => e.data as Record<string, Value>,
    );
  await waitFor(
    'IndicatorAlert',
    async () => (await query('IndicatorAlert')).some((d) => d['indicator'] === 'plant-power'),
    30_000,
  );
  const alert = (await query('IndicatorAlert')).find((d) => d['indicator'] === 'plant-power')!;
  const anchors = await query('BatchAnchored');
  const stopWindow = anchors.find((d) => Number(d['windowEnd']) > sim.eventAt!)!;
  expect(Number(alert['seqNo']) - Number(stopWindow['seqNo'])).toBeLessThanOrEqual(ALERT_AFTER);

  const id = [...sim.acked][0]!;
  const [device, n] = id.split(':') as [string, string];
  const proofRes = (await (
    await fetch(`http://127.0.0.1:${HTTP_PORT}/proof?device=${device}&n=${n}`)
  ).json()) as Record<string, unknown>;
  const seqNo = proofRes['seqNo'] as number;
  await waitFor('the anchor on every validator', async () => {
    const roots = await Promise.all(
      net.network.nodes.map(async (nd) => {
        const c = createClient({ url: `http://127.0.0.1:${nd.rpcPort}` });
        try {
          return (
            ((await c.view('iot', 'anchorOf', { gateway: GATEWAY, seqNo })) as { root: Bytes } | null)
              ?.root ?? null
          );
        } finally {
          c.close();
        }
      }),
    );
    return roots.every((r) => r !== null && bytesEqual(r, roots[0]!));
  });
  const last = createClient({ url: `http://127.0.0.1:${net.network.nodes[3]!.rpcPort}` });
  const onChain = (await last.view('iot', 'anchorOf', { gateway: GATEWAY, seqNo })) as { root: Bytes };
  last.close();
  const p = proofRes['proof'] as { index: number; size: number; path: string[] };
  expect(
    verifyMerkleProof(onChain.root, fromHex(proofRes['leaf'] as string), {
      index: p.index,
      size: p.size,
      path: p.path.map((h) => fromHex(h)),
    }),
  ).toBe(true);
}, 120_000);

it('4 validators: a gateway SIGKILLed mid-window loses no acknowledged reading and anchors no window twice', async () => {
  const sim = createSimulator({
    mqttUrl: `mqtt://127.0.0.1:${MQTT_PORT}`,
    gatewayId: GATEWAY,
    site: PLANT,
    scenario: 'normal',
    intervalMs: 100,
  });
  await sim.start();
  await new Promise((r) => setTimeout(r, 2_000));
  // Half-way through the current window.
  await new Promise((r) => setTimeout(r, (1500 - (Date.now() % 1000)) % 1000));
  const ackedBeforeKill = sim.acked.size;
  const exited = new Promise((r) => gateway.once('exit', r));
  gateway.kill('SIGKILL');
  await exited;
  // The devices keep publishing into the void (their retries carry the readings over).
  await new Promise((r) => setTimeout(r, 1_000));
  gateway = startGateway();
  await waitFor('the restarted gateway', health);
  // It was killed with readings of an open window acknowledged: the restart replays them from its log.
  const recovered = readFileSync(join(net.dir, `gateway-${GATEWAY}.log`), 'utf8')
    .split('\n')
    .filter((l) => l.includes('"GATEWAY_RECOVERED"'))
    .map((l) => JSON.parse(l) as { openReadings: number });
  expect(recovered.length).toBe(2);
  expect(recovered[1]!.openReadings).toBeGreaterThan(0);
  await new Promise((r) => setTimeout(r, 2_000));
  await sim.stop(15_000);
  expect(sim.unacked.size).toBe(0);
  expect(sim.acked.size).toBeGreaterThan(ackedBeforeKill);
  // A window being closed still counts as open (until its close record is on disk), so this
  // means every reading the gateway accepted is anchored through the validator it sends to.
  await waitFor('every window anchored', async () => {
    const s = (await (await fetch(`http://127.0.0.1:${HTTP_PORT}/status`)).json()) as Record<string, number>;
    return s['pendingAnchors'] === 0 && s['openWindows'] === 0;
  });
  // Read the anchors from another validator than the one the gateway sends to.
  const other = createClient({ url: `http://127.0.0.1:${net.network.nodes[2]!.rpcPort}` });
  try {
    await waitFor('validator 3 to hold the last anchor', async () => {
      const head = (await net.client.view('iot', 'gateway', { id: GATEWAY })) as { lastSeq: number };
      const there = (await other.view('iot', 'gateway', { id: GATEWAY })) as { lastSeq: number };
      return there.lastSeq >= head.lastSeq;
    });
    const { seqNos, ids } = await auditGatewayBatches(other, GATEWAY, gatewayDir());
    // Each seqNo once, none skipped: no window anchored twice, none lost.
    expect(seqNos).toEqual(seqNos.map((_, i) => i + 1));
    // No reading in two windows, and every acknowledged one in an anchored window.
    expect(new Set(ids).size).toBe(ids.length);
    const inBatches = new Set(ids);
    expect([...sim.acked].filter((id) => !inBatches.has(id))).toEqual([]);
  } finally {
    other.close();
  }
}, 120_000);
