import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { rehashRecords, type RecordChunks } from './memoryTree.ts';
import { Control, type ChunkMessage, type HashWorkerData } from './hashThread.ts';

/**
 * The state tree's hashing thread (see hashThread.ts): hashes the subtrees the main thread hands it,
 * in the shared record chunks of the arenas, and reports back through the control words.
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

function apply(m: ChunkMessage): void {
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
    for (let i = Atomics.add(control, Control.next, 1); i < n; i = Atomics.add(control, Control.next, 1)) {
      rehashRecords(nodes, leaves, control[Control.refs + i]!);
    }
  } catch {
    // The main thread hashes what is left itself.
    result = 1;
  }
  Atomics.store(control, Control.result, result);
  Atomics.store(control, Control.done, job);
  Atomics.notify(control, Control.done);
}
