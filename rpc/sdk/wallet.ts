/**
 * Keys and wallets: a wallet signs transactions for one key, hands out its nonces in order, keeps
 * transactions that run ahead of the node's nonce window queued on the client (never refused for
 * being early), and retries what the node turns away for a passing reason (mempool full, nonce
 * too far ahead, rate limit, lost connection).
 *
 * A wallet assumes it is the only sender for its key. If another sender uses the key, the node
 * answers NONCE_TOO_LOW; the wallet then resynchronises from the chain and reports the failure.
 */
import { fromHex, toHex, type Bytes } from '../../core/bytes.ts';
import type { Value } from '../../core/codec.ts';
import {
  addressOf,
  generateKeyPair,
  keyPairFromSecret,
  SECRET_KEY_BYTES,
  type KeyPair,
} from '../../core/keys.ts';
import { signTx, type SignedTransaction, type TxKind } from '../../core/types.ts';
import { RpcError } from '../errors.ts';
import type { ReceiptView, TrellisClient } from './client.ts';
import { SdkError } from './errors.ts';

/** What to call (or deploy). */
export interface CallRequest {
  readonly contract: string;
  /** Empty for lifecycle kinds. */
  readonly method?: string;
  readonly args?: Value;
  /** Default `call`. */
  readonly kind?: TxKind;
  readonly gasLimit?: number;
}

/** A transaction the node accepted into its mempool. */
export interface SentTx {
  readonly hash: Bytes;
  readonly nonce: number;
  readonly tx: SignedTransaction;
}

/** Wallet options. */
export interface WalletOptions {
  /** Chain to sign for; default: the node's. */
  readonly chainId?: string;
  /**
   * Most transactions sent but not yet committed; further sends wait on the client. Default 64,
   * below the mempool's per-sender nonce gap so the node never has to refuse them.
   */
  readonly window?: number;
  /** Most sends waiting for a slot; beyond it send() fails with QUEUE_FULL. Default 100000. */
  readonly maxQueued?: number;
  /** Time a send may wait (window, retries) before failing with SEND_TIMEOUT. Default 120 s. */
  readonly sendTimeoutMs?: number;
  /** Default gas limit. Default 1,000,000. */
  readonly gasLimit?: number;
  /** How often a full window re-reads the committed nonce. Default 50 ms. */
  readonly pollMs?: number;
}

/** Refusals that pass: the same transaction is accepted later. */
const RETRYABLE_REASONS = new Set(['NONCE_TOO_HIGH', 'MEMPOOL_FULL', 'SENDER_FULL']);
const RETRYABLE_CODES = new Set(['RATE_LIMITED', 'UNAVAILABLE', 'TRANSPORT', 'TIMEOUT']);

/** A signing wallet bound to a client. */
export interface Wallet {
  readonly key: KeyPair;
  readonly address: Bytes;
  readonly client: TrellisClient;
  /** Signs a call with an explicit nonce (no nonce management, nothing sent). */
  sign(call: CallRequest, nonce: number): Promise<SignedTransaction>;
  /** Takes the next nonce, signs and sends; resolves once the node accepted the transaction. */
  send(call: CallRequest): Promise<SentTx>;
  /** Sends and waits for the receipt. */
  sendAndWait(call: CallRequest, timeoutMs?: number): Promise<ReceiptView>;
  /** Re-reads the next nonce from the chain. */
  resync(): Promise<void>;
  /** Sends waiting for a window slot. */
  readonly queued: number;
  /** Nonces handed out that the chain has not committed yet, as far as the wallet knows. */
  readonly inFlight: number;
}

