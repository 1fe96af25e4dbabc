/**
 * End-to-end set-up of the IoT tests: a local consortium (1 or 4 validators, each a `trellis
 * start` child process) whose genesis deploys membership and iot, the enterprise's admin, a
 * lender and a gateway key, and a `trellis gateway` child process that can be SIGKILLed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bytesEqual, utf8, type Bytes } from '../../core/bytes.ts';
import { unpackCanonical } from '../../core/codec.ts';
import { merkleRoot } from '../../core/merkle.ts';
import { decodeLeaf } from '../../iot/gateway/reading.ts';
import { sha256 } from '../../core/hash.ts';
import { addressHexOf, keyPairFromSecret, type KeyPair } from '../../core/keys.ts';
import { writeLocalNetwork, type LocalNetwork } from '../../node/cli/init.ts';
import { saveKeyFile } from '../../node/keystore.ts';
import { createClient, createWallet, type TrellisClient, type Wallet } from '../../rpc/sdk/index.ts';
import { generateRecipientKey } from '../../iot/gateway/envelope.ts';

const BIN = fileURLToPath(new URL('../../bin/trellis.js', import.meta.url));
const contract = (name: string) =>
  readFileSync(new URL(`../../contracts/${name}.ts`, import.meta.url), 'utf8');

/** A deterministic test key. */
export function testKey(name: string): KeyPair {
  return keyPairFromSecret(sha256(utf8(`trellis.iot-test.${name}`)));
}

/** The running network and the parties of the tests. */
export interface IotNetwork {
  readonly dir: string;
  readonly network: LocalNetwork;
  readonly rpcUrl: string;
  readonly client: TrellisClient;
  /** Admin of the enterprise 'acme'. */
  readonly admin: Wallet;
  /** A member of the lender 'harbour-bank'. */
  readonly banker: Wallet;
  readonly lenderKey: { secretKey: Uint8Array; publicKey: Uint8Array };
  readonly gatewayKey: KeyPair;
  readonly gatewayKeyFile: string;
  /** Starts a `trellis gateway` process; returns it. */
  startGateway(o: { id: string; dir: string; mqttPort: number; httpPort: number }): ChildProcess;
  /** The last lines of a process log in the network dir (for failure messages). */
  logTail(name: string, lines?: number): string;
  stop(): Promise<void>;
}

