import { fromHex, toHex, type Bytes } from '../core/bytes.ts';
import { TrellisError } from '../core/errors.ts';
import { describeConsensus, type ConsensusDiagnostics } from '../consensus/diagnostics.ts';
import { decodeConsensusMessage } from '../consensus/messages.ts';
import type { SafetyRules } from '../consensus/safetyRules.ts';
import {
  startConsensus,
  step,
  type ConsensusInput,
  type ConsensusOutput,
  type ConsensusState,
  type HeightStart,
} from '../consensus/stateMachine.ts';
import type { ConsensusOptions } from '../consensus/config.ts';
import type { Chain } from './chain.ts';
import type { P2p } from './p2p/p2p.ts';

/** Reasons the driver stops. */
export type DriverErrorCode = 'STOPPED' | 'FATAL';

/** Raised when the driver cannot go on (a broken invariant: it crashes loudly). */
export class DriverError extends TrellisError<DriverErrorCode> {}

/** A structured logger: constant event names, values in fields. */
export type Log = (
  level: 'debug' | 'info' | 'warn' | 'error',
  event: string,
  fields?: Record<string, unknown>,
) => void;

/** Options of the consensus driver: plain data with defaults. */
export interface DriverOptions {
  readonly consensus: ConsensusOptions;
  /** With no transactions, a new height starts (and an empty block is proposed) after this long. */
  readonly heartbeatMs: number;
  /**
   * Inputs waiting for the loop. Peers fill it, so it is bounded; when full, peer messages are
   * dropped (consensus recovers them through round change), internal inputs never are.
   */
  readonly maxQueuedInputs?: number;
  /** Blocks asked per block-sync request. */
  readonly syncBatch?: number;
  /** How often the driver compares its head with its peers' when no block commits. */
  readonly syncCheckMs?: number;
}

/** What the driver is wired to. */
export interface DriverDeps {
  readonly chain: Chain;
  /** Null in a one-validator network with no peers. */
  readonly p2p: P2p | null;
  readonly safety: SafetyRules;
  readonly log: Log;
  /** Wall clock, in ms. */
  readonly now: () => number;
  /** Called once when the loop stops on an error it cannot recover from (after logging it). */
  readonly onFatal?: (err: Error) => void;
  /** Called after every commit with the time from height start to commit. */
  readonly onCommitted?: (height: number, latencyMs: number, txs: number, round: number) => void;
}

/** The consensus driver: one loop over a bounded input queue (see the module comment). */
export interface ConsensusDriver {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** A consensus message from a peer (public key). */
  onPeerMessage(from: Bytes, bytes: Bytes): void;
  /** The mempool gained ready transactions: a waiting height may start. */
  onTransactions(): void;
  /** Why the node is where it is: height, round, step, votes, quorum arithmetic. */
  diagnostics(): ConsensusDiagnostics | null;
  /** Counters for metrics and diagnostics. */
  stats(): { round: number; height: number; droppedInputs: number; syncedBlocks: number; syncing: boolean };
}

type Internal =
  | { readonly kind: 'consensus'; readonly input: ConsensusInput }
  | { readonly kind: 'sync'; readonly entries: readonly Bytes[]; readonly done: (applied: number) => void }
  | { readonly kind: 'startHeight' };

/**
 * Runs the pure consensus state machine against the real world (model: cometbft
 * consensus/state.go receiveRoutine). One loop takes inputs from a bounded queue in order, calls
 * `step`, and performs the outputs in order, awaiting durable writes (safety record, block commit)
 * before anything is sent. Timers, execution, block building, signing, commits and block sync all
 * re-enter through the queue, so the state machine sees one input at a time.
 *
 * Idle heights: after a commit, the next height starts when the mempool has ready transactions,
 * when a peer's message for it arrives, or when `heartbeatMs` has passed since the last block (the
 * empty-block heartbeat), so an idle network does not burn rounds.
 */
