/**
 * IoT supervision: registries of edge gateways and devices (owner enterprise, site, kind, public
 * keys, key rotation, suspend, revoke), anchoring of per-window reading batches (Merkle root plus
 * per-metric min/max/sum/n) with sequence and window checks, deterministic rules on the anchored
 * aggregates, the indicator state machine NORMAL / WATCH / ALERT / ACKED / OFFLINE, missing
 * heartbeats through scheduling, and an operations score per enterprise.
 *
 * Permissions come from the membership contract (`ctx.call(membership, 'member', ...)`): an
 * enterprise is a membership organisation; its members holding the `admin` member role register
 * gateways, devices, indicators and authorised lenders; members of an organisation holding the
 * `regulator` role may suspend or revoke; members of an authorised lender organisation acknowledge
 * alerts. A gateway anchors with its own key: the transaction's signer must be the address of the
 * gateway's registered public key.
 *
 * Rules (all integer arithmetic, evaluated on the window's `sum` of the indicator's metric):
 * - drop: value * 100 < baseline * (100 - dropPct), baseline = mean of the trailing clear windows;
 * - swing: |value - mean| > k * sigma of the trailing windows, compared squared:
 *   100 * (value * L - S)^2 > kTenths^2 * (L * Q - S^2) (L windows, S sum, Q sum of squares);
 * - ratio: numerator * 1000 outside [minPermille, maxPermille] * denominator.
 * A breach moves NORMAL → WATCH, and `alertAfter` consecutive breaches → ALERT (event
 * `IndicatorAlert`); a lender acknowledges ALERT → ACKED; `clearAfter` consecutive clear windows
 * return WATCH / ALERT / ACKED to NORMAL.
 *
 * Missing heartbeats, per device and per gateway, through scheduling. Each anchor names the devices
 * that reported in its window; a device with a heartbeat interval is then due again at block time +
 * its `heartbeatMs`, recorded in a per-gateway deadline index (`dl:<gateway>:<deadline>:<device>`,
 * ordered by time). One scheduled `checkHeartbeat` per gateway (see `ensureCheck`) runs at the earliest deadline, turns at most MAX_OFFLINE_PER_CHECK overdue devices
 * OFFLINE (`DeviceOffline`, and the site's indicators fed by their metric go OFFLINE), and
 * reschedules itself at the next deadline: no transaction ever loops over all devices. A device
 * that reports again comes back (`DeviceOnline`) and its indicators return to NORMAL once no device
 * feeding them is offline. A gateway that anchors nothing for its `heartbeatMs` turns its whole
 * site OFFLINE (`GatewayOffline`); its next anchor brings it back (`GatewayOnline`).
 */
import type { Bytes, Context, Methods, Value, ViewContext, Views } from './api.ts';

/** Bounds: gateways, devices, indicators and lenders per enterprise; metrics per batch; history. */
const MAX_GATEWAYS = 64;
const MAX_DEVICES = 4096;
const MAX_INDICATORS = 64;
const MAX_LENDERS = 16;
const MAX_METRICS = 16;
const MAX_BASELINE = 32;
/** Most readings one batch may claim (the gateway's window buffer bound). */
const MAX_BATCH_READINGS = 1_000_000;
/** A window may end at most this far after the block time (gateway clocks drift). */
const MAX_CLOCK_SKEW_MS = 30_000;
const MIN_WINDOW_MS = 100;
const MAX_WINDOW_MS = 86_400_000;
const MIN_HEARTBEAT_MS = 500;
/**
 * Devices per gateway, and so devices one anchor may name: each named device costs the anchor a
 * few state reads and writes (about 2,800 gas), so this bounds the anchor's gas (~1.5 M at most).
 */
const MAX_GATEWAY_DEVICES = 512;
/** Overdue devices one heartbeat check turns OFFLINE; the rest are handled by the next block's check. */
const MAX_OFFLINE_PER_CHECK = 32;
const DEVICE_KINDS = [
  'power-meter',
  'water-meter',
  'machine',
  'people-counter',
  'vehicle-gate',
  'weight-sensor',
  'other',
];
const STATES = ['NORMAL', 'WATCH', 'ALERT', 'ACKED', 'OFFLINE'];
/** Health points per state; the score is their mean scaled to 0..1000, less gap penalties. */
const HEALTH: Record<string, number> = { NORMAL: 100, WATCH: 70, ACKED: 40, ALERT: 20, OFFLINE: 0 };
const GAP_PENALTY = 10;
const MAX_GAP_PENALTY = 200;

interface Gateway {
  id: string;
  enterprise: string;
  site: string;
  publicKey: Bytes;
  address: string;
  status: string;
  windowMs: number;
  heartbeatMs: number;
  lastSeq: number;
  lastWindowEnd: number;
  lastAnchorAt: number;
  /** Time of the pending heartbeat check (0: none pending). */
  hbAt: number;
  offline: boolean;
  gaps: number;
}
interface Device {
  id: string;
  enterprise: string;
  site: string;
  kind: string;
  gateway: string;
  metric: string;
  publicKey: Bytes | null;
  status: string;
  keyVersion: number;
  /** A device silent this long (block time since the anchor that last named it) is OFFLINE; 0: not watched. */
  heartbeatMs: number;
}
/** A device's liveness (`live:<device>`): UNKNOWN until an anchor first names it. */
interface Liveness {
  state: string;
  lastSeenAt: number;
  lastSeq: number;
  /** When it is overdue (its key in the gateway's deadline index), 0 when not watched. */
  deadline: number;
  since: number;
}
interface Indicator {
  id: string;
  enterprise: string;
  site: string;
  kind: string;
  metric: string;
  denominator: string;
  dropPct: number;
  kTenths: number;
  baselineWindows: number;
  minHistory: number;
  minPermille: number;
  maxPermille: number;
  alertAfter: number;
  clearAfter: number;
  state: string;
  breaches: number;
  clears: number;
  history: Value[];
  lastValue: Value;
  lastSeq: number;
  since: number;
}
interface MetricAgg {
  metric: string;
  n: number;
  min: bigint;
  max: bigint;
  sum: bigint;
}
interface Member {
  address: string;
  org: string;
  roles: string[];
  orgRoles: string[];
}

function cfg(ctx: ViewContext): { membership: string } {
  return ctx.state.get('config') as unknown as { membership: string };
}

