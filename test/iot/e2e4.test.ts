/**
 * Goal: the same pipeline on a 4-validator consortium (separate processes): simulator → MQTT →
 * gateway → chain, a sudden stop raises an ALERT within the configured windows, and every
 * validator serves the same anchored roots, against which a reading's proof verifies.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bytesEqual, fromHex, type Bytes } from '../../core/bytes.ts';
import type { Value } from '../../core/codec.ts';
import { verifyMerkleProof } from '../../core/merkle.ts';
import { createSimulator, PLANT, provisionSite } from '../../iot/simulate.ts';
import { createClient } from '../../rpc/sdk/index.ts';
import { startIotNetwork, waitFor, type IotNetwork } from './network.ts';

const MQTT_PORT = 24390;
const HTTP_PORT = 24391;
const GATEWAY = 'gw-plant4';
const ALERT_AFTER = Number(PLANT.indicators.find((i) => i['id'] === 'plant-power')!['alertAfter']);

let net: IotNetwork;
let gateway: ChildProcess;

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
  gateway = net.startGateway({
    id: GATEWAY,
    dir: join(net.dir, 'gateway'),
    mqttPort: MQTT_PORT,
    httpPort: HTTP_PORT,
  });
  await waitFor('the gateway', async () => (await fetch(`http://127.0.0.1:${HTTP_PORT}/health`)).ok);
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
