// Goal: a governance proposal on a real consortium changes the validator set at the height it names: an observer becomes a validator and its votes then carry the chain; a light client trusting only the genesis file proves the change and follows it.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex, utf8 } from '../../core/bytes.ts';
import { generateKeyPair } from '../../core/keys.ts';
import { preflightValidatorSet, setValidatorsProposal } from '../../node/cli/validators.ts';
import { genesisValidatorSet, loadGenesis } from '../../node/genesis.ts';
import { loadKeyFile } from '../../node/keystore.ts';
import { createClient, type TrellisClient } from '../../rpc/sdk/client.ts';
import { createLightClient } from '../../rpc/sdk/proofs.ts';
import { trellis } from '../cliRunner.ts';
import { createWallet } from '../../rpc/sdk/wallet.ts';
import { createCluster, type Cluster } from './harness.ts';

interface Commit {
  certificate: { signatures: Array<{ validator: string }> };
}

let cluster: Cluster;
let client: TrellisClient;

beforeAll(async () => {
  // The default genesis: the supply-chain-finance contracts, governed by more than two thirds of the admins.
  cluster = await createCluster({ validators: 4, observers: 1, basePort: 22700 });
  client = createClient({ url: cluster.nodes[0]!.rpcUrl });
}, 180_000);

afterAll(async () => {
  client?.close();
  await cluster?.stop();
});

