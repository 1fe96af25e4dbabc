import { hash } from 'node:crypto';
import { bytesEqual, type Bytes } from './bytes.ts';
import { pack, readArray, readBytes, readList, readUint, unpackCanonical } from './codec.ts';
import { CodecError, TrellisError } from './errors.ts';
import { HASH_BYTES, sha256 } from './hash.ts';
import { NAME_RE, SYSTEM_NAME_RE } from './types.ts';

/**
 * The hashing rules of Trellis's authenticated state, and proof verification as a pure function
 * (no storage), for the node, the SDK and light clients.
 *
 * The state is a sparse Merkle tree over 256-bit key hashes, in the shape of Aptos's Jellyfish
 * Merkle tree: a key (contract, key) lives at `stateKeyHash(contract, key)`, read four bits
 * (one nibble) per level from the most significant end; a leaf sits at the shortest prefix that
 * no other key shares (paths are compressed), an empty subtree hashes to a fixed constant, and
 * leaves and internal nodes hash under distinct domain bytes so one can never pose as the other.
 *
 * One deliberate difference from Jellyfish: an internal node hashes its 16 children in one call,
 * `H(0x01 || child_0 || … || child_15)`, instead of as a four-level binary tree. On this runtime a
 * SHA-256 call costs about 1 µs whatever the input up to ~0.5 KiB (node:crypto call overhead), so
 * a binary tree needs ~13,500 hash calls for a 1,000-key block on a 1,000,000-key tree against
 * ~2,800 here, and verifying a proof takes ~6 calls instead of ~22. The price is a larger proof
 * (up to 15 sibling hashes per level, ~2.5 KiB at a million keys instead of ~0.7 KiB).
 *
 * The root of a set of entries is defined recursively (this is the whole specification; the node's
 * versioned tree is only a fast way to compute it):
 * - no entries: {@link EMPTY_STATE_ROOT};
 * - exactly one entry: `leafHash = H(0x00 || keyHash || H(value))`;
 * - otherwise: `H(0x01 || root(entries whose next nibble is 0) || … || root(… is 15))`.
 */

/** Largest key a contract may store, in bytes. Keys are paths like "receivable/0x…". */
export const MAX_STATE_KEY_BYTES = 1024;
/** Largest value a contract may store, in bytes (contract code is stored as state too). */
export const MAX_STATE_VALUE_BYTES = 1024 * 1024;
/** Most entries one range scan may return; contracts page through larger ranges with `after`. */
export const MAX_STATE_RANGE_LIMIT = 10_000;
/** Levels of a proof: a 256-bit key hash has 64 nibbles. */
export const MAX_PROOF_LEVELS = 64;

/** Domain tag of the canonical proof encoding. */
export const STATE_PROOF_TAG = 'trellis.stateproof.v1';

const LEAF_DOMAIN = 0x00;
const INTERNAL_DOMAIN = 0x01;
const KEY_TAG = Buffer.from('trellis.state.key.v1', 'utf8');

/** Hash of an empty subtree, and so the root of the empty state. */
export const EMPTY_STATE_ROOT: Bytes = sha256(Buffer.from('trellis.state.empty.v1', 'utf8'));

/** Reasons a state operation or argument is refused. */
export type StateErrorCode =
  | 'BAD_CONTRACT'
  | 'BAD_KEY'
  | 'BAD_VALUE'
  | 'BAD_LIMIT'
  | 'BAD_VERSION'
  | 'BAD_OPTIONS'
  | 'HASH_THREAD'
  | 'VERSION_PRUNED'
  | 'VERSION_MISSING'
  | 'STALE_VIEW'
  | 'VIEW_CLOSED'
  | 'OPEN_CHECKPOINT'
  | 'NO_CHECKPOINT'
  | 'CORRUPT';

/** Raised by the state tree, its views and its key rules. */
export class StateError extends TrellisError<StateErrorCode> {}

/** Throws StateError unless `contract` is a valid contract name. */
export function assertContract(contract: unknown): asserts contract is string {
  if (typeof contract !== 'string' || !(NAME_RE.test(contract) || SYSTEM_NAME_RE.test(contract))) {
    throw new StateError('BAD_CONTRACT', `contract: expected a name matching ${NAME_RE.source}`, {
      contract: typeof contract === 'string' ? contract.slice(0, 80) : typeof contract,
    });
  }
}

