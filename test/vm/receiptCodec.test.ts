// Goal: the executor's receipt encoding (vm/receiptCodec.ts, which splices in the canonical bytes
// the guest sent) is byte-identical to core's encodeReceipt, so the receipts root is unchanged.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeValue, type Value } from '../../core/codec.ts';
import { merkleRoot } from '../../core/merkle.ts';
import { encodeReceipt, type Event, type Receipt } from '../../core/types.ts';
import { guestEvent, receiptBytes, receiptsRoot, rememberReturnData } from '../../vm/receiptCodec.ts';
import { argsText, txArgsText } from '../../vm/argsCodec.ts';
import { generateKeyPair } from '../../core/keys.ts';
import { decodeSignedTx } from '../../core/types.ts';
import { makeTx } from '../rpc/testNode.ts';
import { foldMerkle, leafDigest } from '../../vm/merkleFold.ts';
import { createMemoryState } from '../../vm/memoryState.ts';
import { SystemContract, encodeUint, readNonce, writeNonce } from '../../vm/systemState.ts';
import { createTestChain } from '../../vm/testing.ts';

const value: fc.Arbitrary<Value> = fc.letrec<{ v: Value }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: -(2 ** 31), max: 2 ** 32 + 5 }),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    fc.uint8Array({ maxLength: 300 }),
    fc.array(tie('v'), { maxLength: 5 }),
    fc.dictionary(
      fc.string({ maxLength: 8 }).filter((k) => k !== '__proto__'),
      tie('v'),
      { maxKeys: 5 },
    ),
  ),
})).v;
const text = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 300 }),
  fc.string({ maxLength: 70_000, unit: 'binary' }),
  fc.constantFrom('', 'x'.repeat(31), 'x'.repeat(32), 'é'.repeat(128), 'x'.repeat(65_536)),
);

/** A chain with a contract whose calls return, emit (two events) or revert on request. */
function echoChain(): ReturnType<typeof createTestChain> {
  const chain = createTestChain();
  chain.deploy(
    'echo',
    `export const methods = {
      store(ctx: any, args: any) { ctx.state.set('v', args); ctx.emit('Stored', args); ctx.emit('Again', { n: 1 }); return args; },
      fail(ctx: any, args: any) { ctx.revert('NOPE', 'no: ' + String(args)); },
    };`,
  );
  return chain;
}

