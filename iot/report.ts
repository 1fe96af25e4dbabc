/**
 * The operations assessment report a lender reads: for one enterprise and a time range, a chart
 * per indicator (inline SVG, no scripts, no network), the alerts and state changes, the operations
 * score, the anchor range the report rests on and the report's own hash.
 *
 * Every number comes from the chain: chart points are per-window aggregates of `BatchAnchored`
 * events (each row names its gateway, seqNo, block height, transaction and Merkle root, so any
 * reading behind it can be proven with the gateway's /proof against that root); states, alerts and
 * scores are the contract's own events. The HTML is a pure function of those events and the
 * arguments, so two runs over the same chain give the same bytes and the same hash.
 */
import { toHex, type Bytes } from '../core/bytes.ts';
import type { Value } from '../core/codec.ts';
import { sha256 } from '../core/hash.ts';
import type { ChainEventView, TrellisClient } from '../rpc/sdk/index.ts';
import { IotError } from './gateway/errors.ts';

/** Most events a report reads (pages of 1000). */
export const MAX_REPORT_EVENTS = 200_000;
const ZERO_HASH = '0'.repeat(64);
const hashTag = (h: string) => `<code id="report-hash">${h}</code>`;

/** Options of {@link buildReport}. */
export interface ReportOptions {
  readonly enterprise: string;
  /** Start of the range, ms since the epoch (inclusive; windows starting at or after it). */
  readonly from: number;
  /** End of the range, ms (windows ending at or before it). */
  readonly to: number;
  readonly contract?: string;
  /**
   * Read the chain as of this height (default: one block below the head when the report is built). The report
   * names it, and the same height gives the same bytes, however far the chain has moved since.
   */
  readonly atHeight?: number;
}

/** One anchored window as the report uses it. */
export interface AnchorRow {
  readonly gateway: string;
  readonly site: string;
  readonly seqNo: number;
  readonly windowStart: number;
  readonly windowEnd: number;
  readonly count: number;
  readonly root: string;
  readonly batchHash: string;
  readonly height: number;
  readonly txHash: string;
  readonly sums: Record<string, bigint>;
}

/** A state change of an indicator. */
export interface StateRow {
  readonly indicator: string;
  readonly from: string;
  readonly to: string;
  readonly reason: string;
  readonly at: number;
  readonly seqNo: number | null;
  readonly gateway: string | null;
  readonly height: number;
  readonly txHash: string;
}

/** The report's data and HTML. */
/** A device that went silent (DeviceOffline) or reported again (DeviceOnline). */
export interface DeviceRow {
  readonly device: string;
  readonly site: string;
  readonly metric: string;
  readonly event: 'offline' | 'online';
  readonly at: number;
  /** Offline: the block time of the last anchor naming it; online: since when it was offline. */
  readonly reference: number;
  readonly height: number;
}

export interface Report {
  readonly html: string;
  /** SHA-256 (hex) of the HTML with the hash field set to 64 zeros. */
  readonly hash: string;
  /** The chain height the report was read at. */
  readonly atHeight: number;
  readonly anchors: readonly AnchorRow[];
  readonly states: readonly StateRow[];
  readonly score: { readonly score: number; readonly at: number | null };
  readonly indicators: ReadonlyArray<Record<string, Value>>;
  readonly devices: readonly DeviceRow[];
}

async function allEvents(
  client: TrellisClient,
  contract: string,
  name: string,
  toHeight: number,
): Promise<ChainEventView[]> {
  const out: ChainEventView[] = [];
  let cursor: ChainEventView['cursor'] | undefined;
  for (;;) {
    const page = await client.call('events_query', {
      contract,
      name,
      toHeight,
      limit: 1000,
      ...(cursor === undefined ? {} : { cursor }),
    });
    out.push(...page.events);
    if (out.length > MAX_REPORT_EVENTS) {
      throw new IotError('BAD_CONFIG', `more than ${MAX_REPORT_EVENTS} ${name} events: narrow the range`, {});
    }
    if (page.next === undefined || page.events.length === 0) break;
    cursor = page.next;
  }
  return out;
}

/** A scalar event field as text (strings as they are, integers in decimal). */
function str(v: Value | undefined): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return v.toString();
  if (v instanceof Uint8Array) return toHex(v);
  return v === null || v === undefined ? '' : JSON.stringify(v);
}
const hexOf = (v: Value | undefined): string => str(v);
const big = (v: Value | undefined): bigint => BigInt(v as number | bigint);

