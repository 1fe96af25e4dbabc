/**
 * An ordered set of strings held as a list of sorted chunks (a two-level B-tree). Keys are byte
 * strings stored as latin1 strings: one character per byte, so JavaScript's string order is the
 * bytes' lexicographic order, and V8 keeps them one byte per character.
 *
 * Why not a balanced tree of nodes: at a million keys the chunks cost the strings themselves plus
 * one array slot each (~16 + key length bytes per key), where a red-black tree would add ~50 bytes
 * of node per key. Insert and delete are a binary search plus a splice within one chunk of at most
 * {@link CHUNK_MAX} keys; the chunk list is spliced only when a chunk splits or empties.
 */

/** Most keys in one chunk before it splits in two. */
export const CHUNK_MAX = 512;

/** A cursor over the set in ascending order; the set must not change while it is used. */
export interface KeyCursor {
  /** The next key, or undefined at the end. */
  next(): string | undefined;
}

/** An ordered set of latin1 strings (see the module comment). */
export class SortedKeySet {
  #chunks: string[][] = [];
  #size = 0;

  /** Number of keys. */
  get size(): number {
    return this.#size;
  }

  // Index of the last chunk whose first key is <= k (0 when k is below every chunk).
  #chunkOf(k: string): number {
    const chunks = this.#chunks;
    let lo = 0;
    let hi = chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (chunks[mid]![0]! <= k) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** True when `k` is in the set. */
  has(k: string): boolean {
    if (this.#size === 0) return false;
    const chunk = this.#chunks[this.#chunkOf(k)]!;
    const i = lowerBound(chunk, k);
    return i < chunk.length && chunk[i] === k;
  }

  /** Adds `k`; returns false when it was already there. */
  add(k: string): boolean {
    const chunks = this.#chunks;
    if (chunks.length === 0) {
      chunks.push([k]);
      this.#size = 1;
      return true;
    }
    // Appending in order (loading from a sorted scan) skips the searches.
    const lastChunk = chunks[chunks.length - 1]!;
    if (lastChunk[lastChunk.length - 1]! < k) {
      if (lastChunk.length >= CHUNK_MAX) chunks.push([k]);
      else lastChunk.push(k);
      this.#size++;
      return true;
    }
    const ci = this.#chunkOf(k);
    const chunk = chunks[ci]!;
    const i = lowerBound(chunk, k);
    if (i < chunk.length && chunk[i] === k) return false;
    chunk.splice(i, 0, k);
    this.#size++;
    if (chunk.length > CHUNK_MAX) chunks.splice(ci + 1, 0, chunk.splice(chunk.length >> 1));
    return true;
  }

  /** Removes `k`; returns false when it was not there. */
  delete(k: string): boolean {
    if (this.#size === 0) return false;
    const ci = this.#chunkOf(k);
    const chunk = this.#chunks[ci]!;
    const i = lowerBound(chunk, k);
    if (i >= chunk.length || chunk[i] !== k) return false;
    chunk.splice(i, 1);
    this.#size--;
    if (chunk.length === 0) this.#chunks.splice(ci, 1);
    return true;
  }

  /** A cursor from the first key >= `start` (> `start` when `exclusive`). */
  seek(start: string, exclusive: boolean): KeyCursor {
    const chunks = this.#chunks;
    let ci = chunks.length === 0 ? 0 : this.#chunkOf(start);
    let i = 0;
    if (chunks.length > 0) {
      const chunk = chunks[ci]!;
      i = lowerBound(chunk, start);
      if (exclusive && i < chunk.length && chunk[i] === start) i++;
    }
    return {
      next: () => {
        while (ci < chunks.length) {
          const chunk = chunks[ci]!;
          if (i < chunk.length) return chunk[i++];
          ci++;
          i = 0;
        }
        return undefined;
      },
    };
  }
}

// First index in sorted `arr` whose element is >= k.
function lowerBound(arr: readonly string[], k: string): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (arr[mid]! < k) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
