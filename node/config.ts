/**
 * Per-node configuration (`<home>/config.json`) and the on-disk layout of a node home and of a
 * network directory written by `trellis init`:
 *
 * ```
 * <network dir>/
 *   genesis.json            the network's genesis
 *   network.json            what init wrote (chain id, genesis hash, node homes)
 *   admins/<org>.key.json   each organisation's admin key
 *   node<i>/config.json     node i's config; paths in it are relative to node<i>/
 *   node<i>/validator.key.json
 *   node<i>/data/           LevelDB (blocks, state)
 * ```
 */
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { TrellisError } from '../core/errors.ts';
import { NAME_RE, Limits } from '../core/types.ts';
import { createFieldReader } from './fieldReader.ts';

/** Reasons a node config is refused. */
export type ConfigErrorCode =
  /** A field is missing, unknown, or has a bad value; `meta.field` names it. */
  'INVALID_FIELD' | 'READ_FAILED' | 'NOT_JSON';

/** Raised when a node config is unreadable or invalid; the message names the bad field. */
export class ConfigError extends TrellisError<ConfigErrorCode> {}

/** Log levels, most verbose first. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
/** One log level. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** First p2p port of a local network: node i listens on P2P_BASE_PORT + i. */
export const P2P_BASE_PORT = 26656;
/** First JSON-RPC port of a local network: node i serves on RPC_BASE_PORT + i. */
export const RPC_BASE_PORT = 8545;

/** A listening endpoint. */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

/** A validated node config; every path is absolute. */
export interface NodeConfig {
  /** The validator's name in genesis (or a free name for a non-validating node). */
  readonly name: string;
  /** The node's home directory (where config.json lives). */
  readonly home: string;
  readonly genesisFile: string;
  /** LevelDB directory. */
  readonly dataDir: string;
  /** The node key file (Ed25519; also its libp2p identity). */
  readonly keyFile: string;
  /** File holding the key file's passphrase; otherwise TRELLIS_PASSPHRASE is read. */
  readonly passphraseFile?: string;
  /** True only on development networks whose key files are unencrypted. */
  readonly allowUnencryptedKey: boolean;
  readonly p2p: Endpoint;
  readonly rpc: Endpoint;
  readonly logLevel: LogLevel;
  /**
   * Worker threads that verify incoming transaction signatures; 0 verifies on the main thread.
   * Absent: one per spare core, at most 4 (node/txVerifier.ts).
   */
  readonly verifyWorkers?: number;
}

/** The JSON shape of config.json; paths are relative to the home directory (or absolute). */
export interface NodeConfigJson {
  name: string;
  genesisFile: string;
  dataDir: string;
  keyFile: string;
  passphraseFile?: string;
  allowUnencryptedKey?: boolean;
  p2p: { host: string; port: number };
  rpc: { host: string; port: number };
  logLevel?: LogLevel;
  verifyWorkers?: number;
}

/** File names inside a node home. */
export const NodeHomeFiles = {
  config: 'config.json',
  key: 'validator.key.json',
  data: 'data',
} as const;

/** File names inside a network directory. */
export const NetworkFiles = {
  genesis: 'genesis.json',
  manifest: 'network.json',
  admins: 'admins',
  /** Node i's home is `node<i>`. */
  nodePrefix: 'node',
} as const;

/** Paths of a node home. */
export function nodeHomeLayout(home: string): { configFile: string; keyFile: string; dataDir: string } {
  return {
    configFile: join(home, NodeHomeFiles.config),
    keyFile: join(home, NodeHomeFiles.key),
    dataDir: join(home, NodeHomeFiles.data),
  };
}

/** Paths of a network directory. */
export function networkLayout(dir: string): {
  genesisFile: string;
  manifestFile: string;
  adminsDir: string;
  nodeHome(index: number): string;
} {
  return {
    genesisFile: join(dir, NetworkFiles.genesis),
    manifestFile: join(dir, NetworkFiles.manifest),
    adminsDir: join(dir, NetworkFiles.admins),
    nodeHome: (i) => join(dir, `${NetworkFiles.nodePrefix}${i}`),
  };
}

/** Largest config file read. */
const MAX_CONFIG_BYTES = 1024 * 1024;
/** Hostnames and IP literals: letters, digits, dots, dashes, colons (IPv6). */
const HOST_RE = /^[A-Za-z0-9.:-]{1,253}$/;

const reader = createFieldReader((field, message) => new ConfigError('INVALID_FIELD', message, { field }));

function endpoint(v: unknown, path: string): Endpoint {
  const o = reader.object(v, path, ['host', 'port'], ['host', 'port']);
  return {
    host: reader.string(o['host'], `${path}.host`, {
      pattern: HOST_RE,
      describe: 'a hostname or IP address',
    }),
    port: reader.integer(o['port'], `${path}.port`, 1, 65535),
  };
}

