// Starts the real single-validator node (node/node.ts: LevelDB storage, state tree, VM, consensus
// driver) in-process in a temp folder, with its RPC server on a free 127.0.0.1 port, and deploys
// the test token (fixtures/token.ts) with a genesis admin key.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyPair } from '../../core/keys.ts';
import { validatorOf, type Validator } from '../../core/types.ts';
import { writeLocalNetwork } from '../../node/cli/init.ts';
import { loadNodeConfig } from '../../node/config.ts';
import type { ConsensusParams } from '../../node/genesis.ts';
import { loadKeyFile } from '../../node/keystore.ts';
import { startNode, type TrellisNode } from '../../node/node.ts';
import { createClient, type TrellisClient } from '../../rpc/sdk/client.ts';
import { createWallet } from '../../rpc/sdk/wallet.ts';
import { ADMIN_TOKEN } from './harness.ts';

/** A running real node and what tests need from it. */
export interface RealNode {
  readonly node: TrellisNode;
  readonly url: string;
  readonly client: TrellisClient;
  readonly chainId: string;
  /** A genesis admin: the only kind of key that may deploy. */
  readonly admin: KeyPair;
  /** The genesis validator set (what a light client trusts). */
  readonly validators: readonly Validator[];
  close(): Promise<void>;
}

/** The test token's source. */
export const TOKEN_SOURCE = readFileSync(new URL('./fixtures/token.ts', import.meta.url), 'utf8');

/** Starts a one-validator network and deploys `token`. */
export async function startRealNode(consensus: Partial<ConsensusParams> = {}): Promise<RealNode> {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-rpc-node-'));
  const net = await writeLocalNetwork({ dir, validators: 1, contracts: [], consensus });
  const config = loadNodeConfig(net.nodes[0]!.home);
  const node = await startNode(
    { ...config, rpc: { host: '127.0.0.1', port: 0 } },
    { adminToken: ADMIN_TOKEN, log: () => undefined },
  );
  const url = node.rpc!.url;
  const client = createClient({ url });
  const admin = await loadKeyFile(net.admins[0]!.keyFile, { allowUnencrypted: true });
  const deployed = await createWallet(client, admin).sendAndWait({
    kind: 'deploy',
    contract: 'token',
    args: { source: TOKEN_SOURCE },
  });
  if (deployed.receipt.status !== 'ok') throw new Error(`token deploy failed: ${deployed.receipt.error}`);
  return {
    node,
    url,
    client,
    chainId: net.genesis.chainId,
    admin,
    validators: net.genesis.validators.map((v) => validatorOf(v.publicKey)),
    async close() {
      client.close();
      await node.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