function isNameChar(c: string): boolean {
  return (
    (c >= 'a' && c <= 'z') ||
    (c >= 'A' && c <= 'Z') ||
    (c >= '0' && c <= '9') ||
    c === '-' ||
    c === '_' ||
    c === '.'
  );
}
function checkName(ctx: ViewContext, v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length < 1 || v.length > 64)
    ctx.revert('BAD_ARGS', `${what} must be a name of 1..64 characters`);
  for (const c of v)
    if (!isNameChar(c))
      ctx.revert('BAD_ARGS', `${what} "${v}" may hold only letters, digits, '-', '_' and '.'`);
  return v;
}
function checkInt(ctx: ViewContext, v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    ctx.revert('BAD_ARGS', `${what} must be an integer in ${min}..${max}`);
  return v;
}
function checkBig(ctx: ViewContext, v: unknown, what: string): bigint {
  if (typeof v !== 'number' && typeof v !== 'bigint') ctx.revert('BAD_ARGS', `${what} must be an integer`);
  if (typeof v === 'number' && !Number.isInteger(v)) ctx.revert('BAD_ARGS', `${what} must be an integer`);
  return BigInt(v);
}
function checkKey(ctx: ViewContext, v: unknown, what: string): Bytes {
  if (!(v instanceof Uint8Array) || v.length !== 32) ctx.revert('BAD_ARGS', `${what} must be 32 bytes`);
  return v;
}
function checkDeviceHeartbeat(ctx: ViewContext, g: Gateway, v: unknown): number {
  if (v === 0) return 0;
  return checkInt(ctx, v, 'heartbeatMs', Math.max(MIN_HEARTBEAT_MS, g.windowMs), MAX_WINDOW_MS * 7);
}
function hex(b: Bytes): string {
  const digits = '0123456789abcdef';
  let s = '0x';
  for (const x of b) s += digits[x >> 4]! + digits[x & 15]!;
  return s;
}
/** The chain's address rule: first 20 bytes of SHA-256 of the public key. */
function addressOfKey(ctx: ViewContext, publicKey: Bytes): string {
  return hex(ctx.sha256(publicKey).slice(0, 20));
}
function pad(n: number): string {
  return String(n).padStart(12, '0');
}
/** Deadline index key: block times sort as fixed-width decimal. */
function deadlineKey(gateway: string, deadline: number, device: string): string {
  return `dl:${gateway}:${String(deadline).padStart(16, '0')}:${device}`;
}

function member(ctx: ViewContext): Member | null {
  if (!ctx.sender.startsWith('0x')) return null;
  return ctx.call(cfg(ctx).membership, 'member', { address: ctx.sender }) as Member | null;
}
function requireAdmin(ctx: ViewContext, enterprise: string): Member {
  const m = member(ctx);
  if (m === null || m.org !== enterprise || !m.roles.includes('admin'))
    ctx.revert('NOT_AUTHORIZED', `only an admin of ${enterprise} may do this`);
  return m;
}
function requireAdminOrRegulator(ctx: ViewContext, enterprise: string): Member {
  const m = member(ctx);
  const ok =
    m !== null && ((m.org === enterprise && m.roles.includes('admin')) || m.orgRoles.includes('regulator'));
  if (!ok) ctx.revert('NOT_AUTHORIZED', `only an admin of ${enterprise} or a regulator may do this`);
  return m;
}
function requireEnterprise(ctx: ViewContext, v: unknown): string {
  const id = checkName(ctx, v, 'enterprise');
  const org = ctx.call(cfg(ctx).membership, 'organisation', { id }) as { roles: string[] } | null;
  if (org === null) ctx.revert('NO_ENTERPRISE', `no organisation ${id}`);
  return id;
}

function getGateway(ctx: ViewContext, id: string): Gateway {
  const g = ctx.state.get(`gw:${id}`) as unknown as Gateway | undefined;
  if (g === undefined) ctx.revert('NO_GATEWAY', `no gateway ${id}`);
  return g;
}
function getDevice(ctx: ViewContext, id: string): Device {
  const d = ctx.state.get(`dev:${id}`) as unknown as Device | undefined;
  if (d === undefined) ctx.revert('NO_DEVICE', `no device ${id}`);
  return d;
}
function getIndicator(ctx: ViewContext, enterprise: string, id: string): Indicator {
  const ind = ctx.state.get(`ind:${enterprise}:${id}`) as unknown as Indicator | undefined;
  if (ind === undefined) ctx.revert('NO_INDICATOR', `no indicator ${id} of ${enterprise}`);
  return ind;
}
function count(ctx: Context, key: string, max: number, what: string): void {
  const n = Number(ctx.state.get(key) ?? 0);
  if (n >= max) ctx.revert('LIMIT', `at most ${max} ${what}`);
  ctx.state.set(key, n + 1);
}
function siteIndicators(ctx: ViewContext, enterprise: string, site: string): string[] {
  return (ctx.state.get(`si:${enterprise}:${site}`) ?? []) as string[];
}

function saveIndicator(ctx: Context, ind: Indicator): void {
  ctx.state.set(`ind:${ind.enterprise}:${ind.id}`, ind as never);
}

/** Moves an indicator to `to`, emitting IndicatorState (and IndicatorAlert on entering ALERT). */
function transition(
  ctx: Context,
  ind: Indicator,
  to: string,
  reason: string,
  extra: Record<string, Value>,
): void {
  if (ind.state === to) return;
  const from = ind.state;
  ind.state = to;
  ind.since = ctx.time;
  const data: Record<string, Value> = {
    enterprise: ind.enterprise,
    indicator: ind.id,
    site: ind.site,
    from,
    to,
    reason,
    at: ctx.time,
    ...extra,
  };
  ctx.emit('IndicatorState', data);
  if (to === 'ALERT') ctx.emit('IndicatorAlert', data);
}

