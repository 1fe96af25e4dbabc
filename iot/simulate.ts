/**
 * The device simulator: a machining plant and a warehouse whose meters, machines, counters and
 * scales publish signed readings over MQTT (QoS 1) to an edge gateway, under a scenario: normal,
 * gradual decline, sudden stop, tampered readings, or the gateway link going offline. Values are
 * deterministic for a seed (a small xorshift generator), so a run can be replayed.
 *
 * Also here: {@link provisionSite}, which registers a site's gateway, devices and indicators in the
 * iot contract, so the simulator, the tests and the benchmark set up the same plant.
 */
import { connect as mqttConnect, type MqttClient } from 'mqtt';
import { bytesEqual, utf8, type Bytes } from '../core/bytes.ts';
import type { Value } from '../core/codec.ts';
import { sha256 } from '../core/hash.ts';
import { keyPairFromSecret, type KeyPair } from '../core/keys.ts';
import type { TrellisClient, Wallet } from '../rpc/sdk/index.ts';
import { IotError } from './gateway/errors.ts';
import { readingsTopic } from './gateway/gateway.ts';
import { readingToJson, signReading, type Reading } from './gateway/reading.ts';

/** Scenarios of {@link createSimulator}. */
export const SCENARIOS = ['normal', 'decline', 'sudden-stop', 'tampered', 'gateway-offline'] as const;
/** A scenario name. */
export type Scenario = (typeof SCENARIOS)[number];

/** One simulated device. */
export interface SimDevice {
  readonly id: string;
  readonly kind: string;
  readonly metric: string;
  /** Typical value of one reading. */
  readonly base: number;
  /** Relative noise, per mille of base. */
  readonly noisePermille: number;
  /** Whether a sudden stop takes this device's value down (and to what per mille of base). */
  readonly stopPermille: number;
  /** Whether the device signs its readings. */
  readonly signs: boolean;
}

/** Indicator definitions as configureIndicator takes them (without enterprise and site). */
export type IndicatorSpec = Record<string, Value>;

/** A site: its devices and the indicators watched there. */
export interface SiteSpec {
  readonly site: string;
  readonly devices: readonly SimDevice[];
  readonly indicators: readonly IndicatorSpec[];
}

/** The machining plant: power and water meters, two key machines, the line's output, a people counter. */
export const PLANT: SiteSpec = {
  site: 'plant',
  devices: [
    {
      id: 'plant-power',
      kind: 'power-meter',
      metric: 'power',
      base: 5000,
      noisePermille: 40,
      stopPermille: 30,
      signs: true,
    },
    {
      id: 'plant-water',
      kind: 'water-meter',
      metric: 'water',
      base: 800,
      noisePermille: 60,
      stopPermille: 100,
      signs: true,
    },
    {
      id: 'cnc-1',
      kind: 'machine',
      metric: 'machine',
      base: 850,
      noisePermille: 50,
      stopPermille: 0,
      signs: true,
    },
    {
      id: 'cnc-2',
      kind: 'machine',
      metric: 'machine',
      base: 820,
      noisePermille: 50,
      stopPermille: 0,
      signs: true,
    },
    {
      id: 'line-output',
      kind: 'machine',
      metric: 'output',
      base: 120,
      noisePermille: 80,
      stopPermille: 0,
      signs: true,
    },
    {
      id: 'plant-people',
      kind: 'people-counter',
      metric: 'people',
      base: 40,
      noisePermille: 100,
      stopPermille: 1000,
      signs: false,
    },
  ],
  indicators: [
    {
      id: 'plant-power',
      kind: 'level',
      metric: 'power',
      dropPct: 50,
      kTenths: 0,
      baselineWindows: 8,
      minHistory: 3,
      alertAfter: 2,
      clearAfter: 2,
    },
    {
      id: 'machine-utilisation',
      kind: 'level',
      metric: 'machine',
      dropPct: 40,
      kTenths: 0,
      baselineWindows: 8,
      minHistory: 3,
      alertAfter: 2,
      clearAfter: 2,
    },
    {
      id: 'water',
      kind: 'level',
      metric: 'water',
      dropPct: 60,
      kTenths: 0,
      baselineWindows: 8,
      minHistory: 3,
      alertAfter: 3,
      clearAfter: 2,
    },
    {
      id: 'output-per-power',
      kind: 'ratio',
      metric: 'output',
      denominator: 'power',
      minPermille: 10,
      maxPermille: 60,
      alertAfter: 2,
      clearAfter: 2,
    },
  ],
};

