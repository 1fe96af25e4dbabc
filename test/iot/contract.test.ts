/** Goal: the IoT contract's registries, anchoring checks, rules, state machine, heartbeats and score behave as documented. */
import { afterEach, describe, expect, it } from 'vitest';
import type { Value } from '../../core/codec.ts';
import type { TestChain } from '../../vm/testing.ts';
import { batch, eventData, eventNames, HEARTBEAT_MS, iotChain, ok, windowBefore } from './contractFixture.ts';
import type { BlockResult } from '../../vm/executor.ts';

let chain: TestChain;
afterEach(() => chain?.close());

const anchor = (seq: number, sums: Record<string, number>, from = 'gw') =>
  chain.call('iot', 'anchor', batch(seq, windowBefore(chain), sums), { from });
const view = (method: string, args: Value) => {
  const r = chain.view('iot', method, args);
  if (r.status !== 'ok') throw new Error(`${method}: ${r.errorCode} ${r.error}`);
  return r.returnValue as Record<string, Value>;
};
const stateOf = (id: string) => view('indicator', { enterprise: 'acme', id })['state'];

function level(id: string, extra: Record<string, Value> = {}) {
  ok(
    chain.call(
      'iot',
      'configureIndicator',
      {
        enterprise: 'acme',
        id,
        site: 'plant',
        kind: 'level',
        metric: 'power',
        dropPct: 50,
        minHistory: 3,
        alertAfter: 2,
        clearAfter: 2,
        ...extra,
      },
      { from: 'acmeAdmin' },
    ),
  );
}

describe('registries', () => {
  it('registers gateways and devices for admins of the enterprise only', () => {
    chain = iotChain();
    const dev = {
      id: 'pm1',
      gateway: 'gw1',
      kind: 'power-meter',
      metric: 'power',
      publicKey: chain.account('pm1').keys.publicKey,
    };
    expect(chain.call('iot', 'registerDevice', dev, { from: 'acmeClerk' }).errorCode).toBe('NOT_AUTHORIZED');
    expect(chain.call('iot', 'registerDevice', dev, { from: 'banker' }).errorCode).toBe('NOT_AUTHORIZED');
    expect(
      chain.call('iot', 'registerDevice', { ...dev, kind: 'toaster' }, { from: 'acmeAdmin' }).errorCode,
    ).toBe('BAD_ARGS');
    const r = ok(chain.call('iot', 'registerDevice', dev, { from: 'acmeAdmin' }));
    expect(eventNames(r)).toEqual(['DeviceRegistered']);
    expect(chain.call('iot', 'registerDevice', dev, { from: 'acmeAdmin' }).errorCode).toBe('EXISTS');
    expect(view('device', { id: 'pm1' })).toMatchObject({
      enterprise: 'acme',
      site: 'plant',
      gateway: 'gw1',
      status: 'ACTIVE',
      keyVersion: 1,
    });
    ok(
      chain.call(
        'iot',
        'rotateDeviceKey',
        { id: 'pm1', publicKey: chain.account('pm1b').keys.publicKey },
        { from: 'acmeAdmin' },
      ),
    );
    expect(view('device', { id: 'pm1' })['keyVersion']).toBe(2);
    expect((chain.view('iot', 'devices', { gateway: 'gw1' }).returnValue as Value[]).length).toBe(1);
    expect(
      chain.call(
        'iot',
        'registerGateway',
        {
          id: 'gw1',
          enterprise: 'nobody',
          site: 's',
          publicKey: new Uint8Array(32),
          windowMs: 1000,
          heartbeatMs: 5000,
        },
        { from: 'acmeAdmin' },
      ).errorCode,
    ).toBe('NO_ENTERPRISE');
  });

  it('anchors only with the current key of an active gateway; rotation, suspension and revocation take effect', () => {
    chain = iotChain();
    expect(anchor(1, { power: 10 }, 'intruder').errorCode).toBe('NOT_AUTHORIZED');
    ok(anchor(1, { power: 10 }));
    ok(
      chain.call(
        'iot',
        'rotateGatewayKey',
        { id: 'gw1', publicKey: chain.account('gw-new').keys.publicKey },
        { from: 'acmeAdmin' },
      ),
    );
    expect(anchor(2, { power: 10 }, 'gw').errorCode).toBe('NOT_AUTHORIZED');
    ok(anchor(2, { power: 10 }, 'gw-new'));
    expect(
      chain.call('iot', 'setGatewayStatus', { id: 'gw1', status: 'SUSPENDED' }, { from: 'banker' }).errorCode,
    ).toBe('NOT_AUTHORIZED');
    ok(chain.call('iot', 'setGatewayStatus', { id: 'gw1', status: 'SUSPENDED' }, { from: 'regulatorAdmin' }));
    expect(anchor(3, { power: 10 }, 'gw-new').errorCode).toBe('GATEWAY_NOT_ACTIVE');
    ok(chain.call('iot', 'setGatewayStatus', { id: 'gw1', status: 'ACTIVE' }, { from: 'acmeAdmin' }));
    ok(anchor(3, { power: 10 }, 'gw-new'));
    ok(chain.call('iot', 'setGatewayStatus', { id: 'gw1', status: 'REVOKED' }, { from: 'acmeAdmin' }));
    expect(
      chain.call('iot', 'setGatewayStatus', { id: 'gw1', status: 'ACTIVE' }, { from: 'acmeAdmin' }).errorCode,
    ).toBe('REVOKED');
    expect(anchor(4, { power: 10 }, 'gw-new').errorCode).toBe('GATEWAY_NOT_ACTIVE');
  });
});