/** Recomputes the enterprise's operations score (0..1000) and emits ScoreChanged when it moves. */
function rescore(ctx: Context, enterprise: string): void {
  const inds = ctx.state.range(`ind:${enterprise}:`, MAX_INDICATORS);
  let health = 0;
  for (const [, v] of inds) health += HEALTH[(v as unknown as Indicator).state] ?? 0;
  const gws = (ctx.state.get(`egw:${enterprise}`) ?? []) as string[];
  let gaps = 0;
  for (const id of gws) gaps += getGateway(ctx, id).gaps;
  const base = inds.length === 0 ? 1000 : Math.floor((health * 10) / inds.length);
  const penalty = Math.min(MAX_GAP_PENALTY, gaps * GAP_PENALTY);
  const score = Math.max(0, base - penalty);
  const prev = ctx.state.get(`score:${enterprise}`) as { score: number } | undefined;
  if (prev !== undefined && prev.score === score) return;
  ctx.state.set(`score:${enterprise}`, {
    score,
    indicators: inds.length,
    gaps,
    at: ctx.time,
    height: ctx.height,
  });
  ctx.emit('ScoreChanged', {
    enterprise,
    score,
    previous: prev?.score ?? null,
    indicators: inds.length,
    gaps,
    at: ctx.time,
  });
}

function liveOf(ctx: ViewContext, device: string): Liveness {
  return (
    (ctx.state.get(`live:${device}`) as unknown as Liveness | undefined) ?? {
      state: 'UNKNOWN',
      lastSeenAt: 0,
      lastSeq: 0,
      deadline: 0,
      since: 0,
    }
  );
}
/** Offline devices of an enterprise's site feeding `metric`. */
function offlineFeeding(ctx: ViewContext, enterprise: string, site: string, metric: string): number {
  return Number(ctx.state.get(`off:${enterprise}:${site}:${metric}`) ?? 0);
}
function addOffline(ctx: Context, d: Device, delta: number): void {
  const key = `off:${d.enterprise}:${d.site}:${d.metric}`;
  const n = Number(ctx.state.get(key) ?? 0) + delta;
  if (n <= 0) ctx.state.delete(key);
  else ctx.state.set(key, n);
}

/**
 * Makes sure a heartbeat check of `g` is pending at or before `at`. A check carries its time and
 * runs only if it is still the gateway's `hbAt`, so an earlier one superseding a later one leaves
 * that later one a no-op. Deadlines only move later as block time does, so a gateway has at most
 * two pending (one more each time an admin shortens a device's heartbeat).
 */
function ensureCheck(ctx: Context, g: Gateway, at: number): void {
  if (g.hbAt !== 0 && g.hbAt <= at) return;
  g.hbAt = at;
  ctx.schedule(at, 'checkHeartbeat', { gateway: g.id, at });
}

/** Device `d` was named by an anchor of `g` at this block: ONLINE, due again after its heartbeat. */
function deviceSeen(ctx: Context, g: Gateway, d: Device, seqNo: number): number | null {
  const live = liveOf(ctx, d.id);
  if (live.deadline > 0) ctx.state.delete(deadlineKey(g.id, live.deadline, d.id));
  live.lastSeenAt = ctx.time;
  live.lastSeq = seqNo;
  live.deadline = ctx.time + d.heartbeatMs;
  ctx.state.set(deadlineKey(g.id, live.deadline, d.id), d.id);
  if (live.state !== 'ONLINE') {
    if (live.state === 'OFFLINE') {
      addOffline(ctx, d, -1);
      ctx.emit('DeviceOnline', {
        device: d.id,
        gateway: g.id,
        enterprise: d.enterprise,
        site: d.site,
        metric: d.metric,
        offlineSince: live.since,
        seqNo,
        at: ctx.time,
      });
    }
    live.state = 'ONLINE';
    live.since = ctx.time;
  }
  ctx.state.set(`live:${d.id}`, live as never);
  return live.deadline;
}

/** Stops watching a device (suspended, revoked, heartbeat switched off); an OFFLINE one no longer counts. */
function untrack(ctx: Context, d: Device): void {
  const live = liveOf(ctx, d.id);
  if (live.state === 'UNKNOWN' && live.deadline === 0) return;
  if (live.deadline > 0) ctx.state.delete(deadlineKey(d.gateway, live.deadline, d.id));
  if (live.state === 'OFFLINE') addOffline(ctx, d, -1);
  live.state = 'UNKNOWN';
  live.deadline = 0;
  live.since = ctx.time;
  ctx.state.set(`live:${d.id}`, live as never);
}

/** An overdue device goes OFFLINE, and so do the site's indicators its metric feeds. */
function deviceOffline(ctx: Context, g: Gateway, deviceId: string): void {
  const d = ctx.state.get(`dev:${deviceId}`) as unknown as Device | undefined;
  if (d === undefined) return;
  const live = liveOf(ctx, d.id);
  live.deadline = 0;
  if (live.state === 'OFFLINE') {
    ctx.state.set(`live:${d.id}`, live as never);
    return;
  }
  live.state = 'OFFLINE';
  live.since = ctx.time;
  ctx.state.set(`live:${d.id}`, live as never);
  addOffline(ctx, d, 1);
  ctx.emit('DeviceOffline', {
    device: d.id,
    gateway: g.id,
    enterprise: d.enterprise,
    site: d.site,
    metric: d.metric,
    lastSeenAt: live.lastSeenAt,
    lastSeq: live.lastSeq,
    heartbeatMs: d.heartbeatMs,
    at: ctx.time,
  });
  for (const id of siteIndicators(ctx, d.enterprise, d.site)) {
    const ind = getIndicator(ctx, d.enterprise, id);
    if (ind.metric !== d.metric && ind.denominator !== d.metric) continue;
    transition(ctx, ind, 'OFFLINE', 'device-offline', { gateway: g.id, device: d.id });
    ind.breaches = 0;
    ind.clears = 0;
    saveIndicator(ctx, ind);
  }
}

function aggOf(metrics: MetricAgg[], name: string): MetricAgg | null {
  for (const m of metrics) if (m.metric === name) return m;
  return null;
}

