/**
 * `trellis init`: writes a whole consortium network into one directory so N nodes can run side by
 * side on one host: each validator's key and config, each organisation's admin key, and the
 * genesis. See node/config.ts for the layout.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { toHex } from '../../core/bytes.ts';
import type { Value } from '../../core/codec.ts';
import { generateKeyPair, type KeyPair } from '../../core/keys.ts';
import { NAME_RE, quorumOf } from '../../core/types.ts';
import {
  NetworkFiles,
  NodeHomeFiles,
  P2P_BASE_PORT,
  RPC_BASE_PORT,
  localNodeConfigJson,
  loadNodeConfig,
  networkLayout,
  nodeHomeLayout,
} from '../config.ts';
import {
  DEFAULT_CONSENSUS_PARAMS,
  genesisHash,
  genesisToJson,
  loadGenesis,
  validateGenesis,
  type ConsensusParams,
  type Genesis,
  type OrganisationRole,
} from '../genesis.ts';
import { PASSPHRASE_ENV, saveKeyFile, type KeyProtection, type ScryptParams } from '../keystore.ts';
import { runtimeId } from '../runtime.ts';
import { scfGenesisContracts, type ScfGenesisOptions } from '../scfGenesis.ts';
import type { Command } from './commands.ts';
import { keyProtectionFrom } from './keys.ts';
import { CliError, flag, integerOption, parseCommand, stringOption } from './parse.ts';

/** Most validators `init` writes for one host (ports stay in 26656.. and 8545..). */
export const MAX_LOCAL_VALIDATORS = 64;
/** Chain id when --chain-id is not given. */
export const DEFAULT_CHAIN_ID = 'trellis-local';

/** The default organisations of a supply-chain finance consortium; validators go to them in order. */
export const DEFAULT_ORGANISATIONS: ReadonlyArray<{ id: string; name: string; roles: OrganisationRole[] }> = [
  { id: 'acme', name: 'Acme Manufacturing (core enterprise)', roles: ['core-enterprise', 'gateway'] },
  { id: 'harbour-bank', name: 'Harbour Bank', roles: ['bank'] },
  { id: 'central-warehouse', name: 'Central Warehouse Co.', roles: ['warehouse', 'gateway'] },
  { id: 'market-regulator', name: 'Market Supervision Authority', roles: ['regulator'] },
  { id: 'commodity-exchange', name: 'Commodity Exchange', roles: ['exchange'] },
  { id: 'tier1-supplier', name: 'Tier-1 Components Supplier', roles: ['supplier'] },
  { id: 'tier2-supplier', name: 'Tier-2 Materials Supplier', roles: ['supplier'] },
];

/** Options of {@link writeLocalNetwork}. */
export interface LocalNetworkOptions {
  readonly dir: string;
  readonly validators: number;
  readonly chainId?: string;
  readonly genesisTimeMs?: number;
  /** Replace an existing network in `dir`. */
  readonly force?: boolean;
  /** Encrypt keys under this passphrase; otherwise keys are unencrypted development keys. */
  readonly passphrase?: string;
  /** Recorded in each node config when the passphrase came from a file. */
  readonly passphraseFile?: string;
  /** scrypt cost for encrypted keys (default: the keystore's). */
  readonly scrypt?: ScryptParams;
  /** Registered observers (non-voting members) to write after the validators. Default 0. */
  readonly observers?: number;
  /** First p2p and RPC ports (node i gets base + i); defaults 26656 and 8545. */
  readonly basePorts?: { readonly p2p: number; readonly rpc: number };
  /** Overrides of the default consensus parameters (tests use short timers). */
  readonly consensus?: Partial<ConsensusParams>;
  /**
   * Contracts deployed at height 0, e.g. membership and iot for the IoT tests (default: the
   * supply-chain-finance contracts of node/scfGenesis.ts).
   */
  readonly contracts?: ReadonlyArray<{ name: string; source: string; initArgs?: Value }>;
  /** Extra genesis members of the default consortium contracts (e.g. a benchmark's senders). */
  readonly members?: ScfGenesisOptions['members'];
}