export function createConsensusDriver(options: DriverOptions, deps: DriverDeps): ConsensusDriver {
  const { chain, p2p, safety, log, now } = deps;
  const maxQueued = options.maxQueuedInputs ?? 10_000;
  const syncBatch = options.syncBatch ?? 64;
  const syncCheckMs = options.syncCheckMs ?? 2_000;
  const queue: Internal[] = [];
  const timers = new Set<NodeJS.Timeout>();
  /** The pending height's heartbeat timer (one at a time). */
  let heartbeat: NodeJS.Timeout | undefined;
  let state: ConsensusState | null = null;
  let running = false;
  let pumping = false;
  let droppedInputs = 0;
  let syncedBlocks = 0;
  let syncing = false;
  let pendingStart: HeightStart | null = null;
  let heightStartedAt = 0;
  /** Where the current height's time went (ms), reported with COMMITTED: the rest is waiting. */
  let spent = { build: 0, execute: 0, sign: 0, write: 0 };
  let lastCommitAt = 0;
  let fatal: Error | null = null;
  let idle: Promise<void> = Promise.resolve();

  function enqueue(item: Internal, fromPeer = false): void {
    if (!running) return;
    if (fromPeer && queue.length >= maxQueued) {
      droppedInputs++;
      return;
    }
    queue.push(item);
    if (!pumping) idle = pump();
  }

  function later(delayMs: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      timers.delete(t);
      if (running) fn();
    }, delayMs);
    timers.add(t);
    return t;
  }

  async function pump(): Promise<void> {
    pumping = true;
    try {
      while (running && queue.length > 0) {
        const item = queue.shift()!;
        switch (item.kind) {
          case 'consensus':
            await feed(item.input);
            break;
          case 'sync':
            item.done(await applySync(item.entries));
            break;
          case 'startHeight':
            await startPendingHeight();
            break;
        }
      }
    } catch (err) {
      fatal = err as Error;
      running = false;
      log('error', 'DRIVER_FATAL', {
        message: fatal.message,
        code: (fatal as TrellisError).code,
        stack: fatal.stack,
      });
      for (const t of timers) clearTimeout(t);
      timers.clear();
      deps.onFatal?.(fatal);
    } finally {
      pumping = false;
    }
  }

  async function feed(input: ConsensusInput): Promise<void> {
    if (state === null) return;
    const r = step(state, input);
    state = r.state;
    for (const o of r.outputs) await perform(o);
  }

  async function perform(o: ConsensusOutput): Promise<void> {
    switch (o.kind) {
      case 'broadcast':
        p2p?.broadcastConsensus(o.bytes);
        return;
      case 'send':
        try {
          p2p?.sendConsensus(fromHex(o.peer), o.bytes);
        } catch (err) {
          log('debug', 'SEND_FAILED', { peer: o.peer, message: (err as Error).message });
        }
        return;
      case 'sign': {
        const t0 = performance.now();
        const outcome = await safety.sign(o.request);
        spent.sign += performance.now() - t0;
        if (!outcome.ok)
          log('warn', 'SIGN_REFUSED', { code: outcome.error.code, message: outcome.error.message });
        await feed({ kind: 'signed', outcome });
        return;
      }
      case 'execute': {
        const t0 = performance.now();
        const result = chain.executeProposal(o.block);
        spent.execute += performance.now() - t0;
        if (!result.valid) log('warn', 'PROPOSAL_INVALID', { height: o.height, reason: result.reason });
        await feed({ kind: 'executed', height: o.height, blockHash: o.blockHash, result });
        return;
      }
      case 'buildProposal': {
        if (o.height !== chain.tip().height + 1) return;
        const t0 = performance.now();
        const block = chain.buildProposal({
          height: o.height,
          round: o.round,
          prevHash: o.prevHash,
          proposer: o.proposer,
          validatorsHash: o.validatorsHash,
          timestamp: Math.max(now(), o.minTimestamp),
        });
        spent.build += performance.now() - t0;
        log('debug', 'PROPOSAL_BUILT', { height: o.height, round: o.round, txs: block.txs.length });
        await feed({ kind: 'proposalBuilt', height: o.height, round: o.round, block });
        return;
      }
      case 'scheduleTimer':
        later(o.delayMs, () =>
          enqueue({ kind: 'consensus', input: { kind: 'timeout', height: o.height, round: o.round } }),
        );
        return;
      case 'commit': {
        const round = o.certificate.round;
        const t0 = performance.now();
        const committed = await chain.commit(o.block, o.certificate);
        spent.write += performance.now() - t0;
        if (committed) afterCommit(o.height, o.block.txs.length, round);
        await scheduleNextHeight();
        return;
      }
      case 'syncNeeded':
        void syncFrom(o.peers);
        return;
      case 'rejected':
        log('debug', 'MESSAGE_REJECTED', { from: o.from, code: o.code, detail: o.detail });
        return;
      case 'evidence':
        log('warn', 'EQUIVOCATION', { sender: toHex(o.sender), first: o.first.type, second: o.second.type });
        return;
      case 'log':
        log(o.level, o.event, { ...o.fields });
        return;
    }
  }

  function afterCommit(height: number, txs: number, round: number): void {
    const t = now();
    deps.onCommitted?.(height, t - heightStartedAt, txs, round);
    lastCommitAt = t;
    const r = (x: number): number => Math.round(x);
    log('info', 'COMMITTED', {
      height,
      txs,
      round,
      ms: t - heightStartedAt,
      spentMs: {
        build: r(spent.build),
        execute: r(spent.execute),
        sign: r(spent.sign),
        write: r(spent.write),
      },
    });
  }

  /** After a commit: start the next height now, or once there is something to propose. */
  async function scheduleNextHeight(): Promise<void> {
    pendingStart = chain.nextHeightStart();
    const sinceLast = now() - chain.tip().timestamp;
    const ready = chain.mempool.readyCount();
    if (ready > 0 || sinceLast >= options.heartbeatMs) {
      log('debug', 'HEIGHT_START_NOW', { ready, sinceLast });
      await startPendingHeight();
    } else {
      // The heartbeat of this height only: a timer left from an earlier height must not start a
      // later one early (each would start a height whose commit arms another, and empty blocks
      // would follow one another at the rate of the timers left over from a burst).
      const height = pendingStart.height;
      if (heartbeat !== undefined) {
        clearTimeout(heartbeat);
        timers.delete(heartbeat);
      }
      heartbeat = later(options.heartbeatMs - sinceLast, () => {
        if (pendingStart?.height !== height) return;
        log('debug', 'HEIGHT_START_HEARTBEAT', { height });
        enqueue({ kind: 'startHeight' });
      });
    }
  }

  async function startPendingHeight(): Promise<void> {
    const next = pendingStart;
    if (next === null || next.height !== chain.tip().height + 1) return;
    pendingStart = null;
    heightStartedAt = now();
    spent = { build: 0, execute: 0, sign: 0, write: 0 };
    await feed({ kind: 'clock', nowMs: now() });
    await feed({ kind: 'committed', next });
  }

  async function applySync(entries: readonly Bytes[]): Promise<number> {
    let applied = 0;
    for (const e of entries) {
      const ok = await chain.applySyncEntry(e);
      if (!ok) continue;
      applied++;
      syncedBlocks++;
      lastCommitAt = now();
      log('info', 'SYNCED_BLOCK', { height: chain.tip().height });
    }
    if (applied > 0) {
      pendingStart = chain.nextHeightStart();
      await startPendingHeight();
    }
    return applied;
  }

  /** Block sync: fetch certified blocks from peers until none is ahead; commits go through the loop. */
  async function syncFrom(peers: readonly Bytes[]): Promise<void> {
    if (syncing || p2p === null) return;
    syncing = true;
    try {
      const connected = new Set(p2p.connectedMembers().map((k) => toHex(k)));
      const candidates = (peers.length > 0 ? peers : p2p.connectedMembers()).filter((k) =>
        connected.has(toHex(keyOfAddress(k) ?? k)),
      );
      for (const peer of candidates.map((k) => keyOfAddress(k) ?? k)) {
        for (;;) {
          if (!running) return;
          const from = chain.tip().height + 1;
          let entries: Bytes[];
          try {
            entries = await p2p.requestBlocks(peer, from, syncBatch, { signal: AbortSignal.timeout(10_000) });
          } catch (err) {
            log('debug', 'SYNC_REQUEST_FAILED', { peer: toHex(peer), message: (err as Error).message });
            break;
          }
          if (entries.length === 0) break;
          let applied: number;
          try {
            applied = await new Promise<number>((done) => enqueue({ kind: 'sync', entries, done }));
          } catch {
            break;
          }
          if (applied === 0) break;
        }
      }
    } catch (err) {
      log('warn', 'SYNC_FAILED', { message: (err as Error).message });
    } finally {
      syncing = false;
    }
  }

  /** Consensus names validators by address; p2p by public key. */
  function keyOfAddress(address: Bytes): Bytes | undefined {
    if (address.length !== 20) return undefined;
    const hex = toHex(address);
    return chain.validatorsAt(chain.tip().height + 1).find((v) => toHex(v.address) === hex)?.publicKey;
  }

  async function checkPeersAhead(): Promise<void> {
    if (p2p === null || syncing || now() - lastCommitAt < syncCheckMs) return;
    const mine = chain.tip().height;
    for (const peer of p2p.connectedMembers()) {
      try {
        const h = await p2p.requestStatus(peer, { signal: AbortSignal.timeout(2_000) });
        if (h > mine) {
          await syncFrom([peer]);
          return;
        }
      } catch {
        // An unreachable peer is not ahead of us as far as we can tell.
      }
    }
  }

  function tick(): void {
    enqueue({ kind: 'consensus', input: { kind: 'clock', nowMs: now() } });
    void checkPeersAhead();
    later(1_000, tick);
  }

  return {
    async start() {
      running = true;
      const startAt = chain.nextHeightStart();
      heightStartedAt = now();
      lastCommitAt = now();
      const r = startConsensus(options.consensus, startAt, safety.record, now());
      state = r.state;
      pumping = true;
      try {
        for (const o of r.outputs) await perform(o);
      } finally {
        pumping = false;
      }
      if (queue.length > 0) idle = pump();
      later(1_000, tick);
      void checkPeersAhead();
    },

    async stop() {
      running = false;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await idle;
    },

    onPeerMessage(from, bytes) {
      if (state === null) return;
      const decoded = decodeConsensusMessage(bytes, state.config.maxMessageBytes);
      const fromId = toHex(from);
      if (!decoded.ok) {
        log('debug', 'MESSAGE_REJECTED', {
          from: fromId,
          code: decoded.error.code,
          detail: decoded.error.message,
        });
        return;
      }
      if (pendingStart !== null && decoded.message.height >= pendingStart.height) {
        log('debug', 'HEIGHT_START_BY_PEER', {
          from: fromId,
          type: decoded.message.type,
          height: decoded.message.height,
        });
        enqueue({ kind: 'startHeight' }, true);
      }
      enqueue(
        { kind: 'consensus', input: { kind: 'decoded', from: fromId, message: decoded.message } },
        true,
      );
    },

    onTransactions() {
      if (pendingStart !== null) {
        log('debug', 'HEIGHT_START_BY_TXS', {});
        enqueue({ kind: 'startHeight' });
      }
    },

    diagnostics: () => (state === null ? null : describeConsensus(state)),

    stats: () => ({
      round: state?.round ?? 0,
      height: state?.height ?? chain.tip().height + 1,
      droppedInputs,
      syncedBlocks,
      syncing,
      ...(fatal === null ? {} : { fatal: fatal.message }),
    }),
  };
}
