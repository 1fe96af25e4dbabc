/**
 * Contract VM throughput: a receivable-style transfer (2 state reads, 2 writes, 1 event) next to
 * a bare isolated-vm `applySync` round trip, measured in the same run on the same machine.
 *
 *   npm run bench:vm           (BENCH_VM_ROUNDS=n for more rounds; default 15;
 *                               BENCH_VM_BLOCKS_PER_SAMPLE=n blocks per executeBlock sample, default 3)
 *
 * Figures for the transfer:
 * - isolate: the transfer inside its warm context alone (`sandbox.invoke`, the host answering
 *   reads from a constant, nothing applied): the VM's own cost, round trip included;
 * - call: one contract call through the executor (`runCall`: registry lookup, isolate round trip,
 *   two host reads, applying two writes and one event, checkpoint), no transaction envelope;
 * - block: `executeBlock` over pre-signed transactions (nonce check and update, gas, receipts,
 *   receipts root and state root included): what a validator does per transaction, and the figure
 *   the targets apply to. The executor runs consecutive transactions of one contract in one entry
 *   into its context (vm/executor.ts, batches), so this block (2,000 transfers of one contract)
 *   pays the isolate round trip a few times per block rather than per transaction;
 * - block, one entry per tx: the same executor with batches off (`batchTransactions: false`);
 * - block, two contracts alternating: every other transaction goes to a second copy of the
 *   contract, so no two consecutive transactions share a context: batches of one, the worst case.
 * Times are CPU time of the main thread (isolated-vm runs synchronous calls on it), in interleaved
 * rounds: the best round shows the least disturbed cost, the median the typical one, and the
 * ratios compare rounds run side by side. State is vm/memoryState.ts (in memory); the node's authenticated tree adds its own cost.
 *
 * Before and after: `BENCH_VM_BASE=<dir>` adds the executeBlock row of another checkout of this
 * repository (for example `git archive <commit> | tar -x -C <dir>`, with a node_modules link),
 * run in the same rounds as this one, and the ratio of the two per round. Both run the same
 * workload in the same process, so a shared machine disturbs them alike.
 */
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import type IvmModule from 'isolated-vm';
import { encodeValue } from '../core/codec.ts';
import type { SignedTransaction } from '../core/types.ts';
import { compileContract } from '../vm/compile.ts';
import { createSandbox, InvokeKind } from '../vm/sandbox.ts';
import { createTestChain, type TestChain, type TestChainOptions } from '../vm/testing.ts';

process.removeAllListeners('warning');
const require = createRequire(import.meta.url);
const ivm = require('isolated-vm') as typeof IvmModule;
const ROUNDS = Number(process.env['BENCH_VM_ROUNDS'] ?? 15);

/**
 * Runs `fn(n)` and returns nanoseconds of this thread's CPU time per unit. CPU time rather than
 * wall time, because the machine may be shared: time spent waiting for a core is not the VM's.
 * (isolated-vm runs synchronous calls on the calling thread, so guest time is included.)
 * Linux may account thread CPU time in scheduler ticks (4 ms on the machine these figures come
 * from): each sample is tens of milliseconds long so the rounding stays a few per cent, and it
 * averages out over rounds.
 */
function cpuNow(): number {
  const u = process.threadCpuUsage();
  return (u.user + u.system) * 1000;
}
function time(n: number, fn: (n: number) => void): number {
  const start = cpuNow();
  fn(n);
  return (cpuNow() - start) / n;
}

// 1. Bare isolated-vm round trip: a guest function taking and returning a short string.
const isolate = new ivm.Isolate({ memoryLimit: 128 });
const context = isolate.createContextSync();
const echo = context.evalClosureSync('return (s) => s;', [], {
  result: { reference: true },
}) as IvmModule.Reference<(s: string) => string>;
const bare = (n: number): void => {
  for (let i = 0; i < n; i++) echo.applySync(undefined, ['transfer 0x1234567890 42']);
};

