import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { StateError } from '../../core/stateProof.ts';
import type { Bytes } from '../../core/bytes.ts';
import { fillLeafRecord, rehashRecords, type RecordChunks } from './memoryTree.ts';

/**
 * A second thread for hashing the state tree. A 1,000-key block on a million-key tree makes ~3,000
 * SHA-256 for its new leaves (key hash, value hash, leaf hash) and rehashes ~2,700 nodes, and
 * neither depends on the order: the main thread and this thread take pieces of the work one at a
 * time from a shared counter until none is left (first runs of 16 leaves, staged in shared
 * memory; then the changed subtrees two levels below the root), writing the hashes into the same
 * records (the arena's chunks are shared memory). Taking rather than splitting in halves keeps the
 * main thread from waiting when this one runs slower (it shares its core with LevelDB's threads):
 * measured with halves, the main thread waited ~3 ms per block.
 *
 * One thread per process, shared by every arena, started when first needed. The main thread blocks
 * on the control words (Atomics.wait) until the thread reports, so a root stays one synchronous
 * call. The hashes are the same whichever thread computes them: the tree's bytes never depend on
 * this thread (test/state/hashThread.test.ts compares roots with and without it).
 *
 * The two never write the same record: each writes only the records of the pieces it took (new
 * leaves of a working tree; nodes the working tree changed, never committed ones) and reads
 * finished hashes below them.
 * Atomics.store/notify on the main side and Atomics.wait/load on this side (and back) order the
 * plain reads and writes of the records between the threads.
 */

/** Words of the control array shared with the thread. */
export const Control = {
  /** Job number, increased by the main thread per job. */
  job: 0,
  /** Job number the thread last finished. */
  done: 1,
  /** 0: the thread's share is done; 1: the thread failed (the main thread does the job again). */
  result: 2,
  arena: 3,
  count: 4,
  /** Next piece to take: each thread takes one at a time (Atomics.add) until none is left. */
  next: 5,
  /** What to do: {@link JobKind}. */
  kind: 6,
  /**
   * Set to 1 by the thread once it runs: until then the main thread does every job alone, so a
   * thread that never starts costs nothing but the attempt.
   */
  ready: 7,
  /** The roots of the subtrees to hash (at most {@link MAX_JOB_REFS}). */
  refs: 8,
} as const;

/** Calls `work(p)` for each piece p of `count` this thread takes from the shared counter. */
export function takePieces(control: Int32Array, count: number, work: (piece: number) => void): void {
  for (let p = Atomics.add(control, Control.next, 1); p < count; p = Atomics.add(control, Control.next, 1)) {
    work(p);
  }
}

/** Jobs: hash subtrees (pieces are subtrees), or fill leaves (pieces are runs of staged leaves). */
export const JobKind = { subtrees: 0, leaves: 1 } as const;

/**
 * Leaves to fill, staged in shared memory: per leaf five words of the index (leaf id, offset and
 * length of its key encoding, offset and length of its value, in the bytes), taken
 * {@link LEAVES_PER_PIECE} at a time.
 */
export const STAGE_WORDS = 5;
export const LEAVES_PER_PIECE = 16;
const MAX_JOB_REFS = 256;

/**
 * New or replaced record chunks of an arena, an arena gone, or a new staging area. The thread reads
 * them when its next job starts (it holds a dropped arena's chunks until then).
 */
export type ChunkMessage =
  | { kind: 'nodes' | 'leaves'; arena: number; index: number; buffer: SharedArrayBuffer }
  | { kind: 'drop'; arena: number }
  | { kind: 'stage'; index: SharedArrayBuffer; bytes: SharedArrayBuffer };

/** What the thread starts with. */
export interface HashWorkerData {
  readonly control: SharedArrayBuffer;
  readonly port: MessagePort;
}

/** How long the main thread waits for a job before it gives the thread up (it never should). */
const JOB_TIMEOUT_MS = 60_000;

interface Thread {
  readonly worker: Worker;
  readonly port: MessagePort;
  readonly control: Int32Array;
  dead: boolean;
}
let thread: Thread | null = null;
// Ids for arenas, unique in the process (the thread keeps their chunks by id).
let lastArena = 0;

