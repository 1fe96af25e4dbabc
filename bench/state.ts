/**
 * bench:state — the authenticated state tree on LevelDB at a million keys: key updates committed
 * in 1,000-key blocks (execute the writes, compute the root, build the batch, write it, finalise),
 * proofs generated and verified per second, and bytes on disk per key. Prints a table.
 *
 * Besides wall-clock rates it prints CPU time (main thread, and the whole process including
 * LevelDB's threads and the tree's hashing thread), since on a shared 2-core machine wall-clock
 * figures move with other load; the 1-minute load average is printed at the start and the end.
 *
 * A block is committed as the node commits one (node/chain.ts): root(), commitOps, the batch,
 * finalize.
 *
 * The run is long enough to include LevelDB's compactions at their steady rate: 2,000 blocks
 * without fsync and 1,000 with (with the node's 8 MiB memtables LevelDB flushes one every ~80
 * blocks; a run of 60 blocks, as this bench once made, saw too little of it: with 32 MiB
 * memtables, none, which overstated the rate by a third or more).
 *
 * Environment: STATE_BENCH_KEYS (default 1,000,000), STATE_BENCH_BLOCKS (default 2,000),
 * STATE_BENCH_WRITE_BUFFER_MB (LevelDB memtable size; default the node's, 8 MiB),
 * STATE_BENCH_PARALLEL (the store's parallelHashing: auto, the node's default, always or off).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { decodeStateProof, encodeStateProof, verifyStateProof } from '../core/stateProof.ts';
import { openLevelStore, type KvStore, type LevelStoreOptions } from '../node/storage/kv.ts';
import type { ParallelHashing } from '../node/state/memoryTree.ts';
import { openStateStore, type StateStore } from '../node/state/stateStore.ts';
import { table, type Row } from './measure.ts';

const KEYS = Number(process.env.STATE_BENCH_KEYS ?? 1_000_000);
const BLOCKS = Number(process.env.STATE_BENCH_BLOCKS ?? 2000);
const PARALLEL = (process.env.STATE_BENCH_PARALLEL ?? 'auto') as ParallelHashing;
const WRITE_BUFFER_MB = process.env.STATE_BENCH_WRITE_BUFFER_MB;
const BLOCK_KEYS = 1000;
const BUILD_BATCH = 100_000;
const RETAIN = 16;
const CONTRACT = 'bench';

const dir = mkdtempSync(join(tmpdir(), 'trellis-bench-state-'));
const keyOf = (i: number): Uint8Array => Buffer.from(`acct/${i.toString().padStart(8, '0')}`);
const levelOptions = (syncWrites: boolean): LevelStoreOptions => ({
  syncWrites,
  ...(WRITE_BUFFER_MB === undefined ? {} : { writeBufferSizeBytes: Number(WRITE_BUFFER_MB) * 2 ** 20 }),
});
const rows: Row[] = [];
// Value j of a block: 32 random bytes of one buffer made per block. (A buffer per value, 1,000 per
// block made outside the timed part, left the garbage collector's work on them to the timed part:
// the store copies what it keeps, so how the caller allocates is the caller's cost.)
const values32 = (bytes: Buffer, j: number): Uint8Array => bytes.subarray(32 * j, 32 * j + 32);
const fmt = (n: number): string => n.toLocaleString('en-US', { maximumFractionDigits: 1 });
const rate = (name: string, ops: number, ms: number, note?: string): Row => ({
  name,
  opsPerSec: (ops * 1000) / ms,
  usPerOp: (ms * 1000) / ops,
  ...(note === undefined ? {} : { note }),
});
const threadMs = (): number => {
  const u = process.threadCpuUsage();
  return (u.user + u.system) / 1000;
};
const processMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

function du(path: string): number {
  let total = 0;
  for (const f of readdirSync(path)) total += statSync(join(path, f)).size;
  return total;
}

// A full collection on demand, to report the memory the store holds rather than garbage not yet
// collected (the flag must be set before a new context is made).
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

const load0 = loadavg()[0]!;
// Garbage-collection pauses of the main thread (the tree lives in the JavaScript heap).
let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });
let version = -1;

interface BlockTimes {
  execute: number;
  root: number;
  commitOps: number;
  write: number;
  finalize: number;
  ops: number;
  threadCpu: number;
  processCpu: number;
  wall: number;
  gc: number;
}

const zeroTimes = (): BlockTimes => ({
  execute: 0,
  root: 0,
  commitOps: 0,
  write: 0,
  finalize: 0,
  ops: 0,
  threadCpu: 0,
  processCpu: 0,
  wall: 0,
  gc: 0,
});

async function commitBlock(
  kv: KvStore,
  store: StateStore,
  write: (set: (k: Uint8Array, v: Uint8Array) => void) => void,
): Promise<BlockTimes> {
  const c0 = threadMs();
  const p0 = processMs();
  const g0 = gcMs;
  const t0 = performance.now();
  const view = store.view();
  write((k, v) => view.set(CONTRACT, k, v));
  const t1 = performance.now();
  view.root();
  const t2 = performance.now();
  const c = store.commitOps(view, ++version);
  const t3 = performance.now();
  await kv.batch(c.ops);
  const t4 = performance.now();
  c.finalize();
  const t5 = performance.now();
  return {
    execute: t1 - t0,
    root: t2 - t1,
    commitOps: t3 - t2,
    write: t4 - t3,
    finalize: t5 - t4,
    ops: c.ops.length,
    threadCpu: threadMs() - c0,
    processCpu: processMs() - p0,
    wall: t5 - t0,
    // Pauses reported by the time the block ends (entries arrive with a delay: approximate).
    gc: gcMs - g0,
  };
}

// 1. Build the tree in big blocks (in a function: its store is garbage once it returns, where a
// block of the module body would keep it alive while the module runs).
async function buildTree(): Promise<void> {
  const kv = await openLevelStore(dir, levelOptions(false));
  const store = await openStateStore(kv, { retainVersions: RETAIN, parallelHashing: PARALLEL });
  const t0 = performance.now();
  for (let start = 0; start < KEYS; start += BUILD_BATCH) {
    const end = Math.min(KEYS, start + BUILD_BATCH);
    await commitBlock(kv, store, (set) => {
      const bytes = randomBytes(32 * (end - start));
      for (let i = start; i < end; i++) set(keyOf(i), values32(bytes, i - start));
    });
  }
  // Empty blocks until the build versions have left the retention window and been pruned.
  for (let i = 0; i < RETAIN + 2; i++) await commitBlock(kv, store, () => undefined);
  const ms = performance.now() - t0;
  rows.push(
    rate(
      `build ${fmt(KEYS)} keys in ${fmt(BUILD_BATCH)}-key blocks`,
      KEYS,
      ms,
      `${(ms / 1000).toFixed(1)} s`,
    ),
  );
  await store.settled();
  await kv.close();
}
await buildTree();

// 2. Updates of random existing keys in 1,000-key blocks, without and with fsync per block.
for (const syncWrites of [false, true]) {
  const kv = await openLevelStore(dir, levelOptions(syncWrites));
  const c0 = threadMs();
  const t0 = performance.now();
  const store = await openStateStore(kv, { retainVersions: RETAIN, version, parallelHashing: PARALLEL });
  const openMs = performance.now() - t0;
  const openCpu = threadMs() - c0;
  // Heap and buffers once the store is open: the key index and the tree (and any garbage of the
  // rebuild not yet collected, so an upper bound).
  const openMem = process.memoryUsage();
  // After the open's last continuations have run, so its temporary buffers are garbage too.
  await new Promise((resolve) => setTimeout(resolve, 100));
  collectGarbage();
  const liveMem = process.memoryUsage();
  const records = store.treeRecords;
  if (!syncWrites) {
    rows.push(
      rate(
        `reopen at ${fmt(store.keyCount)} keys (loads the key index, rebuilds the tree)`,
        1,
        openMs,
        `${(openMs / 1000).toFixed(2)} s, ${(openCpu / 1000).toFixed(2)} s main-thread CPU; then heap ` +
          `${(openMem.heapUsed / 2 ** 20).toFixed(0)} MiB + buffers ${(openMem.external / 2 ** 20).toFixed(0)} MiB, ` +
          `after a full GC ${(liveMem.heapUsed / 2 ** 20).toFixed(0)} MiB + ${(liveMem.external / 2 ** 20).toFixed(0)} MiB ` +
          `+ the tree's records ${(records.bytes / 2 ** 20).toFixed(0)} MiB of shared memory ` +
          `(${fmt(records.nodes)} nodes, ${fmt(records.leaves)} leaves)`,
      ),
    );
  }
  const blocks = syncWrites ? Math.ceil(BLOCKS / 2) : BLOCKS;
  // Warm-up: more blocks than are retained, so pruning runs at its steady rate while measured.
  for (let w = 0; w < RETAIN + 2; w++) {
    await commitBlock(kv, store, (set) => {
      const bytes = randomBytes(32 * BLOCK_KEYS);
      for (let j = 0; j < BLOCK_KEYS; j++) set(keyOf(Math.floor(Math.random() * KEYS)), values32(bytes, j));
    });
  }
  // Each block's keys and values are made before its timing starts (made all at once, 2,000
  // blocks' worth would be ~600 MiB of buffers).
  const keys: Uint8Array[] = [];
  const values: Uint8Array[] = [];
  const sum = zeroTimes();
  for (let blk = 0; blk < blocks; blk++) {
    const bytes = randomBytes(32 * BLOCK_KEYS);
    for (let j = 0; j < BLOCK_KEYS; j++) {
      keys[j] = keyOf(Math.floor(Math.random() * KEYS));
      values[j] = values32(bytes, j);
    }
    const r = await commitBlock(kv, store, (set) => {
      for (let j = 0; j < BLOCK_KEYS; j++) set(keys[j]!, values[j]!);
    });
    for (const k of Object.keys(sum) as Array<keyof BlockTimes>) sum[k] += r[k];
  }
  const per = (x: number): string => (x / blocks).toFixed(1);
  rows.push(
    rate(
      `key updates committed, 1,000-key blocks (${syncWrites ? 'fsync per block' : 'no fsync'})`,
      blocks * BLOCK_KEYS,
      sum.wall,
      `per block: execute ${per(sum.execute)} ms, root() ${per(sum.root)} ms, ops ${per(sum.commitOps)} ms, ` +
        `LevelDB batch ${per(sum.write)} ms, finalize ${per(sum.finalize)} ms; ${Math.round(sum.ops / blocks)} batch ops`,
    ),
  );
  rows.push(
    rate(
      '  the same per main-thread CPU second',
      blocks * BLOCK_KEYS,
      sum.threadCpu,
      `main thread ${per(sum.threadCpu)} ms CPU per block (of which GC pauses ~${per(sum.gc)} ms); ` +
        `whole process (LevelDB, the hashing thread and GC too) ${per(sum.processCpu)} ms`,
    ),
  );

  if (syncWrites) {
    // 3. Proofs against the latest version: 99% present keys, 1% absent.
    const proveKeys = Array.from({ length: 20_000 }, () => keyOf(Math.floor(Math.random() * KEYS * 1.01)));
    const c1 = threadMs();
    const t2 = performance.now();
    const proofs = proveKeys.map((k) => store.prove(CONTRACT, k));
    const genMs = performance.now() - t2;
    const genCpu = threadMs() - c1;
    const encoded = proofs.map((p) => encodeStateProof(p.proof));
    const avgBytes = encoded.reduce((a, e) => a + e.length, 0) / encoded.length;
    const present = proofs.filter((p) => p.value !== undefined).length;
    rows.push(
      rate(
        'proofs generated (latest version)',
        proofs.length,
        genMs,
        `${fmt(present)} inclusion, ${fmt(proofs.length - present)} exclusion; ${Math.round(avgBytes)} B encoded on average; ` +
          `${((genCpu * 1000) / proofs.length).toFixed(1)} µs CPU each`,
      ),
    );
    const root = store.root;
    let ok = 0;
    const c2 = threadMs();
    const t3 = performance.now();
    for (let i = 0; i < proofs.length; i++) {
      if (verifyStateProof(root, CONTRACT, proveKeys[i]!, proofs[i]!.value, proofs[i]!.proof)) ok++;
    }
    const verMs = performance.now() - t3;
    const verCpu = threadMs() - c2;
    if (ok !== proofs.length) throw new Error(`only ${ok} of ${proofs.length} proofs verified`);
    rows.push(
      rate(
        'proofs verified',
        proofs.length,
        verMs,
        `${((verCpu * 1000) / proofs.length).toFixed(1)} µs CPU each`,
      ),
    );
    const c3 = threadMs();
    const t4 = performance.now();
    for (let i = 0; i < proofs.length; i++) {
      if (!verifyStateProof(root, CONTRACT, proveKeys[i]!, proofs[i]!.value, decodeStateProof(encoded[i]!))) {
        throw new Error('a decoded proof failed');
      }
    }
    rows.push(
      rate(
        'proofs decoded from bytes and verified',
        proofs.length,
        performance.now() - t4,
        `${(((threadMs() - c3) * 1000) / proofs.length).toFixed(1)} µs CPU each`,
      ),
    );

    // 4. Bytes on disk, and the live state records by kind.
    let live = 0;
    for await (const [k, v] of kv.scan({ gte: Uint8Array.of(0x20), lt: Uint8Array.of(0x21) }))
      live += k.length + v.length;
    const bytes = du(dir);
    rows.push({
      name: 'bytes on disk per key',
      opsPerSec: bytes / store.keyCount,
      usPerOp: 0,
      note: `${(bytes / 2 ** 20).toFixed(0)} MiB of LevelDB files for ${fmt(store.keyCount)} keys, ${RETAIN} versions retained; live state records ${(live / store.keyCount).toFixed(0)} B/key`,
    });
    const mem = process.memoryUsage();
    rows.push({
      name: 'JavaScript heap in use, MiB',
      opsPerSec: getHeapStatistics().used_heap_size / 2 ** 20,
      usPerOp: 0,
      note: `key index, tree (${fmt(store.keyCount)} keys), the bench's own arrays and proofs; RSS ${(mem.rss / 2 ** 20).toFixed(0)} MiB (heap high-water from the build)`,
    });
  }
  await store.settled();
  await kv.close();
}
rmSync(dir, { recursive: true, force: true });
console.log(table(rows));
console.log(
  `\n1-minute load average: ${load0.toFixed(2)} at the start, ${loadavg()[0]!.toFixed(2)} at the end (2 cores).`,
);