/** The warehouse: power meter, vehicle gate, weight sensor of the pledged stock, people counter. */
export const WAREHOUSE: SiteSpec = {
  site: 'warehouse',
  devices: [
    {
      id: 'wh-power',
      kind: 'power-meter',
      metric: 'power',
      base: 1500,
      noisePermille: 40,
      stopPermille: 200,
      signs: true,
    },
    {
      id: 'wh-gate',
      kind: 'vehicle-gate',
      metric: 'trucks',
      base: 3,
      noisePermille: 300,
      stopPermille: 0,
      signs: true,
    },
    {
      id: 'wh-scale',
      kind: 'weight-sensor',
      metric: 'weight',
      base: 250_000,
      noisePermille: 5,
      stopPermille: 1000,
      signs: true,
    },
    {
      id: 'wh-people',
      kind: 'people-counter',
      metric: 'people',
      base: 12,
      noisePermille: 150,
      stopPermille: 1000,
      signs: false,
    },
  ],
  indicators: [
    {
      id: 'wh-weight',
      kind: 'level',
      metric: 'weight',
      dropPct: 20,
      kTenths: 60,
      baselineWindows: 8,
      minHistory: 3,
      alertAfter: 2,
      clearAfter: 2,
    },
    {
      id: 'wh-power',
      kind: 'level',
      metric: 'power',
      dropPct: 60,
      kTenths: 0,
      baselineWindows: 8,
      minHistory: 3,
      alertAfter: 2,
      clearAfter: 2,
    },
  ],
};

/** The site specs by name. */
export const SITES: Record<string, SiteSpec> = { plant: PLANT, warehouse: WAREHOUSE };

/** A reading unacknowledged this long is published again (same id: the gateway deduplicates). */
export const RETRY_AFTER_MS = 3_000;
/** Most unacknowledged readings a simulator keeps for retries; beyond it the oldest are given up. */
export const MAX_UNACKED = 100_000;

/** A device's deterministic signing key for a seed (the simulator's stand-in for its secure element). */
export function deviceKey(seed: string, deviceId: string): KeyPair {
  return keyPairFromSecret(sha256(utf8(`trellis.iot.sim.${seed}.${deviceId}`)));
}

/** Options of {@link createSimulator}. */
export interface SimulatorOptions {
  /** Broker URL, e.g. mqtt://127.0.0.1:1883. */
  readonly mqttUrl: string;
  readonly gatewayId: string;
  readonly site: SiteSpec;
  readonly scenario: Scenario;
  /** Milliseconds between two readings of one device. Default 250. */
  readonly intervalMs?: number;
  /** Seed of keys and noise. Default 'demo'. */
  readonly seed?: string;
  /** When the scenario's event starts, ms after start (stop, decline start, tampering, offline). Default 5000. */
  readonly eventAfterMs?: number;
  /** How long the devices cannot reach the gateway in gateway-offline (they buffer). Default 5000. */
  readonly offlineForMs?: number;
  /** Each n-th reading after the event is tampered (tampered scenario). Default 5. */
  readonly tamperEvery?: number;
  readonly now?: () => number;
}

/** A running simulator. */
export interface Simulator {
  start(): Promise<void>;
  /** Stops publishing; waits for outstanding acknowledgements up to `drainMs`. */
  stop(drainMs?: number): Promise<void>;
  /** Readings the gateway acknowledged (PUBACK), by id `device:n`. */
  readonly acked: ReadonlySet<string>;
  /** Readings published and not (yet) acknowledged. */
  readonly unacked: ReadonlySet<string>;
  /** Readings altered after signing (tampered scenario). */
  readonly tampered: readonly Reading[];
  /** Readings published. */
  readonly published: number;
  /** Time the scenario's event started, or null. */
  readonly eventAt: number | null;
}