/** What {@link writeLocalNetwork} wrote. */
export interface LocalNetwork {
  readonly dir: string;
  readonly genesisFile: string;
  readonly genesis: Genesis;
  readonly genesisHash: string;
  readonly encrypted: boolean;
  readonly nodes: ReadonlyArray<{
    readonly name: string;
    /** Validators vote; observers follow the chain and serve RPC. */
    readonly role: 'validator' | 'observer';
    readonly home: string;
    readonly organisation: string;
    readonly address: string;
    readonly publicKey: string;
    readonly p2pPort: number;
    readonly rpcPort: number;
  }>;
  readonly admins: ReadonlyArray<{
    readonly organisation: string;
    readonly keyFile: string;
    readonly address: string;
  }>;
}

/** Entries of `dir` that belong to a network written by init. */
function existingNetworkEntries(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const nodeDir = new RegExp(`^${NetworkFiles.nodePrefix}\\d+$`);
  return readdirSync(dir).filter(
    (e) =>
      e === NetworkFiles.genesis ||
      e === NetworkFiles.manifest ||
      e === NetworkFiles.admins ||
      nodeDir.test(e),
  );
}

/**
 * Writes a local consortium network into `dir`: genesis, per-node configs (p2p 26656+i, rpc
 * 8545+i), validator keys and one admin key per organisation. Refuses (CliError EXISTS) when `dir`
 * already holds a network, unless `force`, which removes only what init writes. The result is
 * read back and validated before returning.
 */
export async function writeLocalNetwork(options: LocalNetworkOptions): Promise<LocalNetwork> {
  const dir = resolve(options.dir);
  const n = options.validators;
  if (!Number.isInteger(n) || n < 1 || n > MAX_LOCAL_VALIDATORS) {
    throw new CliError('USAGE', `validators: expected 1..${MAX_LOCAL_VALIDATORS}, got ${n}`, {});
  }
  const chainId = options.chainId ?? DEFAULT_CHAIN_ID;
  if (!NAME_RE.test(chainId)) {
    throw new CliError(
      'USAGE',
      `chain id "${chainId}": expected letters, digits, _ . - (starting with a letter or _), at most 64`,
      {},
    );
  }
  const existing = existingNetworkEntries(dir);
  if (existing.length > 0) {
    if (options.force !== true) {
      throw new CliError(
        'EXISTS',
        `${dir} already holds a network (${existing.join(', ')}); refusing to overwrite it. Pass --force to replace it (this deletes its keys and data)`,
        { dir, existing },
      );
    }
    for (const e of existing) rmSync(join(dir, e), { recursive: true, force: true });
  }

  const layout = networkLayout(dir);
  mkdirSync(layout.adminsDir, { recursive: true });
  const protection: KeyProtection =
    options.passphrase === undefined
      ? { unencrypted: true }
      : {
          passphrase: options.passphrase,
          ...(options.scrypt === undefined ? {} : { scrypt: options.scrypt }),
        };

  // One admin per organisation, written first so genesis can name them.
  const orgs = DEFAULT_ORGANISATIONS;
  const admins: Array<{ organisation: string; keyFile: string; address: string; key: KeyPair }> = [];
  for (const org of orgs) {
    const key = generateKeyPair();
    const keyFile = join(layout.adminsDir, `${org.id}.key.json`);
    const file = await saveKeyFile(keyFile, key, protection);
    admins.push({ organisation: org.id, keyFile, address: file.address, key });
  }

  const m = options.observers ?? 0;
  if (!Number.isInteger(m) || m < 0 || m > MAX_LOCAL_VALIDATORS) {
    throw new CliError('USAGE', `observers: expected 0..${MAX_LOCAL_VALIDATORS}, got ${m}`, {});
  }
  // Validators first, then observers: node i (either kind) listens on base + i.
  const nodeKeys = Array.from({ length: n + m }, () => generateKeyPair());
  const entries = nodeKeys.map((key, i) => ({
    name: i < n ? `validator-${i}` : `observer-${i - n}`,
    organisation: orgs[i % orgs.length]!.id,
    publicKey: toHex(key.publicKey),
    p2p: [`/ip4/127.0.0.1/tcp/${(options.basePorts?.p2p ?? P2P_BASE_PORT) + i}`],
    rpcPort: (options.basePorts?.rpc ?? RPC_BASE_PORT) + i,
  }));
  const validators = entries.slice(0, n);
  const observers = entries.slice(n);
  // Validate through the same path a node uses, so init can never write a genesis nodes refuse.
  const genesis = validateGenesis({
    chainId,
    genesisTimeMs: options.genesisTimeMs ?? Date.now(),
    runtime: runtimeId(),
    organisations: orgs.map((o, i) => ({
      ...o,
      roles: [...o.roles],
      admins: [toHex(admins[i]!.key.publicKey)],
    })),
    validators,
    ...(observers.length === 0 ? {} : { observers }),
    consensus: { ...DEFAULT_CONSENSUS_PARAMS, ...options.consensus },
    // Default: the supply-chain-finance contracts (node/scfGenesis.ts), deployed at height 0.
    contracts: (
      options.contracts ??
      scfGenesisContracts(
        orgs.map((o, i) => ({ ...o, admins: [admins[i]!.key.publicKey] })),
        options.members === undefined ? {} : { members: options.members },
      )
    ).map((c) => ({ ...c })),
  });
  writeFileSync(layout.genesisFile, JSON.stringify(genesisToJson(genesis), null, 2) + '\n');

  const nodes = [];
  for (const [i, key] of nodeKeys.entries()) {
    const home = layout.nodeHome(i);
    const paths = nodeHomeLayout(home);
    mkdirSync(home, { recursive: true });
    const file = await saveKeyFile(paths.keyFile, key, protection);
    const config = localNodeConfigJson(i, entries[i]!.name, {
      ...(options.basePorts === undefined ? {} : { basePorts: options.basePorts }),
      unencrypted: options.passphrase === undefined,
      ...(options.passphraseFile === undefined ? {} : { passphraseFile: resolve(options.passphraseFile) }),
    });
    writeFileSync(paths.configFile, JSON.stringify(config, null, 2) + '\n');
    nodes.push({
      name: entries[i]!.name,
      role: i < n ? ('validator' as const) : ('observer' as const),
      home,
      organisation: entries[i]!.organisation,
      address: file.address,
      publicKey: file.publicKey,
      p2pPort: config.p2p.port,
      rpcPort: config.rpc.port,
    });
  }

  const hash = toHex(genesisHash(genesis));
  const manifest = {
    createdBy: 'trellis init',
    chainId,
    genesisHash: hash,
    encryptedKeys: options.passphrase !== undefined,
    nodes: nodes.map((nd) => ({ ...nd, home: relative(dir, nd.home) })),
    admins: admins.map((a) => ({
      organisation: a.organisation,
      keyFile: relative(dir, a.keyFile),
      address: a.address,
    })),
  };
  writeFileSync(layout.manifestFile, JSON.stringify(manifest, null, 2) + '\n');

  // Read everything back the way a node will.
  const loaded = loadGenesis(layout.genesisFile);
  if (toHex(genesisHash(loaded)) !== hash) throw new Error('genesis read back with a different hash');
  for (const nd of nodes) loadNodeConfig(nd.home);

  return {
    dir,
    genesisFile: layout.genesisFile,
    genesis,
    genesisHash: hash,
    encrypted: options.passphrase !== undefined,
    nodes,
    admins: admins.map(({ organisation, keyFile, address }) => ({ organisation, keyFile, address })),
  };
}

