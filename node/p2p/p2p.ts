/**
 * The p2p service: member-only networking over libp2p 3 (TCP, Noise, Yamux).
 *
 * - Identity: the libp2p key is the node's Ed25519 seed, so a member's PeerId is a pure function
 *   of its public key and the Noise handshake proves which member is on the other end.
 * - Admission: a connection gater refuses every peer not in the member set (memberGater.ts);
 *   inbound handlers check again, for members removed while connected.
 * - Consensus messages and transaction batches travel on one long-lived outbound stream per
 *   peer and protocol, as 4-byte length-prefixed frames (framing.ts), fed from a bounded queue
 *   per peer (boundedQueue.ts states the drop policies). Sends return at once.
 * - Block sync is request/response, one short stream per request, bounded on both sides.
 * - Every member with an address is dialled and, when it drops, redialled with capped
 *   exponential backoff and jitter, forever, until it leaves the member set or we stop.
 */
import { randomInt } from 'node:crypto';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Connection, Libp2p, PeerId, Stream, StreamMessageEvent } from '@libp2p/interface';
import { tcp } from '@libp2p/tcp';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { createLibp2p } from 'libp2p';
import { toHex, type Bytes } from '../../core/bytes.ts';
import { keyPairFromSecret, SECRET_KEY_BYTES } from '../../core/keys.ts';
import { Limits } from '../../core/types.ts';
import { backoffDelayMs } from './backoff.ts';
import { createBoundedQueue, type BoundedQueue, type DropPolicy, type QueueStats } from './boundedQueue.ts';
import { P2pError } from './errors.ts';
import { createFrameDecoder, encodeFrame, FRAME_HEADER_BYTES } from './framing.ts';
import { createMemberGater, type GaterHook } from './memberGater.ts';
import { libp2pKeyFromSeed, parseMembers, peerIdOf, type MemberRecord, type P2pMember } from './members.ts';
import {
  decodeStatusResponse,
  decodeSyncRequest,
  decodeTxBatch,
  encodeStatusResponse,
  encodeSyncRequest,
  encodeTxBatch,
  MAX_STATUS_RESPONSE_BYTES,
  MAX_SYNC_REQUEST_BYTES,
  protocolIds,
  splitTxBatches,
  type ProtocolIds,
} from './wire.ts';

/** Defaults of every bound and timer. Each bound caps memory a peer (or a slow peer) can make us hold. */
export const P2P_DEFAULTS = {
  /** Largest consensus message, and largest single block-sync entry (a proposal carries a block). */
  maxMessageBytes: 4 * 1024 * 1024,
  /** Consensus messages waiting per peer; a full queue drops its oldest. */
  maxQueuedMessages: 1024,
  /** Bytes of consensus messages waiting per peer. */
  maxQueuedMessageBytes: 32 * 1024 * 1024,
  /** Transaction batches waiting per peer; a full queue refuses the newest. */
  maxQueuedTxBatches: 256,
  /** Bytes of transaction batches waiting per peer. */
  maxQueuedTxBytes: 32 * 1024 * 1024,
  /** Transactions per gossip batch. */
  maxTxsPerBatch: 1024,
  /** Encoded bytes per gossip batch. */
  maxTxBatchBytes: 1024 * 1024,
  /** Bytes of one signed transaction in a batch (the mempool's own limit). */
  maxTxBytes: Limits.maxTxBytes,
  /** Entries served or accepted in one block-sync response. */
  maxBlocksPerResponse: 128,
  /** Bytes served or accepted in one block-sync response. */
  maxBlockResponseBytes: 32 * 1024 * 1024,
  /** Time allowed for one request/response exchange, either side. */
  requestTimeoutMs: 10_000,
  /** Time allowed for one dial or stream negotiation. */
  dialTimeoutMs: 5_000,
  /** First reconnection delay; doubles per failed attempt. */
  reconnectBaseMs: 250,
  /** Longest reconnection delay. */
  reconnectMaxMs: 15_000,
  /** Members the set may hold (validators and observers). */
  maxMembers: Limits.maxValidators,
  /** Connections libp2p keeps before pruning. */
  maxConnections: 512,
  /** Inbound connections accepted per second per remote host (a loopback consortium shares one host). */
  inboundConnectionsPerHostPerSecond: 64,
  /**
   * A connection that drops sooner than this counts as a failed attempt, so a peer that accepts
   * the handshake and then hangs up (a member whose gater refuses us) is redialled with growing
   * delays rather than at the base rate forever.
   */
  stableConnectionMs: 5_000,
} as const;

/** Options of the p2p service: plain data; every bound has a default in P2P_DEFAULTS. */
export interface P2pOptions {
  /** The network's chainId; every protocol id carries it. */
  readonly chainId: string;
  /** The node's 32-byte Ed25519 seed (core/keys.ts); the libp2p identity derives from it. */
  readonly secretKey: Bytes;
  /** Listen multiaddr, e.g. `/ip4/127.0.0.1/tcp/26656`; `tcp/0` picks a free port. */
  readonly listen: string;
  /** Initial member set (may include this node, which is then ignored). */
  readonly members: readonly P2pMember[];
  readonly maxMessageBytes?: number;
  readonly maxQueuedMessages?: number;
  readonly maxQueuedMessageBytes?: number;
  readonly maxQueuedTxBatches?: number;
  readonly maxQueuedTxBytes?: number;
  readonly maxTxsPerBatch?: number;
  readonly maxTxBatchBytes?: number;
  readonly maxTxBytes?: number;
  readonly maxBlocksPerResponse?: number;
  readonly maxBlockResponseBytes?: number;
  readonly requestTimeoutMs?: number;
  readonly dialTimeoutMs?: number;
  readonly reconnectBaseMs?: number;
  readonly reconnectMaxMs?: number;
  readonly maxMembers?: number;
  readonly maxConnections?: number;
  readonly inboundConnectionsPerHostPerSecond?: number;
  readonly stableConnectionMs?: number;
}

