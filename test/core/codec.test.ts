// Goal: canonical encoding is one-to-one, and every malformed input is refused with a clear, typed error.
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import { canonicalValue, decodeValue, encodeValue, pack, type Value } from '../../core/codec.ts';
import { CodecError } from '../../core/errors.ts';
import { generateKeyPair } from '../../core/keys.ts';
import {
  decodeBlock,
  decodeCertificate,
  decodeHeader,
  decodeSignedTx,
  encodeBlock,
  encodeCertificate,
  encodeHeader,
  signTx,
  type Transaction,
} from '../../core/types.ts';
import { header } from './vectors.ts';

const plain = new Packr({ useRecords: false, mapsAsObjects: true });

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(CodecError);
    return (err as CodecError).code;
  }
  return 'NO_ERROR';
}

const valueArb: fc.Arbitrary<Value> = fc.letrec<{ v: Value }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.maxSafeInteger(),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
    fc.string(),
    fc.uint8Array({ maxLength: 16 }),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(
      fc.string().filter((k) => k !== '__proto__'),
      tie('v'),
      { maxKeys: 4 },
    ),
  ),
})).v;

describe('canonical values', () => {
  it('round-trip: decode(encode(v)) re-encodes to the same bytes, and key order does not matter', () => {
    fc.assert(
      fc.property(valueArb, (v) => {
        const bytes = encodeValue(v);
        const back = decodeValue(bytes);
        expect(toHex(encodeValue(back))).toBe(toHex(bytes));
      }),
      { numRuns: 1000 },
    );
    expect(toHex(encodeValue({ a: 1, b: 2 }))).toBe(toHex(encodeValue({ b: 2, a: 1 })));
  });

  it('one integer has one encoding: small bigints are numbers, large numbers are int64, never floats', () => {
    expect(toHex(encodeValue(5n))).toBe(toHex(encodeValue(5)));
    expect(toHex(encodeValue(2 ** 40))).toBe('0xd3' + (2 ** 40).toString(16).padStart(16, '0'));
    expect(decodeValue(encodeValue(2n ** 60n))).toBe(2n ** 60n);
    expect(decodeValue(encodeValue(2n ** 53n))).toBe(2n ** 53n);
    expect(decodeValue(encodeValue(-(2n ** 53n)))).toBe(-(2n ** 53n));
  });

  it('refuses floats, undefined, functions, symbols, class instances, __proto__ keys, deep nesting, >64-bit integers', () => {
    expect(codeOf(() => canonicalValue(1.5))).toBe('UNSUPPORTED_VALUE');
    expect(codeOf(() => canonicalValue(Number.NaN))).toBe('UNSUPPORTED_VALUE');
    expect(codeOf(() => canonicalValue(2 ** 60))).toBe('UNSUPPORTED_VALUE');
    expect(codeOf(() => canonicalValue(undefined))).toBe('UNSUPPORTED_VALUE');
    expect(codeOf(() => canonicalValue(() => 1))).toBe('UNSUPPORTED_VALUE');
    expect(codeOf(() => canonicalValue(Symbol('x')))).toBe('UNSUPPORTED_VALUE');
    expect(codeOf(() => canonicalValue(new Map()))).toBe('WRONG_SHAPE');
    expect(codeOf(() => canonicalValue(JSON.parse('{"__proto__": {"x": 1}}')))).toBe('UNSUPPORTED_VALUE');
    expect(codeOf(() => canonicalValue(2n ** 64n))).toBe('UNSUPPORTED_VALUE');
    let deep: Value = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    expect(codeOf(() => canonicalValue(deep))).toBe('TOO_LARGE');
    expect(() => canonicalValue({ a: { b: [1, 2.5] } })).toThrow('value.a.b[1]: only safe integers');
  });

  it('refuses non-canonical bytes: floats for integers, unsorted keys, long forms, trailing bytes, garbage', () => {
    expect(codeOf(() => decodeValue(plain.pack(1.5)))).toBe('UNSUPPORTED_VALUE');
    expect(codeOf(() => decodeValue(Buffer.from('cb4014000000000000', 'hex')))).toBe('NON_CANONICAL'); // 5.0 as float64
    expect(codeOf(() => decodeValue(Buffer.from('cd0005', 'hex')))).toBe('NON_CANONICAL'); // 5 as uint16
    expect(codeOf(() => decodeValue(plain.pack({ b: 1, a: 2 })))).toBe('NON_CANONICAL');
    expect(codeOf(() => decodeValue(Buffer.concat([encodeValue(1), Buffer.from([1])])))).toBe(
      'TRAILING_BYTES',
    );
    expect(codeOf(() => decodeValue(Buffer.from([0xc1])))).toBe('WRONG_SHAPE'); // the reserved byte
    expect(codeOf(() => decodeValue(Buffer.from([0xdc, 0xff])))).toBe('MALFORMED');
    expect(codeOf(() => decodeValue(new Uint8Array(0)))).toBe('MALFORMED');
  });
});

