// Goal: four real validator processes agree on one chain, survive a SIGKILL, catch a restarted node up by block sync, and get past a withheld proposal by round change.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex, utf8 } from '../../core/bytes.ts';
import { decodeValue } from '../../core/codec.ts';
import { addressOf, generateKeyPair } from '../../core/keys.ts';
import { validatorOf } from '../../core/types.ts';
import { loadKeyFile } from '../../node/keystore.ts';
import { createClient } from '../../rpc/sdk/client.ts';
import { createLightClient } from '../../rpc/sdk/proofs.ts';
import { createWallet } from '../../rpc/sdk/wallet.ts';
import type * as TokenModule from '../rpc/fixtures/token.ts';
import { createCluster, type Cluster } from './harness.ts';

interface Commit {
  header: { height: number; stateRoot: string; round: number };
  certificate: { round: number; blockHash: string; signatures: Array<{ validator: string }> };
}

let cluster: Cluster;

beforeAll(async () => {
  // A bare network (no governance contracts): its genesis admins deploy the test token.
  cluster = await createCluster({ validators: 4, observers: 1, basePort: 22100, contracts: [] });
}, 180_000);

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
  it('commits identical blocks on every validator, and a registered observer follows without voting', async () => {
    await cluster.waitFor('every node at height 5', async () =>
      (await heights([0, 1, 2, 3, 4])).every((h) => h >= 5),
    );
    await expectSameChain([0, 1, 2, 3, 4], 5);
    const observer = cluster.nodes[4]!;
    expect(observer.name).toBe('observer-0');
    expect(await cluster.rpc(4, 'node_info')).toMatchObject({ validator: false });
    for (let h = 1; h <= 5; h++) {
      const c = await cluster.rpc<Commit>(0, 'chain_getCommit', { height: h });
      expect(c.certificate.signatures.map((s) => s.validator)).not.toContain(observer.address);
    }
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
    // Node 2 may still be one block behind: compare up to the height every node has.
    const end = Math.min(...(await heights([0, 1, 2, 3])));
    await expectSameChain([0, 1, 2, 3], end);
  });

  it('proves a state value and a transaction from one node against certified headers fetched from another', async () => {
    const node0 = createClient({ url: cluster.nodes[0]!.rpcUrl });
    const node3 = createClient({ url: cluster.nodes[3]!.rpcUrl });
    try {
      const admin = await loadKeyFile(cluster.network.admins[0]!.keyFile, { allowUnencrypted: true });
      const source = readFileSync(new URL('../rpc/fixtures/token.ts', import.meta.url), 'utf8');
      const deployed = await createWallet(node0, admin).sendAndWait({
        kind: 'deploy',
        contract: 'token',
        args: { source },
      });
      expect(deployed.receipt.status).toBe('ok');
      const alice = generateKeyPair();
      const bob = addressOf(generateKeyPair().publicKey);
      const token = node0.contract<typeof TokenModule>('token', createWallet(node0, alice));
      await token.methods.mint({ to: addressOf(alice.publicKey), amount: 500 });
      const sent = await token.methods.transfer({ to: bob, amount: 120 });
      expect(sent.ok).toBe(true);
      await cluster.waitFor('node 3 has the transfer', async () => (await cluster.height(3)) >= sent.height);
      const light = createLightClient({
        chainId: cluster.network.genesis.chainId,
        validatorsAt: () => cluster.network.genesis.validators.map((v) => validatorOf(v.publicKey)),
      });
      const state = await light.verifyState('token', utf8(`bal/${toHex(bob)}`), {
        proofFrom: node0,
        headerFrom: node3,
      });
      expect(decodeValue(state.value!)).toBe(120);
      const tx = await light.verifyTx(sent.receipt.txHash, { proofFrom: node0, headerFrom: node3 });
      expect(tx.height).toBe(sent.height);
      const receipt = await light.verifyReceipt(sent.receipt.txHash, { proofFrom: node0, headerFrom: node3 });
      expect(receipt.receipt.status).toBe('ok');
    } finally {
      node0.close();
      node3.close();
    }
  });
});