describe('anchoring checks', () => {
  it('refuses a repeated seqNo, records a gap, and checks windows and aggregates', () => {
    chain = iotChain();
    const first = ok(anchor(1, { power: 10 }));
    expect(eventData(first, 'BatchAnchored')).toMatchObject({ gateway: 'gw1', seqNo: 1, count: 1 });
    // The same seqNo again (a gateway retry after a lost receipt) changes nothing.
    const again = anchor(1, { power: 10 });
    expect(again.errorCode).toBe('DUPLICATE_SEQ');
    const gap = ok(anchor(4, { power: 10 }));
    expect(eventData(gap, 'SequenceGap')).toMatchObject({ expected: 2, got: 4, missing: 2 });
    expect(view('gateway', { id: 'gw1' })).toMatchObject({ lastSeq: 4, gaps: 1 });
    const start = windowBefore(chain);
    const bad = (over: Record<string, Value>) =>
      chain.call('iot', 'anchor', { ...(batch(5, start, { power: 10 }) as object), ...over }, { from: 'gw' });
    expect(bad({ windowStart: start + 1, windowEnd: start + 1001 }).errorCode).toBe('BAD_WINDOW');
    expect(bad({ windowEnd: start + 2000 }).errorCode).toBe('BAD_WINDOW');
    expect(bad({ windowStart: start + 3_600_000, windowEnd: start + 3_601_000 }).errorCode).toBe(
      'BAD_WINDOW',
    );
    expect(bad({ metrics: [{ metric: 'power', n: 1, min: 5, max: 4, sum: 5 }] }).errorCode).toBe(
      'BAD_AGGREGATE',
    );
    expect(bad({ metrics: [{ metric: 'power', n: 2, min: 1, max: 4, sum: 50 }], count: 2 }).errorCode).toBe(
      'BAD_AGGREGATE',
    );
    expect(bad({ metrics: [{ metric: 'power', n: 3, min: 1, max: 4, sum: 5 }], count: 2 }).errorCode).toBe(
      'BAD_ARGS',
    );
    expect(bad({ root: new Uint8Array(3) }).errorCode).toBe('BAD_ARGS');
    ok(bad({}));
    // A window that overlaps the last anchored one.
    expect(chain.call('iot', 'anchor', batch(6, start - 1000, { power: 10 }), { from: 'gw' }).errorCode).toBe(
      'BAD_WINDOW',
    );
  });
});