/** Creates a wallet for `key` over `client`. */
export function createWallet(client: TrellisClient, key: KeyPair, options: WalletOptions = {}): Wallet {
  const address = addressOf(key.publicKey);
  const window = options.window ?? 64;
  const maxQueued = options.maxQueued ?? 100_000;
  const sendTimeoutMs = options.sendTimeoutMs ?? 120_000;
  const pollMs = options.pollMs ?? 50;
  let next: number | undefined;
  let committed = 0;
  let init: Promise<void> | undefined;
  let queued = 0;
  let polling: Promise<void> | undefined;
  let chainId: Promise<string> | undefined;

  const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

  function chain(): Promise<string> {
    chainId ??= options.chainId !== undefined ? Promise.resolve(options.chainId) : client.chainId();
    return chainId;
  }

  function ensureInit(): Promise<void> {
    init ??= client.nextNonce(address).then(
      (n) => {
        committed = n;
        next = Math.max(next ?? 0, n);
      },
      (err: unknown) => {
        init = undefined;
        throw err;
      },
    );
    return init;
  }

  // One poll at a time, shared by every waiting sender.
  function refreshCommitted(): Promise<void> {
    polling ??= client
      .nextNonce(address)
      .then((n) => {
        committed = Math.max(committed, n);
      })
      .finally(() => (polling = undefined));
    return polling;
  }

  async function takeNonce(deadline: number): Promise<number> {
    let waiting = false;
    try {
      for (;;) {
        await ensureInit();
        // `next` is undefined again if a failed send made the wallet resynchronise meanwhile.
        if (next !== undefined && next - committed < window) return next++;
        if (!waiting) {
          if (queued >= maxQueued)
            throw new SdkError('QUEUE_FULL', `more than ${maxQueued} sends waiting`, {});
          queued++;
          waiting = true;
        }
        if (performance.now() > deadline) {
          throw new SdkError('SEND_TIMEOUT', `no nonce slot within ${sendTimeoutMs} ms`, {});
        }
        await refreshCommitted().catch(() => undefined);
        if (next !== undefined && next - committed >= window) await sleep(pollMs);
      }
    } finally {
      if (waiting) queued--;
    }
  }

  async function sign(call: CallRequest, nonce: number): Promise<SignedTransaction> {
    return signTx(
      {
        chainId: await chain(),
        from: key.publicKey,
        nonce,
        kind: call.kind ?? 'call',
        contract: call.contract,
        method: call.method ?? '',
        args: call.args ?? null,
        gasLimit: call.gasLimit ?? options.gasLimit ?? 1_000_000,
      },
      key.secretKey,
    );
  }

  async function submit(stx: SignedTransaction, deadline: number): Promise<void> {
    let backoff = 20;
    for (;;) {
      try {
        await client.sendTx(stx.bytes);
        return;
      } catch (err) {
        if (!(err instanceof RpcError)) throw err;
        const reason = err.meta['reason'];
        if (err.code === 'TX_REJECTED' && reason === 'DUPLICATE') return;
        if (err.code === 'TX_REJECTED' && reason === 'NONCE_TOO_LOW') {
          // Our own earlier attempt may have landed (the answer was lost); otherwise the key has another user.
          const mine = await client.getReceipt(stx.hash).catch(() => undefined);
          if (mine !== undefined) return;
          next = undefined;
          init = undefined;
          throw err;
        }
        const retry =
          (err.code === 'TX_REJECTED' && typeof reason === 'string' && RETRYABLE_REASONS.has(reason)) ||
          RETRYABLE_CODES.has(err.code);
        if (!retry) {
          // The nonce is now a hole: later nonces wait behind it until the wallet resynchronises.
          next = undefined;
          init = undefined;
          throw err;
        }
        if (performance.now() + backoff > deadline) {
          throw new SdkError(
            'SEND_TIMEOUT',
            `transaction ${toHex(stx.hash)} not accepted within ${sendTimeoutMs} ms`,
            {
              lastError: err.message,
            },
          );
        }
        await sleep(backoff);
        backoff = Math.min(1000, backoff * 2);
      }
    }
  }

  const wallet: Wallet = {
    key,
    address,
    client,
    sign,
    async send(call) {
      const deadline = performance.now() + sendTimeoutMs;
      const nonce = await takeNonce(deadline);
      let stx: SignedTransaction;
      try {
        stx = await sign(call, nonce);
      } catch (err) {
        // Nothing was sent: give the nonce back if no later one was handed out meanwhile.
        if (next === nonce + 1) next = nonce;
        throw err;
      }
      await submit(stx, deadline);
      return { hash: stx.hash, nonce, tx: stx };
    },
    async sendAndWait(call, timeoutMs = 60_000) {
      const sent = await wallet.send(call);
      const receipt = await client.waitTx(sent.hash, timeoutMs);
      committed = Math.max(committed, sent.nonce + 1);
      return receipt;
    },
    async resync() {
      next = undefined;
      init = undefined;
      await ensureInit();
    },
    get queued() {
      return queued;
    },
    get inFlight() {
      return next === undefined ? 0 : next - committed;
    },
  };
  return wallet;
}

/** A fresh random key. */
export function generateKey(): KeyPair {
  return generateKeyPair();
}

/** The key of a 32-byte secret given as 0x-hex. */
export function keyFromSecretHex(secretHex: string): KeyPair {
  return keyPairFromSecret(fromHex(secretHex.trim(), 'secret key', SECRET_KEY_BYTES));
}