/** Writes the network, starts the validators and waits until they commit blocks. */
export async function startIotNetwork(o: { validators: number; basePort: number }): Promise<IotNetwork> {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-iot-'));
  const admin = testKey('acme-admin');
  const banker = testKey('banker');
  const gatewayKey = testKey('gateway');
  const network = await writeLocalNetwork({
    dir,
    validators: o.validators,
    basePorts: { p2p: o.basePort, rpc: o.basePort + 1000 },
    consensus: { roundTimeoutMs: 1000, heartbeatMs: 300 },
    contracts: [
      {
        name: 'membership',
        source: contract('membership'),
        initArgs: {
          organisations: [
            { id: 'acme', name: 'Acme Manufacturing', roles: ['core-enterprise', 'gateway'] },
            { id: 'harbour-bank', name: 'Harbour Bank', roles: ['bank'] },
            { id: 'market-regulator', name: 'Market Supervision Authority', roles: ['regulator'] },
          ],
          members: [
            { address: addressHexOf(admin.publicKey), org: 'acme', roles: ['admin'] },
            { address: addressHexOf(banker.publicKey), org: 'harbour-bank', roles: ['credit'] },
          ],
        },
      },
      { name: 'iot', source: contract('iot'), initArgs: { membership: 'membership' } },
    ],
  });
  const children: ChildProcess[] = [];
  const spawnLogged = (args: string[], logName: string): ChildProcess => {
    const log = createWriteStream(join(dir, logName), { flags: 'a' });
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    children.push(child);
    return child;
  };
  for (const n of network.nodes) spawnLogged(['start', '--home', n.home], `${n.name}.log`);
  const rpcUrl = `http://127.0.0.1:${network.nodes[0]!.rpcPort}`;
  const client = createClient({ url: rpcUrl });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const h = await client.head().then(
      (x) => x?.height ?? 0,
      () => -1,
    );
    if (h >= 1) break;
    if (Date.now() > deadline) throw new Error(`the network did not commit a block in 60 s (logs in ${dir})`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const gatewayKeyFile = join(dir, 'gateway.key.json');
  await saveKeyFile(gatewayKeyFile, gatewayKey, { unencrypted: true });
  return {
    dir,
    network,
    rpcUrl,
    client,
    admin: createWallet(client, admin),
    banker: createWallet(client, banker),
    lenderKey: generateRecipientKey(),
    gatewayKey,
    gatewayKeyFile,
    startGateway(g) {
      mkdirSync(g.dir, { recursive: true });
      return spawnLogged(
        [
          'gateway',
          '--id',
          g.id,
          '--key',
          gatewayKeyFile,
          '--dir',
          g.dir,
          '--rpc',
          rpcUrl,
          '--mqtt-port',
          String(g.mqttPort),
          '--http-port',
          String(g.httpPort),
        ],
        `gateway-${g.id}.log`,
      );
    },
    logTail(name, lines = 40) {
      try {
        return (
          `--- ${name} (last ${lines} lines)\n` +
          readFileSync(join(dir, name), 'utf8').split('\n').slice(-lines).join('\n')
        );
      } catch {
        return `--- ${name}: no log`;
      }
    },
    async stop() {
      client.close();
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((done) => {
              if (c.exitCode !== null || c.signalCode !== null) return done();
              c.once('exit', () => done());
              c.kill('SIGTERM');
              setTimeout(() => c.kill('SIGKILL'), 5_000).unref();
            }),
        ),
      );
      if (process.env['KEEP_IOT_NETWORK'] === undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls until `check` is true; throws naming `what` after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await Promise.resolve(check()).catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
}

/** What {@link auditGatewayBatches} found. */
export interface BatchAudit {
  /** seqNos anchored on chain, in order. */
  readonly seqNos: number[];
  /** `device:n` of every reading in the anchored batches, in order (repeats kept, to be checked). */
  readonly ids: string[];
  readonly leafBytes: number;
}

/**
 * Reads every anchor of `gateway` from the chain (through `client`) and checks the gateway's kept
 * batch file of each against it (same count, same Merkle root); throws on a mismatch.
 */
export async function auditGatewayBatches(
  client: TrellisClient,
  gateway: string,
  dir: string,
): Promise<BatchAudit> {
  const anchored: Array<{ seqNo: number; root: Bytes; count: number }> = [];
  for (;;) {
    const page = (await client.view('iot', 'anchors', {
      gateway,
      from: anchored.length === 0 ? 1 : anchored[anchored.length - 1]!.seqNo + 1,
      limit: 1000,
    })) as Array<{ seqNo: number; root: Bytes; count: number }>;
    anchored.push(...page);
    if (page.length < 1000) break;
  }
  const ids: string[] = [];
  let leafBytes = 0;
  for (const a of anchored) {
    const file = readFileSync(join(dir, 'batches', `${String(a.seqNo).padStart(12, '0')}.leaves`));
    leafBytes += file.length;
    const leaves = unpackCanonical(file, 'leaves') as Bytes[];
    if (leaves.length !== Number(a.count) || !bytesEqual(merkleRoot(leaves), a.root))
      throw new Error(`batch ${a.seqNo} of ${gateway} does not match its anchor`);
    for (const l of leaves) {
      const r = decodeLeaf(l);
      ids.push(`${r.device}:${r.n}`);
    }
  }
  return { seqNos: anchored.map((a) => Number(a.seqNo)), ids, leafBytes };
}
