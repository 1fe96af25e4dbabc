/**
 * bench:state — the authenticated state tree on LevelDB at a million keys: key updates committed
 * in 1,000-key blocks (execute, compute the root and the batch, write it, finalise), proofs
 * generated and verified per second, and bytes on disk per key. Prints a table.
 *
 * Environment: STATE_BENCH_KEYS (default 1,000,000), STATE_BENCH_BLOCKS (default 60).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeStateProof, encodeStateProof, verifyStateProof } from '../core/stateProof.ts';
import { openLevelStore, type KvStore } from '../node/storage/kv.ts';
import { openStateStore, type StateStore } from '../node/state/stateStore.ts';
import { table, type Row } from './measure.ts';

const KEYS = Number(process.env.STATE_BENCH_KEYS ?? 1_000_000);
const BLOCKS = Number(process.env.STATE_BENCH_BLOCKS ?? 60);
const BLOCK_KEYS = 1000;
const BUILD_BATCH = 100_000;
const CONTRACT = 'bench';

const dir = mkdtempSync(join(tmpdir(), 'trellis-bench-state-'));
const keyOf = (i: number): Uint8Array => Buffer.from(`acct/${i.toString().padStart(8, '0')}`);
const rows: Row[] = [];
const rate = (name: string, ops: number, ms: number, note?: string): Row => ({
  name,
  opsPerSec: (ops * 1000) / ms,
  usPerOp: (ms * 1000) / ops,
  ...(note === undefined ? {} : { note }),
});

function du(path: string): number {
  let total = 0;
  for (const f of readdirSync(path)) total += statSync(join(path, f)).size;
  return total;
}

let version = -1;
async function commitBlock(
  kv: KvStore,
  store: StateStore,
  write: (set: (k: Uint8Array, v: Uint8Array) => void) => void,
) {
  const t0 = performance.now();
  const view = store.view();
  write((k, v) => view.set(CONTRACT, k, v));
  const t1 = performance.now();
  const c = store.commitOps(view, ++version);
  const t2 = performance.now();
  await kv.batch(c.ops);
  const t3 = performance.now();
  c.finalize();
  const t4 = performance.now();
  return { execute: t1 - t0, commitOps: t2 - t1, write: t3 - t2, finalize: t4 - t3, ops: c.ops.length };
}

// 1. Build the tree in big blocks.
{
  const kv = await openLevelStore(dir, { syncWrites: false });
  const store = await openStateStore(kv, { retainVersions: 16 });
  const t0 = performance.now();
  for (let start = 0; start < KEYS; start += BUILD_BATCH) {
    const end = Math.min(KEYS, start + BUILD_BATCH);
    await commitBlock(kv, store, (set) => {
      for (let i = start; i < end; i++) set(keyOf(i), randomBytes(32));
    });
  }
  const ms = performance.now() - t0;
  rows.push(
    rate(
      `build ${KEYS.toLocaleString('en-US')} keys (${BUILD_BATCH.toLocaleString('en-US')}-key blocks)`,
      KEYS,
      ms,
      `${(ms / 1000).toFixed(1)} s`,
    ),
  );
  await kv.close();
}

// 2. Updates in 1,000-key blocks, with and without fsync per block.
for (const syncWrites of [false, true]) {
  const kv = await openLevelStore(dir, { syncWrites });
  const t0 = performance.now();
  const store = await openStateStore(kv, { retainVersions: 16, version });
  const openMs = performance.now() - t0;
  if (!syncWrites)
    rows.push(
      rate(
        `reopen at ${store.keyCount.toLocaleString('en-US')} keys (load key index)`,
        1,
        openMs,
        `${(openMs / 1000).toFixed(2)} s`,
      ),
    );
  const sum = { execute: 0, commitOps: 0, write: 0, finalize: 0, ops: 0 };
  const blocks = syncWrites ? Math.ceil(BLOCKS / 2) : BLOCKS;
  // Warm-up blocks fill the node cache the way a running node has it.
  for (let w = 0; w < 5; w++) {
    await commitBlock(kv, store, (set) => {
      for (let j = 0; j < BLOCK_KEYS; j++) set(keyOf(Math.floor(Math.random() * KEYS)), randomBytes(32));
    });
  }
  const values = Array.from({ length: blocks * BLOCK_KEYS }, () => randomBytes(32));
  const keys = Array.from({ length: blocks * BLOCK_KEYS }, () => keyOf(Math.floor(Math.random() * KEYS)));
  const tStart = performance.now();
  for (let blk = 0; blk < blocks; blk++) {
    const r = await commitBlock(kv, store, (set) => {
      for (let j = blk * BLOCK_KEYS; j < (blk + 1) * BLOCK_KEYS; j++) set(keys[j]!, values[j]!);
    });
    for (const k of Object.keys(sum) as Array<keyof typeof sum>) sum[k] += r[k];
  }
  const total = performance.now() - tStart;
  const n = blocks * BLOCK_KEYS;
  const tag = syncWrites ? 'fsync per block' : 'no fsync';
  rows.push(
    rate(
      `key updates committed, 1,000-key blocks (${tag})`,
      n,
      total,
      `per block: execute ${(sum.execute / blocks).toFixed(1)} ms, root+ops ${(sum.commitOps / blocks).toFixed(1)} ms, ` +
        `LevelDB batch ${(sum.write / blocks).toFixed(1)} ms, finalize ${(sum.finalize / blocks).toFixed(1)} ms, ${Math.round(sum.ops / blocks)} ops`,
    ),
  );
  if (!syncWrites)
    rows.push(rate('  of which in-memory (execute + root + ops + finalize)', n, total - sum.write));

  if (syncWrites) {
    // 3. Proofs against the latest version.
    const proveKeys = Array.from({ length: 20_000 }, () => keyOf(Math.floor(Math.random() * KEYS * 1.01)));
    const t1 = performance.now();
    const proofs = proveKeys.map((k) => store.prove(CONTRACT, k));
    const genMs = performance.now() - t1;
    const encoded = proofs.map((p) => encodeStateProof(p.proof));
    const avgBytes = encoded.reduce((a, e) => a + e.length, 0) / encoded.length;
    const present = proofs.filter((p) => p.value !== undefined).length;
    rows.push(
      rate(
        'proofs generated (latest version)',
        proofs.length,
        genMs,
        `${present} inclusion, ${proofs.length - present} exclusion; ${Math.round(avgBytes)} B encoded on average`,
      ),
    );
    const root = store.root;
    let ok = 0;
    const t2 = performance.now();
    for (let i = 0; i < proofs.length; i++)
      if (verifyStateProof(root, CONTRACT, proveKeys[i]!, proofs[i]!.value, proofs[i]!.proof)) ok++;
    const verMs = performance.now() - t2;
    if (ok !== proofs.length) throw new Error(`only ${ok} of ${proofs.length} proofs verified`);
    rows.push(rate('proofs verified', proofs.length, verMs));
    const t3 = performance.now();
    for (let i = 0; i < proofs.length; i++)
      verifyStateProof(root, CONTRACT, proveKeys[i]!, proofs[i]!.value, decodeStateProof(encoded[i]!));
    rows.push(rate('proofs decoded from bytes and verified', proofs.length, performance.now() - t3));
    const bytes = du(dir);
    rows.push({
      name: 'bytes on disk per key',
      opsPerSec: bytes / store.keyCount,
      usPerOp: 0,
      note: `${(bytes / 2 ** 20).toFixed(0)} MiB for ${store.keyCount.toLocaleString('en-US')} keys, 16 versions retained, before compaction settles`,
    });
    rows.push({ name: 'resident memory (MiB)', opsPerSec: process.memoryUsage().rss / 2 ** 20, usPerOp: 0 });
  }
  await kv.close();
}
rmSync(dir, { recursive: true, force: true });
console.log(table(rows));