describe('receipt bytes', () => {
  it('equal encodeReceipt for any receipt, with and without recorded canonical bytes', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.constantFrom('ok', 'reverted', 'out-of-gas', 'rejected'),
        fc.oneof(
          fc.integer({ min: 0, max: 2 ** 32 + 10 }),
          fc.constantFrom(0, 127, 128, 255, 256, 65535, 65536),
        ),
        value,
        fc.array(
          fc.record({
            contract: fc.string({ maxLength: 40 }),
            name: fc.string({ maxLength: 40 }),
            data: value,
          }),
          {
            maxLength: 20,
          },
        ),
        text,
        text,
        fc.boolean(),
        (txHash, status, gasUsed, returnValue, evs, errorCode, error, record) => {
          const events: Event[] = evs.map((e) =>
            record ? guestEvent(e.contract, e.name, e.data, encodeValue(e.data)) : { ...e },
          );
          const r: Receipt = { txHash, status, gasUsed, returnValue, events, errorCode, error };
          if (record) rememberReturnData(r, encodeValue(returnValue));
          expect(Buffer.from(receiptBytes(r)).toString('hex')).toBe(
            Buffer.from(encodeReceipt(r)).toString('hex'),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('equal encodeReceipt for the receipts a real block produces', () => {
    const chain = echoChain();
    try {
      const values: Value[] = [null, 1, 'é', { a: [1, 2n ** 60n], b: new Uint8Array([1, 2]) }];
      const { receipts } = chain.block([
        ...values.map((v) => ({ contract: 'echo', method: 'store', args: v, from: 'alice' })),
        { contract: 'echo', method: 'fail', args: 'x', from: 'alice' },
        { contract: 'echo', method: 'nothing', args: null, from: 'alice' },
      ]);
      expect(receipts.map((r) => r.status)).toEqual(['ok', 'ok', 'ok', 'ok', 'reverted', 'reverted']);
      for (const r of receipts) expect(Buffer.from(receiptBytes(r))).toEqual(Buffer.from(encodeReceipt(r)));
    } finally {
      chain.close();
    }
  });
});

describe('nonce bytes', () => {
  it('read back as written, and anything non-canonical is refused as decodeValue refuses it', () => {
    const state = createMemoryState();
    const address = new Uint8Array(20).fill(7);
    expect(readNonce(state, address)).toBe(0);
    for (const n of [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1]) {
      writeNonce(state, address, n);
      expect(readNonce(state, address)).toBe(n);
    }
    for (const bad of [[0xcc, 5], [0xcd, 0, 200], [0xce, 0, 0, 1, 0], [0xcc], [0xc0], [0x05, 0x00]]) {
      state.set(SystemContract.nonce, address, Uint8Array.from(bad));
      expect(() => readNonce(state, address)).toThrow();
    }
  });

  it('equal encodeValue for every non-negative safe integer', () => {
    const edges = [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1];
    for (const n of edges) expect(Buffer.from(encodeUint(n))).toEqual(Buffer.from(encodeValue(n)));
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: 0, max: 2 ** 32 + 5 }), fc.maxSafeNat()), (n) => {
        expect(Buffer.from(encodeUint(n))).toEqual(Buffer.from(encodeValue(n)));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('argument text', () => {
  const latin1 = (b: Uint8Array): string => Buffer.from(b).toString('latin1');
  it('equals the latin1 text of encodeValue for any value, and throws what it throws', () => {
    const special: unknown[] = [
      -0,
      2 ** 53,
      -(2 ** 53),
      2 ** 32,
      -(2 ** 31) - 1,
      2n ** 63n,
      -(2n ** 63n),
      { '10': 1, '9': 2, b: 3, a: 4, B: 5, é: 6, '01': 7 },
      { s: 'ü€😀', k: 'x'.repeat(40), t: 'é'.repeat(200) },
      [new Uint8Array(300), new Uint8Array(70_000)],
      Object.create(null) as unknown,
    ];
    for (const v of special) expect(argsText(v)).toBe(latin1(encodeValue(v as Value)));
    fc.assert(
      fc.property(value, (v) => {
        expect(argsText(v)).toBe(latin1(encodeValue(v)));
      }),
      { numRuns: 1000 },
    );
    // Values core refuses (or takes its own way: lone surrogates, a __proto__ key): same outcome.
    const odd: unknown[] = [
      1.5,
      2n ** 64n,
      JSON.parse('{"__proto__":1}'),
      '\ud800',
      [undefined],
      new Date(0),
    ];
    for (const v of odd) {
      let expected: string;
      try {
        expected = latin1(encodeValue(v));
      } catch (err) {
        expect(() => argsText(v)).toThrow((err as Error).message);
        continue;
      }
      expect(argsText(v)).toBe(expected);
    }
  });
});

describe('transaction arguments from the signed body', () => {
  it('equal argsText of the decoded arguments for any arguments, names, nonce and gas limit', () => {
    const key = generateKeyPair();
    fc.assert(
      fc.property(
        value,
        fc.stringMatching(/^[a-z][a-z0-9-]{0,40}$/),
        fc.stringMatching(/^[a-z][a-zA-Z0-9_]{0,63}$/),
        fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 2 ** 40 })),
        fc.oneof(fc.integer({ min: 0, max: 70_000 }), fc.integer({ min: 0, max: 2 ** 36 })),
        (args, contract, method, nonce, gasLimit) => {
          const stx = makeTx(key, nonce, contract, method, args, { gasLimit });
          expect(txArgsText(stx)).toBe(argsText(stx.tx.args));
          expect(txArgsText(decodeSignedTx(stx.bytes))).toBe(argsText(stx.tx.args));
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('receipts root', () => {
  it('folds leaves to the same root as core/merkle.ts for every tree size', () => {
    const leaves = Array.from({ length: 70 }, (_, i) => new Uint8Array(i * 37).fill(i));
    for (let n = 0; n <= leaves.length; n++) {
      const some = leaves.slice(0, n);
      expect(Buffer.from(foldMerkle(some.map(leafDigest)))).toEqual(Buffer.from(merkleRoot(some)));
    }
  });

  it('equals the Merkle root of encodeReceipt over any number of receipts, recorded bytes or not', () => {
    const chain = echoChain();
    try {
      const txs = Array.from({ length: 70 }, (_, i) =>
        i % 5 === 4
          ? { contract: 'echo', method: 'fail', args: i, from: 'alice' }
          : {
              contract: 'echo',
              method: 'store',
              args: i % 3 === 0 ? null : { i, s: 'é'.repeat(i) },
              from: 'alice',
            },
      );
      const { receipts } = chain.block(txs);
      for (let n = 0; n <= receipts.length; n++) {
        const some = receipts.slice(0, n);
        expect(Buffer.from(receiptsRoot(some))).toEqual(Buffer.from(merkleRoot(some.map(encodeReceipt))));
      }
      // Receipts with no recorded bytes (built elsewhere) take encodeReceipt's path, in one tree.
      const copies = receipts.map((r) => ({ ...r, events: r.events.map((e) => ({ ...e })) }));
      const mixed = [...receipts.slice(0, 33), ...copies.slice(33)];
      expect(Buffer.from(receiptsRoot(mixed))).toEqual(Buffer.from(merkleRoot(mixed.map(encodeReceipt))));
      const big: Receipt = { ...copies[0]!, error: 'x'.repeat(10_000), status: 'reverted', events: [] };
      expect(Buffer.from(receiptsRoot([big, receipts[1]!]))).toEqual(
        Buffer.from(merkleRoot([big, receipts[1]!].map(encodeReceipt))),
      );
    } finally {
      chain.close();
    }
  });
});