function pathField(v: unknown, field: string, home: string): string {
  const p = reader.string(v, field, { maxLength: 4096 });
  return isAbsolute(p) ? p : resolve(home, p);
}

/**
 * Validates parsed config JSON; relative paths resolve against `home`. Throws ConfigError
 * ('INVALID_FIELD') whose message starts with the field path, e.g. `config.rpc.port: expected ...`.
 */
export function validateNodeConfig(json: unknown, home: string): NodeConfig {
  const fields = [
    'name',
    'genesisFile',
    'dataDir',
    'keyFile',
    'passphraseFile',
    'allowUnencryptedKey',
    'p2p',
    'rpc',
    'logLevel',
    'verifyWorkers',
  ];
  const o = reader.object(json, 'config', fields, [
    'name',
    'genesisFile',
    'dataDir',
    'keyFile',
    'p2p',
    'rpc',
  ]);
  const absHome = resolve(home);
  const p2p = endpoint(o['p2p'], 'config.p2p');
  const rpc = endpoint(o['rpc'], 'config.rpc');
  if (p2p.port === rpc.port && p2p.host === rpc.host) {
    reader.fail('config.rpc.port', `${rpc.port} is also the p2p port; each listener needs its own port`);
  }
  const config: NodeConfig = {
    name: reader.string(o['name'], 'config.name', { maxLength: Limits.maxNameLength, pattern: NAME_RE }),
    home: absHome,
    genesisFile: pathField(o['genesisFile'], 'config.genesisFile', absHome),
    dataDir: pathField(o['dataDir'], 'config.dataDir', absHome),
    keyFile: pathField(o['keyFile'], 'config.keyFile', absHome),
    allowUnencryptedKey:
      o['allowUnencryptedKey'] === undefined
        ? false
        : reader.boolean(o['allowUnencryptedKey'], 'config.allowUnencryptedKey'),
    p2p,
    rpc,
    logLevel:
      o['logLevel'] === undefined ? 'info' : reader.oneOf(o['logLevel'], 'config.logLevel', LOG_LEVELS),
  };
  const withWorkers: NodeConfig =
    o['verifyWorkers'] === undefined
      ? config
      : { ...config, verifyWorkers: reader.integer(o['verifyWorkers'], 'config.verifyWorkers', 0, 16) };
  return o['passphraseFile'] === undefined
    ? withWorkers
    : { ...withWorkers, passphraseFile: pathField(o['passphraseFile'], 'config.passphraseFile', absHome) };
}

/**
 * Loads a node config from a home directory (reading `config.json` in it) or from a config file
 * path. Throws ConfigError: READ_FAILED, NOT_JSON, or INVALID_FIELD naming the field.
 */
export function loadNodeConfig(homeOrFile: string): NodeConfig {
  let file = homeOrFile;
  let home = homeOrFile;
  try {
    if (statSync(homeOrFile).isDirectory()) file = join(homeOrFile, NodeHomeFiles.config);
    else home = resolve(homeOrFile, '..');
  } catch (err) {
    throw new ConfigError(
      'READ_FAILED',
      `${homeOrFile}: no such node home or config file (${(err as Error).message})`,
      {
        path: homeOrFile,
      },
    );
  }
  let text: string;
  try {
    if (statSync(file).size > MAX_CONFIG_BYTES) {
      throw new ConfigError('READ_FAILED', `${file}: larger than ${MAX_CONFIG_BYTES} bytes`, { path: file });
    }
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError('READ_FAILED', `${file}: cannot read config (${(err as Error).message})`, {
      path: file,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text) as unknown;
  } catch (err) {
    throw new ConfigError('NOT_JSON', `${file}: not valid JSON (${(err as Error).message})`, { path: file });
  }
  try {
    return validateNodeConfig(json, home);
  } catch (err) {
    if (err instanceof ConfigError)
      throw new ConfigError(err.code, `${file}: ${err.message}`, { ...err.meta, path: file });
    throw err;
  }
}

/** The config JSON `trellis init` writes for node `index` of a local network. */
export function localNodeConfigJson(
  index: number,
  name: string,
  options: { passphraseFile?: string; unencrypted: boolean; basePorts?: { p2p: number; rpc: number } },
): NodeConfigJson {
  return {
    name,
    genesisFile: `../${NetworkFiles.genesis}`,
    dataDir: NodeHomeFiles.data,
    keyFile: NodeHomeFiles.key,
    ...(options.passphraseFile === undefined ? {} : { passphraseFile: options.passphraseFile }),
    allowUnencryptedKey: options.unencrypted,
    p2p: { host: '127.0.0.1', port: (options.basePorts?.p2p ?? P2P_BASE_PORT) + index },
    rpc: { host: '127.0.0.1', port: (options.basePorts?.rpc ?? RPC_BASE_PORT) + index },
    logLevel: 'info',
  };
}
