/**
 * Ordered, gap-free, duplicate-free delivery of committed data to subscribers, and waiters for
 * transaction receipts.
 *
 * A stream remembers the last height it fully delivered (`through`). Live commits from the node's
 * commit feed are buffered (bounded); a pump delivers block `through + 1` from the buffer when it
 * is there and otherwise replays it from the store, so a subscriber that resumes from a cursor, or
 * that falls behind, reads history first and then switches to live blocks without a gap, and a
 * strict position check drops anything already delivered. The pump waits for the subscriber's
 * socket to drain before producing more, so a slow subscriber costs a bounded buffer, not memory.
 */
import { toHex, type Bytes } from '../core/bytes.ts';
import { hashHeader } from '../core/types.ts';
import { RpcError } from './errors.ts';
import type { ChainEvent, CommitNotification, EventPosition, NodeApi, ReceiptRecord } from './nodeApi.ts';

/** Live commits buffered per stream before it falls back to replaying from the store. */
export const MAX_PENDING_COMMITS = 64;
/** Events fetched per store query while replaying. */
const REPLAY_PAGE = 256;

/** Where a stream sends: resolves once the subscriber has taken the message (or rejects if it is gone). */
export type StreamSink = (notification: unknown) => Promise<void>;

/** A running subscription stream. */
export interface Stream {
  /** Feeds a committed block (from the node's commit feed). Never throws. */
  onCommit(commit: CommitNotification): void;
  close(): void;
}

/** Orders positions: height, then receipt index, then event index. */
export function comparePositions(a: EventPosition, b: EventPosition): number {
  return a.height - b.height || a.receiptIndex - b.receiptIndex || a.eventIndex - b.eventIndex;
}

interface PumpHooks {
  /** Delivers one live block (its height is `through + 1`). */
  deliver(commit: CommitNotification): Promise<void>;
  /** Replays from the store starting at height `from` up to `to`; returns the new `through`. */
  replay(from: number, to: number): Promise<number>;
}

function createPump(
  node: NodeApi,
  startThrough: number,
  hooks: PumpHooks,
  onFailure: (err: unknown) => void,
): Stream {
  let through = startThrough;
  // Bounded by MAX_PENDING_COMMITS: on overflow the buffer is dropped and the store replays it.
  let pending: CommitNotification[] = [];
  let running = false;
  let closed = false;

  async function run(): Promise<void> {
    while (!closed) {
      while (pending.length > 0 && pending[0]!.block.header.height <= through) pending.shift();
      const head = node.head()?.height ?? 0;
      const next = through + 1;
      const first = pending[0];
      if (first !== undefined && first.block.header.height === next) {
        pending.shift();
        await hooks.deliver(first);
        through = next;
        continue;
      }
      if (through >= head) return;
      through = await hooks.replay(next, head);
    }
  }

  function kick(): void {
    if (running || closed) return;
    running = true;
    run().then(
      () => {
        running = false;
        // A commit may have arrived after the loop's last look.
        if (!closed && pending.length > 0) kick();
      },
      (err: unknown) => {
        running = false;
        if (!closed) {
          closed = true;
          onFailure(err);
        }
      },
    );
  }

  // Deferred: the subscribe response must reach the client before the first notification.
  setImmediate(kick);
  return {
    onCommit(commit) {
      if (closed) return;
      if (pending.length >= MAX_PENDING_COMMITS) pending = [];
      pending.push(commit);
      kick();
    },
    close() {
      closed = true;
      pending = [];
    },
  };
}

/** Filter and start of an event stream. */
export interface EventStreamOptions {
  readonly contract?: string;
  readonly name?: string;
  /** Deliver only events after this position. */
  readonly cursor?: EventPosition;
  /** Without a cursor: first height to deliver (default: the next block). */
  readonly fromHeight?: number;
}

/** Streams events matching a filter, each exactly once, in chain order. */
export function createEventStream(
  node: NodeApi,
  options: EventStreamOptions,
  sink: (event: ChainEvent) => Promise<void>,
  onFailure: (err: unknown) => void,
): Stream {
  const { contract, name, cursor } = options;
  let lastDelivered: EventPosition | undefined = cursor;
  // The furthest position the store has been scanned to (delivered or skipped by the filter).
  let scanned: EventPosition | undefined = cursor;
  const startThrough =
    cursor !== undefined
      ? cursor.height - 1
      : options.fromHeight !== undefined
        ? options.fromHeight - 1
        : (node.head()?.height ?? 0);

  async function emit(e: ChainEvent): Promise<void> {
    if (lastDelivered !== undefined && comparePositions(e, lastDelivered) <= 0) return;
    lastDelivered = e;
    scanned = e;
    await sink(e);
  }

  return createPump(
    node,
    startThrough,
    {
      async deliver(commit) {
        const height = commit.block.header.height;
        for (let r = 0; r < commit.receipts.length; r++) {
          const receipt = commit.receipts[r]!;
          for (let i = 0; i < receipt.events.length; i++) {
            const ev = receipt.events[i]!;
            if (contract !== undefined && ev.contract !== contract) continue;
            if (name !== undefined && ev.name !== name) continue;
            await emit({ height, receiptIndex: r, eventIndex: i, txHash: receipt.txHash, ...ev });
          }
        }
      },
      async replay(from, to) {
        const after = scanned !== undefined && scanned.height >= from ? scanned : undefined;
        const page = await node.queryEvents({
          fromHeight: from,
          toHeight: to,
          ...(contract === undefined ? {} : { contract }),
          ...(name === undefined ? {} : { name }),
          ...(after === undefined ? {} : { after }),
          limit: REPLAY_PAGE,
        });
        for (const e of page.events) await emit(e);
        if (page.next === undefined) return to;
        if (scanned === undefined || comparePositions(page.next, scanned) > 0) scanned = page.next;
        // Heights before the continuation point are complete.
        return Math.max(from - 1, page.next.height - 1);
      },
    },
    onFailure,
  );
}

