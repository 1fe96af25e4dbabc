import { type Bytes } from '../../../core/bytes.ts';
import { sha256, sha256Parts } from '../../../core/hash.ts';
import { merkleRoot } from '../../../core/merkle.ts';
import { hashValidators, type Block, type BlockHeader, type Validator } from '../../../core/types.ts';
import type { ExecutionResult } from '../../../consensus/stateMachine.ts';

/**
 * A deterministic stand-in for the VM: a block's state root is SHA-256 over the parent's state
 * root and the block's transactions, so any two nodes executing the same block on the same parent
 * agree, and any header claiming other roots is caught. A transaction whose first byte is 0xff is
 * "invalid" and makes the whole block invalid (a byzantine proposer uses it).
 */

export const GENESIS_STATE_ROOT: Bytes = sha256(Buffer.from('trellis-sim-genesis-state'));

export function genesisHash(chainId: string): Bytes {
  return sha256(Buffer.from(`trellis-sim-genesis:${chainId}`));
}

export interface Roots {
  readonly txRoot: Bytes;
  readonly stateRoot: Bytes;
  readonly receiptsRoot: Bytes;
}

export function fakeExecute(parentStateRoot: Bytes, txs: readonly Bytes[]): Roots | { invalid: string } {
  for (const tx of txs) if (tx[0] === 0xff) return { invalid: 'transaction rejected by execution' };
  return {
    txRoot: merkleRoot(txs),
    stateRoot: sha256Parts(parentStateRoot, ...txs),
    receiptsRoot: merkleRoot(txs.map((t) => sha256(t))),
  };
}

export function executionResult(parentStateRoot: Bytes, block: Block): ExecutionResult {
  const r = fakeExecute(parentStateRoot, block.txs);
  return 'invalid' in r ? { valid: false, reason: r.invalid } : { valid: true, ...r };
}

export interface BuildParams {
  readonly chainId: string;
  readonly height: number;
  readonly round: number;
  readonly prevHash: Bytes;
  readonly proposer: Bytes;
  readonly validators: readonly Validator[];
  readonly timestamp: number;
  readonly parentStateRoot: Bytes;
  readonly txs: readonly Bytes[];
  /** Byzantine: claim this state root instead of the executed one. */
  readonly forgeStateRoot?: Bytes;
}

/** Builds a block with the real core header type, roots from {@link fakeExecute}. */
export function buildBlock(p: BuildParams): Block {
  const r = fakeExecute(p.parentStateRoot, p.txs);
  // A block with an invalid transaction still gets well-formed roots; execution will refuse it.
  const roots: Roots =
    'invalid' in r ? { ...(fakeExecute(p.parentStateRoot, []) as Roots), txRoot: merkleRoot(p.txs) } : r;
  const header: BlockHeader = {
    chainId: p.chainId,
    height: p.height,
    prevHash: p.prevHash,
    timestamp: p.timestamp,
    proposer: p.proposer,
    round: p.round,
    txRoot: roots.txRoot,
    stateRoot: p.forgeStateRoot ?? roots.stateRoot,
    receiptsRoot: roots.receiptsRoot,
    validatorsHash: hashValidators(p.validators),
  };
  return { header, txs: [...p.txs] };
}