describe('structure decoders', () => {
  const kp = generateKeyPair();
  const tx: Transaction = {
    chainId: 'c1',
    from: kp.publicKey,
    nonce: 0,
    kind: 'call',
    contract: 'rc',
    method: 'm',
    args: null,
    gasLimit: 10,
  };

  it('a transaction for another chain, of the wrong shape, or oversize is refused naming the field', () => {
    const stx = signTx(tx, kp.secretKey);
    expect(codeOf(() => decodeSignedTx(stx.bytes, 'c2'))).toBe('WRONG_CHAIN');
    expect(codeOf(() => decodeSignedTx(pack([stx.body])))).toBe('WRONG_SHAPE');
    expect(codeOf(() => decodeSignedTx(pack([stx.body, stx.signature.subarray(1)])))).toBe('WRONG_SHAPE');
    expect(() => signTx({ ...tx, contract: 'bad name!' }, kp.secretKey)).toThrow(/tx.contract/);
    expect(() => signTx({ ...tx, nonce: -1 }, kp.secretKey)).toThrow(/tx.nonce/);
    expect(() => signTx({ ...tx, args: 'x'.repeat(300_000) }, kp.secretKey)).toThrow(/at most/);
    expect(codeOf(() => decodeSignedTx(new Uint8Array(300_000)))).toBe('TOO_LARGE');
    const wrongTag = pack([
      pack(['trellis.header.v1', 'c1', kp.publicKey, 0, 'call', 'rc', 'm', null, 10]),
      stx.signature,
    ]);
    expect(codeOf(() => decodeSignedTx(wrongTag))).toBe('WRONG_TAG');
  });

  it('headers, blocks and certificates round-trip; unsorted certificate signers are refused', () => {
    const hb = encodeHeader(header);
    expect(toHex(encodeHeader(decodeHeader(hb)))).toBe(toHex(hb));
    const block = { header, txs: [signTx(tx, kp.secretKey).bytes] };
    expect(toHex(encodeBlock(decodeBlock(encodeBlock(block))))).toBe(toHex(encodeBlock(block)));
    const cert = {
      height: 1,
      round: 0,
      blockHash: new Uint8Array(32),
      signatures: [
        { validator: new Uint8Array(20).fill(2), signature: new Uint8Array(64) },
        { validator: new Uint8Array(20).fill(1), signature: new Uint8Array(64) },
      ],
    };
    const bytes = encodeCertificate(cert);
    expect(decodeCertificate(bytes).signatures[0]!.validator[0]).toBe(1);
    const unsorted = pack([1, 0, new Uint8Array(32), cert.signatures.map((s) => [s.validator, s.signature])]);
    expect(codeOf(() => decodeCertificate(unsorted))).toBe('NON_CANONICAL');
    expect(codeOf(() => decodeHeader(pack(['trellis.header.v1'])))).toBe('WRONG_SHAPE');
  });
});
