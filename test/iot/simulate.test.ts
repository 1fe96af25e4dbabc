/** Goal: the simulator publishes signed readings over real MQTT, and its gateway-offline and tampered scenarios do what they say. */
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import { afterEach, expect, it } from 'vitest';
import { readingFromBytes, verifyReading, type Reading } from '../../iot/gateway/reading.ts';
import { createSimulator, deviceKey, WAREHOUSE } from '../../iot/simulate.ts';

let broker: Aedes | undefined;
let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((r) => (broker === undefined ? r() : broker.close(() => r())));
  await new Promise<void>((r) => (server === undefined ? r() : server.close(() => r())));
});

/** A broker that records every reading published to the gateway topic, with its arrival time. */
async function recordingBroker(): Promise<{ url: string; got: Array<{ at: number; r: Reading }> }> {
  const got: Array<{ at: number; r: Reading }> = [];
  broker = await Aedes.createBroker();
  broker.authorizePublish = (_c, packet, cb) => {
    if (packet.topic === 'trellis/gw-sim/readings')
      got.push({ at: Date.now(), r: readingFromBytes(packet.payload as Buffer) });
    cb(null);
  };
  server = createServer(broker.handle);
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return { url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`, got };
}

it('gateway-offline: nothing arrives while the link is down; the backlog arrives after, every reading acknowledged once', async () => {
  const { url, got } = await recordingBroker();
  const sim = createSimulator({
    mqttUrl: url,
    gatewayId: 'gw-sim',
    site: WAREHOUSE,
    scenario: 'gateway-offline',
    intervalMs: 50,
    eventAfterMs: 500,
    offlineForMs: 1000,
  });
  await sim.start();
  await new Promise((r) => setTimeout(r, 2_500));
  await sim.stop(5_000);
  const down = sim.eventAt!;
  // Margins of one tick either side of the outage.
  expect(got.filter((g) => g.at > down + 100 && g.at < down + 900).length).toBe(0);
  expect(sim.unacked.size).toBe(0);
  expect(sim.acked.size).toBe(sim.published);
  const ids = new Set(got.map((g) => `${g.r.device}:${g.r.n}`));
  expect(ids.size).toBe(sim.published);
  // Readings measured during the outage arrive late, their device time inside it.
  expect(got.some((g) => g.r.ts > down + 100 && g.r.ts < down + 900 && g.at > down + 1000)).toBe(true);
}, 20_000);

it('tampered: the altered readings fail their device signature, the others verify', async () => {
  const { url, got } = await recordingBroker();
  const sim = createSimulator({
    mqttUrl: url,
    gatewayId: 'gw-sim',
    site: WAREHOUSE,
    scenario: 'tampered',
    intervalMs: 50,
    eventAfterMs: 200,
    tamperEvery: 3,
  });
  await sim.start();
  await new Promise((r) => setTimeout(r, 1_000));
  await sim.stop(5_000);
  const tampered = new Set(sim.tampered.map((r) => `${r.device}:${r.n}`));
  expect(tampered.size).toBeGreaterThan(0);
  for (const { r } of got) {
    const d = WAREHOUSE.devices.find((x) => x.id === r.device)!;
    if (!d.signs) continue;
    expect(verifyReading(r, deviceKey('demo', d.id).publicKey)).toBe(!tampered.has(`${r.device}:${r.n}`));
  }
}, 20_000);
