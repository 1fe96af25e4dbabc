import { toHex, type Bytes } from '../core/bytes.ts';
import { TrellisError } from '../core/errors.ts';
import { addressOf } from '../core/keys.ts';
import { decodeSignedTx, verifyTx, type SignedTransaction } from '../core/types.ts';

/** Why a transaction was refused by the mempool. */
export type MempoolErrorCode =
  | 'MALFORMED'
  | 'WRONG_CHAIN'
  | 'TOO_LARGE'
  | 'BAD_SIGNATURE'
  | 'NONCE_TOO_LOW'
  | 'NONCE_TOO_HIGH'
  | 'DUPLICATE'
  | 'GAS_LIMIT'
  | 'MEMPOOL_FULL'
  | 'SENDER_FULL';

/** Raised when a transaction is refused; it changes nothing in the pool. */
export class MempoolError extends TrellisError<MempoolErrorCode> {}

/** Mempool options: plain data with defaults. */
export interface MempoolOptions {
  readonly chainId: string;
  /** Most transactions held; clients can grow the pool, so it is bounded. */
  readonly maxTxs?: number;
  /** Most bytes held (signed tx bytes). */
  readonly maxBytes?: number;
  /** Most transactions held per sender, ready and queued. */
  readonly maxPerSender?: number;
  /** How far beyond the sender's next nonce a queued (future) nonce may be. */
  readonly maxNonceGap?: number;
  /** Largest gasLimit one transaction may ask for (the block gas limit). */
  readonly maxTxGas?: number;
}

/** What the mempool needs from the node. */
export interface MempoolDeps {
  /** The next nonce of an address in the committed state. */
  nextNonce(address: Bytes): number;
}

/** Limits of one reap (one block proposal). */
export interface ReapLimits {
  readonly maxTxs: number;
  readonly maxBytes: number;
  readonly maxGas: number;
}

interface SenderQueue {
  /** The next nonce this sender must use, per committed state. */
  base: number;
  /** Pending transactions by nonce. */
  readonly byNonce: Map<number, SignedTransaction>;
}

/** The mempool: validated transactions waiting for a block, in per-sender nonce order. */
export interface Mempool {
  /**
   * Validates (shape, chainId, size, signature, nonce) and adds a transaction given as wire bytes
   * or decoded. Returns the decoded transaction; throws MempoolError and changes nothing if refused.
   * `verified: true` skips the signature check: only for a transaction whose signature the caller
   * has just verified (node/txVerifier.ts does it off the main thread).
   */
  add(tx: Bytes | SignedTransaction, opts?: { readonly verified?: boolean }): SignedTransaction;
  /** Decodes wire bytes as {@link add} does; throws MempoolError (MALFORMED, WRONG_CHAIN, TOO_LARGE). */
  decode(tx: Bytes): SignedTransaction;
  /**
   * Every check of {@link add} but the signature, without adding: lets a caller verify the
   * signature elsewhere only for transactions that would be taken. Throws MempoolError.
   */
  check(tx: SignedTransaction): void;
  /**
   * The held transaction with exactly these wire bytes: decoded and verified when it was admitted,
   * so a proposal that carries it needs neither again.
   */
  lookup(wire: Bytes): SignedTransaction | undefined;
  /** True when the pool holds a transaction with this hash. */
  has(hash: Bytes): boolean;
  /**
   * Transactions ready for a block (each sender's consecutive nonces from its next nonce), senders
   * taken round-robin in order of arrival, within the limits. Removes nothing.
   */
  reap(limits: ReapLimits): SignedTransaction[];
  /** Drops one transaction (e.g. one that faulted this node's VM); true if it was held. */
  remove(hash: Bytes): boolean;
  /** After a block commits: drops included and stale transactions, re-reads the senders' nonces. */
  update(committed: readonly SignedTransaction[]): void;
  /** Number of transactions held. */
  readonly size: number;
  /** Bytes held. */
  readonly bytes: number;
  /** Number of transactions ready for a block. */
  readyCount(): number;
}

function senderKey(publicKey: Bytes): string {
  return Buffer.from(publicKey).toString('latin1');
}

