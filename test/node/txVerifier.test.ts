// Goal: signatures verified on worker threads give exactly the answers of verifyTx on this thread,
// in order, for valid and forged transactions alike; the pending work is bounded.
import { afterAll, describe, expect, it } from 'vitest';
import { keyPairFromSecret } from '../../core/keys.ts';
import { sha256 } from '../../core/hash.ts';
import { signTx, verifyTx, type SignedTransaction } from '../../core/types.ts';
import { createTxVerifier, type TxVerifier } from '../../node/txVerifier.ts';

const keys = Array.from({ length: 8 }, (_, i) => keyPairFromSecret(sha256(Buffer.from(`verifier/${i}`))));

function tx(i: number): SignedTransaction {
  const k = keys[i % keys.length]!;
  return signTx(
    {
      chainId: 'verifier-test',
      from: k.publicKey,
      nonce: i,
      kind: 'call',
      contract: 'token',
      method: 'transfer',
      args: { amount: i, memo: 'x'.repeat(i % 50) },
      gasLimit: 100_000,
    },
    k.secretKey,
  );
}

/** A copy whose signature was made by another key, or whose body changed after signing. */
function forge(stx: SignedTransaction, how: number): SignedTransaction {
  if (how === 0) return { ...stx, signature: tx(stx.tx.nonce + 1).signature };
  const body = new Uint8Array(stx.body);
  body[body.length - 1] = body.at(-1)! ^ 1;
  return { ...stx, body };
}

const open: TxVerifier[] = [];
afterAll(async () => {
  for (const v of open) await v.close();
});

describe('txVerifier', () => {
  it('answers like verifyTx, in order, across workers and batch boundaries', async () => {
    const v = createTxVerifier({ workers: 2, maxBatch: 64 });
    open.push(v);
    const txs = Array.from({ length: 500 }, (_, i) => (i % 7 === 3 ? forge(tx(i), i % 2) : tx(i)));
    const expected = txs.map((t) => verifyTx(t));
    expect(expected.filter((ok) => !ok).length).toBeGreaterThan(60);
    // Several concurrent calls, as RPC and gossip make them.
    const parts = [txs.slice(0, 1), txs.slice(1, 200), txs.slice(200)];
    const got = (await Promise.all(parts.map((p) => v.verify(p)))).flat();
    expect(got).toEqual(expected);
    expect(v.pending).toBe(0);
  });

  it('with no workers verifies on the calling thread', async () => {
    const v = createTxVerifier({ workers: 0 });
    open.push(v);
    const txs = [tx(1), forge(tx(2), 0), tx(3)];
    expect(await v.verify(txs)).toEqual([true, false, true]);
  });

  it('refuses work beyond its bound, and after close', async () => {
    const v = createTxVerifier({ workers: 1, maxPending: 10 });
    const first = v.verify(Array.from({ length: 8 }, (_, i) => tx(i)));
    await expect(v.verify([tx(8), tx(9), tx(10)])).rejects.toMatchObject({ code: 'BUSY' });
    expect(await first).toEqual(new Array(8).fill(true));
    await v.close();
    await expect(v.verify([tx(1)])).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('a wrongly sized signature is false, not a broken batch', async () => {
    const v = createTxVerifier({ workers: 1 });
    open.push(v);
    const bad = { ...tx(4), signature: new Uint8Array(63) };
    expect(await v.verify([tx(3), bad, tx(5)])).toEqual([true, false, true]);
  });
});
