// Goal: four real validator processes agree on one chain, survive a SIGKILL, catch a restarted node up by block sync, and get past a withheld proposal by round change.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCluster, type Cluster } from './harness.ts';

interface Commit {
  header: { height: number; stateRoot: string; round: number };
  certificate: { round: number; blockHash: string; signatures: Array<{ validator: string }> };
}

let cluster: Cluster;

beforeAll(async () => {
  cluster = await createCluster({ validators: 4, basePort: 36100 });
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

async function heights(nodes: number[]): Promise<number[]> {
  return Promise.all(nodes.map((i) => cluster.height(i)));
}

async function expectSameChain(nodes: number[], upTo: number): Promise<void> {
  for (let h = 1; h <= upTo; h++) {
    const commits = await Promise.all(
      nodes.map((i) => cluster.rpc<Commit>(i, 'chain_getCommit', { height: h })),
    );
    const hashes = new Set(commits.map((c) => c.certificate.blockHash));
    const roots = new Set(commits.map((c) => c.header.stateRoot));
    expect(hashes.size, `block hashes at height ${h}`).toBe(1);
    expect(roots.size, `state roots at height ${h}`).toBe(1);
  }
}

describe('a 4-validator consortium on loopback', () => {
  it('commits identical blocks on every validator', async () => {
    await cluster.waitFor('every node at height 5', async () =>
      (await heights([0, 1, 2, 3])).every((h) => h >= 5),
    );
    await expectSameChain([0, 1, 2, 3], 5);
  });

  it('goes on without a validator killed with SIGKILL, which catches up by block sync and votes again after restart', async () => {
    await cluster.signal(3, 'SIGKILL');
    const [base] = await heights([0]);
    await cluster.waitFor('the other three commit 5 more blocks', async () =>
      (await heights([0, 1, 2])).every((h) => h >= base! + 5),
    );
    cluster.start(3);
    await cluster.waitFor('the restarted node catches up', async () => {
      const [h3, h0] = await heights([3, 0]);
      return h3! >= base! + 5 && h3! >= h0! - 1;
    });
    const synced = await cluster.rpc<{ height: number }>(3, 'chain_getHead');
    expect(readFileSync(join(cluster.dir, 'validator-3.log'), 'utf8')).toMatch(/"msg":"SYNCED_BLOCK"/);
    await expectSameChain([0, 3], synced.height);
    // With node 0 down, a quorum (3 of 4) needs node 3's votes: blocks commit only if it votes.
    await cluster.signal(0, 'SIGKILL');
    const [b1] = await heights([1]);
    await cluster.waitFor('blocks commit with node 3 in the quorum', async () =>
      (await heights([1, 2, 3])).every((h) => h >= b1! + 3),
    );
    const commit = await cluster.rpc<Commit>(1, 'chain_getCommit', { height: b1! + 3 });
    expect(commit.certificate.signatures.map((s) => s.validator)).toContain(cluster.nodes[3]!.address);
    cluster.start(0);
    await cluster.waitFor('node 0 back in step', async () => {
      const [h0, h1] = await heights([0, 1]);
      return h0! >= h1! - 1 && h0! > b1! + 3;
    });
  });

  it('moves past a withheld proposal by round change', async () => {
    // A stopped process keeps its connections open but sends nothing: when it is the round-0
    // proposer, the others must time out and change round.
    await cluster.signal(2, 'SIGSTOP');
    const [start] = await heights([0]);
    await cluster.waitFor('8 more blocks without node 2', async () =>
      (await heights([0, 1, 3])).every((h) => h >= start! + 8),
    );
    await cluster.signal(2, 'SIGCONT');
    const rounds: number[] = [];
    for (let h = start! + 1; h <= start! + 8; h++) {
      rounds.push((await cluster.rpc<Commit>(0, 'chain_getCommit', { height: h })).certificate.round);
    }
    expect(Math.max(...rounds)).toBeGreaterThanOrEqual(1);
    await cluster.waitFor('node 2 back in step', async () => {
      const [h2, h0] = await heights([2, 0]);
      return h2! >= start! + 8 && h2! >= h0! - 1;
    });
    const [end] = await heights([0]);
    await expectSameChain([0, 1, 2, 3], end!);
  });
});