/** Log levels of the structured log callback. */
export type P2pLogLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * What the p2p service needs from the node. Callbacks are synchronous and must not throw (a
 * throw is caught, logged and counted, never propagated into libp2p); the driver copies the
 * bytes into its own bounded queue. Every `from` is the sender member's 32-byte public key, as
 * proven by the Noise handshake.
 */
export interface P2pDeps {
  /** A consensus message from a member, bytes exactly as the sender passed them. */
  onConsensusMessage(from: Bytes, message: Bytes): void;
  /** A batch of signed transaction bytes from a member; not yet validated. */
  onTxs(from: Bytes, txs: Bytes[]): void;
  /**
   * Up to `maxCount` consecutive entries (encoded block with its commit certificate) starting at
   * `fromHeight`; fewer, or none, past the local head. The service trims the answer to its
   * response bounds, so returning extra is safe but wasteful.
   */
  serveBlocks(fromHeight: number, maxCount: number): readonly Bytes[] | Promise<readonly Bytes[]>;
  /** This node's committed head height. */
  serveStatus(): number | Promise<number>;
  /**
   * A member connected (first time or again): e.g. offer it the transactions it may have missed
   * while it was away or cut off. Must not throw.
   */
  onPeerConnected?(publicKey: Bytes): void;
  /** Structured log sink: a constant message and values in fields. Silent when absent. */
  log?(level: P2pLogLevel, message: string, fields: Record<string, unknown>): void;
}

/** Counters of one outbound channel (consensus or transactions) to one peer. */
export interface ChannelStatus extends QueueStats {
  /** Frames handed to the stream. */
  readonly sent: number;
  /** What a full queue gives up. */
  readonly policy: DropPolicy;
}

/** Diagnostics of one member. */
export interface P2pPeerStatus {
  /** 0x-hex public key. */
  readonly publicKey: string;
  readonly peerId: string;
  readonly connected: boolean;
  readonly consensus: ChannelStatus;
  readonly txs: ChannelStatus;
  readonly received: { readonly consensusMessages: number; readonly txBatches: number };
  /** Frames from this peer refused as oversize or malformed; each one cost the peer its stream. */
  readonly rejectedFrames: number;
  /** Times a connection to this peer was established. */
  readonly connects: number;
  /**
   * Consecutive failed reconnection attempts (failed dials, and connections that dropped within
   * `stableConnectionMs`); the next delay grows with it. Reset when a stable connection drops.
   */
  readonly dialFailures: number;
}

/** Diagnostics of the service. */
export interface P2pStatus {
  readonly running: boolean;
  readonly peerId: string;
  readonly listenAddrs: readonly string[];
  /** Members other than this node. */
  readonly members: number;
  readonly connected: number;
  /** Connection attempts the gater refused (non-members), since start. */
  readonly deniedConnections: number;
  /** Deps callbacks that threw, since start. */
  readonly callbackErrors: number;
  readonly peers: readonly P2pPeerStatus[];
}

/** Per-request options. */
export interface RequestOptions {
  /** Aborts the request (P2pError ABORTED); the request also times out after `requestTimeoutMs`. */
  readonly signal?: AbortSignal;
}

/**
 * The p2p service: member-only libp2p networking for consensus messages, transaction gossip and
 * block sync. Sends never block and never wait for the network: they enqueue into bounded
 * per-peer queues drained over one long-lived stream per peer and protocol.
 */
export interface P2p {
  /** This node's libp2p PeerId (derived from its public key). */
  readonly peerId: string;
  /** This node's 32-byte public key. */
  readonly publicKey: Bytes;
  /** The libp2p protocol ids of this network. */
  readonly protocols: ProtocolIds;
  /** Listens, registers the protocols and dials every member. */
  start(): Promise<void>;
  /** Closes every connection and cancels timers, pumps and pending requests. Idempotent. */
  stop(): Promise<void>;
  /** Bound listen addresses (with the real port when `tcp/0` was asked), without `/p2p` suffix. */
  listenAddrs(): string[];
  /**
   * Replaces the member set (validator-set change, observer registered or removed). Validates
   * the whole list first and changes nothing if it is bad. Removed members are disconnected and
   * their queues dropped; new members are dialled; kept members keep their queues.
   */
  setMembers(members: readonly P2pMember[]): void;
  /** Public keys of the members currently connected. */
  connectedMembers(): Bytes[];
  /** Queues one consensus message to one member. Throws NOT_MEMBER, TOO_LARGE or NOT_RUNNING. */
  sendConsensus(to: Bytes, message: Bytes): void;
  /** Queues one consensus message to every member but this node, connected or not. */
  broadcastConsensus(message: Bytes): void;
  /**
   * Queues transactions to one member, split into bounded batches in order. Throws NOT_MEMBER,
   * TOO_LARGE (a single transaction over `maxTxBytes`; nothing is queued) or NOT_RUNNING.
   */
  sendTxs(to: Bytes, txs: readonly Bytes[]): void;
  /** Queues transactions to every connected member (gossip is best-effort; blocks carry the rest). */
  broadcastTxs(txs: readonly Bytes[]): void;
  /** Asks a member for its head height. */
  requestStatus(peer: Bytes, options?: RequestOptions): Promise<number>;
  /**
   * Asks a member for up to `maxCount` (at most `maxBlocksPerResponse`) entries from
   * `fromHeight`. The answer is checked against the count and byte bounds (P2pError TOO_LARGE)
   * but not interpreted: the caller verifies each block and certificate before applying it.
   */
  requestBlocks(
    peer: Bytes,
    fromHeight: number,
    maxCount: number,
    options?: RequestOptions,
  ): Promise<Bytes[]>;
  /** Diagnostics: members, connections, queue depths and drop counters. */
  status(): P2pStatus;
}

