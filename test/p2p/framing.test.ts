// Goal: length-prefixed frames survive any chunking, and an oversize frame is refused at its header.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { P2pError } from '../../node/p2p/errors.ts';
import { createFrameDecoder, encodeFrame, FRAME_HEADER_BYTES } from '../../node/p2p/framing.ts';

function concat(parts: Uint8Array[]): Uint8Array {
  return Buffer.concat(parts);
}

describe('framing', () => {
  it('decodes frames split at arbitrary points, in order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }),
        fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 10 }),
        (payloads, cuts) => {
          const wire = concat(payloads.map(encodeFrame));
          const decoder = createFrameDecoder(300);
          const out: Uint8Array[] = [];
          let at = 0;
          let i = 0;
          while (at < wire.length) {
            const size = cuts[i++ % cuts.length] ?? 1;
            out.push(...decoder.push(wire.subarray(at, at + size)));
            at += size;
          }
          expect(out.map((b) => Buffer.from(b).toString('hex'))).toEqual(
            payloads.map((b) => Buffer.from(b).toString('hex')),
          );
          expect(decoder.bufferedBytes).toBe(0);
        },
      ),
    );
  });

  it('reports a partial frame as buffered bytes', () => {
    const decoder = createFrameDecoder(100);
    const frame = encodeFrame(new Uint8Array([1, 2, 3]));
    expect(decoder.push(frame.subarray(0, 5))).toEqual([]);
    expect(decoder.bufferedBytes).toBe(5);
    expect(decoder.push(frame.subarray(5)).length).toBe(1);
    expect(decoder.bufferedBytes).toBe(0);
  });

  it('refuses a frame whose header announces more than the bound, before its payload arrives', () => {
    const decoder = createFrameDecoder(10);
    const header = encodeFrame(new Uint8Array(11)).subarray(0, FRAME_HEADER_BYTES);
    let caught: unknown;
    try {
      decoder.push(header);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(P2pError);
    expect((caught as P2pError).code).toBe('TOO_LARGE');
    // A decoder that refused a frame is not reused: the stream is aborted.
    expect(() => decoder.push(new Uint8Array(1))).toThrow(P2pError);
  });

  it('accepts a frame of exactly the bound and an empty frame', () => {
    const decoder = createFrameDecoder(10);
    const frames = decoder.push(concat([encodeFrame(new Uint8Array(10)), encodeFrame(new Uint8Array(0))]));
    expect(frames.map((f) => f.length)).toEqual([10, 0]);
  });

  it('rejects a bound that a 32-bit header cannot express', () => {
    expect(() => createFrameDecoder(-1)).toThrow(P2pError);
    expect(() => createFrameDecoder(2 ** 32)).toThrow(P2pError);
  });
});
