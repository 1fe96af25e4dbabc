/**
 * The edge gateway: ingests device readings over MQTT (an embedded aedes broker, or an external
 * broker by URL) and HTTP, verifies device signatures against the on-chain device registry, logs
 * every accepted reading durably before acknowledging it, and per window builds a Merkle tree over
 * the readings, encrypts the raw batch for the enterprise's authorised lenders, keeps it, and
 * anchors root and aggregates on chain through the SDK. It serves the inclusion proof of any
 * single reading.
 *
 * Crash safety (the log is the truth):
 * - a reading is acknowledged (MQTT PUBACK, HTTP 200) only after its log record is fsync'ed;
 * - a window is closed by writing its batch files, then a close record (seqNo, root) to the log;
 *   only then is it anchored (and until then it counts as open in /status); a restart re-anchors
 *   closed windows that have no anchored record;
 * - before every (re)send the gateway asks the chain whether that seqNo is anchored, and the
 *   contract refuses a repeated seqNo, so no window is ever anchored twice.
 *
 * Bounded disk and memory:
 * - once a window is anchored, its metadata and reading ids go to `batches/<seqNo>.meta` (written
 *   durably before the anchored record), and its readings are no longer needed in the log (the
 *   batch files hold them). When the log has grown by `compactLogBytes`, it is rewritten to a
 *   snapshot: a checkpoint (last seqNo, end of the last closed window), the closed windows still
 *   waiting for their anchor (their readings are in their `.leaves` file, checked against the root
 *   on recovery) and the readings of open windows (appendLog.ts: write, fsync, rename, fsync dir);
 * - the proof index keeps the anchored windows of the last `proofRetentionMs`, and at most
 *   `maxIndexedReadings` readings (oldest anchored windows forgotten first); an older reading's
 *   proof is still served from its batch files when asked with its seqNo. A window is never
 *   forgotten before it is anchored: when unanchored windows alone fill the index (the chain has
 *   been unreachable for long), readings are refused with OVERLOADED until anchoring catches up.
 */
import {
  mkdirSync,
  openSync,
  closeSync,
  fsyncSync,
  writeFileSync,
  readFileSync,
  readdirSync,
  existsSync,
  renameSync,
} from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { Aedes, type PublishPacket, type Client as AedesClient } from 'aedes';
import { connect as mqttConnect, type MqttClient } from 'mqtt';
import { bytesEqual, toHex, type Bytes } from '../../core/bytes.ts';
import { encodeValue, readArray, unpackCanonical, type Value } from '../../core/codec.ts';
import { sha256 } from '../../core/hash.ts';
import { addressOf, type KeyPair } from '../../core/keys.ts';
import { merkleProof, merkleRoot, type MerkleProof } from '../../core/merkle.ts';
import { createClient, createWallet, type TrellisClient, type Wallet } from '../../rpc/sdk/index.ts';
import { fsyncDir, openAppendLog, readLog, type AppendLog, type RewriteStep } from './appendLog.ts';
import { encodeEnvelope, sealEnvelope } from './envelope.ts';
import { IotError } from './errors.ts';
import {
  encodeLeaf,
  decodeLeaf,
  readingFromBytes,
  readingFromJson,
  readingId,
  verifyReading,
  type AcceptedReading,
  type Reading,
} from './reading.ts';

/** Most distinct reading ids remembered for duplicate detection (oldest forgotten first). */
export const MAX_REMEMBERED_READINGS = 1_000_000;
/**
 * Default bound of the proof index (reading id → window): about 0.5 GB of memory. Oldest anchored
 * windows are forgotten first (their proofs stay available by seqNo from the batch files).
 */
export const MAX_INDEXED_READINGS = 5_000_000;
/** Default age of the windows the proof index keeps (one day). */
export const DEFAULT_PROOF_RETENTION_MS = 86_400_000;
/** Default growth of the log that triggers a compaction. */
export const DEFAULT_COMPACT_LOG_BYTES = 8 * 1024 * 1024;
/** Most readings in one window; beyond it readings are refused (OVERLOADED) until it closes. */
export const MAX_WINDOW_READINGS = 200_000;
/** Most readings in one HTTP request. */
export const MAX_HTTP_READINGS = 1000;
/** Largest HTTP request body. */
export const MAX_HTTP_BODY_BYTES = 1024 * 1024;
/** Gas of one anchor transaction. */
const ANCHOR_GAS = 20_000_000;

/** Options of {@link createGateway}. */
export interface GatewayOptions {
  /** Data directory (log and batches). */
  readonly dir: string;
  /** The gateway id registered in the iot contract. */
  readonly gatewayId: string;
  /** The gateway's signing key (its address must be the registered one). */
  readonly key: KeyPair;
  /** JSON-RPC URL of a node. */
  readonly rpcUrl: string;
  /** IoT contract name (default 'iot'). */
  readonly contract?: string;
  /** Embedded broker on this port (0: any free port), or an external broker URL. Default: embedded on 1883. */
  readonly mqtt?: { readonly port: number; readonly host?: string } | { readonly url: string } | null;
  /** HTTP port for ingest and proofs (0: any free port); null disables HTTP. Default 8090. */
  readonly httpPort?: number | null;
  readonly httpHost?: string;
  /** A window closes this long after its end, so late in-flight readings still make it. Default 200 ms. */
  readonly closeDelayMs?: number;
  /** How often the device registry and lenders are re-read from the chain. Default 5 s. */
  readonly refreshMs?: number;
  /** The log is compacted once it has grown this much since the last compaction (0: after every anchor). Default 8 MiB. */
  readonly compactLogBytes?: number;
  /** Anchored windows older than this leave the proof index (default one day). */
  readonly proofRetentionMs?: number;
  /** Most readings in the proof index (default {@link MAX_INDEXED_READINGS}). */
  readonly maxIndexedReadings?: number;
  /**
   * Called at the named points of compaction and anchoring (`compact:<RewriteStep>`,
   * `close:written`, `anchor:sent`, `anchor:meta`): the crash-safety test kills the process there.
   */
  readonly faultPoint?: (name: string) => void;
  /** Structured log sink (default: JSON lines on stderr). */
  readonly log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
  /** Clock (tests). */
  readonly now?: () => number;
}

