// The state root and proofs of a set of entries, computed straight from the recursive definition
// in core/stateProof.ts. The in-process RPC harness uses it until the node's state store serves
// proofs through the real node; verification on the SDK side is core/stateProof.ts itself.
import { compareBytes, type Bytes } from '../../core/bytes.ts';
import {
  EMPTY_STATE_ROOT,
  encodeStateProof,
  nibbleAt,
  stateInternalHash,
  stateKeyHash,
  stateLeafHash,
  stateValueHash,
  type StateProofLevel,
} from '../../core/stateProof.ts';

interface Entry {
  readonly keyHash: Bytes;
  readonly valueHash: Bytes;
}

function groups(entries: readonly Entry[], depth: number): Entry[][] {
  const out: Entry[][] = Array.from({ length: 16 }, () => []);
  for (const e of entries) out[nibbleAt(e.keyHash, depth)]!.push(e);
  return out;
}

function rootOf(entries: readonly Entry[], depth: number): Bytes {
  if (entries.length === 0) return EMPTY_STATE_ROOT;
  if (entries.length === 1) return stateLeafHash(entries[0]!.keyHash, entries[0]!.valueHash);
  return stateInternalHash(
    groups(entries, depth).map((g) => (g.length === 0 ? undefined : rootOf(g, depth + 1))),
  );
}

/** A snapshot of state entries: (contract, key) → value. */
export class StateSnapshot {
  private readonly entries: Map<string, { contract: string; key: Bytes; value: Bytes }>;
  private cachedRoot: Bytes | undefined;

  constructor(entries?: Map<string, { contract: string; key: Bytes; value: Bytes }>) {
    this.entries = new Map(entries);
  }

  private static id(contract: string, key: Bytes): string {
    return `${contract}\u0000${Buffer.from(key).toString('hex')}`;
  }

  get(contract: string, key: Bytes): Bytes | undefined {
    return this.entries.get(StateSnapshot.id(contract, key))?.value;
  }

  set(contract: string, key: Bytes, value: Bytes): void {
    this.cachedRoot = undefined;
    this.entries.set(StateSnapshot.id(contract, key), { contract, key, value });
  }

  copy(): StateSnapshot {
    return new StateSnapshot(this.entries);
  }

  private hashed(): Entry[] {
    return [...this.entries.values()]
      .map((e) => ({ keyHash: stateKeyHash(e.contract, e.key), valueHash: stateValueHash(e.value) }))
      .sort((a, b) => compareBytes(a.keyHash, b.keyHash));
  }

  root(): Bytes {
    this.cachedRoot ??= rootOf(this.hashed(), 0);
    return this.cachedRoot;
  }

  /** The encoded inclusion or exclusion proof of (contract, key). */
  proof(contract: string, key: Bytes): Bytes {
    const target = stateKeyHash(contract, key);
    let set = this.hashed();
    const levels: StateProofLevel[] = [];
    let depth = 0;
    while (set.length > 1) {
      const g = groups(set, depth);
      const nibble = nibbleAt(target, depth);
      let bitmap = 0;
      const siblings: Bytes[] = [];
      for (let i = 0; i < 16; i++) {
        if (i === nibble || g[i]!.length === 0) continue;
        bitmap |= 1 << i;
        siblings.push(rootOf(g[i]!, depth + 1));
      }
      levels.push({ bitmap, siblings });
      set = g[nibble]!;
      depth++;
    }
    const leaf = set.length === 1 ? { keyHash: set[0]!.keyHash, valueHash: set[0]!.valueHash } : null;
    return encodeStateProof({ leaf, levels });
  }
}
