import { createHash } from 'node:crypto';
import { compareBytes, type Bytes } from '../../core/bytes.ts';

/**
 * The reference model of the state tree for property tests: a sorted map of entries and a Merkle
 * root computed the simplest possible way, straight from the specification in core/stateProof.ts,
 * with its own hashing (no code shared with the tree or the verifier).
 */

function sha(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Hash of the empty tree, per the specification. */
export const MODEL_EMPTY = sha(Buffer.from('trellis.state.empty.v1'));

/** Key hash, per the specification: tag, contract length byte, contract, key. */
export function modelKeyHash(contract: string, key: Bytes): Buffer {
  return sha(
    Buffer.from('trellis.state.key.v1'),
    Buffer.of(contract.length),
    Buffer.from(contract, 'latin1'),
    key,
  );
}

function nibble(h: Bytes, i: number): number {
  return i % 2 === 0 ? h[i >> 1]! >> 4 : h[i >> 1]! & 15;
}

function rootOf(entries: Array<[Buffer, Bytes]>, depth: number): Buffer {
  if (entries.length === 0) return MODEL_EMPTY;
  if (entries.length === 1) {
    const [kh, value] = entries[0]!;
    return sha(Buffer.of(0), kh, sha(value));
  }
  const groups: Array<Array<[Buffer, Bytes]>> = Array.from({ length: 16 }, () => []);
  for (const e of entries) groups[nibble(e[0], depth)]!.push(e);
  return sha(Buffer.of(1), ...groups.map((g) => rootOf(g, depth + 1)));
}

/** A sorted map of (contract, key) → value with the naive root. */
export class ReferenceModel {
  readonly entries = new Map<string, { contract: string; key: Bytes; value: Bytes }>();

  static id(contract: string, key: Bytes): string {
    return contract + '\u0000' + Buffer.from(key).toString('hex');
  }

  set(contract: string, key: Bytes, value: Bytes): void {
    this.entries.set(ReferenceModel.id(contract, key), {
      contract,
      key: Uint8Array.from(key),
      value: Uint8Array.from(value),
    });
  }

  delete(contract: string, key: Bytes): void {
    this.entries.delete(ReferenceModel.id(contract, key));
  }

  get(contract: string, key: Bytes): Bytes | undefined {
    return this.entries.get(ReferenceModel.id(contract, key))?.value;
  }

  clone(): ReferenceModel {
    const m = new ReferenceModel();
    for (const [k, v] of this.entries) m.entries.set(k, v);
    return m;
  }

  /** Entries of one contract with the prefix, in key byte order, after `after`, at most `limit`. */
  range(contract: string, prefix: Bytes, limit: number, after?: Bytes): Array<[Bytes, Bytes]> {
    const p = Buffer.from(prefix);
    return [...this.entries.values()]
      .filter((e) => e.contract === contract && Buffer.from(e.key).subarray(0, p.length).equals(p))
      .filter((e) => after === undefined || compareBytes(e.key, after) > 0)
      .sort((a, b) => compareBytes(a.key, b.key))
      .slice(0, limit)
      .map((e) => [e.key, e.value]);
  }

  /** The naive root over the hashed keys. */
  root(): Buffer {
    const list: Array<[Buffer, Bytes]> = [...this.entries.values()].map((e) => [
      modelKeyHash(e.contract, e.key),
      e.value,
    ]);
    return rootOf(list, 0);
  }
}