/** Counters of a running gateway. */
export interface GatewayStats {
  accepted: number;
  duplicates: number;
  rejected: number;
  rejectedByReason: Record<string, number>;
  windowsClosed: number;
  windowsAnchored: number;
  anchorSends: number;
  anchorRetries: number;
  /**
   * Windows holding accepted readings whose close record is not yet on disk (a window being
   * closed included). Zero here and in pendingAnchors: every accepted reading is anchored.
   */
  openWindows: number;
  pendingAnchors: number;
  lastAnchoredSeq: number;
  compactions: number;
  /** Size of the readings log now. */
  logBytes: number;
  /** Readings in the proof index, and the oldest window it holds (0: none). */
  indexedReadings: number;
  indexedFromSeq: number;
}

/** Proof that one reading is in an anchored window. */
export interface ReadingProof {
  readonly gateway: string;
  readonly seqNo: number;
  readonly windowStart: number;
  readonly windowEnd: number;
  readonly root: Bytes;
  readonly leaf: Bytes;
  readonly proof: MerkleProof;
  readonly reading: AcceptedReading;
  /** Where it was anchored (null while the window waits for its anchor). */
  readonly anchored: { readonly height: number; readonly txHash: Bytes } | null;
}

/** A running gateway. */
export interface Gateway {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Ingests one reading; resolves once it is durable ('accepted') or known ('duplicate'). */
  ingest(r: Reading): Promise<'accepted' | 'duplicate'>;
  /**
   * The proof of reading (device, n), or throws NOT_FOUND. With `seqNo`, the window is read from
   * its batch files, so readings that left the proof index are still provable.
   */
  proof(device: string, n: number, seqNo?: number): ReadingProof;
  /** Closes every window that has ended (also called by the window timer). */
  closeDueWindows(): Promise<void>;
  readonly stats: GatewayStats;
  /** Ports actually bound (after start). */
  readonly ports: { mqtt: number | null; http: number | null };
}

interface DeviceInfo {
  id: string;
  gateway: string;
  metric: string;
  status: string;
  publicKey: Bytes | null;
}
interface ClosedWindow {
  seqNo: number;
  windowStart: number;
  count: number;
  root: Bytes;
  batchHash: Bytes;
  metrics: Value[];
  /** Ids of the devices with a reading in the window, ascending (the contract's heartbeats). */
  devices: string[];
}