function xorshift(seed: string): () => number {
  const h = sha256(utf8(seed));
  let x = (h[0]! | (h[1]! << 8) | (h[2]! << 16) | (h[3]! << 24)) >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

/** Value of one reading at `t` ms after start, under a scenario. */
export function simulatedValue(
  d: SimDevice,
  scenario: Scenario,
  t: number,
  eventAfterMs: number,
  rand: () => number,
): bigint {
  let level = 1000; // per mille of base
  if (scenario === 'sudden-stop' && t >= eventAfterMs) level = d.stopPermille;
  if (scenario === 'decline' && t >= eventAfterMs)
    level = Math.max(100, 1000 - Math.floor((t - eventAfterMs) / 50));
  const noise = Math.round((rand() * 2 - 1) * d.noisePermille);
  const v = Math.round((d.base * level * (1000 + noise)) / 1_000_000);
  return BigInt(Math.max(0, v));
}

/** Creates a simulator for one site's devices publishing to one gateway. */
export function createSimulator(options: SimulatorOptions): Simulator {
  const intervalMs = options.intervalMs ?? 250;
  const seed = options.seed ?? 'demo';
  const eventAfterMs = options.eventAfterMs ?? 5_000;
  const offlineForMs = options.offlineForMs ?? 5_000;
  const tamperEvery = options.tamperEvery ?? 5;
  const now = options.now ?? Date.now;
  const topic = readingsTopic(options.gatewayId);
  const rand = xorshift(seed);
  const keys = new Map(options.site.devices.map((d) => [d.id, deviceKey(seed, d.id)]));
  // Devices keep a counter across restarts; a run starting from the clock stands in for that, so
  // readings of two runs never share an id (the gateway drops repeated ids as retries).
  const counters = new Map(options.site.devices.map((d) => [d.id, now()]));
  const acked = new Set<string>();
  const unacked = new Set<string>();
  const tampered: Reading[] = [];
  /** Unacknowledged readings and when they were last sent (bounded by MAX_UNACKED). */
  const pending = new Map<string, { reading: Reading; sentAt: number }>();
  let client: MqttClient | null = null;
  let timer: NodeJS.Timeout | undefined;
  let startedAt = 0;
  let published = 0;
  let eventAt: number | null = null;
  let linkDown = false;

  function send(id: string, r: Reading): void {
    pending.set(id, { reading: r, sentAt: now() });
    // QoS 1: resolves on PUBACK, which the gateway sends only once the reading is on its disk.
    void client!.publishAsync(topic, JSON.stringify(readingToJson(r)), { qos: 1 }).then(
      () => {
        if (!unacked.delete(id)) return;
        pending.delete(id);
        acked.add(id);
      },
      () => undefined,
    );
  }

  function publish(r: Reading): void {
    const id = `${r.device}:${r.n}`;
    unacked.add(id);
    published++;
    if (pending.size >= MAX_UNACKED) pending.delete(pending.keys().next().value!);
    // While the link is down the device keeps the reading; retry() sends it once the link is back.
    if (linkDown) pending.set(id, { reading: r, sentAt: 0 });
    else send(id, r);
  }

  /**
   * Application-level retry, as devices do: mqtt.js resends unacknowledged publishes after a
   * reconnect, but a reading still unacknowledged after RETRY_AFTER_MS is published again with
   * the same (device, n); the gateway keeps one copy and acknowledges the repeat.
   */
  function retry(): void {
    if (linkDown) return;
    const limit = now() - RETRY_AFTER_MS;
    for (const [id, p] of pending) if (p.sentAt <= limit) send(id, p.reading);
  }

  function tick(): void {
    const t = now() - startedAt;
    retry();
    if (t >= eventAfterMs && eventAt === null && options.scenario !== 'normal') eventAt = now();
    if (options.scenario === 'gateway-offline' && t >= eventAfterMs) {
      const down = t < eventAfterMs + offlineForMs;
      // The devices lose the gateway: they keep measuring and buffer, and deliver the backlog
      // late once it is reachable again (the gateway, still running, anchors empty windows
      // meanwhile; stopping the gateway itself is what turns the site OFFLINE on chain).
      if (down !== linkDown) linkDown = down;
    }
    for (const d of options.site.devices) {
      const n = counters.get(d.id)!;
      counters.set(d.id, n + 1);
      const value = simulatedValue(d, options.scenario, t, eventAfterMs, rand);
      const base = { device: d.id, n, ts: now(), value };
      let r: Reading = d.signs ? signReading(base, keys.get(d.id)!.secretKey) : { ...base, sig: null };
      if (options.scenario === 'tampered' && t >= eventAfterMs && d.signs && n % tamperEvery === 0) {
        // Someone between the sensor and the gateway inflates the value after it was signed.
        r = { ...r, value: r.value * 3n + 1n };
        tampered.push(r);
      }
      publish(r);
    }
  }

  return {
    acked,
    unacked,
    tampered,
    get published() {
      return published;
    },
    get eventAt() {
      return eventAt;
    },
    async start() {
      if (!SCENARIOS.includes(options.scenario)) {
        throw new IotError(
          'BAD_CONFIG',
          `unknown scenario ${String(options.scenario)}; expected ${SCENARIOS.join(', ')}`,
          {},
        );
      }
      client = mqttConnect(options.mqttUrl, {
        clientId: `trellis-sim-${options.gatewayId}-${seed}`,
        reconnectPeriod: 200,
        connectTimeout: 5_000,
        // Readings published while the link is down are queued and sent after reconnecting.
        queueQoSZero: true,
      });
      client.on('error', () => undefined);
      await new Promise<void>((resolve) => client!.once('connect', () => resolve()));
      startedAt = now();
      timer = setInterval(tick, intervalMs);
    },
    async stop(drainMs = 5_000) {
      clearInterval(timer);
      const deadline = Date.now() + drainMs;
      while (unacked.size > 0 && Date.now() < deadline) {
        retry();
        await new Promise((r) => setTimeout(r, 100));
      }
      await client?.endAsync(true);
    },
  };
}

/** Options of {@link provisionSite}. */
export interface ProvisionOptions {
  readonly enterprise: string;
  readonly gatewayId: string;
  readonly gatewayPublicKey: Bytes;
  readonly site: SiteSpec;
  readonly windowMs: number;
  readonly heartbeatMs: number;
  readonly seed?: string;
  /** Lender organisations and their X25519 keys to authorise. */
  readonly lenders?: ReadonlyArray<{ lender: string; encryptionKey: Bytes }>;
  readonly contract?: string;
}

/**
 * Registers the gateway (if new), the site's devices (signing ones with their simulator keys) and
 * its indicators, and authorises lenders, sending as an admin of the enterprise. Skips what exists.
 */
export async function provisionSite(
  client: TrellisClient,
  admin: Wallet,
  o: ProvisionOptions,
): Promise<void> {
  const contract = o.contract ?? 'iot';
  const seed = o.seed ?? 'demo';
  /**
   * Sends unless `done()` already holds. A send that fails in transport (the node may have taken
   * it: a resent request then finds its nonce used) is followed by a nonce resync and a re-check,
   * up to three times, so provisioning is idempotent.
   */
  const ensure = async (done: () => Promise<boolean>, method: string, args: Value) => {
    for (let attempt = 1; ; attempt++) {
      if (await done()) return;
      try {
        const r = await admin.sendAndWait({ contract, method, args, gasLimit: 20_000_000 });
        if (r.receipt.status !== 'ok') {
          throw new IotError('BAD_CONFIG', `${method}: ${r.receipt.errorCode} ${r.receipt.error}`, {
            method,
          });
        }
        return;
      } catch (err) {
        if (err instanceof IotError || attempt >= 3) throw err;
        await admin.resync();
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  };
  const view = (method: string, args: Value) => client.view(contract, method, args);
  await ensure(async () => (await view('gateway', { id: o.gatewayId })) !== null, 'registerGateway', {
    id: o.gatewayId,
    enterprise: o.enterprise,
    site: o.site.site,
    publicKey: o.gatewayPublicKey,
    windowMs: o.windowMs,
    heartbeatMs: o.heartbeatMs,
  });
  for (const d of o.site.devices) {
    await ensure(async () => (await view('device', { id: d.id })) !== null, 'registerDevice', {
      id: d.id,
      gateway: o.gatewayId,
      kind: d.kind,
      metric: d.metric,
      publicKey: d.signs ? deviceKey(seed, d.id).publicKey : null,
    });
  }
  for (const ind of o.site.indicators) {
    await ensure(
      async () => (await view('indicator', { enterprise: o.enterprise, id: ind['id']! })) !== null,
      'configureIndicator',
      { ...ind, enterprise: o.enterprise, site: o.site.site },
    );
  }
  for (const l of o.lenders ?? []) {
    const authorised = async () =>
      (
        (await view('lenders', { enterprise: o.enterprise })) as Array<{
          lender: string;
          encryptionKey: Bytes;
        }>
      ).some((x) => x.lender === l.lender && bytesEqual(x.encryptionKey, l.encryptionKey));
    await ensure(authorised, 'authoriseLender', { enterprise: o.enterprise, ...l });
  }
}