function esc(s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

/** UTC time as YYYY-MM-DD HH:MM:SS(.mmm), independent of the host's locale and zone. */
export function formatTime(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, ms % 1000 === 0 ? 19 : 23)}`;
}

/** Groups digits by thousands, deterministically. */
function num(v: bigint | number): string {
  const s = v.toString();
  const neg = s.startsWith('-');
  const d = neg ? s.slice(1) : s;
  return (neg ? '-' : '') + d.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

const STATE_COLOURS: Record<string, string> = {
  NORMAL: '#2e7d32',
  WATCH: '#f9a825',
  ALERT: '#c62828',
  ACKED: '#6a1b9a',
  OFFLINE: '#546e7a',
};

/** An inline SVG line chart of (time, value) points, with coloured marks at state changes. */
function chart(
  points: ReadonlyArray<{ t: number; v: bigint }>,
  marks: ReadonlyArray<{ t: number; state: string }>,
  from: number,
  to: number,
  unit: string,
): string {
  const W = 720;
  const H = 180;
  const L = 70;
  const R = 10;
  const T = 10;
  const B = 30;
  let max = 1n;
  for (const p of points) if (p.v > max) max = p.v;
  const span = Math.max(1, to - from);
  const x = (t: number) => L + Math.round(((t - from) * (W - L - R)) / span);
  const y = (v: bigint) => T + Number(((max - v) * BigInt(H - T - B)) / max);
  const path = points.map((p) => `${x(p.t)},${y(p.v < 0n ? 0n : p.v)}`).join(' ');
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img">`,
    `<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="#fafafa" stroke="#ccc"/>`,
    `<text x="${L - 6}" y="${T + 10}" text-anchor="end" font-size="11">${esc(num(max))}</text>`,
    `<text x="${L - 6}" y="${H - B}" text-anchor="end" font-size="11">0</text>`,
    `<text x="${L}" y="${H - 8}" font-size="11">${esc(formatTime(from))}</text>`,
    `<text x="${W - R}" y="${H - 8}" text-anchor="end" font-size="11">${esc(formatTime(to))}</text>`,
    `<text x="${(W + L) / 2}" y="${H - 8}" text-anchor="middle" font-size="11" fill="#555">${esc(unit)}</text>`,
  ];
  for (const m of marks) {
    const mx = x(m.t);
    parts.push(
      `<line x1="${mx}" y1="${T}" x2="${mx}" y2="${H - B}" stroke="${STATE_COLOURS[m.state] ?? '#000'}" stroke-dasharray="4 3"/>`,
      `<text x="${mx + 3}" y="${T + 22}" font-size="10" fill="${STATE_COLOURS[m.state] ?? '#000'}">${esc(m.state)}</text>`,
    );
  }
  if (points.length > 0)
    parts.push(`<polyline fill="none" stroke="#1565c0" stroke-width="2" points="${path}"/>`);
  for (const p of points)
    parts.push(`<circle cx="${x(p.t)}" cy="${y(p.v < 0n ? 0n : p.v)}" r="2" fill="#1565c0"/>`);
  parts.push('</svg>');
  return parts.join('');
}

