import { bytesEqual, toHex, utf8, type Bytes } from '../core/bytes.ts';
import {
  decodeValue,
  pack,
  readArray,
  readBytes,
  readList,
  readUint,
  unpackCanonical,
} from '../core/codec.ts';
import { TrellisError } from '../core/errors.ts';
import { sha256 } from '../core/hash.ts';
import { addressOf, keyPairFromSecret } from '../core/keys.ts';
import { merkleRoot } from '../core/merkle.ts';
import {
  checkCertificate,
  GOVERNANCE_CONTRACT,
  VALIDATOR_CHANGE_EVENT,
  decodeBlock,
  decodeCertificate,
  decodeSignedTx,
  hashHeader,
  hashValidators,
  Limits,
  validatorOf,
  signTx,
  verifyTx,
  type Block,
  type BlockHeader,
  type CommitCertificate,
  type Receipt,
  type SignedTransaction,
  type Validator,
} from '../core/types.ts';
import type { ExecutionResult, HeightStart } from '../consensus/stateMachine.ts';
import {
  createValidatorSchedule,
  epochAt,
  validatorsAt,
  type ValidatorEpoch,
  type ValidatorSchedule,
} from '../consensus/validatorSet.ts';
import { VmFault } from '../vm/errors.ts';
import { VmLimits } from '../vm/gasTable.ts';
import { readNonce } from '../vm/systemState.ts';
import type { BlockResult, Executor, LifecyclePolicy } from '../vm/executor.ts';
import { genesisHash, genesisValidatorSet, type Genesis } from './genesis.ts';
import { createMempool, type Mempool, type MempoolOptions } from './mempool.ts';
import type { StateStore } from './state/stateStore.ts';
import type { StateStoreView } from './state/stateView.ts';
import type { BlockStore, EventPosition } from './storage/blockStore.ts';
import type { BatchOp, KvStore } from './storage/kv.ts';
import { Bucket, createRepository, heightKey, type Codec } from './storage/repository.ts';

/** Why the chain refused a block or could not go on. */
export type ChainErrorCode = 'BAD_SYNC_ENTRY' | 'STATE_MISMATCH' | 'GENESIS_FAILED' | 'CORRUPT';

/** Raised by the chain engine. STATE_MISMATCH is a broken invariant: the node stops. */
export class ChainError extends TrellisError<ChainErrorCode> {}

/** The committed tip with what the next height needs. */
export interface ChainTip {
  readonly height: number;
  /** The head block's header; undefined before the first block. */
  readonly header?: BlockHeader;
  readonly hash: Bytes;
  readonly timestamp: number;
  readonly stateRoot: Bytes;
}

/** What a commit hands to listeners (RPC subscriptions, metrics). */
export interface CommittedBlock {
  readonly block: Block;
  readonly hash: Bytes;
  readonly certificate: CommitCertificate;
  readonly receipts: readonly Receipt[];
  readonly txs: readonly SignedTransaction[];
}

/** Options of the chain engine. */
export interface ChainOptions {
  readonly genesis: Genesis;
  readonly mempool?: Partial<Omit<MempoolOptions, 'chainId'>>;
  /** Lifecycle policy for blocks after genesis (default: the genesis organisations' admins). */
  readonly policy?: LifecyclePolicy;
}

/** What the chain engine is built from. */
export interface ChainDeps {
  readonly kv: KvStore;
  readonly blocks: BlockStore;
  readonly state: StateStore;
  readonly executor: Executor;
  readonly log: (
    level: 'debug' | 'info' | 'warn' | 'error',
    event: string,
    fields?: Record<string, unknown>,
  ) => void;
}

/** Parameters of a block the proposer builds (from the consensus `buildProposal` output). */
export interface BuildParams {
  readonly height: number;
  readonly round: number;
  readonly prevHash: Bytes;
  readonly proposer: Bytes;
  readonly validatorsHash: Bytes;
  readonly timestamp: number;
}

interface Executed {
  readonly view: StateStoreView;
  readonly result: BlockResult;
  readonly txs: readonly SignedTransaction[];
}

