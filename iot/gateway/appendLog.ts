/**
 * A durable append-only log: each record is framed as [u32 length][u32 CRC-32][payload] and a
 * record's promise resolves only after the bytes are written and fdatasync'ed, so whatever the
 * gateway acknowledged survives a crash. Appends arriving while a sync runs are grouped into the
 * next write (group commit), which is what makes one fsync per batch of readings affordable.
 *
 * On open, the log is scanned; a torn tail (a frame cut short or failing its CRC, which only an
 * unacknowledged write can leave) is cut off.
 *
 * Compaction ({@link AppendLog.rewrite}) replaces the whole file by a snapshot, never editing it in
 * place: the snapshot is written to `<path>.compact`, fsync'ed, renamed over the log and the
 * directory fsync'ed. A crash before the rename leaves the old log (the stray `.compact` is removed
 * on the next open); after it, the new one. Both are complete, so no instant loses a record.
 */
import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readFileSync, rmSync } from 'node:fs';
import { open, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Bytes } from '../../core/bytes.ts';
import { IotError } from './errors.ts';

/** Largest record (a reading leaf is a few hundred bytes; window records are small). */
export const MAX_RECORD_BYTES = 64 * 1024;
/** Most appends waiting for a sync; beyond it append() fails with OVERLOADED (backpressure). */
export const MAX_PENDING_APPENDS = 200_000;

/** The steps of a rewrite, in order (a test harness crashes the process at each). */
export type RewriteStep = 'snapshot' | 'written' | 'synced' | 'renamed' | 'dirSynced';

/** An open append-only log. */
export interface AppendLog {
  /** Appends one record; resolves once it is on disk. */
  append(record: Bytes): Promise<void>;
  /** Records appended and synced so far in this process. */
  readonly synced: number;
  /** Size of the log file in bytes (what is written so far). */
  readonly bytes: number;
  /**
   * Replaces the log by the records `build()` returns, atomically (see the module comment).
   * `build` runs while no write is in flight and none can start, so the snapshot it takes of the
   * caller's state covers every record in the old file; appends made meanwhile wait and go to the
   * new file after the snapshot (a record both in the snapshot and queued is then written twice:
   * readers must treat repeats as one). `step` is called after each step.
   */
  rewrite(build: () => Bytes[], step?: (s: RewriteStep) => void): Promise<{ before: number; after: number }>;
  close(): Promise<void>;
}

/** fsyncs a directory, so a rename or a new file in it survives a power loss. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function frameOf(record: Bytes): Buffer {
  const frame = Buffer.alloc(8 + record.length);
  frame.writeUInt32BE(record.length, 0);
  frame.writeUInt32BE(crc32(record), 4);
  frame.set(record, 8);
  return frame;
}

/** Reads every intact record of the log at `path`, cutting off a torn tail. */
export function readLog(path: string): { records: Bytes[]; truncatedBytes: number } {
  // A rewrite that crashed before its rename: the log itself is intact.
  rmSync(`${path}.compact`, { force: true });
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
  let fh: FileHandle = await open(path, 'a');
  let bytes = (await fh.stat()).size;
  let queue: Array<{ frame: Buffer; done: () => void; fail: (e: unknown) => void }> = [];
  let flushing: Promise<void> | null = null;
  let rewriting: Promise<unknown> = Promise.resolve();
  let paused = false;
  let closed = false;
  let synced = 0;

  async function flush(): Promise<void> {
    while (queue.length > 0 && !paused) {
      const batch = queue;
      queue = [];
      try {
        const buf = Buffer.concat(batch.map((b) => b.frame));
        await fh.write(buf);
        await fh.datasync();
        bytes += buf.length;
        synced += batch.length;
        for (const b of batch) b.done();
      } catch (err) {
        for (const b of batch) b.fail(err);
      }
    }
  }
  function kick(): void {
    if (flushing !== null || paused || queue.length === 0) return;
    flushing = flush().finally(() => {
      flushing = null;
      kick();
    });
  }

  async function rewriteNow(
    build: () => Bytes[],
    step: (s: RewriteStep) => void,
  ): Promise<{ before: number; after: number }> {
    if (closed) throw new IotError('STOPPED', 'the log is closed', {});
    paused = true;
    try {
      while (flushing !== null) await flushing;
      const records = build();
      step('snapshot');
      const data = Buffer.concat(records.map(frameOf));
      const tmp = `${path}.compact`;
      const out = await open(tmp, 'w');
      try {
        await out.write(data);
        step('written');
        await out.sync();
      } finally {
        await out.close();
      }
      step('synced');
      await rename(tmp, path);
      step('renamed');
      fsyncDir(dirname(path));
      step('dirSynced');
      const before = bytes;
      // The old handle points at the replaced file: later appends must go to the new one.
      await fh.close();
      fh = await open(path, 'a');
      bytes = data.length;
      return { before, after: bytes };
    } finally {
      paused = false;
      kick();
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
      const frame = frameOf(record);
      return new Promise<void>((done, fail) => {
        queue.push({ frame, done, fail });
        kick();
      });
    },
    get synced() {
      return synced;
    },
    get bytes() {
      return bytes;
    },
    rewrite(build, step = () => undefined) {
      // One rewrite at a time.
      const p = rewriting.catch(() => undefined).then(() => rewriteNow(build, step));
      rewriting = p;
      return p;
    },
    async close() {
      await rewriting.catch(() => undefined);
      closed = true;
      while (flushing !== null || queue.length > 0) {
        kick();
        if (flushing !== null) await flushing;
      }
      await fh.close();
    },
  };
}
