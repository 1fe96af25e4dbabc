// Goal: `npx trellis init` writes a consortium network that the node's own loaders read back and
// validate, keeps an existing network unless --force, and encrypts keys when given a passphrase.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toHex } from '../../../core/bytes.ts';
import { loadNodeConfig, networkLayout, P2P_BASE_PORT, RPC_BASE_PORT } from '../../../node/config.ts';
import { GenesisError, genesisHash, loadGenesis, type GenesisJson } from '../../../node/genesis.ts';
import { KeystoreError, loadKeyFile } from '../../../node/keystore.ts';
import { runTrellis } from './runTrellis.ts';

const tmp = mkdtempSync(join(tmpdir(), 'trellis-init-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('trellis init', () => {
  const dir = join(tmp, 'net');

  it('writes a 4-validator network that loads back and validates', async () => {
    const run = await runTrellis(['init', '--validators', '4', '--dir', dir], {}, 'npx');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/UNENCRYPTED development keys/);

    const layout = networkLayout(dir);
    const genesis = loadGenesis(layout.genesisFile);
    expect(genesis.chainId).toBe('trellis-local');
    expect(genesis.validators).toHaveLength(4);
    expect(genesis.runtime).toBe(`node-${process.version}`);
    const roles = new Set(genesis.organisations.flatMap((o) => o.roles));
    for (const r of ['core-enterprise', 'supplier', 'bank', 'warehouse', 'exchange', 'regulator'])
      expect(roles.has(r as never)).toBe(true);
    const orgIds = new Set(genesis.organisations.map((o) => o.id));
    const manifest = JSON.parse(readFileSync(layout.manifestFile, 'utf8')) as { genesisHash: string };
    expect(manifest.genesisHash).toBe(toHex(genesisHash(genesis)));
    expect(run.stdout).toContain(manifest.genesisHash);

    const ports = new Set<number>();
    for (const [i, v] of genesis.validators.entries()) {
      expect(orgIds.has(v.organisation)).toBe(true);
      const config = loadNodeConfig(layout.nodeHome(i));
      expect(config.name).toBe(v.name);
      expect(config.genesisFile).toBe(layout.genesisFile);
      expect(config.p2p.port).toBe(P2P_BASE_PORT + i);
      expect(config.rpc.port).toBe(RPC_BASE_PORT + i);
      expect(v.p2p).toEqual([`/ip4/127.0.0.1/tcp/${P2P_BASE_PORT + i}`]);
      ports.add(config.p2p.port).add(config.rpc.port);
      // The dev key loads only with the explicit flag the config carries, and is the genesis key.
      expect(config.allowUnencryptedKey).toBe(true);
      await expect(loadKeyFile(config.keyFile)).rejects.toMatchObject({ code: 'UNENCRYPTED_NOT_ALLOWED' });
      const key = await loadKeyFile(config.keyFile, { allowUnencrypted: config.allowUnencryptedKey });
      expect(toHex(key.publicKey)).toBe(toHex(v.publicKey));
    }
    expect(ports.size).toBe(8);
    // Every organisation's admin key is in admins/ and matches genesis.
    for (const org of genesis.organisations) {
      const admin = await loadKeyFile(join(layout.adminsDir, `${org.id}.key.json`), {
        allowUnencrypted: true,
      });
      expect(org.admins.map(toHex)).toEqual([toHex(admin.publicKey)]);
    }
  });

  it('refuses to overwrite an existing network unless --force', async () => {
    const layout = networkLayout(dir);
    const before = readFileSync(layout.genesisFile, 'utf8');
    const again = await runTrellis(['init', '--validators', '4', '--dir', dir], {}, 'npx');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already holds a network.*refusing to overwrite.*--force.*\[EXISTS\]/s);
    expect(readFileSync(layout.genesisFile, 'utf8')).toBe(before);

    const forced = await runTrellis([
      'init',
      '--validators',
      '1',
      '--dir',
      dir,
      '--force',
      '--chain-id',
      'replaced',
      '--json',
    ]);
    expect(forced.code).toBe(0);
    const out = JSON.parse(forced.stdout) as { chainId: string; nodes: unknown[]; genesisHash: string };
    expect(out.chainId).toBe('replaced');
    expect(out.nodes).toHaveLength(1);
    const genesis = loadGenesis(layout.genesisFile);
    expect(toHex(genesisHash(genesis))).toBe(out.genesisHash);
    // The old network's extra nodes are gone.
    expect(() => loadNodeConfig(layout.nodeHome(1))).toThrow(/no such node home/);
  });

  it('writes a genesis that, once hand-broken, is refused with the field named', () => {
    const layout = networkLayout(dir);
    const json = JSON.parse(readFileSync(layout.genesisFile, 'utf8')) as GenesisJson;
    json.validators[0]!.publicKey = '0x1234';
    writeFileSync(layout.genesisFile, JSON.stringify(json, null, 2));
    let err: unknown;
    try {
      loadGenesis(layout.genesisFile);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GenesisError);
    expect((err as GenesisError).message).toContain(
      'genesis.validators[0].publicKey: expected 0x-hex of 32 bytes',
    );
    expect((err as GenesisError).meta['field']).toBe('genesis.validators[0].publicKey');
  });

  it('encrypts every key when given a passphrase file', async () => {
    const encDir = join(tmp, 'enc');
    const passFile = join(tmp, 'pass.txt');
    writeFileSync(passFile, 'consortium secret\n');
    const run = await runTrellis([
      'init',
      '--validators',
      '1',
      '--dir',
      encDir,
      '--passphrase-file',
      passFile,
    ]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/encrypted \(scrypt \+ AES-256-GCM\)/);
    const config = loadNodeConfig(networkLayout(encDir).nodeHome(0));
    expect(config.allowUnencryptedKey).toBe(false);
    expect(config.passphraseFile).toBe(passFile);
    const genesis = loadGenesis(networkLayout(encDir).genesisFile);
    const key = await loadKeyFile(config.keyFile, { passphrase: 'consortium secret' });
    expect(toHex(key.publicKey)).toBe(toHex(genesis.validators[0]!.publicKey));
    const wrong = await loadKeyFile(config.keyFile, { passphrase: 'guess' }).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(KeystoreError);
    expect((wrong as KeystoreError).code).toBe('WRONG_PASSPHRASE');
  });

  it('explains bad arguments with exit code 2', async () => {
    const zero = await runTrellis(['init', '--validators', '0', '--dir', join(tmp, 'x')]);
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain('--validators: expected an integer from 1 to 64, got "0"');
    const noDir = await runTrellis(['init', '--validators', '4']);
    expect(noDir.code).toBe(2);
    expect(noDir.stderr).toContain('missing --dir DIR');
    const unknown = await runTrellis(['init', '--validators', '4', '--dir', join(tmp, 'y'), '--colour']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/Unknown option '--colour'/);
    const help = await runTrellis(['init', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: trellis init --validators N [--observers M] --dir DIR');
  });
});
