import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { fillLeafRecord, rehashRecords, type RecordChunks } from './memoryTree.ts';
import {
  Control,
  JobKind,
  LEAVES_PER_PIECE,
  STAGE_WORDS,
  takePieces,
  type ChunkMessage,
  type HashWorkerData,
} from './hashThread.ts';

/**
 * The state tree's hashing thread (see hashThread.ts): takes pieces of the main thread's jobs (new
 * leaves to fill, changed subtrees to hash) from the shared counter, writes the hashes into the
 * shared record chunks of the arenas, and reports back through the control words.
 */

const data = workerData as HashWorkerData;
const control = new Int32Array(data.control);
const port: MessagePort = data.port;

interface Chunks {
  i32: Int32Array[];
  u8: Buffer[];
}
// Arena id → its node and leaf chunks as last sent (shared memory: the records themselves).
const arenas = new Map<number, { nodes: Chunks; leaves: Chunks }>();

// The leaves to fill, staged by the main thread (see fillLeaves in hashThread.ts).
let stageIndex: Int32Array = new Int32Array(0);
let stageBytes: Buffer = Buffer.alloc(0);

function apply(m: ChunkMessage): void {
  if (m.kind === 'stage') {
    stageIndex = new Int32Array(m.index);
    stageBytes = Buffer.from(m.bytes);
    return;
  }
  if (m.kind === 'drop') {
    arenas.delete(m.arena);
    return;
  }
  let a = arenas.get(m.arena);
  if (a === undefined) arenas.set(m.arena, (a = { nodes: { i32: [], u8: [] }, leaves: { i32: [], u8: [] } }));
  const chunks = m.kind === 'nodes' ? a.nodes : a.leaves;
  chunks.i32[m.index] = new Int32Array(m.buffer);
  chunks.u8[m.index] = Buffer.from(m.buffer);
}

let seen = 0;
Atomics.store(control, Control.ready, 1);
for (;;) {
  Atomics.wait(control, Control.job, seen);
  const job = Atomics.load(control, Control.job);
  if (job === seen) continue;
  seen = job;
  for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) {
    apply(m.message as ChunkMessage);
  }
  let result = 0;
  try {
    const a = arenas.get(control[Control.arena]!);
    if (a === undefined) throw new Error('unknown arena');
    const nodes: RecordChunks = a.nodes;
    const leaves: RecordChunks = a.leaves;
    const n = control[Control.count]!;
    if (control[Control.kind] === JobKind.subtrees) {
      takePieces(control, n, (i) => rehashRecords(nodes, leaves, control[Control.refs + i]!));
    } else {
      takePieces(control, Math.ceil(n / LEAVES_PER_PIECE), (p) => {
        const end = Math.min(n, (p + 1) * LEAVES_PER_PIECE);
        for (let i = p * LEAVES_PER_PIECE, o = i * STAGE_WORDS; i < end; i++, o += STAGE_WORDS) {
          const k = stageIndex[o + 1]!;
          const v = stageIndex[o + 3]!;
          fillLeafRecord(
            leaves,
            stageIndex[o]!,
            stageBytes.subarray(k, k + stageIndex[o + 2]!),
            stageBytes.subarray(v, v + stageIndex[o + 4]!),
          );
        }
      });
    }
  } catch {
    // Reported: the main thread then does the whole job again (filling and hashing are idempotent).
    result = 1;
  }
  Atomics.store(control, Control.result, result);
  Atomics.store(control, Control.done, job);
  Atomics.notify(control, Control.done);
}
