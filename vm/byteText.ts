import type { Bytes } from '../core/bytes.ts';

/**
 * Bytes as latin1 or hex text through Node's own decoders (`Buffer.prototype.latin1Slice` and
 * `hexSlice`, what `Buffer#toString` calls), applied to the Uint8Array directly: the documented
 * route first makes a Buffer view of the bytes, which costs as much again as the decoding for the
 * short inputs the executor converts per transaction (~0.15 us less per call, measured). Where a
 * runtime lacks them, the documented route is taken; the text is the same either way.
 */
type Slice = (this: Uint8Array, start: number, end: number) => string;
const proto = Buffer.prototype as unknown as { latin1Slice?: unknown; hexSlice?: unknown };
const latin1Slice = typeof proto.latin1Slice === 'function' ? (proto.latin1Slice as Slice) : null;
const hexSlice = typeof proto.hexSlice === 'function' ? (proto.hexSlice as Slice) : null;

/** The latin1 text (one char per byte) of `bytes[start .. end)`. */
export function latin1Text(bytes: Bytes, start = 0, end = bytes.length): string {
  if (latin1Slice !== null) return latin1Slice.call(bytes, start, end);
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('latin1');
}

/** Lowercase 0x-prefixed hex of `bytes`, as core/bytes.ts toHex gives it. */
export function hexText(bytes: Bytes): string {
  if (hexSlice !== null) return '0x' + hexSlice.call(bytes, 0, bytes.length);
  return '0x' + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