type Resolved = { -readonly [K in keyof typeof P2P_DEFAULTS]: number };

type ChannelKind = 'consensus' | 'txs';

interface Channel {
  readonly kind: ChannelKind;
  readonly queue: BoundedQueue;
  stream: Stream | undefined;
  pumping: boolean;
  retryTimer: ReturnType<typeof setTimeout> | undefined;
  sent: number;
}

interface PeerState {
  member: MemberRecord;
  readonly consensus: Channel;
  readonly txs: Channel;
  dialTimer: ReturnType<typeof setTimeout> | undefined;
  dialing: boolean;
  dialFailures: number;
  /** performance.now() of the last connect, to tell a stable connection from a flapping one. */
  connectedAt: number;
  connects: number;
  receivedConsensus: number;
  receivedTxBatches: number;
  rejectedFrames: number;
}

// Streams per connection per protocol: the long-lived ones need one each way, plus slack for a
// stream being replaced; sync requests are few and short.
const MAX_LONG_LIVED_STREAMS = 4;
const MAX_SYNC_STREAMS = 8;

/**
 * Queued frames are written together up to this many bytes: one stream write (one Yamux frame,
 * one Noise message) per batch rather than per message, which is what makes small votes cheap.
 */
const COALESCE_BYTES = 64 * 1024;

/** Takes the oldest frame and as many following ones as fit COALESCE_BYTES. */
function takeFrames(queue: BoundedQueue): Bytes[] {
  const first = queue.shift();
  if (first === undefined) return [];
  const out = [first];
  let size = first.length;
  for (;;) {
    const next = queue.peek();
    if (next === undefined || size + next.length > COALESCE_BYTES) break;
    queue.shift();
    out.push(next);
    size += next.length;
  }
  return out;
}

function resolveOptions(options: P2pOptions): Resolved {
  const out = { ...P2P_DEFAULTS } as Resolved;
  for (const key of Object.keys(P2P_DEFAULTS) as (keyof Resolved)[]) {
    const v = options[key];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < 1) {
      throw new P2pError('BAD_INPUT', `${key}: expected a positive integer`, { key, value: v });
    }
    out[key] = v;
  }
  const need = (ok: boolean, what: string): void => {
    if (!ok) throw new P2pError('BAD_INPUT', `options: ${what}`, { ...out });
  };
  need(
    out.maxQueuedMessageBytes >= out.maxMessageBytes + FRAME_HEADER_BYTES,
    'maxQueuedMessageBytes must hold one maximal message',
  );
  need(
    out.maxQueuedTxBytes >= out.maxTxBatchBytes + FRAME_HEADER_BYTES,
    'maxQueuedTxBytes must hold one maximal batch',
  );
  need(out.maxBlockResponseBytes >= out.maxMessageBytes, 'maxBlockResponseBytes must hold one maximal entry');
  need(out.reconnectMaxMs >= out.reconnectBaseMs, 'reconnectMaxMs must be at least reconnectBaseMs');
  return out;
}

const keyOf = (publicKey: Bytes): string =>
  Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('latin1');

function chunkBytes(evt: StreamMessageEvent): Bytes {
  return evt.data.subarray();
}

/**
 * Creates the p2p service. Validates options and members synchronously (P2pError BAD_INPUT);
 * nothing listens or dials until `start()`.
 */