/**
 * Executed-but-uncommitted blocks of the current height, by hash. A height sees one proposal per
 * round at most, and rounds are bounded by the consensus module; this bound stops anything more.
 */
const MAX_EXECUTED_PER_HEIGHT = 16;
/** Blocks smaller than this do not update the execution-cost estimate (fixed costs dominate). */
const MIN_TIMED_TXS = 50;
/** The fewest transactions the execution budget may cut a proposal to. */
const MIN_PROPOSAL_TXS = 100;

/** Transactions whose signatures were verified, by hash and signature; bounded, oldest dropped. */
const MAX_VERIFIED_CACHE = 100_000;
/** Where the approvals contract keeps the approved validator-set change in its state. */
const PENDING_VALIDATORS_KEY = utf8('validators:pending');
/**
 * Validator-set changes the schedule holds. Each one is an executed governance proposal, so the
 * count grows only by consortium vote; the bound stops a damaged store from filling memory.
 */
const MAX_VALIDATOR_EPOCHS = 65_536;

/** A stored validator-set change: what recorded it (empty bytes when unknown), then its set. */
interface StoredEpoch {
  readonly recordedBy: Bytes | undefined;
  readonly validators: readonly Validator[];
}

/** Stored epoch value: `[recordedBy, public keys in order]` (addresses are derived). */
const epochCodec: Codec<StoredEpoch> = {
  encode: (e) => pack([e.recordedBy ?? new Uint8Array(0), e.validators.map((v) => v.publicKey)]),
  decode: (bytes) => {
    const [by, keys] = readArray(unpackCanonical(bytes, 'validator epoch'), 2, 'validator epoch');
    const recordedBy = readBytes(by, 'validator epoch.recordedBy');
    if (recordedBy.length !== 0 && recordedBy.length !== 32)
      throw new Error('validator epoch.recordedBy: 32 bytes');
    return {
      recordedBy: recordedBy.length === 0 ? undefined : recordedBy,
      validators: readList(keys, Limits.maxValidators, 'validator epoch.validators').map((pk, i) =>
        validatorOf(readBytes(pk, `validator epoch.validators[${i}]`, 32)),
      ),
    };
  },
};
/** The schedule's entry for a stored change. */
function epochOf(fromHeight: number, e: StoredEpoch): ValidatorEpoch {
  return {
    fromHeight,
    validators: e.validators,
    ...(e.recordedBy === undefined ? {} : { recordedBy: e.recordedBy }),
  };
}
/** Events read per page when rebuilding the schedule from the event index. */
const RECOVERY_PAGE = 1000;

/** Proposal builds retried after a local VM fault before falling back to an empty block. */
const MAX_BUILD_ATTEMPTS = 8;

/** The key that signs the genesis deployments: derived from the chainId, so every node derives it. */
export function genesisDeployerKey(chainId: string): { secretKey: Bytes; publicKey: Bytes; address: string } {
  const kp = keyPairFromSecret(sha256(utf8(`trellis.genesis.deployer:${chainId}`)));
  return { ...kp, address: toHex(addressOf(kp.publicKey)) };
}

/** Encodes a (block, certificate) pair as block sync carries it. */
export function encodeSyncEntry(blockBytes: Bytes, certificateBytes: Bytes): Bytes {
  return pack([blockBytes, certificateBytes]);
}

/**
 * The chain engine: the committed chain (blocks, state, receipts) and the execution of the next
 * height. It executes proposals on overlays of the committed state ("execute, then vote"), keeps
 * them until one commits, and commits block, certificate, receipts, indexes, state changes and head
 * in one atomic batch. Block-sync entries go through the same commit path after their certificate
 * and their re-execution are checked.
 */