describe('validator-set change through governance', () => {
  it('adds the observer as a fifth validator from the height the approved proposal names', async () => {
    await cluster.waitFor('the chain runs', async () => (await cluster.height(4)) >= 2);
    const admins = await Promise.all(
      cluster.network.admins.map((a) => loadKeyFile(a.keyFile, { allowUnencrypted: true })),
    );
    const wallets = admins.map((a) => createWallet(client, a));
    const nodes = cluster.network.nodes;
    // Pre-flight: a set whose quorum is not reachable now is refused before anything is sent.
    const strangers = [generateKeyPair(), generateKeyPair()].map((k, i) => ({
      name: `stranger-${i}`,
      organisation: nodes[0]!.organisation,
      publicKey: toHex(k.publicKey),
    }));
    const asProposed = nodes.map((n) => ({
      name: n.name,
      organisation: n.organisation,
      publicKey: n.publicKey,
    }));
    const refused = await preflightValidatorSet(client, [...asProposed.slice(0, 4), ...strangers]);
    expect(refused.ok).toBe(false);
    expect(refused.ok ? '' : refused.error.code).toBe('TOO_FEW_REACHABLE');
    const accepted = await preflightValidatorSet(client, asProposed);
    expect(accepted.ok, accepted.ok ? '' : accepted.error.message).toBe(true);
    const proposed = await wallets[0]!.sendAndWait(setValidatorsProposal(asProposed));
    expect(proposed.receipt.status, proposed.receipt.error).toBe('ok');
    const id = proposed.receipt.returnValue as string;
    let status = 'PENDING';
    let executedAt = 0;
    for (const w of wallets) {
      if (status === 'EXECUTED') break;
      const r = await w.sendAndWait({ contract: 'approvals', method: 'approve', args: { id } });
      expect(r.receipt.status, r.receipt.error).toBe('ok');
      status = r.receipt.returnValue as string;
      executedAt = r.height;
    }
    expect(status).toBe('EXECUTED');
    const pending = (await client.view('approvals', 'pendingValidators', null)) as {
      effectiveHeight: number;
    };
    expect(pending.effectiveHeight).toBe(executedAt + 2);

    const observer = cluster.nodes[4]!;
    await cluster.waitFor('the observer is a validator', async () => {
      const info = await cluster.rpc<{ validator: boolean }>(4, 'node_info');
      return info.validator && (await cluster.height(0)) >= pending.effectiveHeight + 1;
    });
    const vals = await cluster.rpc<{ validators: Array<{ address: string }> }>(0, 'chain_getValidators', {
      height: pending.effectiveHeight,
    });
    expect(vals.validators.map((v) => v.address)).toContain(observer.address);
    const before = await cluster.rpc<{ validators: unknown[] }>(0, 'chain_getValidators', {
      height: pending.effectiveHeight - 1,
    });
    expect(before.validators).toHaveLength(4);

    // A light client that trusts only the genesis file follows the change by itself: it proves the
    // new set from the receipt of the approving transaction, then a state value after the change
    // (proof from node 1, headers from node 2).
    const clients = [1, 2].map((i) => createClient({ url: cluster.nodes[i]!.rpcUrl }));
    try {
      const genesis = loadGenesis(cluster.network.genesisFile);
      const genesisSet = genesisValidatorSet(genesis);
      const at = pending.effectiveHeight + 1;
      const light = createLightClient({ chainId: genesis.chainId, genesisValidators: genesisSet });
      const proven = await light.verifyState('approvals', utf8('validators:pending'), {
        proofFrom: clients[0]!,
        headerFrom: clients[1]!,
        height: at,
      });
      expect(proven.value).toBeDefined();
      expect((await light.verifiedHeader(clients[1]!, at)).height).toBe(at);
      // Control: trusting the genesis set for every height refuses the header after the change.
      const stale = createLightClient({ chainId: genesis.chainId, validatorsAt: () => genesisSet });
      await expect(stale.verifiedHeader(clients[1]!, at)).rejects.toMatchObject({ code: 'BAD_CERTIFICATE' });
      // A node that names another set than the one approved is caught.
      const lying: TrellisClient = {
        ...clients[0]!,
        call: (async (name: string, params: unknown) => {
          const r = await (clients[0]!.call as (n: string, p: unknown) => Promise<unknown>)(name, params);
          if (name !== 'chain_getValidators') return r;
          const set = r as { validators: Array<{ publicKey: Uint8Array }> };
          return { ...set, validators: [...set.validators].reverse() };
        }) as TrellisClient['call'],
      };
      const fooled = createLightClient({ chainId: genesis.chainId, genesisValidators: genesisSet });
      await expect(fooled.verifiedHeader(lying, at)).rejects.toMatchObject({ code: 'BAD_PROOF' });
      // The same from the command line: `trellis verify` trusts the genesis file alone.
      const verify = (...args: string[]) =>
        trellis(
          'verify',
          ...args,
          '--genesis',
          cluster.network.genesisFile,
          '--rpc',
          cluster.nodes[1]!.rpcUrl,
        );
      const state = await verify('state', 'approvals', 'validators:pending', '--height', `${at}`, '--json');
      expect(state.code, state.err).toBe(0);
      expect(JSON.parse(state.out)).toMatchObject({ verified: true, present: true, height: at });
      const receipt = await verify(
        'receipt',
        toHex(proposed.receipt.txHash),
        '--header-rpc',
        cluster.nodes[2]!.rpcUrl,
      );
      expect(receipt.code, receipt.err).toBe(0);
      expect(receipt.out).toMatch(/^verified: receipt of 0x[0-9a-f]{64}: ok/);
      // A genesis naming other validator keys: the same answers do not verify, and it says why.
      const forged = JSON.parse(readFileSync(cluster.network.genesisFile, 'utf8')) as {
        validators: Array<{ publicKey: string }>;
      };
      for (const v of forged.validators) v.publicKey = toHex(generateKeyPair().publicKey);
      const forgedFile = join(cluster.dir, 'forged-genesis.json');
      writeFileSync(forgedFile, JSON.stringify(forged));
      const refusedCli = await trellis(
        'verify',
        'state',
        'approvals',
        'validators:pending',
        '--genesis',
        forgedFile,
        '--rpc',
        cluster.nodes[1]!.rpcUrl,
      );
      expect(refusedCli.code).toBe(1);
      expect(refusedCli.err).toMatch(/BAD_CERTIFICATE/);
    } finally {
      for (const c of clients) c.close();
    }

    // With validator 3 stopped, 4 of the 5 must vote: the chain moves only with the new validator.
    await cluster.signal(3, 'SIGKILL');
    const [h] = await Promise.all([cluster.height(0)]);
    await cluster.waitFor(
      'blocks commit without validator 3',
      async () => (await cluster.height(0)) >= h + 3,
    );
    const commit = await cluster.rpc<Commit>(0, 'chain_getCommit', { height: h + 3 });
    expect(commit.certificate.signatures.map((s) => s.validator)).toContain(observer.address);
  });
});
