import type { Bytes } from '../../core/bytes.ts';
import { P2pError } from './errors.ts';

/** Bytes of the big-endian unsigned length that prefixes every frame. */
export const FRAME_HEADER_BYTES = 4;

/** Largest payload the 32-bit header can describe; configured bounds are always far below it. */
export const MAX_FRAME_PAYLOAD_BYTES = 0xffff_ffff;

/**
 * Prefixes a payload with its length, so several messages can share one long-lived stream.
 * A fixed 4-byte header (rather than a varint) keeps the decoder trivial and lets it reject an
 * oversize frame as soon as 4 bytes have arrived, before any payload is buffered.
 */
export function encodeFrame(payload: Bytes): Bytes {
  if (payload.length > MAX_FRAME_PAYLOAD_BYTES) {
    throw new P2pError(
      'TOO_LARGE',
      `frame: payload of ${payload.length} bytes does not fit a 32-bit length`,
      {
        bytes: payload.length,
      },
    );
  }
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length, false);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/** Incremental decoder of length-prefixed frames arriving in arbitrary chunks. */
export interface FrameDecoder {
  /**
   * Appends a chunk and returns every frame it completes, in order. Throws P2pError TOO_LARGE
   * when a header announces more than the bound; the decoder is then unusable (the caller
   * aborts the stream: a peer that breaks the bound once is not trusted to resynchronise).
   */
  push(chunk: Bytes): Bytes[];
  /** Bytes held for an incomplete frame: at most `FRAME_HEADER_BYTES + maxFrameBytes`. */
  readonly bufferedBytes: number;
}

/**
 * Creates a frame decoder that refuses frames larger than `maxFrameBytes`. Its buffer is bounded
 * by one frame: a peer can never make it hold more than one maximal frame plus its header.
 */
export function createFrameDecoder(maxFrameBytes: number): FrameDecoder {
  if (!Number.isSafeInteger(maxFrameBytes) || maxFrameBytes < 0 || maxFrameBytes > MAX_FRAME_PAYLOAD_BYTES) {
    throw new P2pError('BAD_INPUT', 'maxFrameBytes: expected an integer between 0 and 2^32-1', {
      maxFrameBytes,
    });
  }
  // Chunks of the incomplete frame; concatenated only once the frame is complete.
  let chunks: Bytes[] = [];
  let buffered = 0;
  let expected = -1; // payload length of the current frame, -1 until its header is complete
  let failed = false;

  function take(n: number): Bytes {
    // Removes and returns the first n buffered bytes.
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const head = chunks[0];
      if (head === undefined) throw new Error('frame decoder: buffer underflow (bug)');
      const part = Math.min(n - filled, head.length);
      out.set(head.subarray(0, part), filled);
      filled += part;
      if (part === head.length) chunks.shift();
      else chunks[0] = head.subarray(part);
    }
    buffered -= n;
    return out;
  }

  return {
    push(chunk: Bytes): Bytes[] {
      if (failed) throw new P2pError('PROTOCOL', 'frame decoder: used after it rejected a frame');
      if (chunk.length > 0) {
        chunks.push(chunk);
        buffered += chunk.length;
      }
      const frames: Bytes[] = [];
      for (;;) {
        if (expected < 0) {
          if (buffered < FRAME_HEADER_BYTES) break;
          const header = take(FRAME_HEADER_BYTES);
          expected = new DataView(header.buffer).getUint32(0, false);
          if (expected > maxFrameBytes) {
            failed = true;
            chunks = [];
            buffered = 0;
            throw new P2pError(
              'TOO_LARGE',
              `frame: ${expected} bytes announced, at most ${maxFrameBytes} allowed`,
              {
                bytes: expected,
                maxFrameBytes,
              },
            );
          }
        }
        if (buffered < expected) break;
        frames.push(take(expected));
        expected = -1;
      }
      return frames;
    },
    get bufferedBytes() {
      // A consumed header still belongs to the incomplete frame.
      return buffered + (expected >= 0 ? FRAME_HEADER_BYTES : 0);
    },
  };
}
