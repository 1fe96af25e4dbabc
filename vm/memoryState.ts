import { compareBytes, type Bytes } from '../core/bytes.ts';
import { pack } from '../core/codec.ts';
import { foldMerkle, leafDigest } from './merkleFold.ts';
import type { StateView } from '../core/stateView.ts';

/**
 * A simple in-memory {@link StateView} with nested checkpoints: for contract unit tests
 * (vm/testing.ts), the VM's own tests and benchmarks. Its root is a Merkle root over the sorted
 * (contract, key, value) entries: deterministic and sensitive to every byte, but not the
 * authenticated state tree of node/state (no proofs, O(n log n) per root).
 */
export interface MemoryState extends StateView {
  /** Number of entries visible at the current depth. */
  readonly size: number;
  /** Every visible entry, sorted by contract then key. */
  entries(): Array<[string, Bytes, Bytes]>;
  /** An independent copy of the visible state, with no open checkpoints. */
  clone(): MemoryState;
}

type Entry = readonly [string, Bytes, Bytes];

/**
 * Leaf hash (latin1) of each entry's packed data: entries are immutable tuples, most survive from
 * root to root.
 */
const leaves = new WeakMap<Entry, string>();
function leafOf(e: Entry): string {
  let h = leaves.get(e);
  if (h === undefined) {
    h = leafDigest(pack([e[0], e[1], e[2]]));
    leaves.set(e, h);
  }
  return h;
}

/**
 * The last id made for each key object, with its contract and a private copy of the key. Callers
 * (the executor's key and address caches) pass the same key objects again and again, and a string
 * that has been hashed once is cheap to look up again, whereas hashing a freshly built id costs
 * ~0.4 us each time (measured); the copy is what entries keep, made once per key object rather
 * than on every write. Keys are checked byte by byte against the remembered id, so a key object
 * changed in between is never looked up under its old id (nor stored as its old copy).
 */
interface Id {
  readonly contract: string;
  readonly id: string;
  readonly copy: Bytes;
}
const ids = new WeakMap<Bytes, Id>();

function idOf(contract: string, key: Bytes): Id {
  const hit = ids.get(key);
  if (hit !== undefined && hit.contract === contract && sameKey(hit.id, contract.length + 1, key)) return hit;
  const b = Buffer.isBuffer(key) ? key : Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  const made = { contract, id: `${contract}\u0000${b.toString('latin1')}`, copy: Uint8Array.from(key) };
  ids.set(key, made);
  return made;
}

function id(contract: string, key: Bytes): string {
  return idOf(contract, key).id;
}

/** True when `s` from `at` on is exactly the latin1 text of `key`. */
function sameKey(s: string, at: number, key: Bytes): boolean {
  if (s.length - at !== key.length) return false;
  for (let i = 0; i < key.length; i++) if (s.charCodeAt(at + i) !== key[i]) return false;
  return true;
}

function startsWith(key: Bytes, prefix: Bytes): boolean {
  if (key.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (key[i] !== prefix[i]) return false;
  return true;
}

/** Creates an empty in-memory state, or one holding `entries`. */
export function createMemoryState(entries: Iterable<[string, Bytes, Bytes]> = []): MemoryState {
  const base = new Map<string, Entry>();
  /** Whether a contract name with a NUL was ever written (its ids would not sort as its entries). */
  let nulContract = false;
  for (const [c, k, v] of entries) {
    if (c.includes('\u0000')) nulContract = true;
    base.set(id(c, k), [c, Uint8Array.from(k), Uint8Array.from(v)]);
  }
  /** Open checkpoints, innermost last: id → entry, or null for a deletion. */
  const layers: Array<Map<string, Entry | null>> = [];

  const lookup = (key: string): Entry | undefined => {
    for (let i = layers.length - 1; i >= 0; i--) {
      const v = layers[i]!.get(key);
      if (v !== undefined) return v ?? undefined;
    }
    return base.get(key);
  };
  const write = (key: string, e: Entry | null): void => {
    const top = layers[layers.length - 1];
    if (top !== undefined) top.set(key, e);
    else if (e === null) base.delete(key);
    else base.set(key, e);
  };
  const visible = (): Map<string, Entry> => {
    const out = new Map(base);
    for (const layer of layers) {
      for (const [k, v] of layer) {
        if (v === null) out.delete(k);
        else out.set(k, v);
      }
    }
    return out;
  };
  const sorted = (): Entry[] => {
    const all = visible();
    // Ids (contract, NUL, the key's bytes as latin1) sort by code unit exactly as their entries
    // do, by contract then key bytes, unless a contract name holds a NUL: sorting the strings
    // natively costs a fraction of comparing the entries' keys byte by byte (every root sorts).
    if (!nulContract) return [...all.keys()].sort().map((id) => all.get(id)!);
    return [...all.values()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : compareBytes(a[1], b[1])));
  };

  const state: MemoryState = {
    get: (contract, key) => lookup(id(contract, key))?.[2],
    has: (contract, key) => lookup(id(contract, key)) !== undefined,
    range(contract, prefix, limit, after) {
      const out: Array<[Bytes, Bytes]> = [];
      const rows = [...visible().values()]
        .filter(
          ([c, k]) =>
            c === contract && startsWith(k, prefix) && (after === undefined || compareBytes(k, after) > 0),
        )
        .sort((a, b) => compareBytes(a[1], b[1]));
      for (const [, k, v] of rows) {
        if (out.length >= limit) break;
        out.push([k, v]);
      }
      return out;
    },
    set(contract, key, value) {
      if (contract.includes('\u0000')) nulContract = true;
      const k = idOf(contract, key);
      write(k.id, [contract, k.copy, value]);
    },
    delete: (contract, key) => write(id(contract, key), null),
    checkpoint: () => void layers.push(new Map()),
    commit() {
      const top = layers.pop();
      if (top === undefined) throw new Error('commit without a checkpoint');
      for (const [k, v] of top) write(k, v);
    },
    revert() {
      if (layers.pop() === undefined) throw new Error('revert without a checkpoint');
    },
    get depth() {
      return layers.length;
    },
    root: () => foldMerkle(sorted().map(leafOf)),
    get size() {
      return visible().size;
    },
    entries: () => sorted().map(([c, k, v]) => [c, k, v]),
    clone: () => createMemoryState(sorted().map(([c, k, v]) => [c, k, v])),
  };
  return state;
}
