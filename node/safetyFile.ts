import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { SafetyStore } from '../consensus/safetyRules.ts';
import type { Bytes } from '../core/bytes.ts';

/** Bytes before the record in a slot: sequence (u64), record length (u32), SHA-256 of both + record. */
const HEADER = 8 + 4 + 32;

function digest(seq: bigint, record: Uint8Array): Buffer {
  const head = Buffer.alloc(12);
  head.writeBigUInt64BE(seq, 0);
  head.writeUInt32BE(record.length, 8);
  return createHash('sha256').update(head).update(record).digest();
}

/** The record in a slot file, or undefined when the slot is empty, torn or corrupt. */
function readSlot(path: string): { seq: bigint; record: Uint8Array } | undefined {
  if (!existsSync(path)) return undefined;
  const buf = readFileSync(path);
  if (buf.length < HEADER) return undefined;
  const seq = buf.readBigUInt64BE(0);
  const len = buf.readUInt32BE(8);
  if (HEADER + len > buf.length) return undefined;
  const record = new Uint8Array(buf.subarray(HEADER, HEADER + len));
  return digest(seq, record).equals(buf.subarray(12, HEADER)) ? { seq, record } : undefined;
}

/** The file store: loads synchronously, saves durably, closes its files. */
export interface FileSafetyStore extends SafetyStore {
  load(): Bytes | undefined;
  save(record: Bytes): Promise<void>;
  close(): Promise<void>;
}

/**
 * The safety record on disk, in two slot files written alternately in place: each save writes
 * the slot not holding the newest record (sequence, length, checksum, record) and fdatasyncs it,
 * so a crash at any instant leaves the other slot, the previous record, intact, and the torn slot
 * fails its checksum. Loading takes the valid slot with the higher sequence. One fdatasync per
 * save (no temporary file, rename or directory sync), done off the main thread: the event loop
 * goes on serving while the disk syncs, and the signature is released only after it returns.
 *
 * A `path` written by an older version (one file, the record itself) is read once if no slot
 * holds a record yet.
 */
export function createFileSafetyStore(path: string): FileSafetyStore {
  const slotPaths = [`${path}.0`, `${path}.1`] as const;
  let seq = 0n;
  let handles: [FileHandle, FileHandle] | undefined;

  async function openSlots(): Promise<[FileHandle, FileHandle]> {
    if (handles !== undefined) return handles;
    const created = slotPaths.some((p) => !existsSync(p));
    const opened: [FileHandle, FileHandle] = [await open(slotPaths[0], 'a+'), await open(slotPaths[1], 'a+')];
    // 'a+' creates without truncating; writes go through positioned writes on an 'r+' handle.
    await Promise.all(opened.map((h) => h.close()));
    handles = [await open(slotPaths[0], 'r+'), await open(slotPaths[1], 'r+')];
    if (created) {
      // New directory entries must survive a crash too.
      const dir = openSync(dirname(path), 'r');
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
    }
    return handles;
  }

  return {
    load() {
      const slots = slotPaths.map(readSlot);
      let best: { seq: bigint; record: Uint8Array } | undefined;
      for (const s of slots) if (s !== undefined && (best === undefined || s.seq > best.seq)) best = s;
      if (best !== undefined) {
        seq = best.seq;
        return best.record;
      }
      return existsSync(path) ? new Uint8Array(readFileSync(path)) : undefined;
    },
    async save(record) {
      const [h0, h1] = await openSlots();
      const next = seq + 1n;
      // Slot by parity: the newest record (seq) sits in the other slot and is never touched.
      const handle = next % 2n === 0n ? h0 : h1;
      const head = Buffer.alloc(HEADER);
      head.writeBigUInt64BE(next, 0);
      head.writeUInt32BE(record.length, 8);
      digest(next, record).copy(head, 12);
      await handle.writev([head, record], 0);
      await handle.datasync();
      seq = next;
    },
    async close() {
      const h = handles;
      handles = undefined;
      if (h !== undefined) await Promise.all(h.map((x) => x.close()));
    },
  };
}