/** Evaluates one indicator on one anchored batch; returns whether the rules were breached and why. */
function evaluate(
  ind: Indicator,
  metrics: MetricAgg[],
): { breach: boolean; reason: string; value: bigint; baseline: bigint | null } {
  const num = aggOf(metrics, ind.metric);
  const value = num === null ? 0n : num.sum;
  if (ind.kind === 'ratio') {
    const den = aggOf(metrics, ind.denominator);
    const d = den === null ? 0n : den.sum;
    if (d === 0n)
      return {
        breach: value > 0n,
        reason: value > 0n ? 'ratio-no-denominator' : 'clear',
        value,
        baseline: null,
      };
    const low = value * 1000n < BigInt(ind.minPermille) * d;
    const high = value * 1000n > BigInt(ind.maxPermille) * d;
    return {
      breach: low || high,
      reason: low ? 'ratio-low' : high ? 'ratio-high' : 'clear',
      value,
      baseline: (value * 1000n) / d,
    };
  }
  const hist: bigint[] = ind.history.map((h) => BigInt(h as number | bigint));
  const L = BigInt(hist.length);
  if (hist.length < ind.minHistory) return { breach: false, reason: 'learning', value, baseline: null };
  let S = 0n;
  let Q = 0n;
  for (const h of hist) {
    S += h;
    Q += h * h;
  }
  const mean = S / L;
  if (ind.dropPct > 0 && value * 100n * L < S * BigInt(100 - ind.dropPct))
    return { breach: true, reason: 'drop', value, baseline: mean };
  if (ind.kTenths > 0) {
    const variance = L * Q - S * S;
    const dev = value * L - S;
    const k = BigInt(ind.kTenths);
    if (variance > 0n && 100n * dev * dev > k * k * variance)
      return { breach: true, reason: 'swing', value, baseline: mean };
  }
  return { breach: false, reason: 'clear', value, baseline: mean };
}

function applyRules(ctx: Context, g: Gateway, seqNo: number, metrics: MetricAgg[]): void {
  for (const id of siteIndicators(ctx, g.enterprise, g.site)) {
    const ind = getIndicator(ctx, g.enterprise, id);
    const missing =
      offlineFeeding(ctx, ind.enterprise, ind.site, ind.metric) +
      (ind.kind === 'ratio' ? offlineFeeding(ctx, ind.enterprise, ind.site, ind.denominator) : 0);
    if (missing > 0) {
      // A device feeding it is silent: the window's aggregate is partial, so it is not judged
      // (and does not feed the baseline) until every such device reports again.
      transition(ctx, ind, 'OFFLINE', 'device-offline', { seqNo, gateway: g.id, offlineDevices: missing });
      ind.breaches = 0;
      ind.clears = 0;
      ind.lastSeq = seqNo;
      saveIndicator(ctx, ind);
      continue;
    }
    const r = evaluate(ind, metrics);
    const extra: Record<string, Value> = { seqNo, gateway: g.id, value: r.value, baseline: r.baseline };
    ind.lastValue = r.value;
    ind.lastSeq = seqNo;
    if (ind.state === 'OFFLINE') transition(ctx, ind, 'NORMAL', 'heartbeat-resumed', extra);
    if (r.breach) {
      ind.breaches += 1;
      ind.clears = 0;
      if (ind.state === 'NORMAL') transition(ctx, ind, 'WATCH', r.reason, extra);
      if (ind.state === 'WATCH' && ind.breaches >= ind.alertAfter)
        transition(ctx, ind, 'ALERT', r.reason, extra);
    } else {
      ind.clears += 1;
      ind.breaches = 0;
      if (
        ind.state === 'WATCH' ||
        ((ind.state === 'ALERT' || ind.state === 'ACKED') && ind.clears >= ind.clearAfter)
      )
        transition(ctx, ind, 'NORMAL', r.reason, extra);
      // Only clear windows feed the baseline, so a lasting drop keeps breaching instead of
      // becoming the new normal.
      if (ind.kind === 'level') {
        const h = ind.history.concat([r.value]);
        ind.history = h.length > ind.baselineWindows ? h.slice(h.length - ind.baselineWindows) : h;
      }
    }
    saveIndicator(ctx, ind);
  }
}

function checkMetrics(ctx: Context, v: unknown, count: number): MetricAgg[] {
  if (!Array.isArray(v) || v.length > MAX_METRICS)
    ctx.revert('BAD_ARGS', `metrics must be a list of at most ${MAX_METRICS}`);
  const out: MetricAgg[] = [];
  for (const raw of v) {
    const m = raw as Record<string, unknown>;
    if (m === null || typeof m !== 'object')
      ctx.revert('BAD_ARGS', 'each metric must be { metric, n, min, max, sum }');
    const metric = checkName(ctx, m['metric'], 'metric');
    if (aggOf(out, metric) !== null) ctx.revert('BAD_ARGS', `metric ${metric} listed twice`);
    const n = checkInt(ctx, m['n'], `${metric}.n`, 1, count);
    const min = checkBig(ctx, m['min'], `${metric}.min`);
    const max = checkBig(ctx, m['max'], `${metric}.max`);
    const sum = checkBig(ctx, m['sum'], `${metric}.sum`);
    const bn = BigInt(n);
    if (min > max || sum < min * bn || sum > max * bn)
      ctx.revert('BAD_AGGREGATE', `${metric}: expected min <= max and min*n <= sum <= max*n`);
    out.push({ metric, n, min, max, sum });
  }
  return out;
}

/** Genesis / deploy: `{ membership?: string }` (default 'membership'). */
export function init(ctx: Context, args: { membership?: string } | null) {
  ctx.state.set('config', { membership: checkName(ctx, args?.membership ?? 'membership', 'membership') });
}

