// Goal: a real node started on the network `trellis init` writes has the supply-chain-finance
// contracts deployed at genesis, answers their views over RPC, and executes an approvals round
// signed by an organisation admin's key from the init output.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import { addressOf, type KeyPair } from '../../core/keys.ts';
import { writeLocalNetwork } from '../../node/cli/init.ts';
import { loadNodeConfig } from '../../node/config.ts';
import { loadKeyFile } from '../../node/keystore.ts';
import { startNode, type TrellisNode } from '../../node/node.ts';
import { createClient, type TrellisClient } from '../../rpc/sdk/client.ts';
import { createWallet } from '../../rpc/sdk/wallet.ts';

let dir: string;
let node: TrellisNode;
let client: TrellisClient;
let admin: KeyPair;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'trellis-scf-node-'));
  // The default contracts: exactly what `trellis init` writes.
  const net = await writeLocalNetwork({ dir, validators: 1 });
  const config = loadNodeConfig(net.nodes[0]!.home);
  node = await startNode({ ...config, rpc: { host: '127.0.0.1', port: 0 } }, { log: () => undefined });
  client = createClient({ url: node.rpc!.url });
  admin = await loadKeyFile(net.admins[0]!.keyFile, { allowUnencrypted: true });
});
afterAll(async () => {
  client.close();
  await node.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('the init genesis on a real node', () => {
  it('serves membership, governance and credit lines, and runs a proposal to execution', async () => {
    const orgs = (await client.view('membership', 'organisations')) as Array<{ id: string }>;
    expect(orgs.map((o) => o.id).sort()).toEqual([
      'acme',
      'central-warehouse',
      'commodity-exchange',
      'harbour-bank',
      'market-regulator',
      'tier1-supplier',
      'tier2-supplier',
    ]);
    const adminAddress = toHex(addressOf(admin.publicKey));
    expect(await client.view('membership', 'member', { address: adminAddress })).toMatchObject({
      org: 'acme',
      roles: ['admin'],
    });
    expect(await client.view('approvals', 'policy', { id: 'governance' })).toMatchObject({
      tree: { min: 5 },
    });
    expect(await client.view('receivables', 'creditLine', { org: 'acme' })).toMatchObject({ used: 0 });

    // acme's admin sets acme's confirmation policy through its own admins policy.
    const wallet = createWallet(client, admin);
    const proposed = await wallet.sendAndWait({
      contract: 'approvals',
      method: 'propose',
      args: {
        policy: 'admins:acme',
        target: 'approvals',
        method: 'setPolicy',
        args: { id: 'acme.confirm', tree: { kind: 'members', org: 'acme', role: 'treasury', min: 2 } },
      },
    });
    expect(proposed.receipt.status).toBe('ok');
    const id = proposed.receipt.returnValue as string;
    const approved = await wallet.sendAndWait({ contract: 'approvals', method: 'approve', args: { id } });
    expect(approved.receipt.returnValue).toBe('EXECUTED');
    expect(await client.view('approvals', 'policy', { id: 'acme.confirm' })).toMatchObject({
      version: 1,
    });
  });
});
