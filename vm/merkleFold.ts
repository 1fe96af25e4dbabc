import { hash } from 'node:crypto';
import type { Bytes } from '../core/bytes.ts';
import { EMPTY_MERKLE_ROOT } from '../core/merkle.ts';

/**
 * `merkleRoot` of core/merkle.ts (RFC 9162 section 2.1: leaves H(0x00 || data), inner nodes
 * H(0x01 || left || right)) for callers that hash many leaves per block, without a Buffer per
 * hash: digests stay latin1 strings ('binary' is node's alias; node:crypto returns those faster
 * than Buffers, ~0.5 us against ~1.3-2 us per hash measured here) and every input is written into
 * one reused buffer. Equality with core's definition is tested in test/vm/receiptCodec.test.ts.
 */

type Write = (this: Buffer, text: string, offset: number, length: number) => number;
const proto = Buffer.prototype as unknown as { latin1Write?: unknown };
/**
 * Node's own latin1 encoder (`Buffer.prototype.latin1Write`, what `Buffer#write` calls after its
 * argument checks), applied directly: for a 32-character digest the checks cost as much as the
 * copy, and copying by charCodeAt cost more than both (measured). Where a runtime lacks it, the
 * documented route is taken; the bytes are the same either way.
 */
const latin1Write = typeof proto.latin1Write === 'function' ? (proto.latin1Write as Write) : null;
/** Writes the latin1 text `t` (one byte per char) into `buf` at `at`. */
export function latin1Into(buf: Buffer, t: string, at: number): void {
  if (latin1Write !== null) latin1Write.call(buf, t, at, t.length);
  else buf.write(t, at, t.length, 'latin1');
}

/** An inner node's input: 0x01, left hash, right hash. */
const inner = Buffer.alloc(65);
inner[0] = 1;
/** A leaf's input: 0x00 then its data; grows as needed. */
let leaf = Buffer.alloc(4096);

/**
 * Views of the leaf buffer by length: receipts of one kind have one size, and a view made per
 * hash (subarray) cost ~0.1-0.15 us. Dropped when the buffer grows; at most 256 lengths.
 */
let views = new Map<number, Buffer>();

/** The reused leaf buffer, with room for `n` bytes of data after the prefix byte at 0. */
export function leafBuffer(n: number): Buffer {
  if (n + 1 > leaf.length) {
    leaf = Buffer.alloc(Math.max(n + 1, 2 * leaf.length));
    views = new Map();
  }
  leaf[0] = 0;
  return leaf;
}

/** Leaf hash (latin1) of the data written at leafBuffer()[1 .. end). */
export function hashLeafBuffer(end: number): string {
  let view = views.get(end);
  if (view === undefined) {
    view = leaf.subarray(0, end);
    if (views.size >= 256) views.clear();
    views.set(end, view);
  }
  return hash('sha256', view, 'binary');
}

/** Leaf hash (latin1) of `data`. */
export function leafDigest(data: Bytes): string {
  const b = leafBuffer(data.length);
  b.set(data, 1);
  return hashLeafBuffer(data.length + 1);
}

/**
 * The root over leaf hashes (latin1 strings, overwritten in place). The tree is folded bottom-up,
 * pairing neighbours and carrying an odd last node up a level, which gives the RFC's root: it
 * splits at the largest power of two below n, so its left subtrees are exactly the complete pairs.
 */
export function foldMerkle(hashes: string[]): Bytes {
  if (hashes.length === 0) return EMPTY_MERKLE_ROOT;
  for (let m = hashes.length; m > 1;) {
    let j = 0;
    for (let i = 0; i + 1 < m; i += 2) {
      latin1Into(inner, hashes[i]!, 1);
      latin1Into(inner, hashes[i + 1]!, 33);
      hashes[j++] = hash('sha256', inner, 'binary');
    }
    if ((m & 1) === 1) hashes[j++] = hashes[m - 1]!;
    m = j;
  }
  return Buffer.from(hashes[0]!, 'latin1');
}
