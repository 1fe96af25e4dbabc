import { bytesEqual, toHex, type Bytes } from '../core/bytes.ts';
import { pack, readArray, readBytes, readList, readUint, unpackCanonical } from '../core/codec.ts';
import { HASH_BYTES, sha256 } from '../core/hash.ts';
import { ADDRESS_BYTES, SIGNATURE_BYTES, addressOf, keyPairFromSecret, sign } from '../core/keys.ts';
import { Limits, decodeBlock, encodeBlock, hashHeader, type Block } from '../core/types.ts';
import { ConsensusError } from './errors.ts';
import {
  signedBodyOf,
  type ConsensusMessage,
  type Justification,
  type PreparedCertificate,
} from './messages.ts';

/**
 * The safety module: the one place that signs consensus messages (models: cometbft
 * `privval/file.go` CheckHRS; aptos `safety_rules_2chain.rs`). It refuses anything that moves
 * (height, round, step) backwards or conflicts with what it signed before, keeps the lock (the
 * highest prepared certificate it committed to at the current height), and persists its record
 * BEFORE it releases a signature. After a restart it reloads the record, so a crash at any
 * instant never leads to two different signatures for one position.
 */

/** The narrow interface to the validator key: the safety module never sees the secret. */
export interface ConsensusSigner {
  readonly publicKey: Bytes;
  readonly address: Bytes;
  sign(message: Bytes): Bytes;
}

/** A signer over an in-process Ed25519 secret key (the node's keystore provides the key). */
export function createKeySigner(secretKey: Bytes): ConsensusSigner {
  const { publicKey } = keyPairFromSecret(secretKey);
  return { publicKey, address: addressOf(publicKey), sign: (message) => sign(message, secretKey) };
}

/** What the state machine asks the safety module to sign. */
export type SignRequest =
  | {
      readonly type: 'proposal';
      readonly height: number;
      readonly round: number;
      readonly block: Block;
      readonly blockHash: Bytes;
      readonly justification: Justification | null;
    }
  | { readonly type: 'prepare'; readonly height: number; readonly round: number; readonly blockHash: Bytes }
  | {
      readonly type: 'commit';
      readonly height: number;
      readonly round: number;
      readonly blockHash: Bytes;
      /** The quorum of prepares that justifies committing; becomes the lock. */
      readonly prepared: PreparedCertificate;
      readonly block: Block;
    }
  | {
      readonly type: 'roundChange';
      readonly height: number;
      readonly round: number;
      readonly prepared: PreparedCertificate | null;
      readonly preparedBlock: Block | null;
    };

/** A signed message, or why the safety module refused (and nothing was signed). */
export type SignOutcome =
  | { readonly ok: true; readonly message: ConsensusMessage }
  | { readonly ok: false; readonly request: SignRequest; readonly error: ConsensusError };

/**
 * Order of steps within a round. A ROUND-CHANGE to round r closes round r − 1, so it is placed at
 * (height, r − 1, roundChange): after everything signed in round r − 1, before anything in round r.
 */
export const SignStep = { proposal: 1, prepare: 2, commit: 3, roundChange: 4 } as const;

/** A position in the (height, round, step) order. */
export interface SignPosition {
  readonly height: number;
  readonly round: number;
  readonly step: number;
}

/** Where a request sits in the (height, round, step) order. */
export function positionOf(request: SignRequest): SignPosition {
  if (request.type === 'roundChange') {
    return { height: request.height, round: request.round - 1, step: SignStep.roundChange };
  }
  return { height: request.height, round: request.round, step: SignStep[request.type] };
}

/** Lexicographic comparison of positions. */
export function comparePositions(a: SignPosition, b: SignPosition): number {
  return a.height - b.height || a.round - b.round || a.step - b.step;
}

/** The lock: the highest prepared certificate this validator committed to at `height`. */
export interface SafetyLock {
  readonly height: number;
  readonly prepared: PreparedCertificate;
  readonly block: Block;
}

/** What the safety module persists: its last signed position, what it signed there, and its lock. */
export interface SafetyRecord extends SignPosition {
  /** SHA-256 of the last signed body: signing the same body again is allowed, another is a conflict. */
  readonly bodyHash: Bytes;
  readonly lock: SafetyLock | null;
}

const RECORD_VERSION = 1;

/** Canonical bytes of a safety record. */
export function encodeSafetyRecord(r: SafetyRecord): Bytes {
  return pack([
    RECORD_VERSION,
    r.height,
    r.round,
    r.step,
    r.bodyHash,
    r.lock === null
      ? null
      : [
          r.lock.height,
          r.lock.prepared.round,
          r.lock.prepared.blockHash,
          r.lock.prepared.prepares.map((p) => [p.sender, p.signature]),
          encodeBlock(r.lock.block),
        ],
  ]);
}

