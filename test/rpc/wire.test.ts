// Goal: the JSON mapping is one-to-one both ways, and every refusal names the offending field.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bytesEqual } from '../../core/bytes.ts';
import { canonicalValue, encodeValue, type Value } from '../../core/codec.ts';
import { RpcError } from '../../rpc/errors.ts';
import { methods } from '../../rpc/methods.ts';
import { parseCursor } from '../../rpc/schemas.ts';
import { valueFromJsonChecked, valueToJson } from '../../rpc/wire.ts';

const key = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.constantFrom('$bytes', '$bigint', '$object', '$x', 'constructor'),
);
const leaf = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
  fc.string({ maxLength: 12 }),
  fc.uint8Array({ maxLength: 12 }),
);
const valueArb: fc.Arbitrary<unknown> = fc
  .letrec((tie) => ({
    value: fc.oneof(
      { depthSize: 'small' },
      leaf,
      fc.array(tie('value'), { maxLength: 4 }),
      fc.dictionary(key, tie('value'), { maxKeys: 3 }),
    ),
  }))
  .value.filter((v) => {
    try {
      canonicalValue(v);
      return true;
    } catch {
      return false;
    }
  });

function paramsError(f: () => unknown): RpcError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(RpcError);
    expect((err as RpcError).code).toBe('INVALID_PARAMS');
    return err as RpcError;
  }
  throw new Error('expected INVALID_PARAMS');
}

describe('contract value mapping', () => {
  it('round-trips every canonical value through JSON text, byte for byte', () => {
    fc.assert(
      fc.property(valueArb, (v) => {
        const canonical = canonicalValue(v);
        const text = JSON.stringify(valueToJson(canonical));
        const back = valueFromJsonChecked(JSON.parse(text), 'args');
        expect(bytesEqual(encodeValue(back), encodeValue(canonical))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('keeps tag-shaped user objects apart from tags', () => {
    const v: Value = { $bytes: '0x00' };
    const json = valueToJson(v);
    expect(json).toEqual({ $object: { $bytes: '0x00' } });
    expect(valueFromJsonChecked(json, 'args')).toEqual(v);
    expect(valueFromJsonChecked({ $bytes: '0x0102' }, 'args')).toEqual(Uint8Array.of(1, 2));
  });

  it('refuses floats, unsafe integers, out-of-range bigints and unknown tags, naming the path', () => {
    expect(paramsError(() => valueFromJsonChecked({ a: [1, 1.5] }, 'args')).message).toMatch(/^args\.a\[1\]/);
    expect(paramsError(() => valueFromJsonChecked(2 ** 60, 'args')).message).toContain('$bigint');
    expect(
      paramsError(() => valueFromJsonChecked({ $bigint: (2n ** 64n).toString() }, 'args')).meta['path'],
    ).toBe('args.$bigint');
    expect(paramsError(() => valueFromJsonChecked({ $when: 1 }, 'args')).message).toContain('unknown tag');
  });
});

describe('parameter schemas', () => {
  it('name the offending field in their messages', () => {
    const p = methods.chain_getBlock.params;
    expect(paramsError(() => p.parse({ height: '1' }, 'params')).meta['path']).toBe('params.height');
    expect(paramsError(() => p.parse({}, 'params')).message).toContain('exactly one of height and hash');
    expect(paramsError(() => methods.tx_get.params.parse({}, 'params')).message).toBe(
      'params.hash: required',
    );
    expect(paramsError(() => methods.tx_get.params.parse({ hash: '0x12' }, 'params')).message).toContain(
      'expected 32 bytes',
    );
  });

  it('parse cursors strictly', () => {
    expect(parseCursor('12:0:3')).toEqual({ height: 12, receiptIndex: 0, eventIndex: 3 });
    for (const bad of ['12:0', '01:0:0', '1:0:4294967296', 'a:b:c', '1:0:0:0', '-1:0:0']) {
      paramsError(() => parseCursor(bad));
    }
  });
});