/** Creates a mempool. */
export function createMempool(options: MempoolOptions, deps: MempoolDeps): Mempool {
  const maxTxs = options.maxTxs ?? 50_000;
  const maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
  const maxPerSender = options.maxPerSender ?? 2_000;
  const maxNonceGap = options.maxNonceGap ?? 2_000;
  const maxTxGas = options.maxTxGas ?? 50_000_000;
  // Senders in order of first arrival; both maps bounded by maxTxs (a sender is removed when empty).
  const senders = new Map<string, SenderQueue>();
  const byHash = new Map<string, SignedTransaction>();
  /** The same transactions keyed by their wire bytes (as latin1 strings), for {@link Mempool.lookup}. */
  const byWire = new Map<string, SignedTransaction>();
  let bytesHeld = 0;
  const wireKey = (bytes: Bytes): string =>
    Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');

  function refuse(code: MempoolErrorCode, message: string, meta: Record<string, unknown> = {}): never {
    throw new MempoolError(code, message, meta);
  }

  function decode(tx: Bytes | SignedTransaction): SignedTransaction {
    if (!(tx instanceof Uint8Array)) return tx;
    try {
      return decodeSignedTx(tx, options.chainId);
    } catch (err) {
      const e = err as TrellisError;
      const code: MempoolErrorCode =
        e.code === 'WRONG_CHAIN' ? 'WRONG_CHAIN' : e.code === 'TOO_LARGE' ? 'TOO_LARGE' : 'MALFORMED';
      return refuse(code, e.message, { cause: e.code });
    }
  }

  function removeTx(q: SenderQueue, key: string, nonce: number): void {
    const stx = q.byNonce.get(nonce);
    if (stx === undefined) return;
    q.byNonce.delete(nonce);
    byHash.delete(toHex(stx.hash));
    byWire.delete(wireKey(stx.bytes));
    bytesHeld -= stx.bytes.length;
    if (q.byNonce.size === 0) senders.delete(key);
  }

  /** Every check but the signature; returns the sender's queue key and next nonce. */
  function precheck(stx: SignedTransaction): { key: string; base: number; existing?: SenderQueue } {
    if (stx.tx.chainId !== options.chainId) {
      refuse('WRONG_CHAIN', `chainId "${stx.tx.chainId}", expected "${options.chainId}"`);
    }
    const hash = toHex(stx.hash);
    if (byHash.has(hash)) refuse('DUPLICATE', `transaction ${hash} is already pending`, { hash });
    if (stx.tx.gasLimit > maxTxGas) {
      refuse('GAS_LIMIT', `gasLimit ${stx.tx.gasLimit} exceeds the block gas limit ${maxTxGas}`);
    }
    const key = senderKey(stx.tx.from);
    const existing = senders.get(key);
    const base = existing?.base ?? deps.nextNonce(addressOf(stx.tx.from));
    const nonce = stx.tx.nonce;
    if (nonce < base)
      refuse('NONCE_TOO_LOW', `nonce ${nonce} already used; next is ${base}`, { nonce, next: base });
    if (nonce > base + maxNonceGap) {
      refuse('NONCE_TOO_HIGH', `nonce ${nonce} is more than ${maxNonceGap} ahead of the next nonce ${base}`, {
        nonce,
        next: base,
      });
    }
    if (existing?.byNonce.has(nonce) === true) {
      refuse('DUPLICATE', `nonce ${nonce} of this sender is already pending`, { nonce });
    }
    if ((existing?.byNonce.size ?? 0) >= maxPerSender) {
      refuse('SENDER_FULL', `sender already has ${maxPerSender} pending transactions`);
    }
    if (byHash.size >= maxTxs || bytesHeld + stx.bytes.length > maxBytes) {
      refuse('MEMPOOL_FULL', `mempool full (${byHash.size} transactions, ${bytesHeld} bytes)`);
    }
    return existing === undefined ? { key, base } : { key, base, existing };
  }

  return {
    add(input, opts) {
      const stx = decode(input);
      const { key, base, existing } = precheck(stx);
      // Verify last: it is the expensive check, and everything cheaper has passed.
      if (opts?.verified !== true && !verifyTx(stx)) {
        refuse('BAD_SIGNATURE', 'signature does not match the sender and transaction');
      }
      const q = existing ?? { base, byNonce: new Map<number, SignedTransaction>() };
      if (existing === undefined) senders.set(key, q);
      q.byNonce.set(stx.tx.nonce, stx);
      byHash.set(toHex(stx.hash), stx);
      byWire.set(wireKey(stx.bytes), stx);
      bytesHeld += stx.bytes.length;
      return stx;
    },

    decode,

    check(stx) {
      precheck(stx);
    },

    lookup(wire) {
      return byWire.get(wireKey(wire));
    },

    has(hash) {
      return byHash.has(toHex(hash));
    },

    reap(limits) {
      const out: SignedTransaction[] = [];
      let bytes = 0;
      let gas = 0;
      const cursors = [...senders.values()].map((q) => ({ q, next: q.base }));
      let progressed = true;
      while (progressed && out.length < limits.maxTxs) {
        progressed = false;
        for (const c of cursors) {
          const stx = c.q.byNonce.get(c.next);
          if (stx === undefined) continue;
          if (bytes + stx.bytes.length > limits.maxBytes || gas + stx.tx.gasLimit > limits.maxGas) continue;
          out.push(stx);
          bytes += stx.bytes.length;
          gas += stx.tx.gasLimit;
          c.next++;
          progressed = true;
          if (out.length >= limits.maxTxs) break;
        }
      }
      return out;
    },

    remove(hash) {
      const held = byHash.get(toHex(hash));
      if (held === undefined) return false;
      const key = senderKey(held.tx.from);
      const q = senders.get(key);
      if (q !== undefined) removeTx(q, key, held.tx.nonce);
      return true;
    },

    update(committed) {
      const touched = new Set<string>();
      for (const stx of committed) touched.add(senderKey(stx.tx.from));
      for (const key of touched) {
        const q = senders.get(key);
        if (q === undefined) continue;
        const publicKey = Buffer.from(key, 'latin1');
        q.base = deps.nextNonce(addressOf(publicKey));
        for (const nonce of [...q.byNonce.keys()]) if (nonce < q.base) removeTx(q, key, nonce);
      }
      for (const stx of committed) {
        const held = byHash.get(toHex(stx.hash));
        if (held !== undefined) {
          const key = senderKey(held.tx.from);
          const q = senders.get(key);
          if (q !== undefined) removeTx(q, key, held.tx.nonce);
        }
      }
    },

    get size() {
      return byHash.size;
    },
    get bytes() {
      return bytesHeld;
    },
    readyCount() {
      let n = 0;
      for (const q of senders.values()) for (let i = q.base; q.byNonce.has(i); i++) n++;
      return n;
    },
  };
}