/** Throws StateError unless `key` is bytes of at most {@link MAX_STATE_KEY_BYTES}. */
export function assertKey(key: unknown): asserts key is Bytes {
  if (!(key instanceof Uint8Array)) {
    throw new StateError('BAD_KEY', 'key: expected bytes', { got: typeof key });
  }
  if (key.length > MAX_STATE_KEY_BYTES) {
    throw new StateError('BAD_KEY', `key: at most ${MAX_STATE_KEY_BYTES} bytes, got ${key.length}`, {
      length: key.length,
      max: MAX_STATE_KEY_BYTES,
    });
  }
}

/** Throws StateError unless `value` is bytes of at most {@link MAX_STATE_VALUE_BYTES}. */
export function assertValue(value: unknown): asserts value is Bytes {
  if (!(value instanceof Uint8Array)) {
    throw new StateError('BAD_VALUE', 'value: expected bytes', { got: typeof value });
  }
  if (value.length > MAX_STATE_VALUE_BYTES) {
    throw new StateError('BAD_VALUE', `value: at most ${MAX_STATE_VALUE_BYTES} bytes, got ${value.length}`, {
      length: value.length,
      max: MAX_STATE_VALUE_BYTES,
    });
  }
}

/**
 * The 256-bit position of (contract, key) in the tree: SHA-256 of the tag, the contract name's
 * length (one byte; names are at most 64 ASCII characters), the name, then the key. The length
 * prefix makes the encoding unambiguous: ("ab", "c") and ("a", "bc") differ.
 */
export function stateKeyHash(contract: string, key: Bytes): Bytes {
  return digest(keyHashInput(contract, key));
}

// The bytes stateKeyHash hashes, after checking the contract name and key.
function keyHashInput(contract: string, key: Bytes): Buffer {
  assertContract(contract);
  assertKey(key);
  const buf = Buffer.allocUnsafe(KEY_TAG.length + 1 + contract.length + key.length);
  KEY_TAG.copy(buf, 0);
  buf[KEY_TAG.length] = contract.length;
  buf.write(contract, KEY_TAG.length + 1, 'latin1');
  buf.set(key, KEY_TAG.length + 1 + contract.length);
  return buf;
}

// Hash input of writeStateKeyHash: the tag, then room for the largest encoded (contract, key).
const keyScratch = Buffer.allocUnsafe(KEY_TAG.length + 1 + 255 + MAX_STATE_KEY_BYTES);
KEY_TAG.copy(keyScratch, 0);

/**
 * Writes {@link stateKeyHash} of a (contract, key) at `to[at]`, given the pair's encoding: the
 * contract name's length (one byte), the name, then the key (what stateKeyHash hashes after its
 * tag). For a store that keeps keys in this encoding and rehashes many at once (a state store
 * opening); the name and key are not checked, so a corrupt one only gives another hash.
 */
export function writeStateKeyHash(encoded: Bytes, to: Buffer, at: number): void {
  if (encoded.length > keyScratch.length - KEY_TAG.length) {
    throw new StateError('BAD_KEY', `encoded key: at most ${keyScratch.length - KEY_TAG.length} bytes`, {
      length: encoded.length,
    });
  }
  keyScratch.set(encoded, KEY_TAG.length);
  digestInto(keyScratch.subarray(0, KEY_TAG.length + encoded.length), to, at);
}

// SHA-256 of `input`, as a Buffer cut from node's shared pool: node:crypto's one-shot hash returns
// a latin1 string faster than a Buffer, whose output path is slower and allocates an ArrayBuffer
// per hash (the state tree hashes thousands of keys and values per block). 'binary' is node's
// alias of 'latin1'.
function digest(input: Bytes): Bytes {
  return Buffer.from(hash('sha256', input, 'binary'), 'latin1');
}

// Writes SHA-256 of `input` at `to[at]`. 'binary' is node's alias of 'latin1': the digest comes
// back as a string, copied in place (node:crypto's Buffer output takes a slower path and
// allocates per hash). For verification, which hashes into scratch buffers.
function digestInto(input: Bytes, to: Buffer, at: number): void {
  to.write(hash('sha256', input, 'binary'), at, 'latin1');
}

/** Hash of a stored value (a leaf commits to it). */
export function stateValueHash(value: Bytes): Bytes {
  return digest(value);
}

// Scratch buffers: hashing is synchronous, so one buffer per shape is reused on the hot path.
const leafScratch = Buffer.allocUnsafe(1 + 2 * HASH_BYTES);
leafScratch[0] = LEAF_DOMAIN;
const internalScratch = Buffer.allocUnsafe(1 + 16 * HASH_BYTES);
internalScratch[0] = INTERNAL_DOMAIN;

/** Hash of a leaf: H(0x00 || keyHash || valueHash). */
export function stateLeafHash(keyHash: Bytes, valueHash: Bytes): Bytes {
  leafScratch.set(keyHash, 1);
  leafScratch.set(valueHash, 1 + HASH_BYTES);
  return digest(leafScratch);
}