// 2. The receivable contract, with 64 funded holders.
const source = readFileSync(new URL('../contracts/examples/receivable.ts', import.meta.url), 'utf8');
const setup = (batchTransactions: boolean, create: (o: TestChainOptions) => TestChain = createTestChain) => {
  const c = create({ blockTimeMs: 1, executor: { batchTransactions } });
  c.deploy('rcv', source);
  c.deploy('rcv2', source);
  const hs = Array.from({ length: 64 }, (_, i) => c.account(`holder${i}`));
  for (const h of hs) {
    c.call('rcv', 'issue', { to: h.address, amount: 10n ** 15n });
    c.call('rcv2', 'issue', { to: h.address, amount: 10n ** 15n });
  }
  return { c, hs };
};
const { c: chain, hs: holders } = setup(true);
const { c: soloChain } = setup(false);
// The same batched workload on another checkout's executor (BENCH_VM_BASE), for before/after.
const BASE = process.env['BENCH_VM_BASE'];
const baseChain =
  BASE === undefined
    ? null
    : setup(
        true,
        (
          (await import(new URL('vm/testing.ts', `file://${BASE.replace(/\/?$/, '/')}`).href)) as {
            createTestChain: (o: TestChainOptions) => TestChain;
          }
        ).createTestChain,
      ).c;
const to = chain.account('receiver').address;
let i = 0;
const call = (n: number): void => {
  for (let k = 0; k < n; k++, i++) {
    const r = chain.executor.runCall({
      state: chain.state,
      contract: 'rcv',
      method: 'transfer',
      args: { to, amount: 1 + (i % 7) },
      sender: holders[i % holders.length]!.address,
      height: 1,
      time: 1,
      gasLimit: 100_000,
    });
    if (r.status !== 'ok') throw new Error(`transfer failed: ${r.error}`);
  }
};

// 2b. The same transfer inside the isolate only: no state store, no envelope applied.
const sandbox = createSandbox();
const loaded = sandbox.load('bench:rcv', compileContract(source).code);
if (typeof loaded === 'string') throw new Error(loaded);
const balance = Buffer.from(encodeValue(10n ** 15n)).toString('latin1');
loaded.handler = (op) => (op === 1 ? balance : -1);
const isolateArgs = Buffer.from(encodeValue({ to, amount: 1 })).toString('latin1');
const isolate1 = (n: number): void => {
  for (let k = 0; k < n; k++) {
    const r = sandbox.invoke(
      loaded,
      {
        kind: InvokeKind.method,
        method: 'transfer',
        args: isolateArgs,
        contract: 'rcv',
        sender: holders[k % holders.length]!.address,
        origin: '',
        txHash: `0x${'11'.repeat(32)}`,
        height: 1,
        time: 1,
        scheduled: false,
        gas: 100_000,
        stackUnits: 40_000,
        cacheSession: 1,
      },
      true,
    );
    if (r.status !== 0) throw new Error(`transfer failed: ${r.message}`);
  }
};

// 3. Whole blocks of pre-signed transfer transactions (signing is not timed).
const BLOCK = 2_000;
let height = 1_000;
const nextBlock = (c = chain, alternate = false): SignedTransaction[] =>
  Array.from({ length: BLOCK }, (_, k) =>
    c.sign({
      contract: alternate && k % 2 === 1 ? 'rcv2' : 'rcv',
      method: 'transfer',
      args: { to, amount: 1 + (k % 7) },
      from: holders[k % holders.length]!.name,
      gasLimit: 100_000,
    }),
  );
/**
 * Executes the given blocks one after the other and returns the CPU time per transaction. The
 * target rows time several blocks in one sample: thread CPU time may advance in 4 ms ticks here,
 * which on one 2,000-transfer block (~16 ms) was a ±25% error per sample.
 */
const blocks = (list: SignedTransaction[][], c = chain): number => {
  let n = 0;
  const results = [];
  const start = cpuNow();
  for (const txs of list) {
    results.push(
      c.executor.executeBlock({
        state: c.state,
        header: { chainId: 'trellis-test', height: height++, timestamp: 2_000_000_000_000 + height },
        txs,
      }),
    );
    n += txs.length;
  }
  const ns = (cpuNow() - start) / n;
  for (const r of results) {
    const bad = r.receipts.find((x) => x.status !== 'ok');
    if (bad !== undefined) throw new Error(`transfer failed: ${bad.errorCode} ${bad.error}`);
  }
  return ns;
};
const block = (txs: SignedTransaction[], c = chain): number => blocks([txs], c);
/** Blocks per sample of the target rows (executeBlock and its baseline). */
const PER_SAMPLE = Number(process.env['BENCH_VM_BLOCKS_PER_SAMPLE'] ?? 3);
const nextBlocks = (c = chain): SignedTransaction[][] =>
  Array.from({ length: PER_SAMPLE }, () => nextBlock(c));