/** Reads the chain and builds the report. */
export async function buildReport(client: TrellisClient, o: ReportOptions): Promise<Report> {
  const contract = o.contract ?? 'iot';
  if (!(o.to > o.from)) throw new IotError('BAD_CONFIG', '--to must be after --from', {});
  const head = await client.head();
  // Default: one block below the head. Precaution: in one test run two reads at the head's height
  // differed (cause not found), so a report does not read the newest block unless asked to.
  const atHeight = o.atHeight ?? Math.max(0, (head?.height ?? 0) - 1);
  if (!Number.isSafeInteger(atHeight) || atHeight < 0 || atHeight > (head?.height ?? 0)) {
    throw new IotError(
      'BAD_CONFIG',
      `--at-height ${atHeight}: expected 0..${head?.height ?? 0} (the head)`,
      {},
    );
  }
  const inRange = (start: number, end: number) => start >= o.from && end <= o.to;
  const anchors: AnchorRow[] = [];
  for (const e of await allEvents(client, contract, 'BatchAnchored', atHeight)) {
    const d = e.data as Record<string, Value>;
    if (d['enterprise'] !== o.enterprise) continue;
    const start = Number(d['windowStart']);
    const end = Number(d['windowEnd']);
    if (!inRange(start, end)) continue;
    const sums: Record<string, bigint> = {};
    for (const m of d['metrics'] as Array<Record<string, Value>>) sums[str(m['metric'])] = big(m['sum']);
    anchors.push({
      gateway: str(d['gateway']),
      site: str(d['site']),
      seqNo: Number(d['seqNo']),
      windowStart: start,
      windowEnd: end,
      count: Number(d['count']),
      root: hexOf(d['root']),
      batchHash: hexOf(d['batchHash']),
      height: e.height,
      txHash: toHex(e.txHash),
      sums,
    });
  }
  const states: StateRow[] = [];
  /** Every state change up to `to` (those before `from` still decide the state at `to`). */
  const changes: Array<{ indicator: string; to: string; at: number }> = [];
  for (const e of await allEvents(client, contract, 'IndicatorState', atHeight)) {
    const d = e.data as Record<string, Value>;
    const at = Number(d['at']);
    if (d['enterprise'] !== o.enterprise || at > o.to) continue;
    changes.push({ indicator: str(d['indicator']), to: str(d['to']), at });
    if (at < o.from) continue;
    states.push({
      indicator: str(d['indicator']),
      from: str(d['from']),
      to: str(d['to']),
      reason: str(d['reason']),
      at,
      seqNo: d['seqNo'] === undefined ? null : Number(d['seqNo']),
      gateway: d['gateway'] === undefined ? null : str(d['gateway']),
      height: e.height,
      txHash: toHex(e.txHash),
    });
  }
  let score: { score: number; at: number | null } = { score: 1000, at: null };
  const scores: Array<{ t: number; v: bigint }> = [];
  for (const e of await allEvents(client, contract, 'ScoreChanged', atHeight)) {
    const d = e.data as Record<string, Value>;
    const at = Number(d['at']);
    if (d['enterprise'] !== o.enterprise || at > o.to) continue;
    score = { score: Number(d['score']), at };
    if (at >= o.from) scores.push({ t: at, v: BigInt(Number(d['score'])) });
  }
  // Definitions as configured at `to`, and each one's state then: a later reconfiguration or
  // state change does not alter this report.
  const defs = new Map<string, Record<string, Value>>();
  for (const e of await allEvents(client, contract, 'IndicatorConfigured', atHeight)) {
    const d = e.data as Record<string, Value>;
    const ind = d['indicator'] as Record<string, Value>;
    if (d['enterprise'] === o.enterprise && Number(ind['since']) <= o.to) defs.set(str(ind['id']), ind);
  }
  const indicators = [...defs.values()]
    .sort((x, y) => (str(x['id']) < str(y['id']) ? -1 : 1))
    .map((ind) => {
      // A (re)configuration starts at NORMAL.
      let state = 'NORMAL';
      for (const c of changes)
        if (c.indicator === str(ind['id']) && c.at >= Number(ind['since'])) state = c.to;
      return { ...ind, state };
    });
  const devices: DeviceRow[] = [];
  for (const name of ['DeviceOffline', 'DeviceOnline'] as const) {
    for (const e of await allEvents(client, contract, name, atHeight)) {
      const d = e.data as Record<string, Value>;
      const at = Number(d['at']);
      if (d['enterprise'] !== o.enterprise || at < o.from || at > o.to) continue;
      devices.push({
        device: str(d['device']),
        site: str(d['site']),
        metric: str(d['metric']),
        event: name === 'DeviceOffline' ? 'offline' : 'online',
        at,
        reference: Number(name === 'DeviceOffline' ? d['lastSeenAt'] : d['offlineSince']),
        height: e.height,
      });
    }
  }
  devices.sort((x, y) => x.height - y.height || x.at - y.at || (x.device < y.device ? -1 : 1));
  const html = renderHtml({ ...o, atHeight }, anchors, states, score, scores, indicators, devices);
  const hash = toHex(sha256(Buffer.from(html, 'utf8'))).slice(2);
  return {
    html: html.replace(hashTag(ZERO_HASH), hashTag(hash)),
    hash,
    atHeight,
    anchors,
    states,
    score,
    indicators,
    devices,
  };
}

/** Recomputes a report's hash from its HTML (the check a reader runs). */
export function reportHash(html: string): string {
  const m = /<code id="report-hash">([0-9a-f]{64})<\/code>/.exec(html);
  if (m === null) throw new IotError('BAD_CONFIG', 'not a Trellis IoT report', {});
  return toHex(sha256(Buffer.from(html.replace(hashTag(m[1]!), hashTag(ZERO_HASH)), 'utf8'))).slice(2);
}

