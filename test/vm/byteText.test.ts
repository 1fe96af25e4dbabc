// Goal: the executor's byte-to-text helpers give exactly the text of the documented Buffer route
// (latin1 and 0x-hex), for any bytes, any range and views at any offset into a larger buffer.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import { hexText, latin1Text } from '../../vm/byteText.ts';

describe('byte text', () => {
  it('equals Buffer#toString latin1 and core toHex', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.nat(40),
        fc.nat(300),
        fc.nat(300),
        (all, skip, a, b) => {
          const bytes = all.subarray(Math.min(skip, all.length));
          const start = Math.min(a, b, bytes.length);
          const end = Math.min(Math.max(a, b), bytes.length);
          const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
          expect(latin1Text(bytes, start, end)).toBe(view.toString('latin1', start, end));
          expect(latin1Text(bytes)).toBe(view.toString('latin1'));
          expect(hexText(bytes)).toBe(toHex(bytes));
        },
      ),
      { numRuns: 500 },
    );
  });
});