/**
 * Hash of an internal node from its 16 child hashes (undefined for an empty child, which hashes
 * as {@link EMPTY_STATE_ROOT}): H(0x01 || child_0 || … || child_15).
 */
export function stateInternalHash(children: ArrayLike<Bytes | undefined>): Bytes {
  for (let i = 0; i < 16; i++) internalScratch.set(children[i] ?? EMPTY_STATE_ROOT, 1 + i * HASH_BYTES);
  return digest(internalScratch);
}

/**
 * {@link stateInternalHash} for children that are 32-byte windows of larger buffers: child i is
 * `buffers[i][offsets[i] .. offsets[i] + 32)`, or empty when `buffers[i]` is undefined. The node
 * hashes stored nodes this way without allocating a view per child.
 */
export function stateInternalHashAt(
  buffers: ArrayLike<Bytes | undefined>,
  offsets: ArrayLike<number>,
): Bytes {
  for (let i = 0; i < 16; i++) {
    const b = buffers[i];
    if (b === undefined) internalScratch.set(EMPTY_STATE_ROOT, 1 + i * HASH_BYTES);
    else {
      // A byte loop: for 32 bytes it beats both a view per child and a native Buffer#copy call.
      const o = offsets[i]!;
      const t = 1 + i * HASH_BYTES;
      for (let j = 0; j < HASH_BYTES; j++) internalScratch[t + j] = b[o + j]!;
    }
  }
  return digest(internalScratch);
}

/** Nibble `index` (0 = most significant four bits) of a key hash. */
export function nibbleAt(keyHash: Bytes, index: number): number {
  const byte = keyHash[index >> 1]!;
  return index & 1 ? byte & 0x0f : byte >> 4;
}

/** The leaf a proof ends at: the key it holds and the hash of its value. */
export interface StateProofLeaf {
  readonly keyHash: Bytes;
  readonly valueHash: Bytes;
}

/**
 * One internal node on the path from the root: which of its children other than the one on the
 * path are non-empty (bit i set = child i present), and their hashes in nibble order.
 */
export interface StateProofLevel {
  readonly bitmap: number;
  readonly siblings: readonly Bytes[];
}

/**
 * Proof that (contract, key) holds a value, or holds none, under a root. `levels` runs from the
 * root down; the path ends at `leaf` (the key's own leaf, or for an absent key another key's leaf
 * occupying its place) or at an empty child (`leaf` null).
 */
export interface StateProof {
  readonly leaf: StateProofLeaf | null;
  readonly levels: readonly StateProofLevel[];
}

function popcount16(x: number): number {
  let n = 0;
  for (let v = x; v !== 0; v &= v - 1) n++;
  return n;
}

/** Canonical bytes of a proof: [tag, leaf | null, [[bitmap, concatenated siblings], …]]. */
export function encodeStateProof(proof: StateProof): Bytes {
  return pack([
    STATE_PROOF_TAG,
    proof.leaf === null ? null : [proof.leaf.keyHash, proof.leaf.valueHash],
    proof.levels.map((l) => [l.bitmap, Buffer.concat(l.siblings as Bytes[])]),
  ]);
}

/**
 * Decodes a proof from its canonical bytes. Throws CodecError naming the first bad field; accepts
 * exactly one encoding per proof (no listed sibling may be the empty hash, which the bitmap says).
 */
export function decodeStateProof(bytes: Bytes): StateProof {
  const v = readArray(unpackCanonical(bytes, 'stateProof'), 3, 'stateProof');
  if (v[0] !== STATE_PROOF_TAG) {
    throw new CodecError('WRONG_TAG', `stateProof: expected tag ${STATE_PROOF_TAG}`, {
      path: 'stateProof[0]',
    });
  }
  let leaf: StateProofLeaf | null = null;
  if (v[1] !== null) {
    const l = readArray(v[1], 2, 'stateProof.leaf');
    leaf = {
      keyHash: readBytes(l[0], 'stateProof.leaf.keyHash', HASH_BYTES),
      valueHash: readBytes(l[1], 'stateProof.leaf.valueHash', HASH_BYTES),
    };
  }
  const rawLevels = readList(v[2], MAX_PROOF_LEVELS, 'stateProof.levels');
  const levels: StateProofLevel[] = rawLevels.map((raw, i) => {
    const path = `stateProof.levels[${i}]`;
    const l = readArray(raw, 2, path);
    const bitmap = readUint(l[0], `${path}.bitmap`);
    if (bitmap > 0xffff) {
      throw new CodecError('WRONG_SHAPE', `${path}.bitmap: expected 16 bits`, { path });
    }
    const n = popcount16(bitmap);
    if (n > 15) throw new CodecError('WRONG_SHAPE', `${path}.bitmap: at most 15 siblings`, { path });
    const flat = readBytes(l[1], `${path}.siblings`, n * HASH_BYTES);
    const siblings: Bytes[] = [];
    for (let j = 0; j < n; j++) {
      const s = flat.subarray(j * HASH_BYTES, (j + 1) * HASH_BYTES);
      if (bytesEqual(s, EMPTY_STATE_ROOT)) {
        throw new CodecError(
          'NON_CANONICAL',
          `${path}.siblings[${j}]: an empty child belongs in the bitmap`,
          {
            path,
          },
        );
      }
      siblings.push(s);
    }
    return { bitmap, siblings };
  });
  return { leaf, levels };
}