describe('rules and the indicator state machine', () => {
  it('a drop against the trailing baseline goes WATCH then ALERT; a lender acknowledges; clear windows return to NORMAL', () => {
    chain = iotChain();
    level('power');
    for (let s = 1; s <= 3; s++)
      expect(eventNames(ok(anchor(s, { power: 1000 })))).not.toContain('IndicatorState');
    const watch = ok(anchor(4, { power: 400 }));
    expect(eventData(watch, 'IndicatorState')).toMatchObject({
      indicator: 'power',
      from: 'NORMAL',
      to: 'WATCH',
      reason: 'drop',
    });
    const alert = ok(anchor(5, { power: 0 }));
    expect(eventData(alert, 'IndicatorAlert')).toMatchObject({
      indicator: 'power',
      from: 'WATCH',
      to: 'ALERT',
      reason: 'drop',
      seqNo: 5,
    });
    expect(eventData(alert, 'ScoreChanged')).toMatchObject({ enterprise: 'acme', score: 200 });
    // The drop does not become the baseline: it keeps breaching.
    expect(view('indicator', { enterprise: 'acme', id: 'power' })['history']).toEqual([1000, 1000, 1000]);
    expect(
      chain.call('iot', 'acknowledge', { enterprise: 'acme', indicator: 'power' }, { from: 'banker' })
        .errorCode,
    ).toBe('NOT_AUTHORIZED');
    ok(
      chain.call(
        'iot',
        'authoriseLender',
        { enterprise: 'acme', lender: 'bank', encryptionKey: new Uint8Array(32).fill(1) },
        { from: 'acmeAdmin' },
      ),
    );
    expect(
      chain.call('iot', 'acknowledge', { enterprise: 'acme', indicator: 'power' }, { from: 'banker2' })
        .errorCode,
    ).toBe('NOT_AUTHORIZED');
    const ack = ok(
      chain.call(
        'iot',
        'acknowledge',
        { enterprise: 'acme', indicator: 'power', note: 'called the plant' },
        { from: 'banker' },
      ),
    );
    expect(eventData(ack, 'IndicatorState')).toMatchObject({ from: 'ALERT', to: 'ACKED', by: 'bank' });
    expect(
      chain.call('iot', 'acknowledge', { enterprise: 'acme', indicator: 'power' }, { from: 'banker' })
        .errorCode,
    ).toBe('BAD_STATE');
    ok(anchor(6, { power: 990 }));
    expect(stateOf('power')).toBe('ACKED');
    const back = ok(anchor(7, { power: 1010 }));
    expect(eventData(back, 'IndicatorState')).toMatchObject({ from: 'ACKED', to: 'NORMAL' });
    expect(view('score', { enterprise: 'acme' })['score']).toBe(1000);
  });

  it('a swing beyond k standard deviations breaches in either direction (integer maths)', () => {
    chain = iotChain();
    level('power', { dropPct: 0, kTenths: 30, minHistory: 4 });
    [100, 110, 90, 100].forEach((v, i) => ok(anchor(i + 1, { power: v })));
    // mean 100, sigma ~7.07: 120 is 2.8 sigma (clear), 130 is 4.2 sigma (breach).
    expect(eventNames(ok(anchor(5, { power: 120 })))).not.toContain('IndicatorState');
    expect(eventData(ok(anchor(6, { power: 70 })), 'IndicatorState')).toMatchObject({
      to: 'WATCH',
      reason: 'swing',
    });
  });

  it('a cross-metric ratio outside its band breaches', () => {
    chain = iotChain();
    ok(
      chain.call(
        'iot',
        'configureIndicator',
        {
          enterprise: 'acme',
          id: 'output-per-power',
          site: 'plant',
          kind: 'ratio',
          metric: 'output',
          denominator: 'power',
          minPermille: 800,
          maxPermille: 1500,
          alertAfter: 1,
        },
        { from: 'acmeAdmin' },
      ),
    );
    expect(eventNames(ok(anchor(1, { output: 100, power: 100 })))).not.toContain('IndicatorState');
    // Power burns but nothing is produced: output / power = 0.2.
    const r = ok(anchor(2, { output: 20, power: 100 }));
    expect(eventData(r, 'IndicatorAlert')).toMatchObject({
      indicator: 'output-per-power',
      reason: 'ratio-low',
    });
  });

  it('a gateway that stops anchoring turns its site OFFLINE through a scheduled check, and comes back', () => {
    chain = iotChain();
    level('power');
    ok(anchor(1, { power: 1000 }));
    ok(anchor(2, { power: 1000 }));
    let offline: Record<string, Value> | undefined;
    for (let i = 0; i < 30 && offline === undefined; i++) {
      const b = chain.advance(1_000);
      offline = b.events.find((e) => e.name === 'GatewayOffline')?.data as Record<string, Value> | undefined;
    }
    expect(offline).toMatchObject({ gateway: 'gw1', lastSeq: 2 });
    expect(stateOf('power')).toBe('OFFLINE');
    expect(view('score', { enterprise: 'acme' })['score']).toBe(0);
    const back = ok(anchor(3, { power: 1000 }));
    expect(eventNames(back)).toContain('GatewayOnline');
    expect(stateOf('power')).toBe('NORMAL');
    expect(HEARTBEAT_MS).toBeGreaterThan(1000);
  });
});