// Warm everything up, then interleave.
bare(20_000);
isolate1(10_000);
call(10_000);
block(nextBlock());
block(nextBlock(chain, true));
block(nextBlock(soloChain), soloChain);
if (baseChain !== null) block(nextBlock(baseChain), baseChain);
const samples = {
  bare: [] as number[],
  isolate: [] as number[],
  isolateRatio: [] as number[],
  call: [] as number[],
  block: [] as number[],
  blockSolo: [] as number[],
  blockMixed: [] as number[],
  callRatio: [] as number[],
  blockRatio: [] as number[],
  blockSoloRatio: [] as number[],
  blockMixedRatio: [] as number[],
  blockBase: [] as number[],
  blockOverBase: [] as number[],
};
for (let r = 0; r < ROUNDS; r++) {
  const txs = nextBlocks();
  const mixed = nextBlock(chain, true);
  const solo = nextBlock(soloChain);
  const based = baseChain === null ? null : nextBlocks(baseChain);
  // Signed only when it runs: signing assigns nonces, so a block never executed would leave a gap.
  const mine = baseChain === null ? null : nextBlocks();
  const b1 = time(20_000, bare);
  const iso = time(3_000, isolate1);
  const c = time(3_000, call);
  const k = blocks(txs);
  const km = block(mixed);
  const ks = block(solo, soloChain);
  if (baseChain !== null && based !== null && mine !== null) {
    // This tree's executor next to the baseline's, in alternating order.
    const k2 = r % 2 === 0 ? NaN : blocks(mine);
    const kb = blocks(based, baseChain);
    const mineTime = Number.isNaN(k2) ? blocks(mine) : k2;
    samples.blockBase.push(kb);
    samples.blockOverBase.push(mineTime / kb);
  }
  const b2 = time(20_000, bare);
  const b = Math.min(b1, b2);
  samples.bare.push(b);
  samples.isolate.push(iso);
  samples.isolateRatio.push(iso / b);
  samples.call.push(c);
  samples.block.push(k);
  samples.blockSolo.push(ks);
  samples.blockMixed.push(km);
  samples.callRatio.push(c / b);
  samples.blockRatio.push(k / b);
  samples.blockSoloRatio.push(ks / b);
  samples.blockMixedRatio.push(km / b);
}
const best = (x: number[]): number => Math.min(...x);
const median = (x: number[]): number => [...x].sort((a, b) => a - b)[x.length >> 1]!;
const row = (name: string, x: number[]): void => {
  const f = (ns: number): string =>
    `${(ns / 1000).toFixed(2).padStart(7)} µs ${Math.round(1e9 / ns)
      .toLocaleString('en-US')
      .padStart(9)}/s`;
  console.log(`${name.padEnd(40)} best ${f(best(x))}   median ${f(median(x))}`);
};
console.log(
  `node ${process.version}, isolated-vm ${(require('isolated-vm/package.json') as { version: string }).version}, ${ROUNDS} rounds, executeBlock sampled over ${PER_SAMPLE} blocks`,
);
row('bare isolated-vm applySync round trip', samples.bare);
row('transfer: inside the isolate only', samples.isolate);
row('transfer: one contract call (runCall)', samples.call);
row(`transfer: executeBlock (${BLOCK} tx/block)`, samples.block);
row('  the same, one entry per tx (no batches)', samples.blockSolo);
row('  the same, two contracts alternating', samples.blockMixed);
if (baseChain !== null) row(`  the same, on ${BASE}`, samples.blockBase);
const ratio = (name: string, x: number[], note = ''): void =>
  console.log(`${name.padEnd(40)} best ${best(x).toFixed(2)}x, median ${median(x).toFixed(2)}x${note}`);
ratio('isolate / bare', samples.isolateRatio);
ratio('call / bare', samples.callRatio);
ratio('block / bare', samples.blockRatio, '   (target <= 5x)');
ratio('block, one entry per tx / bare', samples.blockSoloRatio);
ratio('block, two contracts alternating / bare', samples.blockMixedRatio);
if (baseChain !== null) ratio('block / the same on BENCH_VM_BASE', samples.blockOverBase);
const perSecond = (x: number[]): string => Math.round(1e9 / median(x)).toLocaleString('en-US');
console.log(
  `transfers/s (median): block ${perSecond(samples.block)}   (target >= 30,000); one entry per tx ${perSecond(samples.blockSolo)}, two contracts alternating ${perSecond(samples.blockMixed)}, call ${perSecond(samples.call)}`,
);
chain.close();
soloChain.close();
baseChain?.close();
sandbox.dispose();
context.release();
isolate.dispose();
