// Goal: a node config loads with paths resolved against its home, and a bad field is refused
// with the field named.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  P2P_BASE_PORT,
  RPC_BASE_PORT,
  loadNodeConfig,
  localNodeConfigJson,
  validateNodeConfig,
  type NodeConfigJson,
} from '../../node/config.ts';

const tmp = mkdtempSync(join(tmpdir(), 'trellis-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function refusal(json: unknown): string {
  try {
    validateNodeConfig(json, tmp);
    return 'accepted';
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message;
  }
}

describe('node config', () => {
  it('loads from a home directory with paths resolved against it', () => {
    const home = join(tmp, 'net', 'node2');
    mkdirSync(home, { recursive: true });
    writeFileSync(
      join(home, 'config.json'),
      JSON.stringify(localNodeConfigJson(2, 'validator-2', { unencrypted: true })),
    );
    const config = loadNodeConfig(home);
    expect(config).toEqual({
      name: 'validator-2',
      home,
      genesisFile: join(tmp, 'net', 'genesis.json'),
      dataDir: join(home, 'data'),
      keyFile: join(home, 'validator.key.json'),
      allowUnencryptedKey: true,
      p2p: { host: '127.0.0.1', port: P2P_BASE_PORT + 2 },
      rpc: { host: '127.0.0.1', port: RPC_BASE_PORT + 2 },
      logLevel: 'info',
    });
    // The config file path works as well as its directory.
    expect(loadNodeConfig(join(home, 'config.json'))).toEqual(config);
  });

  it('keeps absolute paths and defaults what may be omitted', () => {
    const config = validateNodeConfig(
      {
        name: 'observer',
        genesisFile: '/etc/trellis/genesis.json',
        dataDir: '/var/lib/trellis',
        keyFile: 'node.key.json',
        passphraseFile: '/run/secrets/pass',
        p2p: { host: '0.0.0.0', port: 30000 },
        rpc: { host: '127.0.0.1', port: 9000 },
      },
      tmp,
    );
    expect(config.genesisFile).toBe('/etc/trellis/genesis.json');
    expect(config.keyFile).toBe(join(tmp, 'node.key.json'));
    expect(config.passphraseFile).toBe('/run/secrets/pass');
    expect(config.allowUnencryptedKey).toBe(false);
    expect(config.logLevel).toBe('info');
  });

  it('refuses each bad field and names it', () => {
    const good = (): NodeConfigJson => localNodeConfigJson(0, 'validator-0', { unencrypted: false });
    const cases: Array<[(c: NodeConfigJson) => void, string]> = [
      [(c) => (c.rpc.port = 0), 'config.rpc.port: expected an integer in [1, 65535], got 0'],
      [(c) => (c.p2p.port = 65536), 'config.p2p.port: expected an integer in [1, 65535]'],
      [(c) => (c.rpc.port = c.p2p.port), 'config.rpc.port: 26656 is also the p2p port'],
      [(c) => (c.p2p.host = 'bad host'), 'config.p2p.host: expected a hostname or IP address'],
      [
        (c) => ((c as unknown as Record<string, unknown>)['logLevel'] = 'loud'),
        'config.logLevel: expected one of debug, info, warn, error',
      ],
      [(c) => ((c as unknown as Record<string, unknown>)['dataDri'] = 'x'), 'config.dataDri: unknown field'],
      [(c) => delete (c as unknown as Record<string, unknown>)['keyFile'], 'config.keyFile: missing'],
      [(c) => (c.name = 'has space'), 'config.name: expected a string matching'],
      [
        (c) => ((c as unknown as Record<string, unknown>)['allowUnencryptedKey'] = 'yes'),
        'config.allowUnencryptedKey: expected true or false',
      ],
    ];
    for (const [breakIt, expected] of cases) {
      const c = good();
      breakIt(c);
      expect(refusal(c)).toContain(expected);
    }
    expect(refusal(good())).toBe('accepted');
  });

  it('names the file when loading fails', () => {
    const file = join(tmp, 'bad.json');
    writeFileSync(file, '{');
    expect(() => loadNodeConfig(file)).toThrow(/bad.json: not valid JSON/);
    writeFileSync(
      file,
      JSON.stringify({ ...localNodeConfigJson(0, 'v', { unencrypted: true }), rpc: { host: 'x', port: -1 } }),
    );
    expect(() => loadNodeConfig(file)).toThrow(`${file}: config.rpc.port`);
    expect(() => loadNodeConfig(join(tmp, 'missing'))).toThrow(/no such node home or config file/);
  });
});
