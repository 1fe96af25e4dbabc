import type { Bytes } from '../../core/bytes.ts';
import { P2pError } from './errors.ts';

/**
 * What a full queue gives up.
 * - `drop-oldest`: the new item goes in, the oldest goes out. For consensus messages the newest
 *   are the relevant ones (a later round or height supersedes an earlier one, and a lost vote is
 *   recovered by round change), so a slow peer should see the present, not a backlog.
 * - `drop-newest`: the new item is refused. For transaction batches this keeps what the peer
 *   receives a prefix of what was sent, so per-sender nonces arrive without gaps; the refused
 *   transactions stay in our mempool and reach the chain through our own proposals.
 */
export type DropPolicy = 'drop-oldest' | 'drop-newest';

/** Bounds and policy of one queue. */
export interface BoundedQueueOptions {
  readonly maxItems: number;
  readonly maxBytes: number;
  readonly policy: DropPolicy;
}

/** Counters of one queue, for diagnostics. */
export interface QueueStats {
  /** Items waiting. */
  readonly depth: number;
  /** Bytes waiting. */
  readonly bytes: number;
  /** Items accepted since creation. */
  readonly enqueued: number;
  /** Items given up because the queue was full (either policy), since creation. */
  readonly dropped: number;
}

/** A FIFO of byte strings bounded by count and bytes; `push` never blocks and never throws on a full queue. */
export interface BoundedQueue {
  /** Adds an item, applying the drop policy when full. Returns false when the new item itself was refused. */
  push(item: Bytes): boolean;
  /** Removes and returns the oldest item. */
  shift(): Bytes | undefined;
  /** The oldest item, left in place. */
  peek(): Bytes | undefined;
  /**
   * Puts back an item that was taken but could not be sent, ahead of the rest. If the queue has
   * filled up meanwhile the item is dropped (and counted): it is the oldest one.
   */
  unshift(item: Bytes): void;
  /** Drops everything waiting (counted as dropped). */
  clear(): void;
  readonly length: number;
  stats(): QueueStats;
}

/** Creates a bounded FIFO queue. */
export function createBoundedQueue(options: BoundedQueueOptions): BoundedQueue {
  const { maxItems, maxBytes, policy } = options;
  if (!Number.isSafeInteger(maxItems) || maxItems < 1 || !Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new P2pError('BAD_INPUT', 'queue bounds: expected positive integers', { maxItems, maxBytes });
  }
  if (policy !== 'drop-oldest' && policy !== 'drop-newest') {
    throw new P2pError('BAD_INPUT', 'queue policy: expected drop-oldest or drop-newest', { policy });
  }
  const items: Bytes[] = [];
  let bytes = 0;
  let enqueued = 0;
  let dropped = 0;

  const fits = (size: number): boolean => items.length < maxItems && bytes + size <= maxBytes;

  function shift(): Bytes | undefined {
    const item = items.shift();
    if (item !== undefined) bytes -= item.length;
    return item;
  }

  return {
    push(item) {
      if (item.length > maxBytes) {
        dropped++;
        return false;
      }
      if (!fits(item.length)) {
        if (policy === 'drop-newest') {
          dropped++;
          return false;
        }
        while (!fits(item.length)) {
          shift();
          dropped++;
        }
      }
      items.push(item);
      bytes += item.length;
      enqueued++;
      return true;
    },
    shift,
    peek: () => items[0],
    unshift(item) {
      if (!fits(item.length)) {
        dropped++;
        return;
      }
      items.unshift(item);
      bytes += item.length;
    },
    clear() {
      dropped += items.length;
      items.length = 0;
      bytes = 0;
    },
    get length() {
      return items.length;
    },
    stats: () => ({ depth: items.length, bytes, enqueued, dropped }),
  };
}
