// Goal: the guest's value codec is byte-identical to core/codec.ts, so what a contract stores,
// emits or returns is canonical, and every value round-trips through state unchanged.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import { canonicalValue, decodeValue, encodeValue, type Value } from '../../core/codec.ts';
import { decodeGuestValue } from '../../vm/sandbox.ts';
import { createTestChain, type TestChain } from '../../vm/testing.ts';

let chain: TestChain;
beforeAll(() => {
  chain = createTestChain();
  chain.deploy(
    'echo',
    `export const methods = {
      store(ctx: any, args: any) { ctx.state.set('v', args); ctx.emit('Stored', args); return ctx.state.get('v'); },
      roundTrip(ctx: any, args: any) { return ctx.state.get('v'); },
    };
    export const views = { echo: (ctx: any, args: any) => args };`,
  );
});
afterAll(() => chain.close());

const key = fc.oneof(
  fc.string({ maxLength: 12 }).filter((k) => k !== '__proto__'),
  // Names the frozen Object.prototype holds, and integer-like keys (ordered first by JavaScript).
  fc.constantFrom(
    'toString',
    'constructor',
    'valueOf',
    'hasOwnProperty',
    '0',
    '9',
    '10',
    '4294967294',
    '4294967295',
  ),
);
const integer = fc.oneof(
  fc.integer({ min: -(2 ** 31) - 5, max: 2 ** 32 + 5 }),
  fc.maxSafeInteger(),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
  fc.constantFrom(0, -0, 127, 128, -32, -33, 255, 256, 65535, 65536, 2 ** 53 - 1, -(2 ** 53 - 1)),
);
const value: fc.Arbitrary<Value> = fc.letrec<{ v: Value }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    integer,
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    fc.string({ maxLength: 300 }),
    fc.uint8Array({ maxLength: 300 }),
    fc.array(tie('v'), { maxLength: 20 }),
    fc.dictionary(key, tie('v'), { maxKeys: 20 }),
  ),
})).v;

/** Buffers (what msgpackr decodes bytes to) as plain Uint8Arrays, for deep comparison. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return Uint8Array.from(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

describe('guest value codec', () => {
  it('stores exactly the canonical bytes core/codec.ts gives, and reads back the same value', () => {
    fc.assert(
      fc.property(value, (v) => {
        const expected = canonicalValue(v);
        const r = chain.call('echo', 'store', v);
        expect(r.status, r.error).toBe('ok');
        expect(toHex(chain.state.get('echo', Buffer.from('v'))!)).toBe(toHex(encodeValue(v)));
        expect(plain(r.returnValue)).toEqual(plain(expected));
        expect(plain(r.events[0]!.data)).toEqual(plain(expected));
        expect(plain(chain.view('echo', 'echo', v).returnValue)).toEqual(plain(expected));
      }),
      { numRuns: 150 },
    );
  });

  it('integer boundaries keep their canonical encoding whatever JavaScript type carried them', () => {
    for (const n of [
      2n ** 32n,
      2n ** 53n,
      -(2n ** 53n),
      2n ** 63n - 1n,
      2n ** 63n,
      2n ** 64n - 1n,
      -(2n ** 63n),
    ]) {
      const r = chain.call('echo', 'store', { n });
      expect(r.status, String(n)).toBe('ok');
      expect(toHex(chain.state.get('echo', Buffer.from('v'))!)).toBe(toHex(encodeValue({ n })));
    }
  });

  it('the host decodes guest bytes to exactly what core/codec.ts decodes, key order included', () => {
    const keyOrder = (v: unknown): unknown =>
      v instanceof Uint8Array
        ? ['bytes', toHex(v)]
        : Array.isArray(v)
          ? v.map(keyOrder)
          : v !== null && typeof v === 'object'
            ? Object.entries(v).map(([k, x]) => [k, keyOrder(x)])
            : [typeof v, String(v)];
    const same = (v: Value): void => {
      const bytes = encodeValue(v);
      const got = decodeGuestValue(bytes);
      expect(keyOrder(got)).toEqual(keyOrder(decodeValue(bytes)));
      expect(toHex(encodeValue(got))).toBe(toHex(bytes));
    };
    fc.assert(fc.property(value, same), { numRuns: 500 });
    // The 32-bit length forms (beyond what the generator reaches) and every integer width.
    same('é'.repeat(40_000));
    same(new Uint8Array(70_000).fill(9));
    same(Array.from({ length: 65_536 }, (_, i) => i % 3));
    same(Object.fromEntries(Array.from({ length: 65_536 }, (_, i) => [`k${i}`, i])));
    same([-1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, 2 ** 32, 2n ** 63n]);
    expect(() => decodeGuestValue(Uint8Array.of(0xcb, 0, 0, 0, 0, 0, 0, 0, 0))).toThrow();
    expect(() => decodeGuestValue(Uint8Array.of(0x81, 0xa9, ...Buffer.from('__proto__'), 1))).toThrow();
    expect(() => decodeGuestValue(Uint8Array.of(0x01, 0x02))).toThrow();
  });
});
