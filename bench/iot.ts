/**
 * IoT figures on a real one-validator node (a `trellis start` child process):
 * - readings/s one gateway ingests: signed readings verified, logged with fsync and acknowledged,
 *   (a) handed to the gateway directly, (b) published by device clients over MQTT QoS 1 to the
 *   embedded broker (acknowledged only once on disk);
 * - anchors/s the chain accepts: many registered gateways sending window anchors at once (each
 *   naming its 6 devices, whose heartbeat deadlines it moves), counted when committed with status ok.
 *
 *   npm run bench:iot -- [--readings N] [--gateways G] [--anchors K] [--json]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connect as mqttConnect } from 'mqtt';
import { createGateway, readingsTopic } from '../iot/gateway/gateway.ts';
import { readingToJson, signReading, type Reading } from '../iot/gateway/reading.ts';
import { deviceKey, PLANT, provisionSite } from '../iot/simulate.ts';
import { createWallet, type SentTx } from '../rpc/sdk/index.ts';
import { startIotNetwork, testKey } from '../test/iot/network.ts';

const { values } = parseArgs({
  options: {
    readings: { type: 'string' },
    gateways: { type: 'string' },
    anchors: { type: 'string' },
    json: { type: 'boolean' },
  },
});
const READINGS = Number(values.readings ?? 30_000);
const GATEWAYS = Number(values.gateways ?? 16);
const ANCHORS_PER_GATEWAY = Number(values.anchors ?? 25);
/** Devices each bench gateway registers and names in every anchor (their heartbeats). */
const DEVICES_PER_GATEWAY = 6;
const results: Record<string, number | string> = {};
const report = (k: string, v: number | string, unit = '') => {
  results[k] = v;
  if (values.json !== true)
    console.log(`${k.padEnd(44)} ${typeof v === 'number' ? v.toFixed(0) : v} ${unit}`);
};

