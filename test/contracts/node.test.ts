// Goal: a real node started on the network `trellis init` writes has the supply-chain-finance
// contracts deployed at genesis, answers their views over RPC, and executes an approvals round
// signed by an organisation admin's key from the init output.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import { addressOf } from '../../core/keys.ts';
import { createWallet } from '../../rpc/sdk/wallet.ts';
import { startRealNode, type RealNode } from '../rpc/realNode.ts';

let net: RealNode;
beforeAll(async () => {
  net = await startRealNode();
});
afterAll(async () => {
  await net.close();
});

describe('the init genesis on a real node', () => {
  it('serves membership, governance and credit lines, and runs a proposal to execution', async () => {
    const orgs = (await net.client.view('membership', 'organisations')) as Array<{ id: string }>;
    expect(orgs.map((o) => o.id).sort()).toEqual([
      'acme',
      'central-warehouse',
      'commodity-exchange',
      'harbour-bank',
      'market-regulator',
      'tier1-supplier',
      'tier2-supplier',
    ]);
    const admin = toHex(addressOf(net.admin.publicKey));
    expect(await net.client.view('membership', 'member', { address: admin })).toMatchObject({
      org: 'acme',
      roles: ['admin'],
    });
    expect(await net.client.view('approvals', 'policy', { id: 'governance' })).toMatchObject({
      tree: { min: 5 },
    });
    expect(await net.client.view('receivables', 'creditLine', { org: 'acme' })).toMatchObject({ used: 0 });

    // acme's admin sets acme's confirmation policy through its own admins policy.
    const wallet = createWallet(net.client, net.admin);
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
    expect(await net.client.view('approvals', 'policy', { id: 'acme.confirm' })).toMatchObject({
      version: 1,
    });
  });
});