// Scratch of verifyStateProof: the key hash, the value hash, and the running hash from the leaf up.
const verifyKey = Buffer.allocUnsafe(HASH_BYTES);
const verifyValue = Buffer.allocUnsafe(HASH_BYTES);
const verifyCurrent = Buffer.allocUnsafe(HASH_BYTES);

function sharesPrefix(a: Bytes, b: Bytes, nibbles: number): boolean {
  for (let i = 0; i < nibbles; i++) if (nibbleAt(a, i) !== nibbleAt(b, i)) return false;
  return true;
}

function isHash(v: unknown): v is Bytes {
  return v instanceof Uint8Array && v.length === HASH_BYTES;
}

/**
 * Verifies that under `root`, (contract, key) holds `value`, or holds nothing when `value` is
 * undefined. Pure and total: any malformed argument or proof gives false, never an exception.
 */
export function verifyStateProof(
  root: Bytes,
  contract: string,
  key: Bytes,
  value: Bytes | undefined,
  proof: StateProof,
): boolean {
  try {
    if (!isHash(root) || typeof proof !== 'object' || proof === null) return false;
    if (value !== undefined && !(value instanceof Uint8Array)) return false;
    const levels: unknown = proof.levels;
    if (!Array.isArray(levels) || levels.length > MAX_PROOF_LEVELS) return false;
    // Hashes go into scratch buffers: verification is synchronous, so they are free.
    const keyHash = verifyKey;
    digestInto(keyHashInput(contract, key), keyHash, 0);
    const depth = levels.length;
    const leaf = proof.leaf;
    if (leaf === null) {
      // An empty child on the key's path: the key is absent.
      if (value !== undefined) return false;
      verifyCurrent.set(EMPTY_STATE_ROOT, 0);
    } else {
      if (!isHash(leaf.keyHash) || !isHash(leaf.valueHash)) return false;
      if (value !== undefined) {
        digestInto(value, verifyValue, 0);
        if (!bytesEqual(leaf.keyHash, keyHash) || !bytesEqual(leaf.valueHash, verifyValue)) return false;
      } else if (bytesEqual(leaf.keyHash, keyHash) || !sharesPrefix(leaf.keyHash, keyHash, depth)) {
        // Absence through another key's leaf: it must sit exactly where this key would.
        return false;
      }
      leafScratch.set(leaf.keyHash, 1);
      leafScratch.set(leaf.valueHash, 1 + HASH_BYTES);
      digestInto(leafScratch, verifyCurrent, 0);
    }
    // Each level's hash input is assembled in the shared scratch and hashed into `verifyCurrent`.
    for (let d = depth - 1; d >= 0; d--) {
      const level: unknown = levels[d];
      if (typeof level !== 'object' || level === null) return false;
      const { bitmap, siblings } = level as Record<string, unknown>;
      if (typeof bitmap !== 'number' || !Number.isInteger(bitmap) || bitmap < 0 || bitmap > 0xffff)
        return false;
      if (!Array.isArray(siblings)) return false;
      const nibble = nibbleAt(keyHash, d);
      if ((bitmap >> nibble) & 1) return false;
      let next = 0;
      for (let i = 0; i < 16; i++) {
        const at = 1 + i * HASH_BYTES;
        if (i === nibble) internalScratch.set(verifyCurrent, at);
        else if ((bitmap >> i) & 1) {
          const s: unknown = siblings[next++];
          if (!isHash(s)) return false;
          internalScratch.set(s, at);
        } else internalScratch.set(EMPTY_STATE_ROOT, at);
      }
      if (next !== siblings.length) return false;
      digestInto(internalScratch, verifyCurrent, 0);
    }
    return bytesEqual(verifyCurrent, root);
  } catch {
    // stateKeyHash refuses a bad contract or key: no proof can hold for it.
    return false;
  }
}