export interface Chain {
  readonly chainId: string;
  readonly genesis: Genesis;
  readonly genesisHash: Bytes;
  readonly mempool: Mempool;
  readonly blocks: BlockStore;
  readonly state: StateStore;
  readonly executor: Executor;
  tip(): ChainTip;
  /** What consensus needs to start the next height. */
  nextHeightStart(): HeightStart;
  /** The validator set that certifies `height`. */
  validatorsAt(height: number): readonly Validator[];
  /** The epoch of the schedule that holds `height`: its set, first height and what recorded it. */
  validatorEpochAt(height: number): ValidatorEpoch;
  /** Executes a proposed block on the committed state and compares its roots ("execute, then vote"). */
  executeProposal(block: Block): ExecutionResult;
  /** Builds and executes a candidate block from the mempool. */
  buildProposal(params: BuildParams): Block;
  /** Commits a decided block; false if it does not extend the tip (already committed by sync). */
  commit(block: Block, certificate: CommitCertificate): Promise<boolean>;
  /** Verifies and commits a block-sync entry; false if it does not extend the tip. */
  applySyncEntry(entry: Bytes): Promise<boolean>;
  /** A block-sync entry for `height`, or undefined. */
  syncEntry(height: number): Promise<Bytes | undefined>;
  /** Registers a listener for committed blocks; returns its remover. */
  onCommit(listener: (c: CommittedBlock) => void): () => void;
}