/** A new head as streams deliver it. */
export interface HeadNotice {
  readonly height: number;
  readonly hash: Bytes;
  readonly header: CommitNotification['block']['header'];
  readonly txCount: number;
}

/** Streams committed heads in height order from `fromHeight` (default: the next block). */
export function createHeadStream(
  node: NodeApi,
  fromHeight: number | undefined,
  sink: (head: HeadNotice) => Promise<void>,
  onFailure: (err: unknown) => void,
): Stream {
  const noticeOf = (header: HeadNotice['header'], txCount: number): HeadNotice => ({
    height: header.height,
    hash: hashHeader(header),
    header,
    txCount,
  });
  return createPump(
    node,
    fromHeight !== undefined ? fromHeight - 1 : (node.head()?.height ?? 0),
    {
      deliver: (commit) => sink(noticeOf(commit.block.header, commit.block.txs.length)),
      async replay(from) {
        const block = await node.getBlock({ height: from });
        if (block === undefined) {
          throw new RpcError('NOT_FOUND', `block ${from} is not available for replay`, { height: from });
        }
        await sink(noticeOf(block.header, block.txs.length));
        return from;
      },
    },
    onFailure,
  );
}

/** Waiters for transaction receipts, fed by the commit feed. */
export interface TxWaiters {
  /**
   * Calls `onReceipt` once when the transaction commits (at once if it already has). Returns a
   * cancel function. Throws RpcError LIMIT_EXCEEDED when too many watches are open.
   */
  watch(hash: Bytes, onReceipt: (r: ReceiptRecord) => void, onError: (err: unknown) => void): () => void;
  /** Resolves with the receipt once committed; rejects with RpcError TIMEOUT after `timeoutMs`. */
  wait(hash: Bytes, timeoutMs: number): Promise<ReceiptRecord>;
  onCommit(commit: CommitNotification): void;
  /** Ends every watch with RpcError UNAVAILABLE (the server is stopping). */
  closeAll(): void;
  /** Open watches. */
  readonly size: number;
}

/** Creates the receipt waiters of a server; at most `maxWatches` at once. */
export function createTxWaiters(node: NodeApi, maxWatches: number): TxWaiters {
  // hash hex → callbacks; bounded by maxWatches in total.
  const byHash = new Map<string, Set<(r: ReceiptRecord) => void>>();
  // Every open watch's failure path, for closeAll.
  const failures = new Map<(r: ReceiptRecord) => void, (err: unknown) => void>();
  let size = 0;

  function remove(key: string, cb: (r: ReceiptRecord) => void): void {
    failures.delete(cb);
    const set = byHash.get(key);
    if (set === undefined || !set.delete(cb)) return;
    size--;
    if (set.size === 0) byHash.delete(key);
  }

  const waiters: TxWaiters = {
    watch(hash, onReceipt, onError) {
      if (size >= maxWatches) {
        throw new RpcError('LIMIT_EXCEEDED', `too many pending transaction waits (at most ${maxWatches})`, {
          max: maxWatches,
        });
      }
      const key = toHex(hash);
      let done = false;
      const cb = (r: ReceiptRecord): void => {
        if (done) return;
        done = true;
        remove(key, cb);
        onReceipt(r);
      };
      let set = byHash.get(key);
      if (set === undefined) byHash.set(key, (set = new Set()));
      set.add(cb);
      failures.set(cb, (err) => {
        if (done) return;
        done = true;
        remove(key, cb);
        onError(err);
      });
      size++;
      // Registered before looking, so a commit between the look and the registration is not missed.
      node.getReceipt(hash).then(
        (r) => {
          if (r !== undefined) cb(r);
        },
        (err: unknown) => {
          if (done) return;
          done = true;
          remove(key, cb);
          onError(err);
        },
      );
      return () => {
        done = true;
        remove(key, cb);
      };
    },
    wait(hash, timeoutMs) {
      return new Promise((resolve, reject) => {
        let timer: NodeJS.Timeout | undefined = undefined;
        const cancel = waiters.watch(
          hash,
          (r) => {
            clearTimeout(timer);
            resolve(r);
          },
          (err) => {
            clearTimeout(timer);
            reject(err instanceof Error ? err : new Error(String(err)));
          },
        );
        timer = setTimeout(() => {
          cancel();
          reject(
            new RpcError('TIMEOUT', `transaction ${toHex(hash)} not committed within ${timeoutMs} ms`, {
              hash: toHex(hash),
              timeoutMs,
            }),
          );
        }, timeoutMs);
      });
    },
    onCommit(commit) {
      if (size === 0) return;
      const height = commit.block.header.height;
      commit.receipts.forEach((receipt, receiptIndex) => {
        const set = byHash.get(toHex(receipt.txHash));
        if (set === undefined) return;
        for (const cb of [...set]) cb({ receipt, height, receiptIndex });
      });
    },
    closeAll() {
      for (const fail of [...failures.values()])
        fail(new RpcError('UNAVAILABLE', 'the RPC server is stopping', {}));
    },
    get size() {
      return size;
    },
  };
  return waiters;
}