const INIT_USAGE = `Usage: trellis init --validators N [--observers M] --dir DIR [--chain-id ID] [--passphrase-file FILE] [--force] [--json]

Writes a consortium network into DIR: a genesis with a supply-chain consortium (core enterprise,
bank, warehouse, regulator, exchange, two suppliers), an admin key per organisation, and for each
of the N validators a key and a config (p2p port ${P2P_BASE_PORT}+i, rpc port ${RPC_BASE_PORT}+i) so all N
nodes run side by side on this host.

Keys are UNENCRYPTED development keys unless a passphrase is given with --passphrase-file or the
${PASSPHRASE_ENV} environment variable, in which case every key is encrypted with it.

Options:
  --validators N          number of validators, 1..${MAX_LOCAL_VALIDATORS} (3f+1 tolerates f faulty)
  --observers M           registered observers: members that follow the chain and serve RPC, never vote
  --dir DIR               network directory (created if missing)
  --chain-id ID           chain id (default ${DEFAULT_CHAIN_ID})
  --genesis-time MS       genesis time in ms since the epoch (default: now)
  --passphrase-file FILE  encrypt every key with the passphrase in FILE
  --force                 replace an existing network in DIR (deletes its keys and data)
  --json                  print the result as JSON
  -h, --help              show this help`;

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows
    .map(
      (r) =>
        '  ' +
        r
          .map((cell, c) => cell.padEnd(widths[c]!))
          .join('  ')
          .trimEnd(),
    )
    .join('\n');
}