/** Opens the chain engine over stores that are already open; applies genesis on a new data dir. */
export async function openChain(options: ChainOptions, deps: ChainDeps): Promise<Chain> {
  const { genesis } = options;
  const { blocks, state, executor, log } = deps;
  const chainId = genesis.chainId;
  const gHash = genesisHash(genesis);
  const genesisSchedule: ValidatorSchedule = createValidatorSchedule(genesisValidatorSet(genesis));
  let schedule: ValidatorSchedule = genesisSchedule;
  const deployer = genesisDeployerKey(chainId);
  const admins = new Set(genesis.organisations.flatMap((o) => o.admins.map((a) => toHex(addressOf(a)))));
  const policy: LifecyclePolicy = options.policy ?? ((r) => admins.has(r.sender));
  const listeners = new Set<(c: CommittedBlock) => void>();
  const executed = new Map<string, Executed>();
  const verified = new Map<string, true>();

  const epochStore = createRepository(deps.kv, 'validatorEpochs', Bucket.validators, heightKey, epochCodec);

  await applyGenesis();
  let tip = await loadTip();
  schedule = await loadSchedule();
  if (schedule.epochs.length === 1 && tip.height > 0) await recoverSchedule();
  {
    // The pending change, should the event index not hold it (nothing else writes it).
    const plan = planScheduleChange(state.view(), tip.height, []);
    if (plan !== undefined) {
      await deps.kv.batch(plan.ops);
      adoptSchedule(plan);
    }
  }

  const mempool = createMempool(
    {
      chainId,
      maxTxGas: Math.min(genesis.consensus.maxBlockGas, VmLimits.maxTxGas),
      ...options.mempool,
    },
    { nextNonce: (address) => nonceOf(address) },
  );

  function nonceOf(address: Bytes): number {
    return readNonce(state.view(), address);
  }

  async function applyGenesis(): Promise<void> {
    if (blocks.getHead() !== undefined || state.version !== undefined || genesis.contracts.length === 0)
      return;
    const view = state.view();
    const txs = genesis.contracts.map((c, i) =>
      signTx(
        {
          chainId,
          from: deployer.publicKey,
          nonce: i,
          kind: 'deploy',
          contract: c.name,
          method: '',
          args: { source: c.source, initArgs: c.initArgs },
          gasLimit: Math.min(genesis.consensus.maxBlockGas, VmLimits.maxTxGas),
        },
        deployer.secretKey,
      ),
    );
    const result = executor.executeBlock({
      state: view,
      header: { chainId, height: 0, timestamp: genesis.genesisTimeMs },
      txs,
      policy: (r) => r.kind === 'deploy' && r.sender === deployer.address,
    });
    const failed = result.receipts.find((r) => r.status !== 'ok');
    if (failed !== undefined) {
      const i = result.receipts.indexOf(failed) - result.scheduled;
      throw new ChainError(
        'GENESIS_FAILED',
        `genesis contract "${genesis.contracts[i]?.name ?? '?'}" failed to deploy: ${failed.errorCode} ${failed.error}`,
        { contract: genesis.contracts[i]?.name },
      );
    }
    const sc = state.commitOps(view, 0);
    await deps.kv.batch(sc.ops);
    sc.finalize();
    log('info', 'GENESIS_APPLIED', {
      contracts: genesis.contracts.map((c) => c.name),
      stateRoot: toHex(sc.root),
    });
  }

  /**
   * The validator schedule: the genesis set, then every change an executed governance proposal
   * left in the approvals contract's state (`validators:pending`: the new ordered set and the
   * height it certifies from). Each change is read from the executed state of the block that made
   * it and stored with that block, in the same atomic batch, so every node derives the same
   * schedule at the same height, and a restarted node still answers for every past height. The
   * approvals contract puts the effective height at least two blocks after approval, so every
   * validator has committed the change before it binds.
   */
  async function loadSchedule(): Promise<ValidatorSchedule> {
    const epochs = [...genesisSchedule.epochs];
    for await (const [fromHeight, stored] of epochStore.entries({ limit: MAX_VALIDATOR_EPOCHS + 1 })) {
      if (epochs.length > MAX_VALIDATOR_EPOCHS) {
        throw new ChainError('CORRUPT', `more than ${MAX_VALIDATOR_EPOCHS} validator-set changes stored`, {});
      }
      if (fromHeight <= 1) {
        throw new ChainError('CORRUPT', `stored validator-set change at height ${fromHeight}`, {
          fromHeight,
        });
      }
      epochs.push(epochOf(fromHeight, stored));
    }
    return { epochs };
  }

  interface SchedulePlan {
    readonly schedule: ValidatorSchedule;
    /** Writes that store the change and drop the not-yet-effective changes it replaces. */
    readonly ops: BatchOp[];
    readonly fromHeight: number;
  }

  /** A change as the approvals contract writes it (its state value and its event's data). */
  function changeOf(v: unknown): { validators: Validator[]; effectiveHeight: number } {
    const o = v as Record<string, unknown>;
    const list = readList(o['validators'], Limits.maxValidators, 'validators');
    return {
      effectiveHeight: readUint(o['effectiveHeight'], 'effectiveHeight'),
      validators: list.map((x, i) =>
        validatorOf(readBytes((x as Record<string, unknown>)['publicKey'], `validators[${i}].publicKey`, 32)),
      ),
    };
  }

  /**
   * The schedule after the change pending in `view` (the state once `height` is committed), or
   * undefined when it holds no new change. `receipts` are the block's: the one whose
   * ValidatorSetChanged event made the change is recorded with it (none at open).
   */
  function planScheduleChange(
    view: StateStoreView,
    height: number,
    receipts: readonly Receipt[],
  ): SchedulePlan | undefined {
    const raw = view.get(GOVERNANCE_CONTRACT, PENDING_VALIDATORS_KEY);
    if (raw === undefined) return undefined;
    let change: { validators: Validator[]; effectiveHeight: number };
    try {
      change = changeOf(decodeValue(raw, 'validators:pending'));
    } catch (err) {
      log('error', 'BAD_VALIDATOR_CHANGE', { message: (err as Error).message });
      return undefined;
    }
    const recordedBy = receipts.findLast(
      (r) =>
        r.status === 'ok' &&
        r.events.some((e) => e.contract === GOVERNANCE_CONTRACT && e.name === VALIDATOR_CHANGE_EVENT),
    )?.txHash;
    return planChange(change, height, recordedBy);
  }

  /**
   * The schedule after `change`, made at `height` by `recordedBy`, or undefined when the schedule
   * already holds it. A change replaces the changes scheduled at or after its own height (not yet
   * in effect); those before it stay.
   */
  function planChange(
    change: { validators: Validator[]; effectiveHeight: number },
    height: number,
    recordedBy: Bytes | undefined,
  ): SchedulePlan | undefined {
    const same = schedule.epochs.find((e) => e.fromHeight === change.effectiveHeight);
    if (same !== undefined && hashValidatorsOf(same.validators) === hashValidatorsOf(change.validators)) {
      return undefined;
    }
    if (change.validators.length === 0) return undefined;
    if (change.effectiveHeight <= Math.max(1, height)) {
      // History is never rewritten: a change must name a height not yet committed.
      log('error', 'BAD_VALIDATOR_CHANGE', {
        message: `change effective at ${change.effectiveHeight}, at or below committed height ${height}`,
      });
      return undefined;
    }
    if (schedule.epochs.length > MAX_VALIDATOR_EPOCHS) {
      log('error', 'BAD_VALIDATOR_CHANGE', { message: `more than ${MAX_VALIDATOR_EPOCHS} changes` });
      return undefined;
    }
    const kept = schedule.epochs.filter((e) => e.fromHeight < change.effectiveHeight);
    const ops: BatchOp[] = schedule.epochs
      .filter((e) => e.fromHeight >= change.effectiveHeight)
      .map((e) => epochStore.delOp(e.fromHeight));
    const stored = { recordedBy, validators: change.validators };
    ops.push(epochStore.putOp(change.effectiveHeight, stored));
    return {
      schedule: { epochs: [...kept, epochOf(change.effectiveHeight, stored)] },
      ops,
      fromHeight: change.effectiveHeight,
    };
  }

  /**
   * For a store written before changes were stored with their blocks: replays every approved
   * change from the event index (the approvals contract's ValidatorSetChanged events, in chain
   * order, each with the transaction that made it) and stores the schedule they build.
   */
  async function recoverSchedule(): Promise<void> {
    const ops: BatchOp[] = [];
    let after: EventPosition | undefined;
    for (let pages = 0; pages <= MAX_VALIDATOR_EPOCHS / RECOVERY_PAGE; pages++) {
      const page = await blocks.getEvents({
        fromHeight: 1,
        toHeight: tip.height,
        contract: GOVERNANCE_CONTRACT,
        name: VALIDATOR_CHANGE_EVENT,
        limit: RECOVERY_PAGE,
        ...(after === undefined ? {} : { after }),
      });
      for (const e of page.events) {
        let change: { validators: Validator[]; effectiveHeight: number };
        try {
          change = changeOf(e.data);
        } catch (err) {
          log('error', 'BAD_VALIDATOR_CHANGE', { height: e.height, message: (err as Error).message });
          continue;
        }
        const plan = planChange(change, e.height, e.txHash);
        if (plan === undefined) continue;
        ops.push(...plan.ops);
        adoptSchedule(plan);
      }
      if (page.next === undefined) break;
      after = page.next;
    }
    if (ops.length > 0) await deps.kv.batch(ops);
  }

  function adoptSchedule(plan: SchedulePlan): void {
    schedule = plan.schedule;
    log('info', 'VALIDATOR_SET_SCHEDULED', {
      fromHeight: plan.fromHeight,
      validators: validatorsAt(schedule, plan.fromHeight).map((v) => toHex(v.address)),
    });
  }

  function hashValidatorsOf(vs: readonly Validator[]): string {
    return toHex(hashValidators(vs));
  }

  async function loadTip(): Promise<ChainTip> {
    const head = blocks.getHead();
    if (head === undefined) {
      return { height: 0, hash: gHash, timestamp: genesis.genesisTimeMs, stateRoot: state.root };
    }
    const block = await blocks.getBlockByHeight(head.height);
    if (block === undefined)
      throw new ChainError('STATE_MISMATCH', `head block ${head.height} is missing`, {});
    if (!bytesEqual(block.header.stateRoot, state.root)) {
      throw new ChainError(
        'STATE_MISMATCH',
        `state root ${toHex(state.root)} does not match the head block's ${toHex(block.header.stateRoot)}`,
        { height: head.height },
      );
    }
    return {
      height: head.height,
      header: block.header,
      hash: head.hash,
      timestamp: block.header.timestamp,
      stateRoot: state.root,
    };
  }

  function decodeTxs(block: Block): SignedTransaction[] | string {
    const out: SignedTransaction[] = [];
    for (let i = 0; i < block.txs.length; i++) {
      // A transaction this node admitted was decoded and verified then: reuse it (a follower
      // otherwise decodes and verifies every transaction of a proposal a second time).
      const held = mempool.lookup(block.txs[i]!);
      if (held !== undefined) {
        out.push(held);
        continue;
      }
      let stx: SignedTransaction;
      try {
        stx = decodeSignedTx(block.txs[i]!, chainId);
      } catch (err) {
        return `tx ${i}: ${(err as Error).message}`;
      }
      const id = toHex(stx.hash) + toHex(stx.signature);
      if (!verified.has(id)) {
        if (!verifyTx(stx)) return `tx ${i}: bad signature`;
        if (verified.size >= MAX_VERIFIED_CACHE) {
          const oldest = verified.keys().next().value;
          if (oldest !== undefined) verified.delete(oldest);
        }
        verified.set(id, true);
      }
      out.push(stx);
    }
    return out;
  }

  function checkLimits(block: Block, txs: readonly SignedTransaction[]): string | null {
    const c = genesis.consensus;
    if (block.txs.length > c.maxBlockTxs) return `block has ${block.txs.length} txs, limit ${c.maxBlockTxs}`;
    let bytes = 0;
    let gas = 0;
    const seen = new Set<string>();
    for (const t of txs) {
      bytes += t.bytes.length;
      gas += t.tx.gasLimit;
      const h = toHex(t.hash);
      if (seen.has(h)) return `transaction ${h} appears twice`;
      seen.add(h);
    }
    if (bytes > c.maxBlockBytes) return `block has ${bytes} bytes of txs, limit ${c.maxBlockBytes}`;
    if (gas > c.maxBlockGas) return `block asks ${gas} gas, limit ${c.maxBlockGas}`;
    return null;
  }

  /**
   * This node's recent execution cost per transaction (µs, moving average over blocks of at least
   * MIN_TIMED_TXS), from every block it builds or executes. It sizes proposals (buildProposal):
   * only which transactions a proposal carries depends on it, never whether a block is valid, so
   * it may differ between nodes.
   */
  let execUsPerTx = 0;

  function run(header: BlockHeader, txs: readonly SignedTransaction[]): Executed {
    const t0 = performance.now();
    try {
      return runTimed(header, txs);
    } finally {
      if (txs.length >= MIN_TIMED_TXS) {
        const us = ((performance.now() - t0) * 1000) / txs.length;
        execUsPerTx = execUsPerTx === 0 ? us : 0.7 * execUsPerTx + 0.3 * us;
      }
    }
  }

  /**
   * Most transactions a proposal carries: the genesis limit, and what this node executes within
   * a quarter of the round timeout (at least MIN_PROPOSAL_TXS). Every replica executes a proposal
   * before it votes, so a block that takes longer than the round to execute would end in a round
   * change and be proposed again: under load, blocks grow to what the round can carry, no more.
   */
  function proposalTxLimit(): number {
    const c = genesis.consensus;
    if (execUsPerTx === 0) return c.maxBlockTxs;
    const fit = Math.floor((c.roundTimeoutMs * 1000) / 4 / execUsPerTx);
    return Math.max(MIN_PROPOSAL_TXS, Math.min(c.maxBlockTxs, fit));
  }

  function runTimed(header: BlockHeader, txs: readonly SignedTransaction[]): Executed {
    const view = state.view();
    const result = executor.executeBlock({
      state: view,
      header: { chainId, height: header.height, timestamp: header.timestamp, proposer: header.proposer },
      txs,
      policy,
    });
    return { view, result, txs };
  }

  function build(p: BuildParams, txs: readonly SignedTransaction[]): Block {
    const txBytes = txs.map((t) => t.bytes);
    const partial: BlockHeader = {
      chainId,
      height: p.height,
      prevHash: p.prevHash,
      timestamp: p.timestamp,
      proposer: p.proposer,
      round: p.round,
      txRoot: merkleRoot(txBytes),
      stateRoot: new Uint8Array(32),
      receiptsRoot: new Uint8Array(32),
      validatorsHash: p.validatorsHash,
    };
    const ex = run(partial, txs);
    const header: BlockHeader = {
      ...partial,
      stateRoot: ex.result.stateRoot,
      receiptsRoot: ex.result.receiptsRoot,
    };
    const block: Block = { header, txs: txBytes };
    remember(hashHeader(header), ex);
    return block;
  }

  function remember(hash: Bytes, ex: Executed): void {
    if (executed.size >= MAX_EXECUTED_PER_HEIGHT) {
      const oldest = executed.keys().next().value;
      if (oldest !== undefined) executed.delete(oldest);
    }
    executed.set(toHex(hash), ex);
  }

  function validate(block: Block): { txs: SignedTransaction[] } | { reason: string } {
    const h = block.header;
    const next = tip.height + 1;
    if (h.chainId !== chainId) return { reason: `chainId ${h.chainId}` };
    if (h.height !== next) return { reason: `height ${h.height}, expected ${next}` };
    if (!bytesEqual(h.prevHash, tip.hash)) return { reason: 'prevHash does not match the tip' };
    if (h.timestamp <= tip.timestamp) return { reason: 'timestamp not after the parent' };
    if (!bytesEqual(h.validatorsHash, hashValidators(validatorsAt(schedule, next)))) {
      return { reason: 'validatorsHash is not the hash of the validator set of this height' };
    }
    const txs = decodeTxs(block);
    if (typeof txs === 'string') return { reason: txs };
    const limit = checkLimits(block, txs);
    if (limit !== null) return { reason: limit };
    if (!bytesEqual(merkleRoot(block.txs), h.txRoot))
      return { reason: 'txRoot does not match the transactions' };
    return { txs };
  }

  function execute(block: Block, hash: Bytes): ExecutionResult {
    const v = validate(block);
    if ('reason' in v) return { valid: false, reason: v.reason };
    let ex: Executed;
    try {
      ex = run(block.header, v.txs);
    } catch (err) {
      if (err instanceof VmFault) {
        log('error', 'LOCAL_VM_FAULT', { height: block.header.height, code: err.code, message: err.message });
        return { valid: false, reason: `local VM fault: ${err.message}` };
      }
      throw err;
    }
    remember(hash, ex);
    return {
      valid: true,
      txRoot: merkleRoot(block.txs),
      stateRoot: ex.result.stateRoot,
      receiptsRoot: ex.result.receiptsRoot,
    };
  }

  function rootsMatch(block: Block, r: ExecutionResult): boolean {
    return (
      r.valid &&
      bytesEqual(r.txRoot, block.header.txRoot) &&
      bytesEqual(r.stateRoot, block.header.stateRoot) &&
      bytesEqual(r.receiptsRoot, block.header.receiptsRoot)
    );
  }

  async function commitExecuted(
    block: Block,
    hash: Bytes,
    certificate: CommitCertificate,
    ex: Executed,
  ): Promise<void> {
    const height = block.header.height;
    // Read before commitOps, which closes the view.
    const plan = planScheduleChange(ex.view, height, ex.result.receipts);
    const sc = state.commitOps(ex.view, height);
    if (!bytesEqual(sc.root, block.header.stateRoot)) {
      throw new ChainError('STATE_MISMATCH', `state root at ${height} differs from the decided header`, {
        height,
        local: toHex(sc.root),
        header: toHex(block.header.stateRoot),
      });
    }
    const extraOps = plan === undefined ? sc.ops : [...sc.ops, ...plan.ops];
    await blocks.commitBlock({ block, certificate, receipts: ex.result.receipts, extraOps });
    sc.finalize();
    tip = { height, header: block.header, hash, timestamp: block.header.timestamp, stateRoot: sc.root };
    executed.clear();
    mempool.update(ex.txs);
    if (plan !== undefined) adoptSchedule(plan);
    const committed: CommittedBlock = { block, hash, certificate, receipts: ex.result.receipts, txs: ex.txs };
    for (const l of listeners) {
      try {
        l(committed);
      } catch (err) {
        log('error', 'COMMIT_LISTENER_FAILED', { message: (err as Error).message });
      }
    }
  }

  return {
    chainId,
    genesis,
    genesisHash: gHash,
    mempool,
    blocks,
    state,
    executor,
    tip: () => tip,
    nextHeightStart: () => ({
      height: tip.height + 1,
      prevHash: tip.hash,
      prevTimestamp: tip.timestamp,
      validators: validatorsAt(schedule, tip.height + 1),
    }),
    validatorsAt: (height) => validatorsAt(schedule, height),
    validatorEpochAt: (height) => epochAt(schedule, height),

    executeProposal(block) {
      const hash = hashHeader(block.header);
      const cached = executed.get(toHex(hash));
      // The header hash does not cover the body: a cached result stands only for the same body.
      if (cached !== undefined && bytesEqual(merkleRoot(block.txs), block.header.txRoot)) {
        return {
          valid: true,
          txRoot: block.header.txRoot,
          stateRoot: cached.result.stateRoot,
          receiptsRoot: cached.result.receiptsRoot,
        };
      }
      return execute(block, hash);
    },

    buildProposal(p) {
      const c = genesis.consensus;
      for (let attempt = 0; ; attempt++) {
        const txs =
          attempt < MAX_BUILD_ATTEMPTS
            ? mempool.reap({ maxTxs: proposalTxLimit(), maxBytes: c.maxBlockBytes, maxGas: c.maxBlockGas })
            : [];
        try {
          return build(p, txs);
        } catch (err) {
          // A local VM fault is not the transaction's receipt: drop the transaction named in the
          // fault from this node's mempool and build again without it (an empty block at worst).
          if (!(err instanceof VmFault) || attempt >= MAX_BUILD_ATTEMPTS) throw err;
          const hash = typeof err.meta['txHash'] === 'string' ? err.meta['txHash'] : undefined;
          log('warn', 'PROPOSAL_TX_DROPPED', { code: err.code, txHash: hash ?? null, message: err.message });
          if (hash === undefined || !mempool.remove(Buffer.from(hash.slice(2), 'hex')))
            attempt = MAX_BUILD_ATTEMPTS - 1;
        }
      }
    },

    async commit(block, certificate) {
      if (block.header.height !== tip.height + 1) return false;
      const hash = hashHeader(block.header);
      let ex = executed.get(toHex(hash));
      if (ex === undefined) {
        const r = execute(block, hash);
        if (!rootsMatch(block, r)) {
          throw new ChainError(
            'STATE_MISMATCH',
            `decided block ${block.header.height} does not execute to its header`,
            {
              height: block.header.height,
              reason: r.valid ? 'roots differ' : r.reason,
            },
          );
        }
        ex = executed.get(toHex(hash))!;
      }
      await commitExecuted(block, hash, certificate, ex);
      return true;
    },

    async applySyncEntry(entry) {
      let block: Block;
      let certificate: CommitCertificate;
      try {
        const f = readArray(unpackCanonical(entry, 'sync entry'), 2, 'sync entry');
        block = decodeBlock(readBytes(f[0], 'sync entry.block'));
        certificate = decodeCertificate(readBytes(f[1], 'sync entry.certificate'));
      } catch (err) {
        throw new ChainError('BAD_SYNC_ENTRY', `sync entry: ${(err as Error).message}`, {});
      }
      const height = block.header.height;
      if (height !== tip.height + 1) return false;
      const hash = hashHeader(block.header);
      const fault = checkCertificate(certificate, chainId, hash, height, validatorsAt(schedule, height));
      if (fault !== null)
        throw new ChainError('BAD_SYNC_ENTRY', `sync entry ${height}: certificate ${fault}`, {});
      const v = validate(block);
      if ('reason' in v) throw new ChainError('BAD_SYNC_ENTRY', `sync entry ${height}: ${v.reason}`, {});
      const r = execute(block, hash);
      if (!rootsMatch(block, r)) {
        // A certified block whose body matches its header but does not execute to its roots here
        // means this node's execution differs from the quorum's: a broken invariant, not a peer's fault.
        throw new ChainError('STATE_MISMATCH', `certified block ${height} does not execute to its header`, {
          height,
          reason: r.valid ? 'roots differ' : r.reason,
        });
      }
      await commitExecuted(block, hash, certificate, executed.get(toHex(hash))!);
      return true;
    },

    async syncEntry(height) {
      const b = await blocks.getBlockBytes(height);
      const c = await blocks.getCertificateBytes(height);
      if (b === undefined || c === undefined) return undefined;
      return encodeSyncEntry(b, c);
    },

    onCommit(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
