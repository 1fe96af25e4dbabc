import type { Bytes } from '../../core/bytes.ts';
import { sha256 } from '../../core/hash.ts';
import { keyPairFromSecret, sign, type KeyPair } from '../../core/keys.ts';
import { validatorOf, type Block, type Validator } from '../../core/types.ts';
import type { ConsensusOptions } from '../../consensus/config.ts';
import {
  signedBodyOf,
  type ConsensusMessage,
  type Justification,
  type PreparedCertificate,
  type ProposalMessage,
  type RoundChangeMessage,
  type VoteMessage,
} from '../../consensus/messages.ts';
import type { ConsensusOutput, ConsensusState, HeightStart } from '../../consensus/stateMachine.ts';
import { proposerOf } from '../../consensus/validatorSet.ts';
import { GENESIS_STATE_ROOT, buildBlock, executionResult } from '../sim/harness/fakeChain.ts';

/** Fixed keys and builders shared by the consensus unit tests. */

export const CHAIN = 'test-chain';
export const GENESIS_HASH: Bytes = sha256(Buffer.from('test-genesis'));
export const GENESIS_TIME = 1_000;

export const KEYS: readonly KeyPair[] = Array.from({ length: 7 }, (_, i) =>
  keyPairFromSecret(sha256(Buffer.from(`consensus-test-validator-${i}`))),
);

export function validatorsOf(n: number): Validator[] {
  return KEYS.slice(0, n).map((k) => validatorOf(k.publicKey));
}

/** Key of a validator by address. */
export function keyOf(v: Validator): KeyPair {
  const k = KEYS.find((x) => Buffer.compare(validatorOf(x.publicKey).address, v.address) === 0);
  if (k === undefined) throw new Error('unknown validator');
  return k;
}

export function startOf(validators: readonly Validator[], height = 1, prevHash = GENESIS_HASH): HeightStart {
  return { height, prevHash, prevTimestamp: GENESIS_TIME, validators };
}

export function optionsFor(self: Validator, extra: Partial<ConsensusOptions> = {}): ConsensusOptions {
  return { chainId: CHAIN, self: self.address, roundTimeoutBaseMs: 1000, roundTimeoutMaxMs: 8000, ...extra };
}

/** A valid block for (height, round) proposed by round's proposer on top of the genesis state. */
export function blockFor(
  validators: readonly Validator[],
  height: number,
  round: number,
  txs: readonly Bytes[] = [Uint8Array.from([1, 2, 3])],
  opts: { prevHash?: Bytes; forgeStateRoot?: Bytes; timestamp?: number } = {},
): Block {
  return buildBlock({
    chainId: CHAIN,
    height,
    round,
    prevHash: opts.prevHash ?? GENESIS_HASH,
    proposer: proposerOf(validators, height, round).address,
    validators,
    timestamp: opts.timestamp ?? GENESIS_TIME + 1 + round,
    parentStateRoot: GENESIS_STATE_ROOT,
    txs,
    ...(opts.forgeStateRoot === undefined ? {} : { forgeStateRoot: opts.forgeStateRoot }),
  });
}

/** What honest execution of `block` on the genesis state reports. */
export function executionOf(block: Block): ReturnType<typeof executionResult> {
  return executionResult(GENESIS_STATE_ROOT, block);
}

export function signAs<M extends ConsensusMessage>(key: KeyPair, m: M): M {
  return { ...m, signature: sign(signedBodyOf(CHAIN, m), key.secretKey) };
}

const NO_SIG = new Uint8Array(64);

export function vote(
  key: KeyPair,
  type: 'prepare' | 'commit',
  height: number,
  round: number,
  blockHash: Bytes,
): VoteMessage {
  return signAs(key, {
    type,
    height,
    round,
    blockHash,
    sender: validatorOf(key.publicKey).address,
    signature: NO_SIG,
  });
}

export function preparedCertificate(
  keys: readonly KeyPair[],
  height: number,
  round: number,
  blockHash: Bytes,
): PreparedCertificate {
  const votes = keys
    .map((k) => vote(k, 'prepare', height, round, blockHash))
    .sort((a, b) => Buffer.compare(a.sender, b.sender));
  return { round, blockHash, prepares: votes.map((v) => ({ sender: v.sender, signature: v.signature })) };
}

export function roundChange(
  key: KeyPair,
  height: number,
  round: number,
  prepared: PreparedCertificate | null = null,
  preparedBlock: Block | null = null,
): RoundChangeMessage {
  return signAs(key, {
    type: 'roundChange',
    height,
    round,
    prepared,
    preparedBlock,
    sender: validatorOf(key.publicKey).address,
    signature: NO_SIG,
  });
}

export function proposal(
  key: KeyPair,
  height: number,
  round: number,
  block: Block,
  blockHash: Bytes,
  justification: Justification | null = null,
): ProposalMessage {
  return signAs(key, {
    type: 'proposal',
    height,
    round,
    block,
    blockHash,
    justification,
    sender: validatorOf(key.publicKey).address,
    signature: NO_SIG,
  });
}

/** Outputs of one kind, narrowed. */
export function outputsOf<K extends ConsensusOutput['kind']>(
  outputs: readonly ConsensusOutput[],
  kind: K,
): Extract<ConsensusOutput, { kind: K }>[] {
  return outputs.filter((o): o is Extract<ConsensusOutput, { kind: K }> => o.kind === kind);
}

/**
 * A structural fingerprint of a state (maps, sets, bytes, nested objects; functions skipped), to
 * show that `step` leaves the state it was given untouched.
 */
export function fingerprint(state: ConsensusState): string {
  const seen = new WeakSet<object>();
  const walk = (v: unknown): unknown => {
    if (typeof v === 'function') return 'fn';
    if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
    if (v instanceof Map) return [...v.entries()].map(([k, x]) => [walk(k), walk(x)]);
    if (v instanceof Set) return [...v].map(walk);
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') {
      if (seen.has(v)) return 'cycle';
      seen.add(v);
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(v).sort()) out[k] = walk((v as Record<string, unknown>)[k]);
      seen.delete(v);
      return out;
    }
    return v;
  };
  return JSON.stringify(walk(state));
}