export const methods = {
  /**
   * Registers an edge gateway of `enterprise` at `site`, signing with `publicKey` (Ed25519).
   * Windows are `windowMs` long and aligned to multiples of it; `heartbeatMs` without an anchor
   * turns the site OFFLINE. Caller: an admin of the enterprise.
   */
  registerGateway(
    ctx: Context,
    args: {
      id: string;
      enterprise: string;
      site: string;
      publicKey: Bytes;
      windowMs: number;
      heartbeatMs: number;
    },
  ) {
    const id = checkName(ctx, args?.id, 'gateway id');
    const enterprise = requireEnterprise(ctx, args.enterprise);
    requireAdmin(ctx, enterprise);
    const site = checkName(ctx, args.site, 'site');
    const publicKey = checkKey(ctx, args.publicKey, 'publicKey');
    const windowMs = checkInt(ctx, args.windowMs, 'windowMs', MIN_WINDOW_MS, MAX_WINDOW_MS);
    const heartbeatMs = checkInt(
      ctx,
      args.heartbeatMs,
      'heartbeatMs',
      Math.max(MIN_HEARTBEAT_MS, windowMs),
      MAX_WINDOW_MS * 7,
    );
    if (ctx.state.has(`gw:${id}`)) ctx.revert('EXISTS', `gateway ${id} exists`);
    const gws = (ctx.state.get(`egw:${enterprise}`) ?? []) as string[];
    if (gws.length >= MAX_GATEWAYS) ctx.revert('LIMIT', `at most ${MAX_GATEWAYS} gateways per enterprise`);
    const address = addressOfKey(ctx, publicKey);
    const g: Gateway = {
      id,
      enterprise,
      site,
      publicKey,
      address,
      status: 'ACTIVE',
      windowMs,
      heartbeatMs,
      lastSeq: 0,
      lastWindowEnd: 0,
      lastAnchorAt: 0,
      hbAt: 0,
      offline: false,
      gaps: 0,
    };
    ctx.state.set(`gw:${id}`, g as never);
    ctx.state.set(`egw:${enterprise}`, gws.concat([id]));
    ctx.emit('GatewayRegistered', { id, enterprise, site, address, publicKey, windowMs, heartbeatMs });
  },
  /** Replaces a gateway's key (the old key can no longer anchor). Caller: an admin of the enterprise. */
  rotateGatewayKey(ctx: Context, args: { id: string; publicKey: Bytes }) {
    const g = getGateway(ctx, checkName(ctx, args?.id, 'gateway id'));
    requireAdmin(ctx, g.enterprise);
    if (g.status === 'REVOKED') ctx.revert('REVOKED', `gateway ${g.id} is revoked`);
    g.publicKey = checkKey(ctx, args.publicKey, 'publicKey');
    g.address = addressOfKey(ctx, g.publicKey);
    ctx.state.set(`gw:${g.id}`, g as never);
    ctx.emit('GatewayKeyRotated', {
      id: g.id,
      enterprise: g.enterprise,
      address: g.address,
      publicKey: g.publicKey,
    });
  },
  /**
   * Sets a gateway's status: SUSPENDED (anchors refused until ACTIVE again) or REVOKED (final).
   * Caller: an admin of the enterprise or a regulator.
   */
  setGatewayStatus(ctx: Context, args: { id: string; status: string }) {
    const g = getGateway(ctx, checkName(ctx, args?.id, 'gateway id'));
    requireAdminOrRegulator(ctx, g.enterprise);
    if (!['ACTIVE', 'SUSPENDED', 'REVOKED'].includes(args.status))
      ctx.revert('BAD_ARGS', 'status must be ACTIVE, SUSPENDED or REVOKED');
    if (g.status === 'REVOKED') ctx.revert('REVOKED', `gateway ${g.id} is revoked`);
    const from = g.status;
    g.status = args.status;
    ctx.state.set(`gw:${g.id}`, g as never);
    ctx.emit('GatewayStatusChanged', { id: g.id, enterprise: g.enterprise, from, to: g.status });
  },
  /**
   * Registers a device reporting `metric` through `gateway` (same enterprise and site). `publicKey`
   * (Ed25519, 32 bytes) when the device signs its readings, null when it does not. `heartbeatMs`
   * (default: the gateway's): once an anchor has named the device, a silence this long turns it
   * OFFLINE; 0 for devices that report only on events. Caller: an admin.
   */
  registerDevice(
    ctx: Context,
    args: {
      id: string;
      gateway: string;
      kind: string;
      metric: string;
      publicKey: Bytes | null;
      heartbeatMs?: number;
    },
  ) {
    const id = checkName(ctx, args?.id, 'device id');
    const g = getGateway(ctx, checkName(ctx, args.gateway, 'gateway'));
    requireAdmin(ctx, g.enterprise);
    if (!DEVICE_KINDS.includes(args.kind))
      ctx.revert('BAD_ARGS', `kind must be one of ${DEVICE_KINDS.join(', ')}`);
    const metric = checkName(ctx, args.metric, 'metric');
    const publicKey =
      args.publicKey === null || args.publicKey === undefined
        ? null
        : checkKey(ctx, args.publicKey, 'publicKey');
    const heartbeatMs = checkDeviceHeartbeat(ctx, g, args.heartbeatMs ?? g.heartbeatMs);
    if (ctx.state.has(`dev:${id}`)) ctx.revert('EXISTS', `device ${id} exists`);
    count(ctx, `ndev:${g.enterprise}`, MAX_DEVICES, 'devices per enterprise');
    count(ctx, `ngdev:${g.id}`, MAX_GATEWAY_DEVICES, 'devices per gateway');
    const d: Device = {
      id,
      enterprise: g.enterprise,
      site: g.site,
      kind: args.kind,
      gateway: g.id,
      metric,
      publicKey,
      status: 'ACTIVE',
      keyVersion: 1,
      heartbeatMs,
    };
    ctx.state.set(`dev:${id}`, d as never);
    ctx.state.set(`gdev:${g.id}:${id}`, true);
    ctx.emit('DeviceRegistered', {
      id,
      enterprise: d.enterprise,
      site: d.site,
      kind: d.kind,
      gateway: d.gateway,
      metric,
      publicKey,
      heartbeatMs,
    });
  },
  /**
   * Sets a device's heartbeat interval (0: not watched); it applies from the next anchor naming
   * the device. Switching it off forgets an OFFLINE state. Caller: an admin of the enterprise.
   */
  setDeviceHeartbeat(ctx: Context, args: { id: string; heartbeatMs: number }) {
    const d = getDevice(ctx, checkName(ctx, args?.id, 'device id'));
    requireAdmin(ctx, d.enterprise);
    const g = getGateway(ctx, d.gateway);
    d.heartbeatMs = checkDeviceHeartbeat(ctx, g, args.heartbeatMs);
    ctx.state.set(`dev:${d.id}`, d as never);
    if (d.heartbeatMs === 0) untrack(ctx, d);
    ctx.emit('DeviceHeartbeatSet', { id: d.id, enterprise: d.enterprise, heartbeatMs: d.heartbeatMs });
    rescore(ctx, d.enterprise);
  },
  /** Replaces a device's signing key. Caller: an admin of the enterprise. */
  rotateDeviceKey(ctx: Context, args: { id: string; publicKey: Bytes }) {
    const d = getDevice(ctx, checkName(ctx, args?.id, 'device id'));
    requireAdmin(ctx, d.enterprise);
    if (d.status === 'REVOKED') ctx.revert('REVOKED', `device ${d.id} is revoked`);
    d.publicKey = checkKey(ctx, args.publicKey, 'publicKey');
    d.keyVersion += 1;
    ctx.state.set(`dev:${d.id}`, d as never);
    ctx.emit('DeviceKeyRotated', {
      id: d.id,
      enterprise: d.enterprise,
      keyVersion: d.keyVersion,
      publicKey: d.publicKey,
    });
  },
  /** ACTIVE, SUSPENDED or REVOKED (final). Caller: an admin of the enterprise or a regulator. */
  setDeviceStatus(ctx: Context, args: { id: string; status: string }) {
    const d = getDevice(ctx, checkName(ctx, args?.id, 'device id'));
    requireAdminOrRegulator(ctx, d.enterprise);
    if (!['ACTIVE', 'SUSPENDED', 'REVOKED'].includes(args.status))
      ctx.revert('BAD_ARGS', 'status must be ACTIVE, SUSPENDED or REVOKED');
    if (d.status === 'REVOKED') ctx.revert('REVOKED', `device ${d.id} is revoked`);
    const from = d.status;
    d.status = args.status;
    ctx.state.set(`dev:${d.id}`, d as never);
    // A suspended or revoked device is expected to be silent: it is no longer watched.
    if (d.status !== 'ACTIVE') untrack(ctx, d);
    ctx.emit('DeviceStatusChanged', { id: d.id, enterprise: d.enterprise, from, to: d.status });
  },
  /**
   * Lets lender organisation `lender` read the enterprise's raw batches (the gateway encrypts each
   * batch to `encryptionKey`, an X25519 public key) and acknowledge its alerts. Caller: an admin.
   */
  authoriseLender(ctx: Context, args: { enterprise: string; lender: string; encryptionKey: Bytes }) {
    const enterprise = requireEnterprise(ctx, args?.enterprise);
    requireAdmin(ctx, enterprise);
    const lender = requireEnterprise(ctx, args.lender);
    const key = checkKey(ctx, args.encryptionKey, 'encryptionKey');
    const list = (ctx.state.get(`lenders:${enterprise}`) ?? []) as Array<{
      lender: string;
      encryptionKey: Bytes;
    }>;
    const rest = list.filter((l) => l.lender !== lender);
    if (rest.length >= MAX_LENDERS) ctx.revert('LIMIT', `at most ${MAX_LENDERS} lenders per enterprise`);
    ctx.state.set(`lenders:${enterprise}`, rest.concat([{ lender, encryptionKey: key }]));
    ctx.emit('LenderAuthorised', { enterprise, lender, encryptionKey: key });
  },
  /** Withdraws a lender's access (later batches are not encrypted to it). Caller: an admin. */
  revokeLender(ctx: Context, args: { enterprise: string; lender: string }) {
    const enterprise = requireEnterprise(ctx, args?.enterprise);
    requireAdmin(ctx, enterprise);
    const list = (ctx.state.get(`lenders:${enterprise}`) ?? []) as Array<{ lender: string }>;
    if (!list.some((l) => l.lender === args.lender))
      ctx.revert('NO_LENDER', `${String(args.lender)} is not authorised`);
    ctx.state.set(
      `lenders:${enterprise}`,
      list.filter((l) => l.lender !== args.lender),
    );
    ctx.emit('LenderRevoked', { enterprise, lender: args.lender });
  },
  /**
   * Defines (or redefines, resetting its history) an indicator at a site. `kind` 'level' watches
   * `metric` against its trailing baseline (dropPct, kTenths = k * 10, baselineWindows,
   * minHistory); 'ratio' watches metric / denominator within [minPermille, maxPermille].
   * Caller: an admin of the enterprise.
   */
  configureIndicator(
    ctx: Context,
    args: {
      enterprise: string;
      id: string;
      site: string;
      kind: string;
      metric: string;
      denominator?: string;
      dropPct?: number;
      kTenths?: number;
      baselineWindows?: number;
      minHistory?: number;
      minPermille?: number;
      maxPermille?: number;
      alertAfter?: number;
      clearAfter?: number;
    },
  ) {
    const enterprise = requireEnterprise(ctx, args?.enterprise);
    requireAdmin(ctx, enterprise);
    const id = checkName(ctx, args.id, 'indicator id');
    const site = checkName(ctx, args.site, 'site');
    if (args.kind !== 'level' && args.kind !== 'ratio')
      ctx.revert('BAD_ARGS', "kind must be 'level' or 'ratio'");
    const metric = checkName(ctx, args.metric, 'metric');
    const denominator = args.kind === 'ratio' ? checkName(ctx, args.denominator, 'denominator') : '';
    const baselineWindows = checkInt(ctx, args.baselineWindows ?? 8, 'baselineWindows', 1, MAX_BASELINE);
    const ind: Indicator = {
      id,
      enterprise,
      site,
      kind: args.kind,
      metric,
      denominator,
      dropPct: checkInt(ctx, args.dropPct ?? 50, 'dropPct', 0, 100),
      kTenths: checkInt(ctx, args.kTenths ?? 0, 'kTenths', 0, 1000),
      baselineWindows,
      minHistory: checkInt(ctx, args.minHistory ?? 3, 'minHistory', 1, baselineWindows),
      minPermille: checkInt(ctx, args.minPermille ?? 0, 'minPermille', 0, 1_000_000_000),
      maxPermille: checkInt(ctx, args.maxPermille ?? 1_000_000_000, 'maxPermille', 0, 1_000_000_000),
      alertAfter: checkInt(ctx, args.alertAfter ?? 2, 'alertAfter', 1, 1000),
      clearAfter: checkInt(ctx, args.clearAfter ?? 2, 'clearAfter', 1, 1000),
      state: 'NORMAL',
      breaches: 0,
      clears: 0,
      history: [],
      lastValue: null,
      lastSeq: 0,
      since: ctx.time,
    };
    if (ind.minPermille > ind.maxPermille) ctx.revert('BAD_ARGS', 'minPermille must not exceed maxPermille');
    const existing = ctx.state.get(`ind:${enterprise}:${id}`) as unknown as Indicator | undefined;
    if (existing === undefined) {
      count(ctx, `nind:${enterprise}`, MAX_INDICATORS, 'indicators per enterprise');
    } else {
      const old = siteIndicators(ctx, enterprise, existing.site).filter((x) => x !== id);
      ctx.state.set(`si:${enterprise}:${existing.site}`, old);
    }
    ctx.state.set(`si:${enterprise}:${site}`, siteIndicators(ctx, enterprise, site).concat([id]));
    saveIndicator(ctx, ind);
    ctx.emit('IndicatorConfigured', { enterprise, indicator: ind as never });
    rescore(ctx, enterprise);
  },
  /**
   * Anchors one window's batch. Caller: the gateway's key. `seqNo` must exceed the last anchored
   * one (a repeat is refused with DUPLICATE_SEQ, so a retried anchor never lands twice; a jump is
   * accepted and emits SequenceGap); the window must be aligned, not overlap the previous one and
   * not end more than the allowed skew after the block time. `devices` (optional, strictly
   * ascending ids of this gateway's devices, at most MAX_GATEWAY_DEVICES) are those with a reading
   * in the window: their heartbeats.
   */
  anchor(
    ctx: Context,
    args: {
      gateway: string;
      seqNo: number;
      windowStart: number;
      windowEnd: number;
      count: number;
      root: Bytes;
      batchHash: Bytes;
      metrics: unknown[];
      devices?: string[];
    },
  ) {
    const g = getGateway(ctx, checkName(ctx, args?.gateway, 'gateway'));
    if (ctx.sender !== g.address)
      ctx.revert('NOT_AUTHORIZED', `anchors of ${g.id} must be signed by its key ${g.address}`);
    if (g.status !== 'ACTIVE') ctx.revert('GATEWAY_NOT_ACTIVE', `gateway ${g.id} is ${g.status}`);
    const seqNo = checkInt(ctx, args.seqNo, 'seqNo', 1, Number.MAX_SAFE_INTEGER);
    if (seqNo <= g.lastSeq)
      ctx.revert('DUPLICATE_SEQ', `seqNo ${seqNo} of ${g.id} is already anchored (last ${g.lastSeq})`);
    const start = checkInt(ctx, args.windowStart, 'windowStart', 0, Number.MAX_SAFE_INTEGER);
    const end = checkInt(ctx, args.windowEnd, 'windowEnd', 0, Number.MAX_SAFE_INTEGER);
    if (start % g.windowMs !== 0 || end !== start + g.windowMs)
      ctx.revert('BAD_WINDOW', `window [${start}, ${end}) is not an aligned ${g.windowMs} ms window`);
    if (start < g.lastWindowEnd)
      ctx.revert(
        'BAD_WINDOW',
        `window starts at ${start}, before the last anchored window ended (${g.lastWindowEnd})`,
      );
    if (end > ctx.time + MAX_CLOCK_SKEW_MS)
      ctx.revert('BAD_WINDOW', `window ends at ${end}, in the future of block time ${ctx.time}`);
    const n = checkInt(ctx, args.count, 'count', 0, MAX_BATCH_READINGS);
    const root = checkKey(ctx, args.root, 'root');
    const batchHash = checkKey(ctx, args.batchHash, 'batchHash');
    const metrics = checkMetrics(ctx, args.metrics, n);
    const named = args.devices ?? [];
    if (!Array.isArray(named) || named.length > MAX_GATEWAY_DEVICES || named.length > Math.max(n, 0))
      ctx.revert(
        'BAD_ARGS',
        `devices must be a list of at most ${MAX_GATEWAY_DEVICES} ids, none beyond count`,
      );
    const expected = g.lastSeq + 1;
    if (seqNo !== expected) {
      g.gaps += 1;
      ctx.emit('SequenceGap', {
        gateway: g.id,
        enterprise: g.enterprise,
        expected,
        got: seqNo,
        missing: seqNo - expected,
      });
    }
    g.lastSeq = seqNo;
    g.lastWindowEnd = end;
    g.lastAnchorAt = ctx.time;
    const wasOffline = g.offline;
    g.offline = false;
    let earliest = ctx.time + g.heartbeatMs;
    let prev = '';
    for (const raw of named) {
      const id = checkName(ctx, raw, 'device id');
      if (id <= prev) ctx.revert('BAD_ARGS', 'devices must be strictly ascending');
      prev = id;
      const d = getDevice(ctx, id);
      if (d.gateway !== g.id) ctx.revert('BAD_ARGS', `device ${id} does not report through ${g.id}`);
      if (d.status !== 'ACTIVE' || d.heartbeatMs === 0) continue;
      const due = deviceSeen(ctx, g, d, seqNo);
      if (due !== null && due < earliest) earliest = due;
    }
    ensureCheck(ctx, g, earliest);
    ctx.state.set(`gw:${g.id}`, g as never);
    const ms = metrics.map((m) => ({ metric: m.metric, n: m.n, min: m.min, max: m.max, sum: m.sum }));
    const record = {
      gateway: g.id,
      enterprise: g.enterprise,
      site: g.site,
      seqNo,
      windowStart: start,
      windowEnd: end,
      count: n,
      root,
      batchHash,
      metrics: ms,
      height: ctx.height,
      time: ctx.time,
      txHash: ctx.txHash,
    };
    ctx.state.set(`a:${g.id}:${pad(seqNo)}`, record);
    ctx.emit('BatchAnchored', record);
    if (wasOffline)
      ctx.emit('GatewayOnline', { gateway: g.id, enterprise: g.enterprise, site: g.site, at: ctx.time });
    applyRules(ctx, g, seqNo, metrics);
    rescore(ctx, g.enterprise);
  },
  /**
   * Scheduled (see ensureCheck): turns overdue devices OFFLINE, oldest deadline first and at most
   * MAX_OFFLINE_PER_CHECK of them, then the gateway's site if nothing was anchored for its
   * heartbeatMs; reschedules itself at the next deadline.
   */
  checkHeartbeat(ctx: Context, args: { gateway: string; at: number }) {
    if (ctx.sender !== ctx.contract || !ctx.scheduled)
      ctx.revert('NOT_SCHEDULER', 'checkHeartbeat runs only when scheduled');
    const g = getGateway(ctx, args.gateway);
    // Superseded by an earlier check that already rescheduled: nothing to do.
    if (args.at !== g.hbAt) return;
    g.hbAt = 0;
    let next: number | null = null;
    let changed = false;
    const prefix = `dl:${g.id}:`;
    const due = ctx.state.range(prefix, MAX_OFFLINE_PER_CHECK + 1);
    for (let i = 0; i < due.length; i++) {
      const [key, device] = due[i]!;
      const deadline = Number(key.slice(prefix.length, prefix.length + 16));
      if (deadline > ctx.time) {
        next = deadline;
        break;
      }
      if (i === MAX_OFFLINE_PER_CHECK) {
        next = ctx.time + 1;
        break;
      }
      ctx.state.delete(key);
      deviceOffline(ctx, g, device as string);
      changed = true;
    }
    if (!g.offline) {
      const gatewayDue = g.lastAnchorAt + g.heartbeatMs;
      if (ctx.time < gatewayDue) next = next === null ? gatewayDue : Math.min(next, gatewayDue);
      else {
        g.offline = true;
        changed = true;
        ctx.emit('GatewayOffline', {
          gateway: g.id,
          enterprise: g.enterprise,
          site: g.site,
          lastAnchorAt: g.lastAnchorAt,
          lastSeq: g.lastSeq,
          at: ctx.time,
        });
        for (const id of siteIndicators(ctx, g.enterprise, g.site)) {
          const ind = getIndicator(ctx, g.enterprise, id);
          transition(ctx, ind, 'OFFLINE', 'missing-heartbeat', { gateway: g.id, lastSeq: g.lastSeq });
          ind.breaches = 0;
          ind.clears = 0;
          saveIndicator(ctx, ind);
        }
      }
    }
    if (next !== null) ensureCheck(ctx, g, next);
    ctx.state.set(`gw:${g.id}`, g as never);
    if (changed) rescore(ctx, g.enterprise);
  },
  /** ALERT → ACKED. Caller: a member of a lender organisation authorised for the enterprise. */
  acknowledge(ctx: Context, args: { enterprise: string; indicator: string; note?: string }) {
    const enterprise = checkName(ctx, args?.enterprise, 'enterprise');
    const ind = getIndicator(ctx, enterprise, checkName(ctx, args.indicator, 'indicator'));
    const m = member(ctx);
    const lenders = (ctx.state.get(`lenders:${enterprise}`) ?? []) as Array<{ lender: string }>;
    if (m === null || !lenders.some((l) => l.lender === m.org))
      ctx.revert('NOT_AUTHORIZED', `only an authorised lender of ${enterprise} may acknowledge`);
    if (ind.state !== 'ALERT') ctx.revert('BAD_STATE', `indicator ${ind.id} is ${ind.state}, not ALERT`);
    const note = args.note === undefined ? '' : String(args.note).slice(0, 256);
    transition(ctx, ind, 'ACKED', 'acknowledged', { by: m.org, byAddress: m.address, note });
    saveIndicator(ctx, ind);
    rescore(ctx, enterprise);
  },
} satisfies Methods;