/** `trellis init`. */
export const initCommand: Command = {
  name: 'init',
  summary: 'write a local consortium network: keys, genesis, one config per node',
  async run(argv) {
    const parsed = parseCommand(
      argv,
      {
        validators: { type: 'string', short: 'n' },
        observers: { type: 'string' },
        dir: { type: 'string', short: 'd' },
        'chain-id': { type: 'string' },
        'genesis-time': { type: 'string' },
        'passphrase-file': { type: 'string' },
        force: { type: 'boolean' },
        json: { type: 'boolean' },
      },
      INIT_USAGE,
    );
    if (parsed.help) {
      console.log(INIT_USAGE);
      return 0;
    }
    const { values } = parsed;
    const validatorsArg = stringOption(values, 'validators');
    const dir = stringOption(values, 'dir');
    if (validatorsArg === undefined)
      throw new CliError('USAGE', `missing --validators N`, { usage: INIT_USAGE });
    if (dir === undefined) throw new CliError('USAGE', `missing --dir DIR`, { usage: INIT_USAGE });
    const validators = integerOption(validatorsArg, 'validators', 1, MAX_LOCAL_VALIDATORS, INIT_USAGE);
    const observersArg = stringOption(values, 'observers');
    const observers =
      observersArg === undefined
        ? 0
        : integerOption(observersArg, 'observers', 0, MAX_LOCAL_VALIDATORS, INIT_USAGE);
    const timeArg = stringOption(values, 'genesis-time');
    const genesisTimeMs =
      timeArg === undefined
        ? undefined
        : integerOption(timeArg, 'genesis-time', 0, Number.MAX_SAFE_INTEGER, INIT_USAGE);
    const passphraseFile = stringOption(values, 'passphrase-file');
    const protection = keyProtectionFrom(passphraseFile, false, INIT_USAGE);
    const chainId = stringOption(values, 'chain-id');

    const net = await writeLocalNetwork({
      dir,
      validators,
      observers,
      force: flag(values, 'force'),
      ...(chainId === undefined ? {} : { chainId }),
      ...(genesisTimeMs === undefined ? {} : { genesisTimeMs }),
      ...(protection !== undefined && 'passphrase' in protection
        ? { passphrase: protection.passphrase }
        : {}),
      ...(passphraseFile === undefined ? {} : { passphraseFile }),
    });

    if (flag(values, 'json')) {
      console.log(
        JSON.stringify(
          {
            dir: net.dir,
            chainId: net.genesis.chainId,
            genesisFile: net.genesisFile,
            genesisHash: net.genesisHash,
            encryptedKeys: net.encrypted,
            nodes: net.nodes,
            admins: net.admins,
          },
          null,
          2,
        ),
      );
      return 0;
    }
    const f = Math.floor((validators - 1) / 3);
    console.log(
      [
        `Initialised Trellis network "${net.genesis.chainId}" in ${net.dir}`,
        `  genesis:      ${net.genesisFile}`,
        `  genesis hash: ${net.genesisHash}`,
        `  runtime:      ${net.genesis.runtime}`,
        `  validators:   ${validators} (quorum ${quorumOf(validators)}, tolerates ${f} faulty)`,
        net.encrypted
          ? `  keys:         encrypted (scrypt + AES-256-GCM) with the given passphrase`
          : `  keys:         UNENCRYPTED development keys - for a local dev network only.\n` +
            `                For encrypted keys pass --passphrase-file FILE or set ${PASSPHRASE_ENV}.`,
        '',
        table([
          ['node', 'validator', 'organisation', 'address', 'p2p', 'rpc'],
          ...net.nodes.map((nd) => [
            relative(net.dir, nd.home),
            nd.name,
            nd.organisation,
            nd.address,
            String(nd.p2pPort),
            String(nd.rpcPort),
          ]),
        ]),
        '',
        'Organisation admin keys:',
        table(net.admins.map((a) => [a.organisation, relative(net.dir, a.keyFile), a.address])),
        '',
        `Each node's settings are in <node>/${NodeHomeFiles.config}, its key in <node>/${NodeHomeFiles.key}.`,
      ].join('\n'),
    );
    if (validators > 1 && (validators - 1) % 3 !== 0) {
      console.log(
        `Note: ${validators} validators tolerate as many faults as ${3 * f + 1}; BFT networks usually use 3f+1 (4, 7, 10...).`,
      );
    }
    return 0;
  },
};