const net = await startIotNetwork({ validators: 1, basePort: 24600 });
const dataDir = mkdtempSync(join(tmpdir(), 'trellis-bench-iot-'));
try {
  // Part 1: one gateway's ingest.
  await provisionSite(net.client, net.admin, {
    enterprise: 'acme',
    gatewayId: 'gw-bench',
    gatewayPublicKey: net.gatewayKey.publicKey,
    site: PLANT,
    windowMs: 1000,
    heartbeatMs: 600_000,
  });
  const gateway = createGateway({
    dir: dataDir,
    gatewayId: 'gw-bench',
    key: net.gatewayKey,
    rpcUrl: net.rpcUrl,
    mqtt: { port: 0 },
    httpPort: null,
    log: () => undefined,
  });
  await gateway.start();
  const signed = PLANT.devices.filter((d) => d.signs);
  const keys = new Map(signed.map((d) => [d.id, deviceKey('demo', d.id)]));
  let n = Date.now() * 10;
  const make = (count: number): Reading[] =>
    Array.from({ length: count }, (_, i) => {
      const d = signed[i % signed.length]!;
      return signReading(
        { device: d.id, n: n++, ts: Date.now(), value: BigInt(1000 + (i % 97)) },
        keys.get(d.id)!.secretKey,
      );
    });

  const direct = make(READINGS);
  let t0 = performance.now();
  const CONCURRENCY = 2000;
  for (let i = 0; i < direct.length; i += CONCURRENCY) {
    await Promise.all(direct.slice(i, i + CONCURRENCY).map((r) => gateway.ingest(r)));
  }
  let secs = (performance.now() - t0) / 1000;
  report('gateway ingest, direct (verify+fsync+ack)', READINGS / secs, 'readings/s');

  const viaMqtt = make(READINGS);
  const clients = await Promise.all(
    signed.map(async (d) => {
      const c = mqttConnect(`mqtt://127.0.0.1:${gateway.ports.mqtt}`, { clientId: `bench-${d.id}` });
      await new Promise<void>((r) => c.once('connect', () => r()));
      return c;
    }),
  );
  const topic = readingsTopic('gw-bench');
  t0 = performance.now();
  await Promise.all(
    clients.map(async (c, ci) => {
      const mine = viaMqtt.filter((_, i) => i % clients.length === ci);
      // Up to 500 unacknowledged publishes per device connection.
      for (let i = 0; i < mine.length; i += 500) {
        await Promise.all(
          mine
            .slice(i, i + 500)
            .map((r) => c.publishAsync(topic, JSON.stringify(readingToJson(r)), { qos: 1 })),
        );
      }
    }),
  );
  secs = (performance.now() - t0) / 1000;
  report(`gateway ingest, MQTT QoS 1 (${clients.length} device connections)`, READINGS / secs, 'readings/s');
  await Promise.all(clients.map((c) => c.endAsync()));
  report('readings accepted by the gateway', gateway.stats.accepted);
  await gateway.stop();

  // Part 2: anchors the chain accepts.
  const gwKeys = Array.from({ length: GATEWAYS }, (_, i) => testKey(`bench-gw-${i}`));
  const WINDOW = 100;
  const regs: Array<Promise<SentTx>> = [];
  for (const [i, k] of gwKeys.entries()) {
    regs.push(
      net.admin.send({
        contract: 'iot',
        method: 'registerGateway',
        args: {
          id: `bench-${i}`,
          enterprise: 'acme',
          site: `bench-site-${i}`,
          publicKey: k.publicKey,
          windowMs: WINDOW,
          heartbeatMs: 600_000,
        },
        gasLimit: 5_000_000,
      }),
    );
  }
  const sentRegs = await Promise.all(regs);
  for (const s of sentRegs) await net.client.waitTx(s.hash, 60_000);
  // Each anchor names its gateway's devices: the per-device heartbeat work is part of the figure.
  const devs: Array<Promise<SentTx>> = [];
  for (let i = 0; i < GATEWAYS; i++) {
    for (let d = 0; d < DEVICES_PER_GATEWAY; d++) {
      devs.push(
        net.admin.send({
          contract: 'iot',
          method: 'registerDevice',
          args: {
            id: `bench-${i}-d${d}`,
            gateway: `bench-${i}`,
            kind: 'power-meter',
            metric: 'power',
            publicKey: null,
          },
          gasLimit: 5_000_000,
        }),
      );
    }
  }
  const sentDevs = await Promise.all(devs);
  for (const s of sentDevs) await net.client.waitTx(s.hash, 60_000);
  const head = await net.client.head();
  const base = Math.floor((head!.header.timestamp - ANCHORS_PER_GATEWAY * WINDOW - 10_000) / WINDOW) * WINDOW;
  const metrics = [{ metric: 'power', n: 10, min: 90, max: 110, sum: 1000 }];
  t0 = performance.now();
  const lasts = await Promise.all(
    gwKeys.map(async (k, i) => {
      const w = createWallet(net.client, k, { gasLimit: 20_000_000 });
      let last: SentTx | undefined;
      for (let s = 1; s <= ANCHORS_PER_GATEWAY; s++) {
        last = await w.send({
          contract: 'iot',
          method: 'anchor',
          args: {
            gateway: `bench-${i}`,
            seqNo: s,
            windowStart: base + (s - 1) * WINDOW,
            windowEnd: base + s * WINDOW,
            count: 10,
            root: new Uint8Array(32).fill(s % 256),
            batchHash: new Uint8Array(32).fill(1),
            metrics,
            devices: Array.from({ length: DEVICES_PER_GATEWAY }, (_, d) => `bench-${i}-d${d}`),
          },
        });
      }
      return last!;
    }),
  );
  for (const l of lasts) await net.client.waitTx(l.hash, 120_000);
  secs = (performance.now() - t0) / 1000;
  let okCount = 0;
  for (let i = 0; i < GATEWAYS; i++) {
    const g = (await net.client.view('iot', 'gateway', { id: `bench-${i}` })) as { lastSeq: number };
    okCount += g.lastSeq;
  }
  report(
    `anchors committed ok (${GATEWAYS} gateways x ${ANCHORS_PER_GATEWAY}, ${DEVICES_PER_GATEWAY} devices named each)`,
    okCount,
  );
  report('anchors/s accepted by a 1-validator chain', okCount / secs, 'anchors/s');
} finally {
  await net.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
if (values.json === true) console.log(JSON.stringify(results, null, 2));
