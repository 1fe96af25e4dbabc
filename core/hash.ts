import { hash } from 'node:crypto';
import type { Bytes } from './bytes.ts';

/** Length of every hash in Trellis, in bytes. */
export const HASH_BYTES = 32;

/** SHA-256 through node:crypto's one-shot hash, the fastest route on the hot path. */
export function sha256(data: Bytes): Bytes {
  return hash('sha256', data, 'buffer');
}

/** SHA-256 of several byte strings, fed in order without concatenating first. */
export function sha256Parts(...parts: Bytes[]): Bytes {
  return hash('sha256', Buffer.concat(parts), 'buffer');
}