/** Decodes a safety record; throws ConsensusError CORRUPT_SAFETY_RECORD on anything unexpected. */
export function decodeSafetyRecord(bytes: Bytes): SafetyRecord {
  try {
    const f = readArray(unpackCanonical(bytes, 'safety record'), 6, 'safety record');
    if (f[0] !== RECORD_VERSION) throw new Error(`unknown version ${String(f[0])}`);
    let lock: SafetyLock | null = null;
    if (f[5] !== null) {
      const l = readArray(f[5], 5, 'safety record.lock');
      lock = {
        height: readUint(l[0], 'lock.height'),
        prepared: {
          round: readUint(l[1], 'lock.round'),
          blockHash: readBytes(l[2], 'lock.blockHash', HASH_BYTES),
          prepares: readList(l[3], Limits.maxValidators, 'lock.prepares').map((p, i) => {
            const s = readArray(p, 2, `lock.prepares[${i}]`);
            return {
              sender: readBytes(s[0], 'lock.prepares.sender', ADDRESS_BYTES),
              signature: readBytes(s[1], 'lock.prepares.signature', SIGNATURE_BYTES),
            };
          }),
        },
        block: decodeBlock(readBytes(l[4], 'lock.block')),
      };
    }
    const step = readUint(f[3], 'safety record.step');
    if (step < SignStep.proposal || step > SignStep.roundChange) throw new Error(`bad step ${step}`);
    return {
      height: readUint(f[1], 'safety record.height'),
      round: readUint(f[2], 'safety record.round'),
      step,
      bodyHash: readBytes(f[4], 'safety record.bodyHash', HASH_BYTES),
      lock,
    };
  } catch (err) {
    throw new ConsensusError('CORRUPT_SAFETY_RECORD', `safety record: ${(err as Error).message}`, {});
  }
}

/**
 * Durable home of the safety record. `save` must make the bytes durable (fsync) before it returns
 * or resolves: the signature is released only after. Sync or async implementations both work.
 */
export interface SafetyStore {
  load(): Bytes | undefined | Promise<Bytes | undefined>;
  save(record: Bytes): void | Promise<void>;
}

/** An in-memory store, for tests and the simulation (which wraps its own simulated disk). */
export function createMemorySafetyStore(
  initial?: Bytes,
): SafetyStore & { readonly saved: Bytes | undefined } {
  let saved = initial;
  return {
    get saved() {
      return saved;
    },
    load: () => saved,
    save: (record) => {
      saved = Uint8Array.from(record);
    },
  };
}

/** The safety module's interface to the driver. */
export interface SafetyRules {
  readonly address: Bytes;
  /** The persisted record, or null before the first signature. Feed it to `startConsensus` on restart. */
  readonly record: SafetyRecord | null;
  /**
   * Checks the request, persists the new record (awaiting the store), then signs. Refusals are
   * values (`ok: false`); a failing store rejects the promise, and nothing is signed.
   */
  sign(request: SignRequest): Promise<SignOutcome>;
}

/** Options of the safety module. */
export interface SafetyOptions {
  readonly chainId: string;
}

/** Dependencies of the safety module. */
export interface SafetyDeps {
  readonly signer: ConsensusSigner;
  readonly store: SafetyStore;
}

function refuse(
  request: SignRequest,
  code: ConsensusError['code'],
  message: string,
  meta: Record<string, unknown> = {},
): SignOutcome {
  return {
    ok: false,
    request,
    error: new ConsensusError(code, message, {
      type: request.type,
      height: request.height,
      round: request.round,
      ...meta,
    }),
  };
}

function shapeFault(r: SignRequest): string | null {
  if (!Number.isSafeInteger(r.height) || r.height < 1) return 'height must be a positive integer';
  if (!Number.isSafeInteger(r.round) || r.round < 0) return 'round must be a non-negative integer';
  switch (r.type) {
    case 'proposal':
      if (!bytesEqual(hashHeader(r.block.header), r.blockHash))
        return 'blockHash is not the hash of the block';
      return null;
    case 'prepare':
      return r.blockHash.length === HASH_BYTES ? null : 'blockHash must be 32 bytes';
    case 'commit':
      if (!bytesEqual(hashHeader(r.block.header), r.blockHash))
        return 'blockHash is not the hash of the block';
      if (r.prepared.round !== r.round || !bytesEqual(r.prepared.blockHash, r.blockHash)) {
        return 'a commit needs the prepared certificate of the same round and block';
      }
      return r.prepared.prepares.length > 0 ? null : 'empty prepared certificate';
    case 'roundChange':
      if (r.round < 1) return 'round change to round 0';
      if ((r.prepared === null) !== (r.preparedBlock === null))
        return 'prepared certificate and block go together';
      if (r.prepared !== null) {
        if (r.prepared.round >= r.round) return 'prepared round must be below the target round';
        if (!bytesEqual(hashHeader(r.preparedBlock!.header), r.prepared.blockHash))
          return 'prepared block mismatch';
      }
      return null;
  }
}

