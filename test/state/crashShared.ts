import type { Bytes } from '../../core/bytes.ts';
import { pack, readArray, readBytes, readUint, unpackCanonical } from '../../core/codec.ts';
import { ReferenceModel } from './referenceModel.ts';

/**
 * What the crash test's child process writes, shared with the parent so it can rebuild the
 * expected state of any version. The child stands in for the block store: it writes a head record
 * (version and state root, as the last committed header would carry) in the same batch as the
 * state's operations.
 */

/** Contract the child writes to. */
export const CRASH_CONTRACT = 'crash';
/** Head record key, outside the state bucket (the block store's meta bucket in a real node). */
export const HEAD_KEY: Bytes = Uint8Array.of(0x00, 0x68);

/** The writes of `version`: 300 keys out of 2,000, some deleted, deterministic. */
export function writesOf(version: number): Array<{ key: Bytes; value: Bytes | null }> {
  const out: Array<{ key: Bytes; value: Bytes | null }> = [];
  for (let i = 0; i < 300; i++) {
    const key = Buffer.from(`key/${(version * 131 + i * 17) % 2000}`);
    out.push({
      key,
      value: (version + i) % 11 === 0 ? null : Buffer.from(`value ${version}.${i} `.padEnd(40, '#')),
    });
  }
  return out;
}

/** The expected state after committing versions 0..version. */
export function modelAt(version: number): ReferenceModel {
  const m = new ReferenceModel();
  for (let v = 0; v <= version; v++) {
    for (const w of writesOf(v)) {
      if (w.value === null) m.delete(CRASH_CONTRACT, w.key);
      else m.set(CRASH_CONTRACT, w.key, w.value);
    }
  }
  return m;
}

/** Head record bytes. */
export function encodeHead(version: number, root: Bytes): Bytes {
  return pack([version, root]);
}

/** Reads a head record. */
export function decodeHead(bytes: Bytes): { version: number; root: Bytes } {
  const v = readArray(unpackCanonical(bytes, 'head'), 2, 'head');
  return { version: readUint(v[0], 'head.version'), root: readBytes(v[1], 'head.root', 32) };
}
