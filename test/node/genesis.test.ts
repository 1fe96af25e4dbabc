// Goal: a genesis file is accepted only when every field is valid, a bad one is refused with the
// field named, and the genesis hash identifies the network: pinned, stable, sensitive to what
// defines the network and blind to where validators happen to listen.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import {
  GenesisError,
  assertGenesisRuntime,
  genesisHash,
  genesisToJson,
  genesisValidatorIndex,
  genesisValidatorSet,
  loadGenesis,
  validateGenesis,
  type GenesisJson,
} from '../../node/genesis.ts';
import { runtimeId } from '../../node/runtime.ts';

const FIXTURES = new URL('../fixtures/genesis/', import.meta.url).pathname;
const VALID = join(FIXTURES, 'valid.json');
const tmp = mkdtempSync(join(tmpdir(), 'trellis-genesis-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function fixture(): GenesisJson {
  return JSON.parse(readFileSync(VALID, 'utf8')) as GenesisJson;
}

/** Validates JSON with contract sources inlined (no file access). */
function inlined(json: GenesisJson): GenesisJson {
  return {
    ...json,
    contracts: json.contracts.map((c) =>
      c.sourcePath === undefined
        ? c
        : {
            name: c.name,
            source: readFileSync(join(FIXTURES, c.sourcePath), 'utf8'),
            ...(c.initArgs === undefined ? {} : { initArgs: c.initArgs }),
          },
    ),
  };
}

mkdirSync(join(tmp, 'contracts'), { recursive: true });
copyFileSync(join(FIXTURES, 'contracts/hello.ts'), join(tmp, 'contracts/hello.ts'));

/** Writes `json` next to a copy of the fixture's contract sources and loads it as a node would. */
function refusal(json: unknown): string {
  const file = join(tmp, 'case.json');
  writeFileSync(file, JSON.stringify(json));
  try {
    loadGenesis(file);
    return 'accepted';
  } catch (err) {
    expect(err).toBeInstanceOf(GenesisError);
    return (err as GenesisError).message.replace(`${file}: `, '');
  }
}

describe('genesis', () => {
  it('loads the fixture, reading contract sources next to the file', () => {
    const g = loadGenesis(VALID);
    expect(g.chainId).toBe('trellis-fixture');
    expect(g.validators.map((v) => v.name)).toEqual([
      'validator-0',
      'validator-1',
      'validator-2',
      'validator-3',
    ]);
    expect(g.organisations[0]!.roles).toEqual(['core-enterprise', 'gateway']);
    expect(g.contracts[0]!.source).toBe(readFileSync(join(FIXTURES, 'contracts/hello.ts'), 'utf8'));
    expect(g.contracts[0]!.initArgs).toEqual({ greeting: 'hi', limit: 10 });
    expect(g.contracts[1]!.initArgs).toBeNull();
    expect(genesisValidatorSet(g)).toHaveLength(4);
    expect(genesisValidatorIndex(g, g.validators[2]!.publicKey)).toBe(2);
  });

  it('has the pinned hash', () => {
    const pinned = readFileSync(join(FIXTURES, 'valid.hash'), 'utf8').trim();
    expect(toHex(genesisHash(loadGenesis(VALID)))).toBe(pinned);
  });

  it('refuses each hand-broken field and names it', () => {
    const cases: Array<[string, (g: GenesisJson) => void, string]> = [
      [
        'short key',
        (g) => (g.validators[2]!.publicKey = '0x1234'),
        'genesis.validators[2].publicKey: expected 0x-hex of 32 bytes',
      ],
      [
        'not a curve point',
        (g) => (g.validators[1]!.publicKey = '0x' + 'ff'.repeat(32)),
        'genesis.validators[1].publicKey: not a valid Ed25519 public key',
      ],
      ['bad chain id', (g) => (g.chainId = 'my chain!'), 'genesis.chainId: expected a chain id'],
      ['negative time', (g) => (g.genesisTimeMs = -1), 'genesis.genesisTimeMs: expected an integer'],
      ['fractional time', (g) => (g.genesisTimeMs = 1.5), 'genesis.genesisTimeMs: expected an integer'],
      [
        'bad runtime',
        (g) => (g.runtime = 'node24'),
        'genesis.runtime: expected a runtime like node-v24.21.0',
      ],
      [
        'unknown role',
        (g) => ((g.organisations[0]!.roles as string[])[1] = 'pirate'),
        'genesis.organisations[0].roles[1]: expected one of core-enterprise',
      ],
      [
        'duplicate role',
        (g) => (g.organisations[1]!.roles = ['bank', 'bank']),
        'genesis.organisations[1].roles[1]: duplicate role',
      ],
      [
        'no admins',
        (g) => (g.organisations[1]!.admins = []),
        'genesis.organisations[1].admins: expected 1..32 items, got 0',
      ],
      [
        'duplicate org id',
        (g) => (g.organisations[2]!.id = 'acme'),
        'genesis.organisations[2].id: duplicate organisation id',
      ],
      [
        'unknown organisation',
        (g) => (g.validators[0]!.organisation = 'nobody'),
        'genesis.validators[0].organisation: "nobody" is not the id',
      ],
      [
        'bad ip',
        (g) => (g.validators[3]!.p2p[0] = '/ip4/999.0.0.1/tcp/26656'),
        'genesis.validators[3].p2p[0]: "999.0.0.1" is not an IPv4',
      ],
      [
        'bad port',
        (g) => (g.validators[3]!.p2p[0] = '/ip4/10.0.0.9/tcp/70000'),
        'genesis.validators[3].p2p[0]: port 70000',
      ],
      [
        'not a multiaddr',
        (g) => (g.validators[3]!.p2p[0] = '10.0.0.9:26656'),
        'genesis.validators[3].p2p[0]: expected a TCP multiaddr',
      ],
      [
        'shared address',
        (g) => (g.validators[3]!.p2p = ['/ip4/10.0.0.1/tcp/26656']),
        'genesis.validators[3].p2p[0]: duplicate p2p address',
      ],
      [
        'duplicate name',
        (g) => (g.validators[1]!.name = 'validator-0'),
        'genesis.validators[1].name: duplicate node name',
      ],
      [
        'duplicate key',
        (g) => (g.validators[3]!.publicKey = g.validators[0]!.publicKey),
        'genesis.validators[3].publicKey: duplicate node key',
      ],
      [
        'observer with a validator key',
        (g) => (g.observers = [{ ...g.validators[0]!, name: 'watcher', p2p: ['/ip4/10.0.0.9/tcp/26656'] }]),
        'genesis.observers[0].publicKey: duplicate node key',
      ],
      [
        'observer of an unknown organisation',
        (g) => (g.observers = [{ ...g.validators[0]!, name: 'watcher', organisation: 'nobody' }]),
        'genesis.observers[0].organisation: "nobody" is not the id',
      ],
      ['no validators', (g) => (g.validators = []), 'genesis.validators: expected 1..1024 items, got 0'],
      [
        'rpc port',
        (g) => (g.validators[0]!.rpcPort = 0),
        'genesis.validators[0].rpcPort: expected an integer in [1, 65535]',
      ],
      [
        'growth decimals',
        (g) => (g.consensus.roundTimeoutGrowth = 1.234),
        'genesis.consensus.roundTimeoutGrowth: expected at most two decimals',
      ],
      [
        'tiny blocks',
        (g) => (g.consensus.maxBlockBytes = 100),
        'genesis.consensus.maxBlockBytes: expected an integer in [262144',
      ],
      [
        'missing heartbeat',
        (g) => delete (g.consensus as unknown as Record<string, unknown>)['heartbeatMs'],
        'genesis.consensus.heartbeatMs: missing',
      ],
      [
        'typo',
        (g) => ((g as unknown as Record<string, unknown>)['chainID'] = 'x'),
        'genesis.chainID: unknown field',
      ],
      [
        'source and path',
        (g) => (g.contracts[0] = { name: 'hello', source: 'x', sourcePath: 'contracts/hello.ts' }),
        'genesis.contracts[0]: expected exactly one of "source"',
      ],
      [
        'missing source file',
        (g) => (g.contracts[0]!.sourcePath = 'contracts/missing.ts'),
        'genesis.contracts[0].sourcePath: cannot read',
      ],
      [
        'float init arg',
        (g) => (g.contracts[1]!.initArgs = { rate: 1.5 }),
        'genesis.contracts[1].initArgs: not a canonical value',
      ],
      [
        'duplicate contract',
        (g) => (g.contracts[1]!.name = 'hello'),
        'genesis.contracts[1].name: duplicate contract name',
      ],
    ];
    for (const [what, breakIt, expected] of cases) {
      const json = fixture();
      breakIt(json);
      const message = refusal(json);
      expect(message, what).toContain(expected);
      expect(message.startsWith(expected.split(':')[0]!), what).toBe(true);
    }
    expect(refusal(fixture())).toBe('accepted');
    expect(refusal([])).toContain('genesis: expected an object');
  });

  it('names the file and field when loading a broken file', () => {
    const json = fixture();
    json.validators[2]!.publicKey = '0x1234';
    const file = join(tmp, 'broken.json');
    writeFileSync(file, JSON.stringify(json));
    expect(() => loadGenesis(file)).toThrow(
      `${file}: genesis.validators[2].publicKey: expected 0x-hex of 32 bytes`,
    );
    writeFileSync(file, '{"chainId": ');
    expect(() => loadGenesis(file)).toThrow(/not valid JSON/);
    expect(() => loadGenesis(join(tmp, 'absent.json'))).toThrow(/cannot read genesis file/);
  });

  it('hashes what defines the network and nothing else', () => {
    const base = toHex(genesisHash(validateGenesis(inlined(fixture()))));
    const hashOf = (change: (g: GenesisJson) => void): string => {
      const json = inlined(fixture());
      change(json);
      return toHex(genesisHash(validateGenesis(json)));
    };
    // Where validators listen is not who they are.
    expect(hashOf((g) => (g.validators[0]!.p2p = ['/ip4/192.168.1.1/tcp/30000']))).toBe(base);
    expect(hashOf((g) => delete g.validators[0]!.rpcPort)).toBe(base);
    // Role order in the file does not matter; roles are kept in canonical order.
    expect(hashOf((g) => (g.organisations[0]!.roles = ['core-enterprise', 'gateway']))).toBe(base);
    // Everything that defines the network does.
    const changes: Array<(g: GenesisJson) => void> = [
      (g) => (g.chainId = 'another-chain'),
      (g) => (g.genesisTimeMs += 1),
      (g) => (g.runtime = 'node-v24.22.0'),
      (g) => (g.validators = [g.validators[1]!, g.validators[0]!, g.validators[2]!, g.validators[3]!]),
      (g) => (g.validators[0]!.publicKey = fixture().organisations[0]!.admins[0]!),
      (g) => (g.organisations[1]!.admins = [g.organisations[1]!.admins[0]!]),
      (g) => (g.consensus.roundTimeoutGrowth = 1.51),
      (g) => (g.consensus.maxBlockGas -= 1),
      (g) => (g.contracts[0]!.source += ' '),
      (g) => (g.contracts[0]!.initArgs = { greeting: 'hi', limit: 11 }),
      (g) => (g.contracts = []),
    ];
    const hashes = changes.map(hashOf);
    for (const h of hashes) expect(h).not.toBe(base);
    expect(new Set(hashes).size).toBe(hashes.length);
  });

  it('round-trips through its JSON form with the same hash', () => {
    const g = loadGenesis(VALID);
    const again = validateGenesis(JSON.parse(JSON.stringify(genesisToJson(g))) as unknown, {
      resolveSource: (p) => readFileSync(join(FIXTURES, p), 'utf8'),
    });
    expect(toHex(genesisHash(again))).toBe(toHex(genesisHash(g)));
  });

  it('refuses a contract source path without a file location to resolve it', () => {
    expect(() => validateGenesis(fixture())).toThrow(
      /genesis.contracts\[0\].sourcePath: contract source paths are read by loadGenesis/,
    );
  });

  it('checks the runtime a process runs against the genesis', () => {
    const g = loadGenesis(VALID);
    expect(() => assertGenesisRuntime(g, 'node-v24.21.0')).not.toThrow();
    expect(() => assertGenesisRuntime(g, 'node-v22.1.0')).toThrow(/requires node-v24.21.0/);
    expect(runtimeId()).toBe('node-v24.21.0');
  });
});
