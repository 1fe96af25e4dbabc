// Goal: the mempool admits only valid transactions, keeps per-sender nonce order, queues future nonces, and stays bounded.
import { describe, expect, it } from 'vitest';
import { toHex, type Bytes } from '../../core/bytes.ts';
import { pack } from '../../core/codec.ts';
import { addressOf, generateKeyPair, type KeyPair } from '../../core/keys.ts';
import { signTx, type SignedTransaction } from '../../core/types.ts';
import { createMempool, MempoolError, type MempoolOptions } from '../../node/mempool.ts';

const chainId = 'mp-test';
const limits = { maxTxs: 1000, maxBytes: 10_000_000, maxGas: 1e12 };

function tx(kp: KeyPair, nonce: number, gasLimit = 100): SignedTransaction {
  return signTx(
    {
      chainId,
      from: kp.publicKey,
      nonce,
      kind: 'call',
      contract: 'c',
      method: 'm',
      args: { nonce },
      gasLimit,
    },
    kp.secretKey,
  );
}

function setup(options: Partial<MempoolOptions> = {}) {
  const nonces = new Map<string, number>();
  const pool = createMempool({ chainId, ...options }, { nextNonce: (a: Bytes) => nonces.get(toHex(a)) ?? 0 });
  return { pool, setNonce: (kp: KeyPair, n: number) => nonces.set(toHex(addressOf(kp.publicKey)), n) };
}

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(MempoolError);
    return (e as MempoolError).code;
  }
  return 'ACCEPTED';
}

describe('mempool', () => {
  it('refuses bad bytes, wrong chain, bad signature, low nonce, far-future nonce and duplicates, changing nothing', () => {
    const { pool, setNonce } = setup({ maxNonceGap: 10 });
    const a = generateKeyPair();
    setNonce(a, 5);
    expect(code(() => pool.add(new Uint8Array([1, 2, 3])))).toBe('MALFORMED');
    const other = signTx(
      {
        chainId: 'other',
        from: a.publicKey,
        nonce: 5,
        kind: 'call',
        contract: 'c',
        method: 'm',
        args: null,
        gasLimit: 1,
      },
      a.secretKey,
    );
    expect(code(() => pool.add(other.bytes))).toBe('WRONG_CHAIN');
    const good = tx(a, 5);
    const badSig = Uint8Array.from(good.signature);
    badSig[0]! ^= 1;
    expect(code(() => pool.add(pack([good.body, badSig])))).toBe('BAD_SIGNATURE');
    const forgedSender = generateKeyPair();
    expect(code(() => pool.add(pack([tx(forgedSender, 0).body, good.signature])))).toBe('BAD_SIGNATURE');
    expect(code(() => pool.add(tx(a, 4).bytes))).toBe('NONCE_TOO_LOW');
    expect(code(() => pool.add(tx(a, 16).bytes))).toBe('NONCE_TOO_HIGH');
    expect(pool.size).toBe(0);
    expect(code(() => pool.add(good.bytes))).toBe('ACCEPTED');
    expect(code(() => pool.add(good.bytes))).toBe('DUPLICATE');
    expect(pool.size).toBe(1);
  });

  it('queues future nonces and releases them in order once the gap fills', () => {
    const { pool, setNonce } = setup();
    const a = generateKeyPair();
    pool.add(tx(a, 2));
    pool.add(tx(a, 1));
    expect(pool.reap(limits)).toHaveLength(0);
    expect(pool.readyCount()).toBe(0);
    pool.add(tx(a, 0));
    expect(pool.reap(limits).map((s) => s.tx.nonce)).toEqual([0, 1, 2]);
    const committed = pool.reap(limits).slice(0, 2);
    setNonce(a, 2);
    pool.update(committed);
    expect(pool.size).toBe(1);
    expect(pool.reap(limits).map((s) => s.tx.nonce)).toEqual([2]);
  });

  it('reaps senders round-robin within tx, byte and gas limits', () => {
    const { pool } = setup();
    const a = generateKeyPair();
    const b = generateKeyPair();
    for (let i = 0; i < 3; i++) {
      pool.add(tx(a, i));
      pool.add(tx(b, i));
    }
    const order = pool.reap(limits).map((s) => (s.tx.from === a.publicKey ? 'a' : 'b') + s.tx.nonce);
    expect(order).toEqual(['a0', 'b0', 'a1', 'b1', 'a2', 'b2']);
    expect(pool.reap({ ...limits, maxTxs: 3 })).toHaveLength(3);
    expect(pool.reap({ ...limits, maxGas: 250 })).toHaveLength(2);
    const oneTx = tx(a, 0).bytes.length;
    expect(pool.reap({ ...limits, maxBytes: oneTx })).toHaveLength(1);
  });

  it('stays within its bounds: total, per sender, and bytes', () => {
    const { pool } = setup({ maxTxs: 5, maxPerSender: 3 });
    const a = generateKeyPair();
    for (let i = 0; i < 3; i++) pool.add(tx(a, i));
    expect(code(() => pool.add(tx(a, 3).bytes))).toBe('SENDER_FULL');
    const b = generateKeyPair();
    pool.add(tx(b, 0));
    pool.add(tx(b, 1));
    expect(code(() => pool.add(tx(generateKeyPair(), 0).bytes))).toBe('MEMPOOL_FULL');
    expect(pool.size).toBe(5);
    const small = setup({ maxBytes: tx(a, 0).bytes.length + 10 });
    small.pool.add(tx(a, 0));
    expect(code(() => small.pool.add(tx(a, 1).bytes))).toBe('MEMPOOL_FULL');
    expect(code(() => setup({ maxTxGas: 50 }).pool.add(tx(a, 0, 100).bytes))).toBe('GAS_LIMIT');
  });

  it('removes one transaction by hash, and later nonces of its sender wait again', () => {
    const { pool } = setup();
    const a = generateKeyPair();
    const t0 = tx(a, 0);
    pool.add(t0);
    pool.add(tx(a, 1));
    expect(pool.remove(t0.hash)).toBe(true);
    expect(pool.remove(t0.hash)).toBe(false);
    expect(pool.size).toBe(1);
    expect(pool.reap(limits)).toHaveLength(0);
  });

  it('checks without adding, and finds held transactions by their exact wire bytes', () => {
    const { pool } = setup({ maxTxs: 2 });
    const a = generateKeyPair();
    const t0 = tx(a, 0);
    const decoded = pool.decode(t0.bytes);
    expect(toHex(decoded.hash)).toBe(toHex(t0.hash));
    expect(code(() => pool.decode(new Uint8Array([0xc1])))).toBe('MALFORMED');
    pool.check(decoded);
    expect(pool.size).toBe(0);
    expect(pool.lookup(t0.bytes)).toBeUndefined();
    pool.add(decoded, { verified: true });
    expect(pool.lookup(new Uint8Array(t0.bytes))).toBe(decoded);
    expect(code(() => pool.check(decoded))).toBe('DUPLICATE');
    expect(code(() => pool.check(tx(a, 5000)))).toBe('NONCE_TOO_HIGH');
    pool.add(tx(a, 1).bytes);
    expect(code(() => pool.check(tx(a, 2)))).toBe('MEMPOOL_FULL');
    // Once committed, the transaction is no longer held, nor found.
    pool.update([decoded]);
    expect(pool.lookup(t0.bytes)).toBeUndefined();
  });
});