/** Ids of the devices of `readings`, ascending and unique. */
export function reportingDevices(readings: readonly AcceptedReading[]): string[] {
  return [...new Set(readings.map((r) => r.device))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Per-metric aggregates of a window, as the contract takes them. */
export function aggregate(readings: readonly AcceptedReading[]): Value[] {
  const by = new Map<string, { n: number; min: bigint; max: bigint; sum: bigint }>();
  for (const r of readings) {
    const a = by.get(r.metric);
    if (a === undefined) by.set(r.metric, { n: 1, min: r.value, max: r.value, sum: r.value });
    else {
      a.n++;
      if (r.value < a.min) a.min = r.value;
      if (r.value > a.max) a.max = r.value;
      a.sum += r.value;
    }
  }
  return [...by.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([metric, a]) => ({ metric, n: a.n, min: a.min, max: a.max, sum: a.sum }));
}

/** Writes a file whole or not at all, and durably: temp file, fsync, rename, fsync of the directory. */
function writeDurable(path: string, data: Bytes): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, data);
  const fd = openSync(tmp, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  fsyncDir(dirname(path));
}

const defaultLog: NonNullable<GatewayOptions['log']> = (level, msg, fields = {}) => {
  process.stderr.write(JSON.stringify({ level, msg, time: Date.now(), ...fields }) + '\n');
};

/** The MQTT topic devices of `gatewayId` publish their readings to. */
export function readingsTopic(gatewayId: string): string {
  return `trellis/${gatewayId}/readings`;
}

/** Creates a gateway (nothing runs before start()). */
export function createGateway(options: GatewayOptions): Gateway {
  const contract = options.contract ?? 'iot';
  const now = options.now ?? Date.now;
  const log = options.log ?? defaultLog;
  const closeDelayMs = options.closeDelayMs ?? 200;
  const refreshMs = options.refreshMs ?? 5_000;
  const logPath = join(options.dir, 'readings.log');
  const batchDir = join(options.dir, 'batches');
  const stats: GatewayStats = {
    accepted: 0,
    duplicates: 0,
    rejected: 0,
    rejectedByReason: {},
    windowsClosed: 0,
    windowsAnchored: 0,
    anchorSends: 0,
    anchorRetries: 0,
    openWindows: 0,
    pendingAnchors: 0,
    lastAnchoredSeq: 0,
    compactions: 0,
    logBytes: 0,
    indexedReadings: 0,
    indexedFromSeq: 0,
  };
  const compactLogBytes = options.compactLogBytes ?? DEFAULT_COMPACT_LOG_BYTES;
  const proofRetentionMs = options.proofRetentionMs ?? DEFAULT_PROOF_RETENTION_MS;
  const maxIndexedReadings = options.maxIndexedReadings ?? MAX_INDEXED_READINGS;
  const faultPoint = options.faultPoint ?? (() => undefined);
  let compactQueued = false;
  let compactedAt = 0;
  const ports: { mqtt: number | null; http: number | null } = { mqtt: null, http: null };

  let client: TrellisClient;
  let wallet: Wallet;
  let appendLog: AppendLog;
  let windowMs = 0;
  let enterprise = '';
  let lastSeq = 0;
  /** End of the last closed window: readings never go into a closed window. */
  let closedUntil = 0;
  /** Windows are closed live (empty ones included) from here on. */
  let liveFrom = 0;
  let running = false;
  let stopping = false;
  const devices = new Map<string, DeviceInfo>();
  let lenders: Array<{ id: string; publicKey: Bytes }> = [];
  let lastRefresh = 0;
  const open = new Map<number, AcceptedReading[]>();
  /** Reading id → the promise of its durable append (resolved once on disk). */
  const seen = new Map<string, Promise<void>>();
  /**
   * The proof index: reading id → seqNo of its closed window, inserted in seqNo order (so the
   * oldest windows are at the front). Bounded by maxIndexedReadings (see evictIndex).
   */
  const placed = new Map<string, number>();
  /** Closed windows still indexed, in seqNo order (evicted together with their readings). */
  const closed = new Map<number, ClosedWindow>();
  const anchored = new Map<number, { height: number; txHash: Bytes }>();
  const anchorQueue: number[] = [];
  let anchorWake: (() => void) | null = null;
  let anchorLoop: Promise<void> | null = null;
  let closing: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  let refreshTimer: NodeJS.Timeout | undefined;
  let broker: Aedes | null = null;
  let mqttServer: NetServer | null = null;
  let mqttClient: MqttClient | null = null;
  let httpServer: HttpServer | null = null;
  const leavesCache = new Map<number, Bytes[]>();

  function remember(id: string, p: Promise<void>): void {
    seen.set(id, p);
    if (seen.size > MAX_REMEMBERED_READINGS) seen.delete(seen.keys().next().value!);
  }

  function place(id: string, seqNo: number): void {
    placed.set(id, seqNo);
  }

  /**
   * Forgets the oldest anchored windows while they are older than the retention or the index is
   * over its bound; stops at the first window not yet anchored (it must stay provable and known).
   */
  function evictIndex(): void {
    const horizon = now() - proofRetentionMs;
    for (const [seq, w] of closed) {
      if (w.windowStart + windowMs >= horizon && placed.size <= maxIndexedReadings) break;
      if (!anchored.has(seq)) break;
      closed.delete(seq);
      anchored.delete(seq);
      leavesCache.delete(seq);
      for (const [id, s] of placed) {
        if (s > seq) break;
        placed.delete(id);
      }
    }
    stats.indexedReadings = placed.size;
    stats.indexedFromSeq = closed.keys().next().value ?? 0;
  }

  function reject(reason: string, message: string, meta: Record<string, unknown>): never {
    stats.rejected++;
    stats.rejectedByReason[reason] = (stats.rejectedByReason[reason] ?? 0) + 1;
    throw new IotError(reason as never, message, meta);
  }

  async function refreshRegistry(force = false): Promise<void> {
    if (!force && now() - lastRefresh < 1_000) return;
    lastRefresh = now();
    let after: string | undefined;
    for (;;) {
      const page = (await client.view(contract, 'devices', {
        gateway: options.gatewayId,
        limit: 1000,
        ...(after === undefined ? {} : { after }),
      })) as unknown as DeviceInfo[];
      for (const d of page) if (d !== null) devices.set(d.id, d);
      if (page.length < 1000) break;
      after = page[page.length - 1]!.id;
    }
    const ls = (await client.view(contract, 'lenders', { enterprise })) as unknown as Array<{
      lender: string;
      encryptionKey: Bytes;
    }>;
    lenders = ls.map((l) => ({ id: l.lender, publicKey: l.encryptionKey }));
  }

  async function ingest(r: Reading): Promise<'accepted' | 'duplicate'> {
    if (!running) throw new IotError('STOPPED', 'the gateway is not running', {});
    let d = devices.get(r.device);
    if (d === undefined) {
      await refreshRegistry().catch(() => undefined);
      d = devices.get(r.device);
    }
    if (d === undefined || d.gateway !== options.gatewayId)
      reject('UNKNOWN_DEVICE', `device ${r.device} is not registered at gateway ${options.gatewayId}`, {
        device: r.device,
      });
    if (d.status !== 'ACTIVE')
      reject('DEVICE_NOT_ACTIVE', `device ${r.device} is ${d.status}`, { device: r.device });
    if (d.publicKey !== null && !verifyReading(r, d.publicKey))
      reject('BAD_SIGNATURE', `reading ${readingId(r)}: the signature does not verify with the device key`, {
        device: r.device,
        n: r.n,
      });
    const id = readingId(r);
    const known = seen.get(id);
    if (known !== undefined || placed.has(id)) {
      stats.duplicates++;
      await known;
      return 'duplicate';
    }
    if (placed.size >= maxIndexedReadings) {
      evictIndex();
      if (placed.size >= maxIndexedReadings)
        reject(
          'OVERLOADED',
          `the proof index holds ${placed.size} readings of windows not yet anchored (bound ${maxIndexedReadings}); retry once anchoring catches up`,
          {},
        );
    }
    const receivedAt = now();
    let ws = Math.floor(receivedAt / windowMs) * windowMs;
    if (ws < closedUntil) ws = closedUntil;
    const list = open.get(ws) ?? [];
    if (list.length >= MAX_WINDOW_READINGS)
      reject('OVERLOADED', `window ${ws} holds ${MAX_WINDOW_READINGS} readings`, {});
    const accepted: AcceptedReading = { ...r, metric: d.metric, receivedAt };
    list.push(accepted);
    open.set(ws, list);
    stats.openWindows = open.size;
    const durable = appendLog.append(encodeValue(['r', ws, encodeLeaf(accepted)]));
    remember(id, durable);
    await durable;
    stats.accepted++;
    return 'accepted';
  }

  function batchPath(seqNo: number, ext: string): string {
    return join(batchDir, `${String(seqNo).padStart(12, '0')}.${ext}`);
  }

  async function closeWindow(ws: number): Promise<void> {
    // The window stays in `open` until its close record is on disk: until then it is neither
    // closed nor waiting for its anchor, and /status must not report it as neither (a caller
    // waiting for "no open window, no pending anchor" would miss its readings); a close that fails
    // leaves it there with its readings, for the next round to retry.
    const readings = open.get(ws) ?? [];
    const seqNo = lastSeq + 1;
    const leaves = readings.map(encodeLeaf);
    const root = merkleRoot(leaves);
    const env = encodeEnvelope(
      sealEnvelope(encodeValue(leaves), `${options.gatewayId}:${seqNo}:${toHex(root)}`, lenders),
    );
    const batchHash = sha256(env);
    writeDurable(batchPath(seqNo, 'leaves'), encodeValue(leaves));
    writeDurable(batchPath(seqNo, 'env'), env);
    faultPoint('close:written');
    const w: ClosedWindow = {
      seqNo,
      windowStart: ws,
      count: readings.length,
      root,
      batchHash,
      metrics: aggregate(readings),
      devices: reportingDevices(readings),
    };
    // The close record makes the window's seqNo final; the window is anchored only after it.
    await appendLog.append(encodeValue(['c', seqNo, ws, w.count, root, batchHash, w.metrics]));
    // From here to enqueueAnchor nothing awaits: the window leaves `open` and joins the anchor
    // queue in one step, as /status sees it.
    open.delete(ws);
    stats.openWindows = open.size;
    lastSeq = seqNo;
    closedUntil = Math.max(closedUntil, ws + windowMs);
    closed.set(seqNo, w);
    for (const r of readings) place(readingId(r), seqNo);
    stats.windowsClosed++;
    enqueueAnchor(seqNo);
  }

  function closeDueWindows(): Promise<void> {
    // Serialised: two overlapping calls must not give two windows the same seqNo.
    // A failed close (logged by the caller) must not stop every later one.
    closing = closing
      .catch(() => undefined)
      .then(async () => {
        if (!running) return;
        const limit = now() - closeDelayMs;
        const due = [...open.keys()].filter((ws) => ws + windowMs <= limit);
        // While running, every window is anchored, empty ones included: they are the heartbeat.
        for (let ws = Math.max(closedUntil, liveFrom); ws + windowMs <= limit; ws += windowMs) {
          if (!due.includes(ws)) due.push(ws);
        }
        due.sort((a, b) => a - b);
        for (const ws of due) await closeWindow(ws);
        evictIndex();
      });
    return closing;
  }

  function enqueueAnchor(seqNo: number): void {
    anchorQueue.push(seqNo);
    stats.pendingAnchors = anchorQueue.length;
    anchorWake?.();
  }

  function anchorArgs(w: ClosedWindow): Value {
    return {
      gateway: options.gatewayId,
      seqNo: w.seqNo,
      windowStart: w.windowStart,
      windowEnd: w.windowStart + windowMs,
      count: w.count,
      root: w.root,
      batchHash: w.batchHash,
      metrics: w.metrics,
      devices: w.devices,
    };
  }

  /** Anchors one closed window; true when it is (now or already) on chain. */
  async function anchorOne(w: ClosedWindow): Promise<boolean> {
    const onChain = (await client.view(contract, 'anchorOf', {
      gateway: options.gatewayId,
      seqNo: w.seqNo,
    })) as {
      root: Bytes;
      height: number;
      txHash: string;
    } | null;
    if (onChain !== null) {
      if (!bytesEqual(onChain.root, w.root)) {
        throw new IotError('ANCHOR_CONFLICT', `seqNo ${w.seqNo} is anchored with another root`, {
          seqNo: w.seqNo,
        });
      }
      await markAnchored(w.seqNo, onChain.height, Buffer.from(onChain.txHash.slice(2), 'hex'));
      return true;
    }
    stats.anchorSends++;
    const rv = await wallet.sendAndWait(
      { contract, method: 'anchor', args: anchorArgs(w), gasLimit: ANCHOR_GAS },
      30_000,
    );
    if (rv.receipt.status === 'ok') {
      faultPoint('anchor:sent');
      await markAnchored(w.seqNo, rv.height, rv.receipt.txHash);
      return true;
    }
    // DUPLICATE_SEQ: an earlier send landed; the next round's check records it.
    log('warn', 'ANCHOR_REFUSED', { seqNo: w.seqNo, code: rv.receipt.errorCode, error: rv.receipt.error });
    if (rv.receipt.errorCode !== 'DUPLICATE_SEQ') await wallet.resync();
    return false;
  }

  async function markAnchored(seqNo: number, height: number, txHash: Bytes): Promise<void> {
    const w = closed.get(seqNo)!;
    // The window's metadata and reading ids outlive its log records (see compactLog).
    const ids = leavesOf(seqNo).map((l) => readingId(decodeLeaf(l)));
    writeDurable(
      batchPath(seqNo, 'meta'),
      encodeValue([seqNo, w.windowStart, w.count, w.root, w.batchHash, w.metrics, height, txHash, ids]),
    );
    faultPoint('anchor:meta');
    await appendLog.append(encodeValue(['a', seqNo, height, txHash]));
    anchored.set(seqNo, { height, txHash });
    stats.windowsAnchored++;
    stats.lastAnchoredSeq = Math.max(stats.lastAnchoredSeq, seqNo);
    evictIndex();
    stats.logBytes = appendLog.bytes;
    if (appendLog.bytes - compactedAt >= compactLogBytes && !compactQueued) {
      compactQueued = true;
      // On the closing chain: no window closes while the snapshot is taken.
      closing = closing
        .catch(() => undefined)
        .then(compactLog)
        .catch((e: unknown) => log('error', 'COMPACTION_FAILED', { error: (e as Error).message }));
    }
  }

  /**
   * Rewrites the log to what a restart needs: a checkpoint, the closed windows not yet anchored
   * (as 'C' records: their readings are in their durable `.leaves` file) and the open windows'
   * readings. Anchored windows are dropped: their `.meta` file was written before their anchored
   * record, and the chain holds their root.
   */
  async function compactLog(): Promise<void> {
    compactQueued = false;
    if (stopping) return;
    const { before, after } = await appendLog.rewrite(
      () => {
        const records: Bytes[] = [encodeValue(['k', lastSeq, closedUntil, stats.lastAnchoredSeq])];
        for (const [seq, w] of closed) {
          if (anchored.has(seq)) continue;
          records.push(encodeValue(['C', seq, w.windowStart, w.count, w.root, w.batchHash, w.metrics]));
        }
        for (const ws of [...open.keys()].sort((a, b) => a - b))
          for (const r of open.get(ws)!) records.push(encodeValue(['r', ws, encodeLeaf(r)]));
        return records;
      },
      (step: RewriteStep) => faultPoint(`compact:${step}`),
    );
    compactedAt = after;
    stats.compactions++;
    stats.logBytes = after;
    log('info', 'LOG_COMPACTED', { before, after });
  }

  async function runAnchors(): Promise<void> {
    let backoff = 100;
    while (!stopping) {
      const seqNo = anchorQueue[0];
      if (seqNo === undefined) {
        await new Promise<void>((r) => (anchorWake = r));
        anchorWake = null;
        continue;
      }
      const w = closed.get(seqNo)!;
      let done = false;
      try {
        done = await anchorOne(w);
      } catch (err) {
        if (err instanceof IotError && err.code === 'ANCHOR_CONFLICT') {
          log('error', 'ANCHOR_CONFLICT', { seqNo, error: err.message });
          anchorQueue.shift();
          stats.pendingAnchors = anchorQueue.length;
          continue;
        }
        log('warn', 'ANCHOR_RETRY', { seqNo, error: (err as Error).message });
        await wallet.resync().catch(() => undefined);
      }
      if (done) {
        anchorQueue.shift();
        stats.pendingAnchors = anchorQueue.length;
        backoff = 100;
      } else {
        stats.anchorRetries++;
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(5_000, backoff * 2);
      }
    }
  }

  /** The leaves of a closed window from its batch file, checked against its count and root. */
  function loadLeaves(seqNo: number, count: number, root: Bytes): Bytes[] {
    const p = batchPath(seqNo, 'leaves');
    if (!existsSync(p))
      throw new IotError('CORRUPT_LOG', `window ${seqNo} is closed but ${p} is missing`, { seqNo });
    const leaves = unpackCanonical(readFileSync(p), 'leaves') as Bytes[];
    if (leaves.length !== count || !bytesEqual(merkleRoot(leaves), root))
      throw new IotError('CORRUPT_LOG', `${p} does not match the root and count of window ${seqNo}`, {
        seqNo,
      });
    return leaves;
  }

  /** A closed window from the fields a `.meta` file and a close record both store. */
  function closedWindowOf(
    [seq, ws, count, root, batchHash, metrics]: [number, number, number, Bytes, Bytes, Value[]],
    devices: ClosedWindow['devices'],
  ): ClosedWindow {
    return {
      seqNo: Number(seq),
      windowStart: Number(ws),
      count: Number(count),
      root,
      batchHash,
      metrics,
      devices,
    };
  }

  /** Metadata of an anchored window, from its `.meta` file. */
  function readMeta(seqNo: number): { w: ClosedWindow; height: number; txHash: Bytes; ids: string[] } | null {
    const p = batchPath(seqNo, 'meta');
    if (!existsSync(p)) return null;
    const [seq, ws, count, root, batchHash, metrics, height, txHash, ids] = readArray(
      unpackCanonical(readFileSync(p), 'meta'),
      9,
      'window meta',
    ) as [number, number, number, Bytes, Bytes, Value[], number, Bytes, string[]];
    return {
      w: closedWindowOf([seq, ws, count, root, batchHash, metrics], []),
      height: Number(height),
      txHash,
      ids,
    };
  }

  function recover(chainLastSeq: number, chainLastWindowEnd: number): void {
    const { records, truncatedBytes } = readLog(logPath);
    if (truncatedBytes > 0) log('warn', 'LOG_TAIL_TRUNCATED', { bytes: truncatedBytes });
    /** Closed windows found in the log, with their readings. */
    const fromLog = new Map<number, { w: ClosedWindow; readings: AcceptedReading[] }>();
    const logAnchored = new Map<number, { height: number; txHash: Bytes }>();
    // A compaction may repeat a reading that was also waiting to be appended: keep one.
    const replayed = new Set<string>();
    for (const rec of records) {
      const a = unpackCanonical(rec, 'log record') as unknown[];
      if (a[0] === 'r') {
        const [, ws, leaf] = readArray(a, 3, 'reading record') as [number, number, Bytes];
        const r = decodeLeaf(leaf);
        const id = readingId(r);
        if (replayed.has(id)) continue;
        replayed.add(id);
        const list = open.get(Number(ws)) ?? [];
        list.push(r);
        open.set(Number(ws), list);
        remember(id, Promise.resolve());
      } else if (a[0] === 'c' || a[0] === 'C') {
        const [kind, seq, ws, count, root, batchHash, metrics] = readArray(a, 7, 'close record') as [
          string,
          number,
          number,
          number,
          Bytes,
          Bytes,
          Value[],
        ];
        let readings: AcceptedReading[];
        if (kind === 'c') {
          readings = open.get(Number(ws)) ?? [];
          open.delete(Number(ws));
          if (readings.length !== Number(count)) {
            throw new IotError(
              'CORRUPT_LOG',
              `window ${ws} closed with ${count} readings, the log holds ${readings.length}`,
              {},
            );
          }
        } else {
          readings = loadLeaves(Number(seq), Number(count), root).map(decodeLeaf);
        }
        fromLog.set(Number(seq), {
          w: closedWindowOf([seq, ws, count, root, batchHash, metrics], reportingDevices(readings)),
          readings,
        });
        lastSeq = Math.max(lastSeq, Number(seq));
        closedUntil = Math.max(closedUntil, Number(ws) + windowMs);
      } else if (a[0] === 'a') {
        const [, seq, height, txHash] = readArray(a, 4, 'anchored record') as [string, number, number, Bytes];
        logAnchored.set(Number(seq), { height: Number(height), txHash });
        stats.lastAnchoredSeq = Math.max(stats.lastAnchoredSeq, Number(seq));
      } else if (a[0] === 'k') {
        const [, seq, until, anchoredSeq] = readArray(a, 4, 'checkpoint') as [string, number, number, number];
        lastSeq = Math.max(lastSeq, Number(seq));
        closedUntil = Math.max(closedUntil, Number(until));
        stats.lastAnchoredSeq = Math.max(stats.lastAnchoredSeq, Number(anchoredSeq));
      } else {
        throw new IotError('CORRUPT_LOG', `unknown log record ${String(a[0])}`, {});
      }
    }
    // Anchored windows the log no longer holds, newest first, back to the retention or the bound.
    const horizon = now() - proofRetentionMs;
    const metaSeqs = readdirSync(batchDir)
      .filter((f) => /^\d{12}\.meta$/.test(f))
      .map((f) => Number(f.slice(0, 12)))
      .sort((a, b) => b - a);
    const fromMeta: Array<NonNullable<ReturnType<typeof readMeta>>> = [];
    let indexed = [...fromLog.values()].reduce((n, x) => n + x.readings.length, 0);
    for (const seq of metaSeqs) {
      if (fromLog.has(seq)) {
        // Closed in the log, and its .meta says it is anchored (a crash before the 'a' record).
        const m = readMeta(seq)!;
        if (!logAnchored.has(seq)) logAnchored.set(seq, { height: m.height, txHash: m.txHash });
        continue;
      }
      const m = readMeta(seq)!;
      if (m.w.windowStart + windowMs < horizon || indexed + m.ids.length > maxIndexedReadings) break;
      indexed += m.ids.length;
      fromMeta.push(m);
      lastSeq = Math.max(lastSeq, seq);
      closedUntil = Math.max(closedUntil, m.w.windowStart + windowMs);
      stats.lastAnchoredSeq = Math.max(stats.lastAnchoredSeq, seq);
    }
    // Into the index in seqNo order, so eviction finds the oldest at the front.
    const all = [
      ...fromMeta.map((m) => ({
        seq: m.w.seqNo,
        w: m.w,
        ids: m.ids,
        a: { height: m.height, txHash: m.txHash },
      })),
      ...[...fromLog.entries()].map(([seq, x]) => ({
        seq,
        w: x.w,
        ids: x.readings.map(readingId),
        a: logAnchored.get(seq) ?? null,
      })),
    ].sort((x, y) => x.seq - y.seq);
    for (const x of all) {
      closed.set(x.seq, x.w);
      if (x.a !== null) anchored.set(x.seq, x.a);
      for (const id of x.ids) place(id, x.seq);
    }
    // A lost or fresh disk: continue after what the chain has, never reusing a seqNo.
    if (chainLastSeq > lastSeq) lastSeq = chainLastSeq;
    closedUntil = Math.max(closedUntil, chainLastWindowEnd);
    for (const seq of closed.keys()) if (!anchored.has(seq)) anchorQueue.push(seq);
    stats.pendingAnchors = anchorQueue.length;
    stats.openWindows = open.size;
    evictIndex();
    log('info', 'GATEWAY_RECOVERED', {
      records: records.length,
      openWindows: open.size,
      openReadings: [...open.values()].reduce((n, l) => n + l.length, 0),
      closedWindows: closed.size,
      toAnchor: anchorQueue.length,
      lastSeq,
    });
  }

  function leavesOf(seqNo: number): Bytes[] {
    let leaves = leavesCache.get(seqNo);
    if (leaves === undefined) {
      const p = batchPath(seqNo, 'leaves');
      if (!existsSync(p)) throw new IotError('NOT_FOUND', `batch ${seqNo} is not kept here`, { seqNo });
      leaves = unpackCanonical(readFileSync(p), 'leaves') as Bytes[];
      leavesCache.set(seqNo, leaves);
      if (leavesCache.size > 16) leavesCache.delete(leavesCache.keys().next().value!);
    }
    return leaves;
  }

  function proof(device: string, n: number, seqNo?: number): ReadingProof {
    const id = readingId({ device, n });
    const seq = seqNo ?? placed.get(id);
    if (seq === undefined) {
      throw new IotError(
        'NOT_FOUND',
        `reading ${id} is not in the proof index of this gateway (it holds windows from seqNo ${stats.indexedFromSeq}); ask with its seqNo for an older one`,
        { device, n },
      );
    }
    let w = closed.get(seq);
    let where = anchored.get(seq) ?? null;
    if (w === undefined) {
      const m = readMeta(seq);
      if (m === null) throw new IotError('NOT_FOUND', `window ${seq} is not kept here`, { seqNo: seq });
      w = m.w;
      where = { height: m.height, txHash: m.txHash };
    }
    const leaves = leavesOf(seq);
    const index = leaves.findIndex((l) => {
      const r = decodeLeaf(l);
      return r.device === device && r.n === n;
    });
    if (index < 0) throw new IotError('NOT_FOUND', `reading ${id} is not in window ${seq}`, { seqNo: seq });
    return {
      gateway: options.gatewayId,
      seqNo: seq,
      windowStart: w.windowStart,
      windowEnd: w.windowStart + windowMs,
      root: w.root,
      leaf: leaves[index]!,
      proof: merkleProof(leaves, index),
      reading: decodeLeaf(leaves[index]!),
      anchored: where,
    };
  }

  async function handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(
        // The holder's raw value: Buffer.toJSON would otherwise run before the replacer sees it.
        JSON.stringify(body, function (this: Record<string, unknown>, k: string, v: unknown) {
          const raw = this[k];
          return typeof raw === 'bigint' ? raw.toString() : raw instanceof Uint8Array ? toHex(raw) : v;
        }),
      );
    };
    const url = new URL(req.url ?? '/', 'http://gateway');
    try {
      if (req.method === 'GET' && url.pathname === '/health') return send(200, { ok: running });
      if (req.method === 'GET' && url.pathname === '/status') {
        stats.logBytes = appendLog.bytes;
        return send(200, {
          gateway: options.gatewayId,
          enterprise,
          windowMs,
          lastSeq,
          ...stats,
        });
      }
      if (req.method === 'GET' && url.pathname === '/proof') {
        const device = url.searchParams.get('device') ?? '';
        const n = Number(url.searchParams.get('n'));
        const seqParam = url.searchParams.get('seqNo');
        const seq = seqParam === null ? undefined : Number(seqParam);
        if (device === '' || !Number.isSafeInteger(n) || (seq !== undefined && !Number.isSafeInteger(seq)))
          return send(400, { error: 'BAD_REQUEST', message: 'expected ?device=ID&n=N[&seqNo=S]' });
        const p = proof(device, n, seq);
        return send(200, { ...p, reading: { ...p.reading } });
      }
      if (req.method === 'POST' && url.pathname === '/readings') {
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const c of req) {
          size += (c as Buffer).length;
          if (size > MAX_HTTP_BODY_BYTES)
            return send(413, { error: 'TOO_LARGE', message: `body over ${MAX_HTTP_BODY_BYTES} bytes` });
          chunks.push(c as Buffer);
        }
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          return send(400, { error: 'BAD_READING', message: 'body must be JSON' });
        }
        const list = Array.isArray(body) ? body : [body];
        if (list.length > MAX_HTTP_READINGS)
          return send(413, { error: 'TOO_LARGE', message: `at most ${MAX_HTTP_READINGS} readings` });
        const results = await Promise.all(
          list.map(async (x) => {
            try {
              return { status: await ingest(readingFromJson(x)) };
            } catch (err) {
              return {
                status: 'rejected',
                error: (err as IotError).code ?? 'ERROR',
                message: (err as Error).message,
              };
            }
          }),
        );
        return send(200, { results });
      }
      return send(404, {
        error: 'NOT_FOUND',
        message: 'GET /health, /status, /proof?device=&n=[&seqNo=]; POST /readings',
      });
    } catch (err) {
      const code = err instanceof IotError ? err.code : 'ERROR';
      return send(code === 'NOT_FOUND' ? 404 : 500, { error: code, message: (err as Error).message });
    }
  }

  async function onMqttPublish(payload: Uint8Array): Promise<void> {
    try {
      await ingest(readingFromBytes(payload));
    } catch (err) {
      if (!(err instanceof IotError) || err.code !== 'STOPPED') {
        if (err instanceof IotError && err.code === 'BAD_READING') {
          stats.rejected++;
          stats.rejectedByReason['BAD_READING'] = (stats.rejectedByReason['BAD_READING'] ?? 0) + 1;
        }
        log('warn', 'READING_REJECTED', { error: (err as Error).message });
      } else throw err;
    }
  }

  async function startMqtt(): Promise<void> {
    const cfg = options.mqtt === undefined ? { port: 1883 } : options.mqtt;
    if (cfg === null) return;
    const topic = readingsTopic(options.gatewayId);
    if ('url' in cfg) {
      const c = mqttConnect(cfg.url, {
        clientId: `trellis-gateway-${options.gatewayId}`,
        clean: false,
        reconnectPeriod: 500,
      });
      // The broker gets our PUBACK only after the reading is durable (at-least-once end to end).
      c.handleMessage = (packet, done) => {
        if (packet.topic !== topic) return done();
        onMqttPublish(packet.payload as Buffer).then(
          () => done(),
          () => undefined, // stopping: no ack, the broker redelivers to the next run
        );
      };
      await new Promise<void>((resolve, fail) => {
        c.once('connect', () => resolve());
        c.once('error', fail);
        c.on('error', (e) => log('warn', 'MQTT_ERROR', { error: e.message }));
      });
      await c.subscribeAsync(topic, { qos: 1 });
      mqttClient = c;
      return;
    }
    const b = await Aedes.createBroker({ id: `trellis-gateway-${options.gatewayId}` });
    // aedes reports internal failures as 'error' events; unheard, they would end the process.
    (b as unknown as NodeJS.EventEmitter).on('error', (e: Error) =>
      log('error', 'MQTT_BROKER_ERROR', { error: e.message }),
    );
    b.authorizePublish = (
      _client: AedesClient | null,
      packet: PublishPacket,
      callback: (err?: Error | null) => void,
    ) => {
      if (packet.topic.startsWith('$SYS/')) return callback(new Error('$SYS topics are reserved'));
      if (packet.topic !== topic) return callback(null);
      // PUBACK follows this callback: a device sees its reading acknowledged only once it is on disk.
      onMqttPublish(packet.payload as Buffer).then(
        () => callback(null),
        () => callback(new Error('gateway stopping')),
      );
    };
    const server = createNetServer(b.handle);
    await new Promise<void>((resolve, fail) => {
      server.once('error', fail);
      server.listen(cfg.port, cfg.host ?? '127.0.0.1', () => resolve());
    });
    ports.mqtt = (server.address() as AddressInfo).port;
    broker = b;
    mqttServer = server;
  }

  async function startHttp(): Promise<void> {
    const port = options.httpPort === undefined ? 8090 : options.httpPort;
    if (port === null) return;
    const server = createHttpServer((req, res) => void handleHttp(req, res));
    await new Promise<void>((resolve, fail) => {
      server.once('error', fail);
      server.listen(port, options.httpHost ?? '127.0.0.1', () => resolve());
    });
    ports.http = (server.address() as AddressInfo).port;
    httpServer = server;
  }

  return {
    stats,
    ports,
    ingest,
    proof,
    closeDueWindows,
    async start() {
      mkdirSync(batchDir, { recursive: true });
      client = createClient({ url: options.rpcUrl });
      wallet = createWallet(client, options.key, { gasLimit: ANCHOR_GAS });
      const g = (await client.view(contract, 'gateway', { id: options.gatewayId })) as Record<
        string,
        Value
      > | null;
      if (g === null)
        throw new IotError('BAD_CONFIG', `gateway ${options.gatewayId} is not registered in ${contract}`, {});
      const address = toHex(addressOf(options.key.publicKey));
      if (g['address'] !== address) {
        throw new IotError(
          'BAD_CONFIG',
          `gateway ${options.gatewayId} is registered for ${JSON.stringify(g['address'])}, this key is ${address}`,
          {},
        );
      }
      windowMs = Number(g['windowMs']);
      enterprise = g['enterprise'] as string;
      recover(Number(g['lastSeq']), Number(g['lastWindowEnd']));
      await refreshRegistry(true);
      appendLog = await openAppendLog(logPath);
      stats.logBytes = appendLog.bytes;
      // A log grown before a crash is compacted once the first anchor lands (markAnchored).
      liveFrom = Math.max(closedUntil, Math.floor(now() / windowMs) * windowMs);
      running = true;
      anchorLoop = runAnchors();
      await startMqtt();
      await startHttp();
      timer = setInterval(
        () =>
          void closeDueWindows().catch((e: unknown) =>
            log('error', 'CLOSE_FAILED', { error: (e as Error).message }),
          ),
        Math.max(20, Math.floor(windowMs / 10)),
      );
      refreshTimer = setInterval(() => void refreshRegistry(true).catch(() => undefined), refreshMs);
      log('info', 'GATEWAY_STARTED', {
        gateway: options.gatewayId,
        enterprise,
        windowMs,
        mqtt: ports.mqtt,
        http: ports.http,
        lastSeq,
      });
    },
    async stop() {
      running = false;
      stopping = true;
      clearInterval(timer);
      clearInterval(refreshTimer);
      anchorWake?.();
      await new Promise<void>((r) => (httpServer === null ? r() : httpServer.close(() => r())));
      httpServer?.closeAllConnections();
      if (mqttClient !== null) await mqttClient.endAsync();
      if (broker !== null) await new Promise<void>((r) => broker!.close(() => r()));
      await new Promise<void>((r) => (mqttServer === null ? r() : mqttServer.close(() => r())));
      await closing.catch(() => undefined);
      await anchorLoop?.catch(() => undefined);
      await appendLog?.close();
      client?.close();
    },
  };
}