function start(): Thread {
  const control = new Int32Array(new SharedArrayBuffer((Control.refs + MAX_JOB_REFS) * 4));
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(new URL('./treeHashWorker.ts', import.meta.url), {
    workerData: { control: control.buffer, port: port2 } satisfies HashWorkerData,
    transferList: [port2],
  });
  // Neither keeps the process alive: the thread only ever waits for the main thread.
  worker.unref();
  port1.unref();
  const t: Thread = { worker, port: port1, control, dead: false };
  worker.on('error', () => {
    t.dead = true;
  });
  worker.on('exit', () => {
    t.dead = true;
  });
  return t;
}

// The staging area (one per process: jobs run one at a time), grown by doubling; the thread is
// sent each new one. Bounded by the largest block's writes.
let stageIndex: Int32Array = new Int32Array(new SharedArrayBuffer(STAGE_WORDS * 4 * 1024));
let stageBytes: Buffer = Buffer.from(new SharedArrayBuffer(64 * 1024));
let stageSent = false;

/** Starts the hashing thread if it is not running (it takes a moment to load). */
export function startHashThread(): void {
  thread ??= start();
}

/** Resolves true once the hashing thread runs, false if it failed or did not start in time. */
export async function hashThreadReady(timeoutMs = 10_000): Promise<boolean> {
  startHashThread();
  const t = thread!;
  for (const end = Date.now() + timeoutMs; Date.now() < end && !t.dead;) {
    if (Atomics.load(t.control, Control.ready) === 1) return true;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return Atomics.load(t.control, Control.ready) === 1 && !t.dead;
}

/** Jobs the hashing thread has finished in this process (for tests and diagnostics). */
let jobsDone = 0;
export function hashThreadJobs(): number {
  return jobsDone;
}

const dropped = new FinalizationRegistry<number>((arena) => {
  if (thread !== null && !thread.dead)
    thread.port.postMessage({ kind: 'drop', arena } satisfies ChunkMessage);
});

/**
 * An arena's link to the hashing thread: which of its chunks the thread has, and the jobs.
 */
export class HashLink {
  readonly arena: number;
  private readonly sentNodes: Int32Array[] = [];
  private readonly sentLeaves: Int32Array[] = [];

  constructor(owner: object) {
    this.arena = ++lastArena;
    dropped.register(owner, this.arena);
  }

  private send(t: Thread, kind: 'nodes' | 'leaves', chunks: RecordChunks, sent: Int32Array[]): void {
    for (let i = 0; i < chunks.i32.length; i++) {
      const words = chunks.i32[i]!;
      if (sent[i] === words) continue;
      sent[i] = words;
      t.port.postMessage({
        kind,
        arena: this.arena,
        index: i,
        buffer: words.buffer as SharedArrayBuffer,
      } satisfies ChunkMessage);
    }
  }

  /**
   * Hashes the subtrees `refs` on this thread and the hashing thread together (each takes the next
   * one left, see {@link Control.next}); returns once all are done. False when the thread is
   * unavailable or failed: the caller then rehashes `refs` itself (rehashing skips what is done,
   * and the thread has stopped by then, so nothing races).
   */
  run(nodes: RecordChunks, leaves: RecordChunks, refs: readonly number[]): boolean {
    if (refs.length > MAX_JOB_REFS) {
      throw new StateError('HASH_THREAD', `hash thread: more than ${MAX_JOB_REFS} subtrees in one job`, {});
    }
    const t = this.thread(nodes, leaves);
    if (t === null) return false;
    const c = t.control;
    for (let i = 0; i < refs.length; i++) c[Control.refs + i] = refs[i]!;
    return this.job(t, JobKind.subtrees, refs.length, () => {
      takePieces(c, refs.length, (i) => rehashRecords(nodes, leaves, refs[i]!));
    });
  }

  /**
   * Fills the leaves `ids` (fillLeafRecord) on this thread and the hashing thread together. False
   * when the thread is unavailable or failed: the caller then fills them all itself.
   */
  fillLeaves(
    leaves: RecordChunks,
    ids: readonly number[],
    encodedKeys: readonly Bytes[],
    values: readonly Bytes[],
  ): boolean {
    const t = this.thread(null, leaves);
    if (t === null) return false;
    const n = ids.length;
    let size = 0;
    for (let i = 0; i < n; i++) size += encodedKeys[i]!.length + values[i]!.length;
    if (n * STAGE_WORDS > stageIndex.length) {
      stageIndex = new Int32Array(
        new SharedArrayBuffer(Math.max(2 * stageIndex.byteLength, n * STAGE_WORDS * 4)),
      );
      stageSent = false;
    }
    if (size > stageBytes.length) {
      stageBytes = Buffer.from(new SharedArrayBuffer(Math.max(2 * stageBytes.length, size)));
      stageSent = false;
    }
    if (!stageSent) {
      t.port.postMessage({
        kind: 'stage',
        index: stageIndex.buffer as SharedArrayBuffer,
        bytes: stageBytes.buffer as SharedArrayBuffer,
      } satisfies ChunkMessage);
      stageSent = true;
    }
    const index = stageIndex;
    const bytes = stageBytes;
    for (let i = 0, at = 0, o = 0; i < n; i++, o += STAGE_WORDS) {
      const k = encodedKeys[i]!;
      const v = values[i]!;
      index[o] = ids[i]!;
      index[o + 1] = at;
      index[o + 2] = k.length;
      bytes.set(k, at);
      at += k.length;
      index[o + 3] = at;
      index[o + 4] = v.length;
      bytes.set(v, at);
      at += v.length;
    }
    const pieces = Math.ceil(n / LEAVES_PER_PIECE);
    const c = t.control;
    return this.job(t, JobKind.leaves, n, () => {
      takePieces(c, pieces, (p) => {
        const end = Math.min(n, (p + 1) * LEAVES_PER_PIECE);
        // Straight from the caller's arrays here: the staged copies are for the other thread.
        for (let i = p * LEAVES_PER_PIECE; i < end; i++)
          fillLeafRecord(leaves, ids[i]!, encodedKeys[i]!, values[i]!);
      });
    });
  }

  // The running thread with this arena's current chunks, or null when it is not running (not yet
  // started, or failed).
  private thread(nodes: RecordChunks | null, leaves: RecordChunks): Thread | null {
    if (thread?.dead === true) return null;
    thread ??= start();
    if (Atomics.load(thread.control, Control.ready) !== 1) return null;
    if (nodes !== null) this.send(thread, 'nodes', nodes, this.sentNodes);
    this.send(thread, 'leaves', leaves, this.sentLeaves);
    return thread;
  }

  // Starts a job of `count` items on the thread, runs `mine` (this thread's share, taking pieces
  // from the counter) and waits for the thread; true when it finished without failing.
  private job(t: Thread, kind: number, count: number, mine: () => void): boolean {
    const c = t.control;
    const job = (Atomics.load(c, Control.job) + 1) | 0;
    c[Control.arena] = this.arena;
    c[Control.count] = count;
    c[Control.kind] = kind;
    Atomics.store(c, Control.next, 0);
    Atomics.store(c, Control.job, job);
    Atomics.notify(c, Control.job);
    mine();
    const deadline = performance.now() + JOB_TIMEOUT_MS;
    for (;;) {
      const done = Atomics.load(c, Control.done);
      if (done === job) break;
      const left = deadline - performance.now();
      if (left <= 0 || t.dead) {
        // The thread never answered: it can no longer be trusted not to write these records.
        t.dead = true;
        throw new StateError(
          'HASH_THREAD',
          `state tree: the hashing thread did not answer in ${JOB_TIMEOUT_MS / 1000} s`,
          {
            job,
          },
        );
      }
      Atomics.wait(c, Control.done, done, Math.min(left, 1000));
    }
    if (Atomics.load(c, Control.result) !== 0) return false;
    jobsDone++;
    return true;
  }
}