describe('per-device heartbeats', () => {
  const DEVICE_HB = 5_000;
  const register = (id: string, metric: string, extra: Record<string, Value> = {}) =>
    ok(
      chain.call(
        'iot',
        'registerDevice',
        { id, gateway: 'gw1', kind: 'other', metric, publicKey: null, heartbeatMs: DEVICE_HB, ...extra },
        { from: 'acmeAdmin' },
      ),
    );
  const anchorNaming = (seq: number, sums: Record<string, number>, devices: string[]) =>
    chain.call('iot', 'anchor', batch(seq, windowBefore(chain), sums, 'gw1', devices), { from: 'gw' });
  const live = (id: string) => view('device', { id })['live'] as Record<string, Value>;
  const eventsOf = (b: BlockResult, name: string) =>
    b.events.filter((e) => e.name === name).map((e) => e.data as Record<string, Value>);

  it('a device that stops reporting goes OFFLINE through the scheduled check while its gateway keeps anchoring; it recovers when it reports again', () => {
    chain = iotChain();
    register('pm1', 'power');
    register('wm1', 'water');
    level('power');
    level('water', { metric: 'water' });
    expect(live('pm1')['state']).toBe('UNKNOWN');
    let seq = 0;
    for (let i = 0; i < 3; i++) ok(anchorNaming(++seq, { power: 1000, water: 50 }, ['pm1', 'wm1']));
    expect(live('pm1')).toMatchObject({ state: 'ONLINE', lastSeq: 3 });
    // pm1 falls silent; wm1 and the gateway carry on, one window per block.
    const offline: Array<Record<string, Value>> = [];
    for (let i = 0; i < 8 && offline.length === 0; i++) {
      // The check runs at the start of a block, before its transactions: look at the whole block.
      const b = chain.block([
        {
          contract: 'iot',
          method: 'anchor',
          args: batch(++seq, windowBefore(chain), { water: 50 }, 'gw1', ['wm1']),
          from: 'gw',
        },
      ]);
      ok(b.receipts[b.receipts.length - 1]!);
      expect(eventsOf(b, 'GatewayOffline')).toEqual([]);
      offline.push(...eventsOf(b, 'DeviceOffline'));
    }
    expect(offline).toEqual([
      expect.objectContaining({
        device: 'pm1',
        gateway: 'gw1',
        metric: 'power',
        lastSeq: 3,
        heartbeatMs: DEVICE_HB,
      }),
    ]);
    expect(live('pm1')['state']).toBe('OFFLINE');
    expect(live('wm1')['state']).toBe('ONLINE');
    expect(stateOf('power')).toBe('OFFLINE');
    expect(stateOf('water')).toBe('NORMAL');
    expect(view('score', { enterprise: 'acme' })['score']).toBe(500);
    // While pm1 is silent the power indicator is not judged on partial windows.
    const partial = ok(anchorNaming(++seq, { water: 50 }, ['wm1']));
    expect(eventNames(partial)).not.toContain('IndicatorState');
    expect(view('indicator', { enterprise: 'acme', id: 'power' })['history']).toEqual([1000, 1000, 1000]);
    // It reports again: DeviceOnline, and the indicator resumes through the state machine.
    const back = ok(anchorNaming(++seq, { power: 1000, water: 50 }, ['pm1', 'wm1']));
    expect(eventData(back, 'DeviceOnline')).toMatchObject({ device: 'pm1', seqNo: seq });
    expect(eventData(back, 'IndicatorState')).toMatchObject({
      indicator: 'power',
      from: 'OFFLINE',
      to: 'NORMAL',
      reason: 'heartbeat-resumed',
    });
    expect(live('pm1')['state']).toBe('ONLINE');
    expect(view('score', { enterprise: 'acme' })['score']).toBe(1000);
  });

  it('devices without a heartbeat, suspended devices and the anchor device list', () => {
    chain = iotChain();
    register('pm1', 'power');
    register('gate', 'trucks', { heartbeatMs: 0 });
    level('power');
    expect(
      chain.call(
        'iot',
        'registerDevice',
        { id: 'x', gateway: 'gw1', kind: 'other', metric: 'power', publicKey: null, heartbeatMs: 10 },
        { from: 'acmeAdmin' },
      ).errorCode,
    ).toBe('BAD_ARGS');
    const start = windowBefore(chain);
    const bad = (devices: unknown) =>
      chain.call(
        'iot',
        'anchor',
        { ...(batch(1, start, { power: 1 }) as object), count: 5, devices } as Value,
        {
          from: 'gw',
        },
      ).errorCode;
    expect(bad(['pm1', 'gate'])).toBe('BAD_ARGS'); // not ascending
    expect(bad(['gate', 'gate'])).toBe('BAD_ARGS');
    expect(bad(['nobody'])).toBe('NO_DEVICE');
    expect(bad('pm1')).toBe('BAD_ARGS');
    let seq = 0;
    ok(anchorNaming(++seq, { power: 1000, trucks: 1 }, ['gate', 'pm1']));
    expect(live('gate')['state']).toBe('UNKNOWN');
    // Suspending pm1 stops watching it: it never goes OFFLINE, nor does its indicator.
    ok(chain.call('iot', 'setDeviceStatus', { id: 'pm1', status: 'SUSPENDED' }, { from: 'regulatorAdmin' }));
    for (let i = 0; i < 10; i++) {
      ok(anchorNaming(++seq, { trucks: 1 }, ['gate']));
      expect(eventsOf(chain.advance(0), 'DeviceOffline')).toEqual([]);
    }
    expect(live('pm1')['state']).toBe('UNKNOWN');
    expect(stateOf('power')).not.toBe('OFFLINE');
    // The heartbeat can be changed by an admin only.
    expect(
      chain.call('iot', 'setDeviceHeartbeat', { id: 'gate', heartbeatMs: 2_000 }, { from: 'banker' })
        .errorCode,
    ).toBe('NOT_AUTHORIZED');
    ok(chain.call('iot', 'setDeviceHeartbeat', { id: 'gate', heartbeatMs: 2_000 }, { from: 'acmeAdmin' }));
    expect(view('device', { id: 'gate' })['heartbeatMs']).toBe(2_000);
  });

  it('one check turns at most 32 overdue devices OFFLINE; the rest follow in the next block', () => {
    chain = iotChain();
    const ids = Array.from({ length: 40 }, (_, i) => `d${String(i).padStart(2, '0')}`);
    for (const id of ids) register(id, 'power');
    ok(anchorNaming(1, { power: 1000 }, ids));
    const perBlock: number[] = [];
    for (let i = 0; i < 12; i++) {
      const n = eventsOf(chain.advance(1_000), 'DeviceOffline').length;
      if (n > 0) perBlock.push(n);
    }
    expect(perBlock).toEqual([32, 8]);
    expect(ids.every((id) => live(id)['state'] === 'OFFLINE')).toBe(true);
    // Every device back in one anchor; the deadline index holds one entry per watched device.
    const back = ok(anchorNaming(2, { power: 1000 }, ids));
    expect(back.events.filter((e) => e.name === 'DeviceOnline').length).toBe(40);
  });
});