/** The lock rules: what a validator locked on a prepared block at this height may still sign. */
function lockFault(lock: SafetyLock | null, r: SignRequest): string | null {
  if (lock === null || lock.height !== r.height) return null;
  const locked = lock.prepared;
  switch (r.type) {
    case 'roundChange':
      // A round change must report at least what we locked: dropping it could let a new proposer
      // propose a fresh block over a block that may already be committed.
      if (r.prepared === null || r.prepared.round < locked.round) {
        return `round change reports prepared round ${r.prepared?.round ?? 'none'} below the lock at round ${locked.round}`;
      }
      if (r.prepared.round === locked.round && !bytesEqual(r.prepared.blockHash, locked.blockHash)) {
        return 'round change reports a different block at the locked round';
      }
      return null;
    case 'proposal':
      if (bytesEqual(r.blockHash, locked.blockHash)) return null;
      // Only a strictly higher prepared certificate frees a locked proposer from its block.
      if (r.justification?.prepared == null || r.justification.prepared.round <= locked.round) {
        return `proposal of another block while locked at round ${locked.round} without a higher prepared certificate`;
      }
      return null;
    case 'prepare':
    case 'commit':
      return null;
  }
}

function nextLock(current: SafetyLock | null, r: SignRequest): SafetyLock | null {
  const sameHeight = current !== null && current.height === r.height ? current : null;
  let candidate: SafetyLock | null = null;
  if (r.type === 'commit') candidate = { height: r.height, prepared: r.prepared, block: r.block };
  else if (r.type === 'roundChange' && r.prepared !== null) {
    candidate = { height: r.height, prepared: r.prepared, block: r.preparedBlock! };
  }
  if (candidate === null) return sameHeight;
  if (sameHeight === null || candidate.prepared.round > sameHeight.prepared.round) return candidate;
  return sameHeight;
}

function messageOf(r: SignRequest, sender: Bytes, signature: Bytes): ConsensusMessage {
  switch (r.type) {
    case 'proposal':
      return {
        type: 'proposal',
        height: r.height,
        round: r.round,
        block: r.block,
        blockHash: r.blockHash,
        justification: r.justification,
        sender,
        signature,
      };
    case 'prepare':
    case 'commit':
      return { type: r.type, height: r.height, round: r.round, blockHash: r.blockHash, sender, signature };
    case 'roundChange':
      return {
        type: 'roundChange',
        height: r.height,
        round: r.round,
        prepared: r.prepared,
        preparedBlock: r.preparedBlock,
        sender,
        signature,
      };
  }
}

/**
 * Opens the safety module: loads (and strictly decodes) the persisted record, then serves signing
 * requests one at a time. Throws ConsensusError CORRUPT_SAFETY_RECORD if the record is unreadable —
 * a validator must not guess what it signed.
 */
export async function openSafetyRules(options: SafetyOptions, deps: SafetyDeps): Promise<SafetyRules> {
  const raw = await deps.store.load();
  let record: SafetyRecord | null = raw === undefined ? null : decodeSafetyRecord(raw);
  const { signer } = deps;
  // Requests are serialised: a second request must see the record the first one persisted.
  let tail: Promise<unknown> = Promise.resolve();

  async function signOne(request: SignRequest): Promise<SignOutcome> {
    const shape = shapeFault(request);
    if (shape !== null) return refuse(request, 'SIGN_BAD_REQUEST', `sign ${request.type}: ${shape}`);
    const body = signedBodyOf(options.chainId, request);
    const bodyHash = sha256(body);
    const position = positionOf(request);
    if (record !== null) {
      const order = comparePositions(position, record);
      if (order < 0) {
        return refuse(
          request,
          'SIGN_REGRESSION',
          `sign ${request.type}: (${position.height}, ${position.round}, ${position.step}) is before the last signed (${record.height}, ${record.round}, ${record.step})`,
          { last: { height: record.height, round: record.round, step: record.step } },
        );
      }
      if (order === 0) {
        if (!bytesEqual(bodyHash, record.bodyHash)) {
          return refuse(
            request,
            'SIGN_CONFLICT',
            `sign ${request.type}: already signed something else at this position`,
            {
              signed: toHex(record.bodyHash),
              requested: toHex(bodyHash),
            },
          );
        }
        // The very same body again (a retransmission after restart): Ed25519 is deterministic, so
        // this is the same signature, not a second opinion. Nothing new to persist.
        return { ok: true, message: messageOf(request, signer.address, signer.sign(body)) };
      }
    }
    const lock = lockFault(record?.lock ?? null, request);
    if (lock !== null) return refuse(request, 'SIGN_LOCK_VIOLATION', `sign ${request.type}: ${lock}`);
    const next: SafetyRecord = { ...position, bodyHash, lock: nextLock(record?.lock ?? null, request) };
    // Persist first: if the process dies after this line, the restarted module refuses conflicts.
    await deps.store.save(encodeSafetyRecord(next));
    record = next;
    return { ok: true, message: messageOf(request, signer.address, signer.sign(body)) };
  }

  return {
    address: signer.address,
    get record() {
      return record;
    },
    sign(request) {
      const result = tail.then(() => signOne(request));
      tail = result.catch(() => undefined);
      return result;
    },
  };
}