export function createP2p(options: P2pOptions, deps: P2pDeps): P2p {
  const opts = resolveOptions(options);
  const protocols = protocolIds(options.chainId);
  if (!(options.secretKey instanceof Uint8Array) || options.secretKey.length !== SECRET_KEY_BYTES) {
    throw new P2pError('BAD_INPUT', `secretKey: expected a ${SECRET_KEY_BYTES}-byte Ed25519 seed`);
  }
  const secretKey = Uint8Array.from(options.secretKey);
  const publicKey = keyPairFromSecret(secretKey).publicKey;
  const selfPeerId = peerIdOf(publicKey);
  const selfId = selfPeerId.toString();
  let listenAddr: Multiaddr;
  try {
    listenAddr = multiaddr(options.listen);
  } catch (err) {
    throw new P2pError('BAD_INPUT', `listen: not a multiaddr (${String(err)})`, { listen: options.listen });
  }
  const log = (level: P2pLogLevel, message: string, fields: Record<string, unknown> = {}): void => {
    try {
      deps.log?.(level, message, { peerId: selfId, ...fields });
    } catch {
      // A broken log sink must not break networking.
    }
  };

  /** Members other than this node, by PeerId string. Bounded by `maxMembers`. */
  let peers = new Map<string, PeerState>();
  /** The same members by raw public key (latin1 string), so sends skip PeerId derivation. */
  let byKey = new Map<string, PeerState>();
  let node: Libp2p | undefined;
  let stopController = new AbortController();
  let deniedConnections = 0;
  let callbackErrors = 0;
  let starting = false;

  const newChannel = (kind: ChannelKind): Channel => ({
    kind,
    queue:
      kind === 'consensus'
        ? createBoundedQueue({
            maxItems: opts.maxQueuedMessages,
            maxBytes: opts.maxQueuedMessageBytes,
            policy: 'drop-oldest',
          })
        : createBoundedQueue({
            maxItems: opts.maxQueuedTxBatches,
            maxBytes: opts.maxQueuedTxBytes,
            policy: 'drop-newest',
          }),
    stream: undefined,
    pumping: false,
    retryTimer: undefined,
    sent: 0,
  });

  function applyMembers(list: readonly P2pMember[]): {
    added: PeerState[];
    removed: PeerState[];
    kept: PeerState[];
  } {
    const records = parseMembers(list, opts.maxMembers);
    const next = new Map<string, PeerState>();
    const added: PeerState[] = [];
    const kept: PeerState[] = [];
    for (const member of records) {
      if (member.id === selfId) continue;
      const old = peers.get(member.id);
      if (old !== undefined) {
        old.member = member;
        next.set(member.id, old);
        kept.push(old);
      } else {
        const ps: PeerState = {
          member,
          consensus: newChannel('consensus'),
          txs: newChannel('txs'),
          dialTimer: undefined,
          dialing: false,
          dialFailures: 0,
          connectedAt: 0,
          connects: 0,
          receivedConsensus: 0,
          receivedTxBatches: 0,
          rejectedFrames: 0,
        };
        next.set(member.id, ps);
        added.push(ps);
      }
    }
    const removed = [...peers.values()].filter((ps) => !next.has(ps.member.id));
    peers = next;
    byKey = new Map([...next.values()].map((ps) => [keyOf(ps.member.publicKey), ps]));
    return { added, removed, kept };
  }

  applyMembers(options.members);

  const running = (): boolean => node !== undefined && !stopController.signal.aborted;

  function requireRunning(): Libp2p {
    if (node === undefined || stopController.signal.aborted) {
      throw new P2pError('NOT_RUNNING', 'p2p: not started (call start() first) or already stopped');
    }
    return node;
  }

  function requirePeer(publicKeyOfPeer: Bytes): PeerState {
    if (!(publicKeyOfPeer instanceof Uint8Array))
      throw new P2pError('BAD_INPUT', 'peer: expected public key bytes');
    const ps = byKey.get(keyOf(publicKeyOfPeer));
    if (ps === undefined) {
      throw new P2pError('NOT_MEMBER', `peer ${toHex(publicKeyOfPeer)} is not a member (or is this node)`, {
        publicKey: toHex(publicKeyOfPeer),
      });
    }
    return ps;
  }

  function openConnection(ps: PeerState): Connection | undefined {
    return node?.getConnections(ps.member.peerId).find((c) => c.status === 'open');
  }

  const isConnected = (ps: PeerState): boolean => openConnection(ps) !== undefined;

  // ---- reconnection -------------------------------------------------------------------------

  function scheduleDial(ps: PeerState, delayMs: number): void {
    if (!running() || ps.dialTimer !== undefined || ps.member.addrs.length === 0) return;
    ps.dialTimer = setTimeout(() => {
      ps.dialTimer = undefined;
      void dial(ps);
    }, delayMs);
  }

  function cancelDial(ps: PeerState): void {
    if (ps.dialTimer !== undefined) clearTimeout(ps.dialTimer);
    ps.dialTimer = undefined;
  }

  async function dial(ps: PeerState): Promise<void> {
    const n = node;
    if (n === undefined || !running() || ps.dialing || ps.member.addrs.length === 0) return;
    if (peers.get(ps.member.id) !== ps || isConnected(ps)) return;
    ps.dialing = true;
    try {
      const signal = AbortSignal.any([stopController.signal, AbortSignal.timeout(opts.dialTimeoutMs)]);
      await n.dial(ps.member.peerId, { signal });
    } catch (err) {
      if (!running() || peers.get(ps.member.id) !== ps) return;
      const delay = nextRetryDelay(ps);
      log('debug', 'p2p dial failed', {
        peer: ps.member.publicKeyHex,
        attempt: ps.dialFailures,
        retryInMs: delay,
        error: String(err),
      });
      scheduleDial(ps, delay);
    } finally {
      ps.dialing = false;
    }
  }

  /** The backoff delay for the next attempt; counts the attempt. */
  function nextRetryDelay(ps: PeerState): number {
    const unit = randomInt(0, 1_000_000) / 1_000_000; // jitter only: any source of randomness will do
    const delay = backoffDelayMs(ps.dialFailures, opts.reconnectBaseMs, opts.reconnectMaxMs, unit);
    ps.dialFailures++;
    return delay;
  }

  function onPeerConnect(peerId: PeerId): void {
    const ps = peers.get(peerId.toString());
    if (ps === undefined) return;
    cancelDial(ps);
    ps.connectedAt = performance.now();
    ps.connects++;
    log('info', 'p2p peer connected', { peer: ps.member.publicKeyHex });
    kick(ps, ps.consensus);
    kick(ps, ps.txs);
    deps.onPeerConnected?.(ps.member.publicKey);
  }

  function onPeerDisconnect(peerId: PeerId): void {
    const ps = peers.get(peerId.toString());
    if (ps === undefined || !running()) return;
    ps.consensus.stream = undefined;
    ps.txs.stream = undefined;
    const livedMs = performance.now() - ps.connectedAt;
    if (livedMs >= opts.stableConnectionMs) ps.dialFailures = 0;
    log('info', 'p2p peer disconnected', { peer: ps.member.publicKeyHex, livedMs: Math.round(livedMs) });
    scheduleDial(ps, nextRetryDelay(ps));
  }

  // ---- outbound long-lived streams ----------------------------------------------------------

  function protocolOf(kind: ChannelKind): string {
    return kind === 'consensus' ? protocols.consensus : protocols.txs;
  }

  async function outboundStream(ps: PeerState, ch: Channel): Promise<Stream | undefined> {
    const current = ch.stream;
    if (current !== undefined && current.status === 'open' && current.writeStatus === 'writable')
      return current;
    ch.stream = undefined;
    const conn = openConnection(ps);
    if (conn === undefined) return undefined;
    const signal = AbortSignal.any([stopController.signal, AbortSignal.timeout(opts.dialTimeoutMs)]);
    const stream = await conn.newStream(protocolOf(ch.kind), { signal });
    // We only write on this stream; the remote never answers on it.
    stream.addEventListener('close', () => {
      if (ch.stream === stream) ch.stream = undefined;
    });
    ch.stream = stream;
    return stream;
  }

  function kick(ps: PeerState, ch: Channel): void {
    if (!running() || ch.pumping || ch.queue.length === 0) return;
    void pump(ps, ch);
  }

  function retryLater(ps: PeerState, ch: Channel): void {
    if (ch.retryTimer !== undefined || !running()) return;
    ch.retryTimer = setTimeout(() => {
      ch.retryTimer = undefined;
      kick(ps, ch);
    }, opts.reconnectBaseMs);
  }

  /**
   * Drains one queue into its stream. One pump per channel at a time; it stops when the queue
   * is empty or the peer is not connected (the connect event restarts it). A frame whose send
   * fails before reaching the stream goes back to the head of the queue; a frame already in a
   * stream that later resets is lost, which both protocols tolerate (round change, re-gossip,
   * block sync).
   */
  async function pump(ps: PeerState, ch: Channel): Promise<void> {
    ch.pumping = true;
    try {
      while (running() && peers.get(ps.member.id) === ps && ch.queue.length > 0) {
        const stream = await outboundStream(ps, ch);
        if (stream === undefined) return;
        const frames = takeFrames(ch.queue);
        if (frames.length === 0) return;
        let flowing: boolean;
        try {
          flowing = stream.send(frames.length === 1 ? (frames[0] as Bytes) : Buffer.concat(frames));
        } catch (err) {
          for (let i = frames.length - 1; i >= 0; i--) ch.queue.unshift(frames[i] as Bytes);
          if (ch.stream === stream) ch.stream = undefined;
          throw err;
        }
        ch.sent += frames.length;
        if (!flowing) await stream.onDrain({ signal: stopController.signal });
      }
    } catch (err) {
      if (running()) {
        log('debug', 'p2p send failed', {
          peer: ps.member.publicKeyHex,
          protocol: ch.kind,
          error: String(err),
        });
        retryLater(ps, ch);
      }
    } finally {
      ch.pumping = false;
    }
  }

  function enqueue(ps: PeerState, ch: Channel, frame: Bytes): void {
    if (!ch.queue.push(frame)) {
      // Counted in status(); debug level because a slow peer would otherwise flood the log.
      log('debug', 'p2p queue full, frame refused', { peer: ps.member.publicKeyHex, protocol: ch.kind });
    }
    kick(ps, ch);
  }

  // ---- inbound ------------------------------------------------------------------------------

  function callback(fn: () => void, what: string, ps: PeerState): void {
    try {
      fn();
    } catch (err) {
      callbackErrors++;
      log('error', 'p2p deps callback threw', {
        callback: what,
        peer: ps.member.publicKeyHex,
        error: String(err),
      });
    }
  }

  function reject(ps: PeerState, stream: Stream, err: unknown): void {
    ps.rejectedFrames++;
    log('warn', 'p2p frame rejected, stream aborted', {
      peer: ps.member.publicKeyHex,
      protocol: stream.protocol,
      error: String(err),
    });
    stream.abort(err instanceof Error ? err : new P2pError('PROTOCOL', String(err)));
  }

  function memberOf(connection: Connection, stream: Stream): PeerState | undefined {
    const ps = peers.get(connection.remotePeer.toString());
    if (ps === undefined) {
      // The gater refuses non-members; this catches a member removed after it connected.
      stream.abort(new P2pError('NOT_MEMBER', 'stream from a peer that is not a member'));
    }
    return ps;
  }

  function handleLongLived(kind: ChannelKind, stream: Stream, connection: Connection): void {
    const ps = memberOf(connection, stream);
    if (ps === undefined) return;
    const decoder = createFrameDecoder(kind === 'consensus' ? opts.maxMessageBytes : opts.maxTxBatchBytes);
    const from = ps.member.publicKey;
    stream.addEventListener('message', (evt) => {
      let frames: Bytes[];
      try {
        frames = decoder.push(chunkBytes(evt));
      } catch (err) {
        reject(ps, stream, err);
        return;
      }
      for (const frame of frames) {
        if (peers.get(ps.member.id) !== ps) return; // removed meanwhile: deliver nothing more
        if (kind === 'consensus') {
          ps.receivedConsensus++;
          callback(() => deps.onConsensusMessage(from, frame), 'onConsensusMessage', ps);
        } else {
          let txs: Bytes[];
          try {
            txs = decodeTxBatch(frame, opts.maxTxsPerBatch, opts.maxTxBytes);
          } catch (err) {
            reject(ps, stream, err);
            return;
          }
          ps.receivedTxBatches++;
          callback(() => deps.onTxs(from, txs), 'onTxs', ps);
        }
      }
    });
    // The remote finished writing: finish our (unused) side so the stream is released.
    stream.addEventListener('remoteCloseWrite', () => {
      stream.close().catch(() => stream.abort(new P2pError('UNREACHABLE', 'stream close failed')));
    });
  }

  /**
   * Collects frames until the remote closes its side. Listeners attach before anything is sent,
   * so no data or end event can be missed. `onFrame` may throw to abort the exchange.
   */
  function collectFrames(
    stream: Stream,
    maxFrameBytes: number,
    onFrame: (frame: Bytes) => void,
    signal: AbortSignal,
  ): Promise<void> {
    return new Promise((resolve, rejectPromise) => {
      const decoder = createFrameDecoder(maxFrameBytes);
      const cleanup = (): void => {
        stream.removeEventListener('message', onMessage);
        stream.removeEventListener('end', onEnd);
        stream.removeEventListener('close', onClose);
        signal.removeEventListener('abort', onAbort);
      };
      const fail = (err: unknown): void => {
        cleanup();
        const error = err instanceof Error ? err : new P2pError('PROTOCOL', String(err));
        stream.abort(error);
        rejectPromise(error);
      };
      const finish = (): void => {
        cleanup();
        // A remote reset also ends the readable side, and 'end' can fire before the 'close'
        // that carries the error: a reset is a failure, never an empty answer.
        if (stream.status === 'reset' || stream.status === 'aborted') {
          rejectPromise(
            new P2pError('UNREACHABLE', `stream ${stream.status} by the remote before the response ended`),
          );
        } else if (decoder.bufferedBytes > 0) {
          rejectPromise(
            new P2pError('PROTOCOL', 'response ended inside a frame', {
              bufferedBytes: decoder.bufferedBytes,
            }),
          );
        } else resolve();
      };
      const onMessage = (evt: StreamMessageEvent): void => {
        try {
          for (const frame of decoder.push(chunkBytes(evt))) onFrame(frame);
        } catch (err) {
          fail(err);
        }
      };
      const onEnd = (): void => finish();
      const onClose = (evt: Event): void => {
        const error = (evt as Event & { error?: Error }).error;
        if (error !== undefined) {
          cleanup();
          rejectPromise(new P2pError('UNREACHABLE', `stream failed: ${error.message}`));
        } else finish();
      };
      const onAbort = (): void => fail(signal.reason);
      if (signal.aborted) {
        onAbort();
        return;
      }
      stream.addEventListener('message', onMessage);
      stream.addEventListener('end', onEnd);
      stream.addEventListener('close', onClose);
      signal.addEventListener('abort', onAbort);
      if (stream.readableEnded) finish();
    });
  }

  /** Reads exactly one frame (the request) from an inbound sync stream. */
  function readRequest(stream: Stream, signal: AbortSignal): Promise<Bytes> {
    return new Promise((resolve, rejectPromise) => {
      let done = false;
      const decoder = createFrameDecoder(MAX_SYNC_REQUEST_BYTES);
      const settle = (err: unknown, frame?: Bytes): void => {
        if (done) return;
        done = true;
        stream.removeEventListener('message', onMessage);
        stream.removeEventListener('end', onEnd);
        stream.removeEventListener('close', onEnd);
        signal.removeEventListener('abort', onAbort);
        if (frame !== undefined) resolve(frame);
        else rejectPromise(err instanceof Error ? err : new P2pError('PROTOCOL', String(err)));
      };
      const onMessage = (evt: StreamMessageEvent): void => {
        try {
          const frames = decoder.push(chunkBytes(evt));
          if (frames.length > 1 || decoder.bufferedBytes > 0)
            throw new P2pError('PROTOCOL', 'sync: one request per stream');
          if (frames[0] !== undefined) settle(undefined, frames[0]);
        } catch (err) {
          settle(err);
        }
      };
      const onEnd = (): void => settle(new P2pError('PROTOCOL', 'sync: stream ended before the request'));
      const onAbort = (): void => settle(new P2pError('TIMEOUT', 'sync: no request in time'));
      stream.addEventListener('message', onMessage);
      stream.addEventListener('end', onEnd);
      stream.addEventListener('close', onEnd);
      signal.addEventListener('abort', onAbort);
    });
  }

  async function send(stream: Stream, frame: Bytes, signal: AbortSignal): Promise<void> {
    if (!stream.send(frame)) await stream.onDrain({ signal });
  }

  async function handleSync(stream: Stream, connection: Connection): Promise<void> {
    const ps = memberOf(connection, stream);
    if (ps === undefined) return;
    const signal = AbortSignal.any([stopController.signal, AbortSignal.timeout(opts.requestTimeoutMs)]);
    try {
      const req = decodeSyncRequest(await readRequest(stream, signal));
      if (req.kind === 'status') {
        const height = await deps.serveStatus();
        if (!Number.isSafeInteger(height) || height < 0) {
          throw new P2pError('PROTOCOL', 'serveStatus returned a height that is not a non-negative integer', {
            height,
          });
        }
        await send(stream, encodeFrame(encodeStatusResponse(height)), signal);
      } else {
        const limit = Math.min(req.maxCount, opts.maxBlocksPerResponse);
        const entries = await deps.serveBlocks(req.fromHeight, limit);
        let total = 0;
        // Entries are written in batches of about COALESCE_BYTES, like the long-lived streams.
        let pending: Bytes[] = [];
        let pendingBytes = 0;
        const flush = async (): Promise<void> => {
          if (pending.length === 0) return;
          const chunk = Buffer.concat(pending);
          pending = [];
          pendingBytes = 0;
          await send(stream, chunk, signal);
        };
        for (const entry of entries.slice(0, limit)) {
          if (!(entry instanceof Uint8Array) || entry.length > opts.maxMessageBytes) {
            // Cannot be served within the bound; the requester sees a reset, not a silent gap.
            throw new P2pError('TOO_LARGE', 'serveBlocks returned an entry over maxMessageBytes', {
              bytes: entry instanceof Uint8Array ? entry.length : typeof entry,
            });
          }
          if (total + entry.length > opts.maxBlockResponseBytes) break;
          total += entry.length;
          pending.push(encodeFrame(entry));
          pendingBytes += entry.length + FRAME_HEADER_BYTES;
          if (pendingBytes >= COALESCE_BYTES) await flush();
        }
        await flush();
      }
      await stream.close({ signal });
    } catch (err) {
      log('debug', 'p2p sync request failed', { peer: ps.member.publicKeyHex, error: String(err) });
      stream.abort(err instanceof Error ? err : new Error(String(err)));
    }
  }

  async function request(
    ps: PeerState,
    req: Bytes,
    maxFrames: number,
    maxFrameBytes: number,
    maxTotalBytes: number,
    callerSignal: AbortSignal | undefined,
  ): Promise<Bytes[]> {
    const n = requireRunning();
    const timeout = AbortSignal.timeout(opts.requestTimeoutMs);
    const signal = AbortSignal.any([stopController.signal, timeout, ...(callerSignal ? [callerSignal] : [])]);
    const translate = (err: unknown): unknown => {
      if (err instanceof P2pError && err.code !== 'UNREACHABLE') return err;
      if (callerSignal?.aborted === true || stopController.signal.aborted) {
        return new P2pError('ABORTED', 'request aborted', { peer: ps.member.publicKeyHex });
      }
      if (timeout.aborted) {
        return new P2pError('TIMEOUT', `request timed out after ${opts.requestTimeoutMs} ms`, {
          peer: ps.member.publicKeyHex,
        });
      }
      if (err instanceof P2pError) return err;
      return new P2pError(
        'UNREACHABLE',
        `request failed: ${err instanceof Error ? err.message : String(err)}`,
        {
          peer: ps.member.publicKeyHex,
        },
      );
    };
    let stream: Stream;
    try {
      stream = await n.dialProtocol(ps.member.peerId, protocols.sync, { signal });
    } catch (err) {
      throw translate(err);
    }
    const frames: Bytes[] = [];
    let total = 0;
    const collected = collectFrames(
      stream,
      maxFrameBytes,
      (frame) => {
        frames.push(frame);
        total += frame.length;
        if (frames.length > maxFrames || total > maxTotalBytes) {
          throw new P2pError(
            'TOO_LARGE',
            `response over its bound: ${frames.length} entries, ${total} bytes`,
            {
              peer: ps.member.publicKeyHex,
              maxFrames,
              maxTotalBytes,
            },
          );
        }
      },
      signal,
    );
    // Observed now so an early failure is never an unhandled rejection; awaited below.
    collected.catch(() => {});
    try {
      await send(stream, encodeFrame(req), signal);
      await stream.close({ signal });
      await collected;
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)));
      throw translate(err);
    }
    return frames;
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  async function start(): Promise<void> {
    if (node !== undefined || starting) throw new P2pError('NOT_RUNNING', 'p2p: already started');
    starting = true;
    let created: Libp2p | undefined;
    try {
      stopController = new AbortController();
      deniedConnections = 0;
      callbackErrors = 0;
      const privateKey = await libp2pKeyFromSeed(secretKey);
      const gater = createMemberGater(
        (peerId) => peers.has(peerId.toString()),
        (hook: GaterHook, peerId: PeerId) => {
          deniedConnections++;
          log('warn', 'p2p connection refused: not a member', { hook, remotePeerId: peerId.toString() });
        },
      );
      created = await createLibp2p({
        start: false,
        privateKey,
        addresses: { listen: [listenAddr.toString()] },
        transports: [tcp()],
        connectionEncrypters: [noise()],
        streamMuxers: [yamux()],
        connectionGater: gater,
        connectionManager: {
          maxConnections: opts.maxConnections,
          dialTimeout: opts.dialTimeoutMs,
          inboundConnectionThreshold: opts.inboundConnectionsPerHostPerSecond,
        },
      });
      if (!created.peerId.equals(selfPeerId)) {
        throw new Error(
          `p2p: libp2p identity ${created.peerId.toString()} does not derive from the node key ${selfId}`,
        );
      }
      const longLived = {
        maxInboundStreams: MAX_LONG_LIVED_STREAMS,
        maxOutboundStreams: MAX_LONG_LIVED_STREAMS,
      };
      await created.handle(protocols.consensus, (s, c) => handleLongLived('consensus', s, c), longLived);
      await created.handle(protocols.txs, (s, c) => handleLongLived('txs', s, c), longLived);
      await created.handle(protocols.sync, (s, c) => handleSync(s, c), {
        maxInboundStreams: MAX_SYNC_STREAMS,
        maxOutboundStreams: MAX_SYNC_STREAMS,
      });
      created.addEventListener('peer:connect', (evt) => onPeerConnect(evt.detail));
      created.addEventListener('peer:disconnect', (evt) => onPeerDisconnect(evt.detail));
      await created.start();
      for (const ps of peers.values()) await rememberAddrs(created, ps);
      node = created;
    } catch (err) {
      if (created !== undefined) {
        try {
          await created.stop();
        } catch {
          // Best effort: the start error below is the one worth reporting.
        }
      }
      throw new P2pError(
        'START_FAILED',
        `p2p: could not start (${err instanceof Error ? err.message : String(err)})`,
        {
          listen: listenAddr.toString(),
        },
      );
    } finally {
      starting = false;
    }
    for (const ps of peers.values()) {
      void dial(ps);
      // Queues kept across stop/start, or peers that connected while start() was finishing.
      kick(ps, ps.consensus);
      kick(ps, ps.txs);
    }
    log('info', 'p2p started', { listen: listenAddrs(), members: peers.size });
  }

  async function rememberAddrs(n: Libp2p, ps: PeerState): Promise<void> {
    // patch (not merge): a member's configured addresses replace whatever was known before.
    await n.peerStore.patch(ps.member.peerId, { multiaddrs: [...ps.member.addrs] });
  }

  function forget(ps: PeerState): void {
    cancelDial(ps);
    for (const ch of [ps.consensus, ps.txs]) {
      if (ch.retryTimer !== undefined) clearTimeout(ch.retryTimer);
      ch.retryTimer = undefined;
      ch.stream = undefined;
      ch.queue.clear();
    }
  }

  async function stop(): Promise<void> {
    const n = node;
    if (n === undefined) return;
    stopController.abort(new P2pError('ABORTED', 'p2p stopped'));
    for (const ps of peers.values()) {
      cancelDial(ps);
      for (const ch of [ps.consensus, ps.txs]) {
        if (ch.retryTimer !== undefined) clearTimeout(ch.retryTimer);
        ch.retryTimer = undefined;
        ch.stream = undefined;
      }
    }
    await n.stop();
    node = undefined;
    log('info', 'p2p stopped', {});
  }

  function listenAddrs(): string[] {
    if (node === undefined) return [];
    return node.getMultiaddrs().map((ma) => ma.decapsulateCode(421).toString());
  }

  function setMembers(list: readonly P2pMember[]): void {
    const { added, removed, kept } = applyMembers(list);
    for (const ps of removed) {
      forget(ps);
      if (node !== undefined) {
        node.hangUp(ps.member.peerId).catch((err: unknown) => {
          log('debug', 'p2p hang up failed', { peer: ps.member.publicKeyHex, error: String(err) });
        });
      }
    }
    const n = node;
    if (n === undefined || !running()) return;
    for (const ps of [...added, ...kept]) {
      rememberAddrs(n, ps)
        .then(() => dial(ps))
        .catch((err: unknown) =>
          log('warn', 'p2p peer store update failed', { peer: ps.member.publicKeyHex, error: String(err) }),
        );
    }
    log('info', 'p2p members updated', { members: peers.size, added: added.length, removed: removed.length });
  }

  function channelStatus(ch: Channel): ChannelStatus {
    return {
      ...ch.queue.stats(),
      sent: ch.sent,
      policy: ch.kind === 'consensus' ? 'drop-oldest' : 'drop-newest',
    };
  }

  return {
    peerId: selfId,
    publicKey,
    protocols,
    start,
    stop,
    listenAddrs,
    setMembers,
    connectedMembers: () => [...peers.values()].filter(isConnected).map((ps) => ps.member.publicKey),
    sendConsensus(to, message) {
      requireRunning();
      if (!(message instanceof Uint8Array)) throw new P2pError('BAD_INPUT', 'message: expected bytes');
      if (message.length > opts.maxMessageBytes) {
        throw new P2pError(
          'TOO_LARGE',
          `consensus message of ${message.length} bytes, at most ${opts.maxMessageBytes}`,
          {
            bytes: message.length,
            maxMessageBytes: opts.maxMessageBytes,
          },
        );
      }
      const ps = requirePeer(to);
      enqueue(ps, ps.consensus, encodeFrame(message));
    },
    broadcastConsensus(message) {
      requireRunning();
      if (!(message instanceof Uint8Array)) throw new P2pError('BAD_INPUT', 'message: expected bytes');
      if (message.length > opts.maxMessageBytes) {
        throw new P2pError(
          'TOO_LARGE',
          `consensus message of ${message.length} bytes, at most ${opts.maxMessageBytes}`,
          {
            bytes: message.length,
            maxMessageBytes: opts.maxMessageBytes,
          },
        );
      }
      const frame = encodeFrame(message); // shared: frames are never mutated
      for (const ps of peers.values()) enqueue(ps, ps.consensus, frame);
    },
    sendTxs(to, txs) {
      requireRunning();
      const ps = requirePeer(to);
      const batches = splitTxBatches(txs, opts.maxTxsPerBatch, opts.maxTxBatchBytes, opts.maxTxBytes);
      for (const batch of batches) enqueue(ps, ps.txs, encodeFrame(encodeTxBatch(batch)));
    },
    broadcastTxs(txs) {
      requireRunning();
      const frames = splitTxBatches(txs, opts.maxTxsPerBatch, opts.maxTxBatchBytes, opts.maxTxBytes).map(
        (b) => encodeFrame(encodeTxBatch(b)),
      );
      for (const ps of peers.values()) {
        if (!isConnected(ps)) continue;
        for (const frame of frames) enqueue(ps, ps.txs, frame);
      }
    },
    async requestStatus(peer, requestOptions = {}) {
      const ps = requirePeer(peer);
      const frames = await request(
        ps,
        encodeSyncRequest({ kind: 'status' }),
        1,
        MAX_STATUS_RESPONSE_BYTES,
        MAX_STATUS_RESPONSE_BYTES,
        requestOptions.signal,
      );
      const frame = frames[0];
      if (frames.length !== 1 || frame === undefined) {
        throw new P2pError('PROTOCOL', `status response: expected one frame, got ${frames.length}`, {
          peer: ps.member.publicKeyHex,
        });
      }
      return decodeStatusResponse(frame);
    },
    async requestBlocks(peer, fromHeight, maxCount, requestOptions = {}) {
      if (!Number.isSafeInteger(fromHeight) || fromHeight < 0) {
        throw new P2pError('BAD_INPUT', 'fromHeight: expected a non-negative integer', { fromHeight });
      }
      if (!Number.isSafeInteger(maxCount) || maxCount < 1 || maxCount > opts.maxBlocksPerResponse) {
        throw new P2pError(
          'BAD_INPUT',
          `maxCount: expected an integer from 1 to ${opts.maxBlocksPerResponse}`,
          {
            maxCount,
          },
        );
      }
      const ps = requirePeer(peer);
      return request(
        ps,
        encodeSyncRequest({ kind: 'blocks', fromHeight, maxCount }),
        maxCount,
        opts.maxMessageBytes,
        opts.maxBlockResponseBytes,
        requestOptions.signal,
      );
    },
    status() {
      const list = [...peers.values()].map((ps): P2pPeerStatus => ({
        publicKey: ps.member.publicKeyHex,
        peerId: ps.member.id,
        connected: isConnected(ps),
        consensus: channelStatus(ps.consensus),
        txs: channelStatus(ps.txs),
        received: { consensusMessages: ps.receivedConsensus, txBatches: ps.receivedTxBatches },
        rejectedFrames: ps.rejectedFrames,
        connects: ps.connects,
        dialFailures: ps.dialFailures,
      }));
      return {
        running: running(),
        peerId: selfId,
        listenAddrs: listenAddrs(),
        members: peers.size,
        connected: list.filter((p) => p.connected).length,
        deniedConnections,
        callbackErrors,
        peers: list,
      };
    },
  };
}
