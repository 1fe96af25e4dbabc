/**
 * A durable append-only log: each record is framed as [u32 length][u32 CRC-32][payload] and a
 * record's promise resolves only after the bytes are written and fdatasync'ed, so whatever the
 * gateway acknowledged survives a crash. Appends arriving while a sync runs are grouped into the
 * next write (group commit), which is what makes one fsync per batch of readings affordable.
 *
 * On open, the log is scanned; a torn tail (a frame cut short or failing its CRC, which only an
 * unacknowledged write can leave) is cut off.
 */
import { closeSync, existsSync, ftruncateSync, openSync, readFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import type { Bytes } from '../../core/bytes.ts';
import { IotError } from './errors.ts';

/** Largest record (a reading leaf is a few hundred bytes; window records are small). */
export const MAX_RECORD_BYTES = 64 * 1024;
/** Most appends waiting for a sync; beyond it append() fails with OVERLOADED (backpressure). */
export const MAX_PENDING_APPENDS = 200_000;

/** An open append-only log. */
export interface AppendLog {
  /** Appends one record; resolves once it is on disk. */
  append(record: Bytes): Promise<void>;
  /** Records appended and synced so far in this process. */
  readonly synced: number;
  close(): Promise<void>;
}

/** Reads every intact record of the log at `path`, cutting off a torn tail. */
export function readLog(path: string): { records: Bytes[]; truncatedBytes: number } {
  if (!existsSync(path)) return { records: [], truncatedBytes: 0 };
  const buf = readFileSync(path);
  const records: Bytes[] = [];
  let off = 0;
  while (off + 8 <= buf.length) {
    const len = buf.readUInt32BE(off);
    const crc = buf.readUInt32BE(off + 4);
    if (len > MAX_RECORD_BYTES || off + 8 + len > buf.length) break;
    const payload = buf.subarray(off + 8, off + 8 + len);
    if (crc32(payload) !== crc) break;
    records.push(new Uint8Array(payload));
    off += 8 + len;
  }
  const truncatedBytes = buf.length - off;
  if (truncatedBytes > 0) {
    const fd = openSync(path, 'r+');
    try {
      ftruncateSync(fd, off);
    } finally {
      closeSync(fd);
    }
  }
  return { records, truncatedBytes };
}

/** Opens (creating if needed) the log at `path` for appending. Call {@link readLog} first to recover. */
export async function openAppendLog(path: string): Promise<AppendLog> {
  const fh: FileHandle = await open(path, 'a');
  let queue: Array<{ frame: Buffer; done: () => void; fail: (e: unknown) => void }> = [];
  let flushing = false;
  let closed = false;
  let synced = 0;

  async function flush(): Promise<void> {
    flushing = true;
    try {
      while (queue.length > 0) {
        const batch = queue;
        queue = [];
        try {
          await fh.write(Buffer.concat(batch.map((b) => b.frame)));
          await fh.datasync();
          synced += batch.length;
          for (const b of batch) b.done();
        } catch (err) {
          for (const b of batch) b.fail(err);
        }
      }
    } finally {
      flushing = false;
    }
  }

  return {
    append(record) {
      if (closed) return Promise.reject(new IotError('STOPPED', 'the log is closed', {}));
      if (record.length > MAX_RECORD_BYTES)
        return Promise.reject(
          new IotError('BAD_READING', `record of ${record.length} bytes exceeds ${MAX_RECORD_BYTES}`, {}),
        );
      if (queue.length >= MAX_PENDING_APPENDS)
        return Promise.reject(
          new IotError('OVERLOADED', `more than ${MAX_PENDING_APPENDS} appends waiting for the disk`, {}),
        );
      const frame = Buffer.alloc(8 + record.length);
      frame.writeUInt32BE(record.length, 0);
      frame.writeUInt32BE(crc32(record), 4);
      frame.set(record, 8);
      return new Promise<void>((done, fail) => {
        queue.push({ frame, done, fail });
        if (!flushing) void flush();
      });
    },
    get synced() {
      return synced;
    },
    async close() {
      closed = true;
      while (flushing || queue.length > 0) await new Promise((r) => setTimeout(r, 5));
      await fh.close();
    },
  };
}