export const views = {
  /** The gateway record, or null. */
  gateway: (ctx: ViewContext, args: { id: string }) => ctx.state.get(`gw:${String(args?.id)}`) ?? null,
  /** Gateway ids of an enterprise (at most 64). */
  gateways: (ctx: ViewContext, args: { enterprise: string }) =>
    ctx.state.get(`egw:${String(args?.enterprise)}`) ?? [],
  /** The device record with its liveness `live: { state, lastSeenAt, lastSeq, deadline, since }`, or null. */
  device(ctx: ViewContext, args: { id: string }) {
    const d = ctx.state.get(`dev:${String(args?.id)}`) as Record<string, Value> | undefined;
    return d === undefined ? null : { ...d, live: liveOf(ctx, String(args.id)) as never };
  },
  /** Devices of a gateway with their liveness (at most `limit` ≤ 1000 per page, after device id `after`). */
  devices(ctx: ViewContext, args: { gateway: string; limit?: number; after?: string }) {
    const prefix = `gdev:${String(args?.gateway)}:`;
    const limit = Math.min(1000, Math.max(1, Number(args.limit ?? 1000)));
    const page = ctx.state.range(prefix, limit, args.after === undefined ? undefined : prefix + args.after);
    return page.map(([k]) => {
      const id = k.slice(prefix.length);
      const d = ctx.state.get(`dev:${id}`) as Record<string, Value> | undefined;
      return d === undefined ? null : { ...d, live: liveOf(ctx, id) as never };
    });
  },
  /** Authorised lenders `[{ lender, encryptionKey }]` of an enterprise. */
  lenders: (ctx: ViewContext, args: { enterprise: string }) =>
    ctx.state.get(`lenders:${String(args?.enterprise)}`) ?? [],
  /** The anchored batch `seqNo` of a gateway, or null. */
  anchorOf: (ctx: ViewContext, args: { gateway: string; seqNo: number }) =>
    ctx.state.get(`a:${String(args?.gateway)}:${pad(Number(args.seqNo))}`) ?? null,
  /** Anchored batches of a gateway from seqNo `from`, at most `limit` (1..1000). */
  anchors(ctx: ViewContext, args: { gateway: string; from?: number; limit?: number }) {
    const prefix = `a:${String(args?.gateway)}:`;
    const from = Number(args.from ?? 1);
    const limit = Math.min(1000, Math.max(1, Number(args.limit ?? 100)));
    return ctx.state.range(prefix, limit, from > 1 ? prefix + pad(from - 1) : undefined).map(([, v]) => v);
  },
  /** One indicator, or null. */
  indicator: (ctx: ViewContext, args: { enterprise: string; id: string }) =>
    ctx.state.get(`ind:${String(args?.enterprise)}:${String(args.id)}`) ?? null,
  /** All indicators of an enterprise (at most 64). */
  indicators: (ctx: ViewContext, args: { enterprise: string }) =>
    ctx.state.range(`ind:${String(args?.enterprise)}:`, MAX_INDICATORS).map(([, v]) => v),
  /** The operations score `{ score, indicators, gaps, at, height }` (1000 before any indicator). */
  score: (ctx: ViewContext, args: { enterprise: string }) =>
    ctx.state.get(`score:${String(args?.enterprise)}`) ?? {
      score: 1000,
      indicators: 0,
      gaps: 0,
      at: 0,
      height: 0,
    },
  /** The indicator states and their health points, for clients that label them. */
  states: () => STATES.map((s) => ({ state: s, health: HEALTH[s] ?? 0 })),
} satisfies Views;