/** The value an indicator charts for one anchored window (null when the window lacks the metric). */
export function indicatorValue(ind: Record<string, Value>, a: AnchorRow): bigint | null {
  const num = a.sums[str(ind['metric'])];
  if (ind['kind'] === 'ratio') {
    const den = a.sums[str(ind['denominator'])];
    if (den === undefined || den === 0n) return null;
    return ((num ?? 0n) * 1000n) / den;
  }
  return num ?? 0n;
}

function renderHtml(
  o: ReportOptions & { atHeight: number },
  anchors: readonly AnchorRow[],
  states: readonly StateRow[],
  score: { score: number; at: number | null },
  scores: ReadonlyArray<{ t: number; v: bigint }>,
  indicators: ReadonlyArray<Record<string, Value>>,
  devices: readonly DeviceRow[],
): string {
  const out: string[] = [];
  const alerts = states.filter((s) => s.to === 'ALERT');
  const gateways = [...new Set(anchors.map((a) => a.gateway))].sort();
  out.push(
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>Operations assessment: ${esc(o.enterprise)}</title>`,
    '<style>body{font-family:sans-serif;margin:24px;color:#222}h1{margin-bottom:4px}table{border-collapse:collapse;font-size:12px;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#eee}.score{font-size:40px;font-weight:bold}.mono{font-family:monospace;font-size:11px}.ALERT{color:#c62828;font-weight:bold}.WATCH{color:#f9a825}.OFFLINE{color:#546e7a}.ACKED{color:#6a1b9a}.NORMAL{color:#2e7d32}section{margin-bottom:20px}</style>',
    '</head><body>',
    `<h1>Operations assessment: ${esc(o.enterprise)}</h1>`,
    `<p>Range ${esc(formatTime(o.from))} to ${esc(formatTime(o.to))} UTC, as of block ${o.atHeight} (rebuild with <code>trellis iot report --enterprise ${esc(o.enterprise)} --from ${o.from} --to ${o.to} --at-height ${o.atHeight}</code>). Built from the iot contract's events; every figure below is an aggregate of anchored windows listed in the anchor table, and any single reading behind a window can be proven against that window's Merkle root.</p>`,
    '<section><h2>Operations score</h2>',
    `<div class="score" id="score">${score.score} / 1000</div>`,
    `<p>${score.at === null ? 'No score change recorded; the contract starts at 1000.' : `Last changed ${esc(formatTime(score.at))}.`} Score = mean health of the indicators (NORMAL 100, WATCH 70, ACKED 40, ALERT 20, OFFLINE 0) &times; 10, less 10 per sequence gap (at most 200).</p>`,
  );
  if (scores.length > 0) out.push(chart(scores, [], o.from, o.to, 'score (0..1000)'));
  out.push('</section>');

  out.push(`<section><h2>Alerts (${alerts.length})</h2>`);
  if (alerts.length === 0) out.push('<p>No alert in this range.</p>');
  else {
    out.push(
      '<table><tr><th>time (UTC)</th><th>indicator</th><th>reason</th><th>gateway / seqNo</th><th>block</th><th>transaction</th></tr>',
    );
    for (const a of alerts) {
      out.push(
        `<tr><td>${esc(formatTime(a.at))}</td><td class="ALERT">${esc(a.indicator)}</td><td>${esc(a.reason)}</td><td>${esc(a.gateway ?? '')} / ${a.seqNo ?? ''}</td><td>${a.height}</td><td class="mono">${esc(a.txHash)}</td></tr>`,
      );
    }
    out.push('</table>');
  }
  out.push('</section>');

  out.push('<section><h2>Indicators</h2>');
  for (const ind of indicators) {
    const id = str(ind['id']);
    const site = str(ind['site']);
    const pts: Array<{ t: number; v: bigint }> = [];
    for (const a of anchors) {
      if (a.site !== site) continue;
      const v = indicatorValue(ind, a);
      if (v !== null) pts.push({ t: a.windowEnd, v });
    }
    const marks = states.filter((s) => s.indicator === id).map((s) => ({ t: s.at, state: s.to }));
    const rule =
      ind['kind'] === 'ratio'
        ? `ratio ${str(ind['metric'])} / ${str(ind['denominator'])} within ${str(ind['minPermille'])}..${str(ind['maxPermille'])} per mille`
        : `level of ${str(ind['metric'])}: drop beyond ${str(ind['dropPct'])}% of the trailing ${str(ind['baselineWindows'])}-window baseline${Number(ind['kTenths']) > 0 ? `, swing beyond ${Number(ind['kTenths']) / 10} sigma` : ''}`;
    out.push(
      `<h3>${esc(id)} <span class="${esc(str(ind['state']))}">${esc(str(ind['state']))}</span></h3>`,
      `<p>Site ${esc(site)}; ${esc(rule)}; WATCH on a breach, ALERT after ${str(ind['alertAfter'])} consecutive breaches. ${pts.length} windows charted (value per window = ${ind['kind'] === 'ratio' ? 'numerator sum &times; 1000 / denominator sum' : 'sum of the readings'}).</p>`,
      chart(
        pts,
        marks,
        o.from,
        o.to,
        ind['kind'] === 'ratio' ? 'per mille' : `${str(ind['metric'])} per window`,
      ),
    );
  }
  out.push('</section>');

  out.push(`<section><h2>State changes (${states.length})</h2>`);
  if (states.length > 0) {
    out.push(
      '<table><tr><th>time (UTC)</th><th>indicator</th><th>from</th><th>to</th><th>reason</th><th>seqNo</th><th>block</th></tr>',
    );
    for (const s of states) {
      out.push(
        `<tr><td>${esc(formatTime(s.at))}</td><td>${esc(s.indicator)}</td><td class="${esc(s.from)}">${esc(s.from)}</td><td class="${esc(s.to)}">${esc(s.to)}</td><td>${esc(s.reason)}</td><td>${s.seqNo ?? ''}</td><td>${s.height}</td></tr>`,
      );
    }
    out.push('</table>');
  }
  out.push('</section>');

  out.push(`<section><h2>Device heartbeats (${devices.length} changes)</h2>`);
  if (devices.length === 0) out.push('<p>No device went silent in this range.</p>');
  else {
    out.push(
      '<p>A device that no anchor names for its heartbeat interval goes OFFLINE (a scheduled check on chain), and the indicators its metric feeds with it; it is back with the next anchor naming it.</p>',
      '<table><tr><th>time (UTC)</th><th>device</th><th>site</th><th>metric</th><th>event</th><th>last seen / offline since (UTC)</th><th>block</th></tr>',
    );
    for (const d of devices) {
      out.push(
        `<tr><td>${esc(formatTime(d.at))}</td><td>${esc(d.device)}</td><td>${esc(d.site)}</td><td>${esc(d.metric)}</td><td class="${d.event === 'offline' ? 'OFFLINE' : 'NORMAL'}">${d.event}</td><td>${esc(formatTime(d.reference))}</td><td>${d.height}</td></tr>`,
      );
    }
    out.push('</table>');
  }
  out.push('</section>');

  out.push('<section><h2>Anchor range</h2>');
  if (anchors.length === 0) out.push('<p>No anchored window in this range.</p>');
  for (const g of gateways) {
    const rows = anchors.filter((a) => a.gateway === g);
    const first = rows[0]!;
    const last = rows[rows.length - 1]!;
    const readings = rows.reduce((n, a) => n + a.count, 0);
    out.push(
      `<p id="range-${esc(g)}">Gateway <b>${esc(g)}</b>: seqNo ${first.seqNo}..${last.seqNo} (${rows.length} windows, ${num(readings)} readings), blocks ${first.height}..${last.height}.</p>`,
    );
  }
  if (anchors.length > 0) {
    const metrics = [...new Set(anchors.flatMap((a) => Object.keys(a.sums)))].sort();
    out.push(
      `<table><tr><th>gateway</th><th>seqNo</th><th>window start (UTC)</th><th>readings</th>${metrics.map((m) => `<th>${esc(m)} sum</th>`).join('')}<th>block</th><th>Merkle root</th></tr>`,
    );
    for (const a of anchors) {
      out.push(
        `<tr><td>${esc(a.gateway)}</td><td>${a.seqNo}</td><td>${esc(formatTime(a.windowStart))}</td><td>${a.count}</td>${metrics.map((m) => `<td>${a.sums[m] === undefined ? '' : num(a.sums[m])}</td>`).join('')}<td>${a.height}</td><td class="mono">${esc(a.root)}</td></tr>`,
      );
    }
    out.push('</table>');
  }
  out.push('</section>');
  out.push(
    `<footer><p>Report hash (SHA-256 of this document with the hash below replaced by 64 zeros): ${hashTag(ZERO_HASH)}</p></footer>`,
    '</body></html>',
  );
  return out.join('\n') + '\n';
}

/** The raw anchor root bytes of a row (for proof checks). */
export function rootBytes(row: AnchorRow): Bytes {
  return Buffer.from(row.root.slice(2), 'hex');
}
