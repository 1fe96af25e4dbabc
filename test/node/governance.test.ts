// Goal: on a governed network (the default `trellis init` genesis) a contract deploy needs an executed governance proposal; a genesis admin alone is refused.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addressHexOf, type KeyPair } from '../../core/keys.ts';
import { writeLocalNetwork, type LocalNetwork } from '../../node/cli/init.ts';
import { loadNodeConfig } from '../../node/config.ts';
import { loadKeyFile } from '../../node/keystore.ts';
import { startNode, type TrellisNode } from '../../node/node.ts';
import { createClient, type TrellisClient } from '../../rpc/sdk/client.ts';
import { createWallet } from '../../rpc/sdk/wallet.ts';
import { TOKEN_SOURCE } from '../rpc/realNode.ts';

let dir: string;
let net: LocalNetwork;
let node: TrellisNode;
let client: TrellisClient;
let admins: KeyPair[];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'trellis-governance-'));
  net = await writeLocalNetwork({ dir, validators: 1, consensus: { heartbeatMs: 200 } });
  const config = loadNodeConfig(net.nodes[0]!.home);
  node = await startNode({ ...config, rpc: { host: '127.0.0.1', port: 0 } }, { log: () => undefined });
  client = createClient({ url: node.rpc!.url });
  admins = await Promise.all(net.admins.map((a) => loadKeyFile(a.keyFile, { allowUnencrypted: true })));
}, 60_000);

afterAll(async () => {
  client?.close();
  await node?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('governed lifecycle', () => {
  it('refuses a deploy by a genesis admin until a governance proposal grants it, then allows exactly the granted sender', async () => {
    // One wallet per key: a wallet tracks its key's nonces.
    const wallets = admins.map((a) => createWallet(client, a));
    const [first, second] = [wallets[0]!, wallets[1]!];
    const refused = await first.sendAndWait({
      kind: 'deploy',
      contract: 'token',
      args: { source: TOKEN_SOURCE },
    });
    expect(refused.receipt.status).not.toBe('ok');
    expect(refused.receipt.errorCode).toBe('UNAUTHORIZED');
    expect(await client.call('contract_get', { contract: 'token' }).catch(() => null)).toBeNull();

    const proposed = await first.sendAndWait({
      contract: 'approvals',
      method: 'propose',
      args: {
        policy: 'governance',
        target: 'approvals',
        method: 'grantLifecycle',
        args: { kind: 'deploy', contract: 'token', sender: addressHexOf(admins[0]!.publicKey) },
      },
    });
    expect(proposed.receipt.status).toBe('ok');
    const id = proposed.receipt.returnValue as string;
    let status = 'PENDING';
    for (const wallet of wallets) {
      if (status === 'EXECUTED') break;
      const r = await wallet.sendAndWait({ contract: 'approvals', method: 'approve', args: { id } });
      expect(r.receipt.status, r.receipt.error).toBe('ok');
      status = r.receipt.returnValue as string;
    }
    expect(status).toBe('EXECUTED');

    const other = await second.sendAndWait({
      kind: 'deploy',
      contract: 'token',
      args: { source: TOKEN_SOURCE },
    });
    expect(other.receipt.errorCode).toBe('UNAUTHORIZED');
    const deployed = await first.sendAndWait({
      kind: 'deploy',
      contract: 'token',
      args: { source: TOKEN_SOURCE },
    });
    expect(deployed.receipt.status, deployed.receipt.error).toBe('ok');
    expect((await client.call('contract_get', { contract: 'token' })).name).toBe('token');
  });

  it('serves views at past heights, and says clearly when a view scans a range that only the head serves', async () => {
    const head = (await client.head())!.height;
    const orgs = (await client.view('membership', 'organisations', null)) as unknown[];
    expect(orgs.length).toBe(net.genesis.organisations.length);
    const err = await client.view('membership', 'organisations', null, head - 1).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NOT_FOUND', meta: { reason: 'HEIGHT_UNAVAILABLE' } });
    expect((err as Error).message).toMatch(/scans a key range/);
  });
});
