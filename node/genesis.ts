/**
 * The genesis file: the founding document of a consortium network. It names the chain, the
 * organisations with their admins and roles, the validators, the consensus and block parameters,
 * the runtime every validator must run, and the contracts deployed at the start. Its hash
 * ({@link genesisHash}) identifies the network: the first block's prevHash is that hash, and a data
 * dir is bound to it.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { toHex, type Bytes } from '../core/bytes.ts';
import { canonicalValue, pack, type Value } from '../core/codec.ts';
import { TrellisError } from '../core/errors.ts';
import { sha256 } from '../core/hash.ts';
import { PUBLIC_KEY_BYTES, addressOf } from '../core/keys.ts';
import { Limits, NAME_RE, hashValidators, validatorOf, type Validator } from '../core/types.ts';
import { createFieldReader } from './fieldReader.ts';
import { runtimeId } from './runtime.ts';

/** Reasons a genesis file is refused. */
export type GenesisErrorCode =
  /** A field is missing, unknown, or has a bad value; `meta.field` names it. */
  | 'INVALID_FIELD'
  /** The file cannot be read or is too large. */
  | 'READ_FAILED'
  /** The file is not JSON. */
  | 'NOT_JSON'
  /** This process runs another runtime than the genesis names. */
  | 'WRONG_RUNTIME';

/** Raised when a genesis file is unreadable or invalid; the message names the bad field. */
export class GenesisError extends TrellisError<GenesisErrorCode> {}

/** Roles an organisation can hold; contracts check them through the membership contract. */
export const ORGANISATION_ROLES = [
  'core-enterprise',
  'supplier',
  'bank',
  'warehouse',
  'exchange',
  'regulator',
  'gateway',
] as const;
/** One organisation role. */
export type OrganisationRole = (typeof ORGANISATION_ROLES)[number];

/** A member organisation. */
export interface Organisation {
  /** Short identifier, used in contracts and by validators (`acme`, `harbour-bank`). */
  readonly id: string;
  /** Display name. */
  readonly name: string;
  /** Its roles, without duplicates, in {@link ORGANISATION_ROLES} order. */
  readonly roles: readonly OrganisationRole[];
  /** Ed25519 public keys of its admins, who approve governance proposals. */
  readonly admins: readonly Bytes[];
}

/** A validator of the initial set. Order matters: it drives proposer rotation. */
export interface GenesisValidator {
  readonly name: string;
  /** Id of the organisation that runs it. */
  readonly organisation: string;
  readonly publicKey: Bytes;
  /** Derived from the public key (not in the file). */
  readonly address: Bytes;
  /** libp2p TCP multiaddrs where it listens, e.g. `/ip4/10.0.0.5/tcp/26656`. */
  readonly p2p: readonly string[];
  /** JSON-RPC port, when the operator publishes it. */
  readonly rpcPort?: number;
}

/** Consensus and block parameters. */
export interface ConsensusParams {
  /** Round timer of round 0. */
  readonly roundTimeoutMs: number;
  /** Each round's timer is the previous one times this (1..4, in hundredths). */
  readonly roundTimeoutGrowth: number;
  /** Interval after which a proposer proposes an empty block when there are no transactions. */
  readonly heartbeatMs: number;
  readonly maxBlockTxs: number;
  readonly maxBlockBytes: number;
  readonly maxBlockGas: number;
}

/** A contract deployed at genesis. */
export interface GenesisContract {
  readonly name: string;
  /** TypeScript source (read from `sourcePath` when the file gave a path). */
  readonly source: string;
  /** The path the file gave, relative to the genesis file; kept so the file can be written back. */
  readonly sourcePath?: string;
  /** Arguments of its init call. */
  readonly initArgs: Value;
}

/** A validated genesis. */
export interface Genesis {
  readonly chainId: string;
  /** Milliseconds since the Unix epoch; block timestamps start after it. */
  readonly genesisTimeMs: number;
  /** Runtime every validator must run, as {@link runtimeId} spells it (`node-v24.21.0`). */
  readonly runtime: string;
  readonly organisations: readonly Organisation[];
  readonly validators: readonly GenesisValidator[];
  /**
   * Registered observers: members that follow the chain (block sync, consensus messages) and serve
   * RPC, but never vote. The p2p gater admits validators and observers only.
   */
  readonly observers: readonly GenesisValidator[];
  readonly consensus: ConsensusParams;
  readonly contracts: readonly GenesisContract[];
}

/** The JSON shape of a genesis file. */
export interface GenesisJson {
  chainId: string;
  genesisTimeMs: number;
  runtime: string;
  organisations: Array<{ id: string; name: string; roles: OrganisationRole[]; admins: string[] }>;
  validators: Array<{
    name: string;
    organisation: string;
    publicKey: string;
    p2p: string[];
    rpcPort?: number;
  }>;
  /** Optional: registered observers, the same shape as validators. */
  observers?: GenesisJson['validators'];
  consensus: { -readonly [K in keyof ConsensusParams]: ConsensusParams[K] };
  contracts: Array<{ name: string; source?: string; sourcePath?: string; initArgs?: Value }>;
}

/** Bounds on what a genesis may contain. */
export const GenesisLimits = {
  maxOrganisations: 256,
  maxAdminsPerOrganisation: 32,
  maxOrganisationNameLength: 128,
  maxValidators: Limits.maxValidators,
  maxP2pAddresses: 8,
  maxContracts: 64,
  /** A genesis contract's source must fit a deploy transaction. */
  maxContractSourceBytes: Limits.maxTxBytes,
  /** Largest genesis file read. */
  maxFileBytes: 16 * 1024 * 1024,
} as const;

/** Consensus parameters `trellis init` writes: a responsive local network. */
export const DEFAULT_CONSENSUS_PARAMS: ConsensusParams = {
  roundTimeoutMs: 2000,
  roundTimeoutGrowth: 1.5,
  heartbeatMs: 5000,
  maxBlockTxs: 5000,
  maxBlockBytes: 8 * 1024 * 1024,
  maxBlockGas: 1_000_000_000,
};

const CONSENSUS_BOUNDS: Readonly<
  Record<Exclude<keyof ConsensusParams, 'roundTimeoutGrowth'>, [number, number]>
> = {
  roundTimeoutMs: [50, 600_000],
  heartbeatMs: [100, 86_400_000],
  maxBlockTxs: [1, Limits.maxBlockTxs],
  // A block must fit the largest transaction.
  maxBlockBytes: [Limits.maxTxBytes, 64 * 1024 * 1024],
  maxBlockGas: [1, Number.MAX_SAFE_INTEGER],
};

/** `node-v<major>.<minor>.<patch>` */
const RUNTIME_RE = /^node-v\d+\.\d+\.\d+$/;
/** A libp2p TCP multiaddr, optionally with the peer id. */
const MULTIADDR_RE =
  /^\/(ip4|ip6|dns4|dns6|dns)\/([^/\s]+)\/tcp\/(\d{1,5})(\/p2p\/[1-9A-HJ-NP-Za-km-z]{32,128})?$/;
const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

const reader = createFieldReader((field, message) => new GenesisError('INVALID_FIELD', message, { field }));

/** Reads a contract's source for {@link validateGenesis}; `loadGenesis` reads it next to the file. */
export type SourceResolver = (sourcePath: string, field: string) => string;

/** Options of {@link validateGenesis}. */
export interface ValidateGenesisOptions {
  /** How to read `sourcePath` contracts; without it they are refused (use {@link loadGenesis}). */
  readonly resolveSource?: SourceResolver;
}

function publicKeyField(v: unknown, path: string): Bytes {
  const bytes = reader.hex(v, path, PUBLIC_KEY_BYTES);
  try {
    ed25519.Point.fromBytes(bytes);
  } catch {
    reader.fail(path, 'not a valid Ed25519 public key (not a curve point)');
  }
  return bytes;
}

function multiaddrField(v: unknown, path: string): string {
  const s = reader.string(v, path, {
    maxLength: 256,
    describe: 'a TCP multiaddr like /ip4/127.0.0.1/tcp/26656',
  });
  const m = MULTIADDR_RE.exec(s);
  if (m === null)
    return reader.fail(path, `expected a TCP multiaddr like /ip4/127.0.0.1/tcp/26656, got "${s}"`);
  const port = Number(m[3]);
  if (port < 1 || port > 65535) reader.fail(path, `port ${port} is out of range 1..65535`);
  if (m[1] === 'ip4' && !IPV4_RE.test(m[2]!)) reader.fail(path, `"${m[2]}" is not an IPv4 address`);
  return s;
}

function checkUnique<T>(
  items: readonly T[],
  key: (t: T) => string,
  path: (i: number) => string,
  what: string,
): void {
  const seen = new Map<string, number>();
  items.forEach((item, i) => {
    const k = key(item);
    const first = seen.get(k);
    if (first !== undefined) reader.fail(path(i), `duplicate ${what} (same as ${path(first)})`);
    seen.set(k, i);
  });
}

const refuseSourcePath: SourceResolver = (_p, field) =>
  reader.fail(field, 'contract source paths are read by loadGenesis(path), which knows the file location');

/**
 * Validates parsed genesis JSON and returns the typed genesis. Throws GenesisError
 * ('INVALID_FIELD') whose message starts with the field path, e.g.
 * `genesis.validators[2].publicKey: expected 0x-hex of 32 bytes, got "0x12"`.
 */
export function validateGenesis(json: unknown, options: ValidateGenesisOptions = {}): Genesis {
  const resolveSource = options.resolveSource ?? refuseSourcePath;
  const top = reader.object(
    json,
    'genesis',
    [
      'chainId',
      'genesisTimeMs',
      'runtime',
      'organisations',
      'validators',
      'observers',
      'consensus',
      'contracts',
    ],
    ['chainId', 'genesisTimeMs', 'runtime', 'organisations', 'validators', 'consensus', 'contracts'],
  );
  const chainId = reader.string(top['chainId'], 'genesis.chainId', {
    maxLength: Limits.maxChainIdLength,
    pattern: NAME_RE,
    describe: 'a chain id of letters, digits, _ . - (starting with a letter or _), at most 64 characters',
  });
  const genesisTimeMs = reader.integer(
    top['genesisTimeMs'],
    'genesis.genesisTimeMs',
    0,
    Number.MAX_SAFE_INTEGER,
  );
  const runtime = reader.string(top['runtime'], 'genesis.runtime', {
    pattern: RUNTIME_RE,
    describe: 'a runtime like node-v24.21.0',
  });

  const orgsPath = 'genesis.organisations';
  const organisations = reader
    .array(top['organisations'], orgsPath, 1, GenesisLimits.maxOrganisations)
    .map((o, i) => {
      const p = `${orgsPath}[${i}]`;
      const obj = reader.object(o, p, ['id', 'name', 'roles', 'admins'], ['id', 'name', 'roles', 'admins']);
      const id = reader.string(obj['id'], `${p}.id`, { maxLength: Limits.maxNameLength, pattern: NAME_RE });
      const name = reader.string(obj['name'], `${p}.name`, {
        maxLength: GenesisLimits.maxOrganisationNameLength,
      });
      const roleList = reader
        .array(obj['roles'], `${p}.roles`, 1, ORGANISATION_ROLES.length)
        .map((r, j) => reader.oneOf(r, `${p}.roles[${j}]`, ORGANISATION_ROLES));
      checkUnique(
        roleList,
        (r) => r,
        (j) => `${p}.roles[${j}]`,
        'role',
      );
      const admins = reader
        .array(obj['admins'], `${p}.admins`, 1, GenesisLimits.maxAdminsPerOrganisation)
        .map((a, j) => publicKeyField(a, `${p}.admins[${j}]`));
      checkUnique(admins, toHex, (j) => `${p}.admins[${j}]`, 'admin key');
      const roles = ORGANISATION_ROLES.filter((r) => roleList.includes(r));
      return { id, name, roles, admins };
    });
  checkUnique(
    organisations,
    (o) => o.id,
    (i) => `${orgsPath}[${i}].id`,
    'organisation id',
  );
  const orgIds = new Set(organisations.map((o) => o.id));

  const readNodes = (value: unknown, path: string, min: number): GenesisValidator[] =>
    reader.array(value, path, min, GenesisLimits.maxValidators).map((v, i) => {
      const p = `${path}[${i}]`;
      const obj = reader.object(
        v,
        p,
        ['name', 'organisation', 'publicKey', 'p2p', 'rpcPort'],
        ['name', 'organisation', 'publicKey', 'p2p'],
      );
      const name = reader.string(obj['name'], `${p}.name`, {
        maxLength: Limits.maxNameLength,
        pattern: NAME_RE,
      });
      const organisation = reader.string(obj['organisation'], `${p}.organisation`, {
        maxLength: Limits.maxNameLength,
      });
      if (!orgIds.has(organisation)) {
        reader.fail(
          `${p}.organisation`,
          `"${organisation}" is not the id of an organisation in genesis.organisations`,
        );
      }
      const publicKey = publicKeyField(obj['publicKey'], `${p}.publicKey`);
      const p2p = reader
        .array(obj['p2p'], `${p}.p2p`, 1, GenesisLimits.maxP2pAddresses)
        .map((a, j) => multiaddrField(a, `${p}.p2p[${j}]`));
      const node: GenesisValidator = { name, organisation, publicKey, address: addressOf(publicKey), p2p };
      return obj['rpcPort'] === undefined
        ? node
        : { ...node, rpcPort: reader.integer(obj['rpcPort'], `${p}.rpcPort`, 1, 65535) };
    });
  const valsPath = 'genesis.validators';
  const validators = readNodes(top['validators'], valsPath, 1);
  const obsPath = 'genesis.observers';
  const observers = top['observers'] === undefined ? [] : readNodes(top['observers'], obsPath, 0);
  // Validators and observers are all members of the network: names, keys and addresses unique across both.
  const members = [
    ...validators.map((v, i) => ({ v, path: `${valsPath}[${i}]` })),
    ...observers.map((v, i) => ({ v, path: `${obsPath}[${i}]` })),
  ];
  checkUnique(
    members,
    (m) => m.v.name,
    (i) => `${members[i]!.path}.name`,
    'node name',
  );
  checkUnique(
    members,
    (m) => toHex(m.v.publicKey),
    (i) => `${members[i]!.path}.publicKey`,
    'node key',
  );
  const addresses = members.flatMap((m) => m.v.p2p.map((a, j) => ({ a, path: `${m.path}.p2p[${j}]` })));
  checkUnique(
    addresses,
    (x) => x.a.replace(/\/p2p\/.*$/, ''),
    (k) => addresses[k]!.path,
    'p2p address',
  );

  const cp = 'genesis.consensus';
  const c = reader.object(
    top['consensus'],
    cp,
    Object.keys(DEFAULT_CONSENSUS_PARAMS),
    Object.keys(DEFAULT_CONSENSUS_PARAMS),
  );
  const bounded = (k: keyof typeof CONSENSUS_BOUNDS): number =>
    reader.integer(c[k], `${cp}.${k}`, ...CONSENSUS_BOUNDS[k]);
  const growth = reader.number(c['roundTimeoutGrowth'], `${cp}.roundTimeoutGrowth`, 1, 4);
  if (Math.abs(Math.round(growth * 100) - growth * 100) > 1e-9) {
    reader.fail(`${cp}.roundTimeoutGrowth`, `expected at most two decimals, got ${growth}`);
  }
  const consensus: ConsensusParams = {
    roundTimeoutMs: bounded('roundTimeoutMs'),
    roundTimeoutGrowth: Math.round(growth * 100) / 100,
    heartbeatMs: bounded('heartbeatMs'),
    maxBlockTxs: bounded('maxBlockTxs'),
    maxBlockBytes: bounded('maxBlockBytes'),
    maxBlockGas: bounded('maxBlockGas'),
  };

  const ctPath = 'genesis.contracts';
  const contracts = reader.array(top['contracts'], ctPath, 0, GenesisLimits.maxContracts).map((ct, i) => {
    const p = `${ctPath}[${i}]`;
    const obj = reader.object(ct, p, ['name', 'source', 'sourcePath', 'initArgs'], ['name']);
    const name = reader.string(obj['name'], `${p}.name`, {
      maxLength: Limits.maxNameLength,
      pattern: NAME_RE,
    });
    if ((obj['source'] === undefined) === (obj['sourcePath'] === undefined)) {
      reader.fail(
        p,
        'expected exactly one of "source" (inline TypeScript) or "sourcePath" (a file next to the genesis)',
      );
    }
    let source: string;
    let sourcePath: string | undefined;
    if (obj['sourcePath'] !== undefined) {
      sourcePath = reader.string(obj['sourcePath'], `${p}.sourcePath`, { maxLength: 1024 });
      source = resolveSource(sourcePath, `${p}.sourcePath`);
    } else {
      source = reader.string(obj['source'], `${p}.source`, {
        maxLength: GenesisLimits.maxContractSourceBytes,
      });
    }
    if (Buffer.byteLength(source, 'utf8') > GenesisLimits.maxContractSourceBytes) {
      reader.fail(
        `${p}.${sourcePath === undefined ? 'source' : 'sourcePath'}`,
        `source larger than ${GenesisLimits.maxContractSourceBytes} bytes`,
      );
    }
    let initArgs: Value = null;
    if (obj['initArgs'] !== undefined) {
      try {
        initArgs = canonicalValue(obj['initArgs'], `${p}.initArgs`);
      } catch (err) {
        reader.fail(`${p}.initArgs`, `not a canonical value (${(err as Error).message})`);
      }
    }
    const contract: GenesisContract = { name, source, initArgs };
    return sourcePath === undefined ? contract : { ...contract, sourcePath };
  });
  checkUnique(
    contracts,
    (ct) => ct.name,
    (i) => `${ctPath}[${i}].name`,
    'contract name',
  );

  return { chainId, genesisTimeMs, runtime, organisations, validators, observers, consensus, contracts };
}

/** Domain tag of the genesis hash encoding. */
export const GENESIS_TAG = 'trellis.genesis.v1';

/**
 * Canonical bytes of a genesis: a fixed-order MessagePack array of everything that defines the
 * network. Validators' p2p addresses and RPC ports are deliberately left out: they are where to
 * find a validator, not who it is, and moving a machine must not change the network's identity.
 * Contract sources are included as their bytes (not their path), the growth factor as hundredths.
 */
export function encodeGenesis(g: Genesis): Bytes {
  const c = g.consensus;
  return pack([
    GENESIS_TAG,
    g.chainId,
    g.genesisTimeMs,
    g.runtime,
    g.organisations.map((o) => [o.id, o.name, [...o.roles], [...o.admins]]),
    g.validators.map((v) => [v.name, v.organisation, v.publicKey]),
    [
      c.roundTimeoutMs,
      Math.round(c.roundTimeoutGrowth * 100),
      c.heartbeatMs,
      c.maxBlockTxs,
      c.maxBlockBytes,
      c.maxBlockGas,
    ],
    g.contracts.map((ct) => [
      ct.name,
      ct.source,
      canonicalValue(ct.initArgs, `contract ${ct.name} initArgs`),
    ]),
    ...(g.observers.length === 0 ? [] : [g.observers.map((v) => [v.name, v.organisation, v.publicKey])]),
  ]);
}

/** SHA-256 of {@link encodeGenesis}: the network's identity and the prevHash of block 1. */
export function genesisHash(g: Genesis): Bytes {
  return sha256(encodeGenesis(g));
}

/** The initial validator set, in genesis order, as consensus uses it. */
export function genesisValidatorSet(g: Genesis): Validator[] {
  return g.validators.map((v) => validatorOf(v.publicKey));
}

/** Hash of the initial validator set (the validatorsHash of early headers). */
export function genesisValidatorsHash(g: Genesis): Bytes {
  return hashValidators(genesisValidatorSet(g));
}

/** The genesis as JSON, ready to write to a file (keys as 0x-hex). */
export function genesisToJson(g: Genesis): GenesisJson {
  return {
    chainId: g.chainId,
    genesisTimeMs: g.genesisTimeMs,
    runtime: g.runtime,
    organisations: g.organisations.map((o) => ({
      id: o.id,
      name: o.name,
      roles: [...o.roles],
      admins: o.admins.map(toHex),
    })),
    validators: g.validators.map((v) => ({
      name: v.name,
      organisation: v.organisation,
      publicKey: toHex(v.publicKey),
      p2p: [...v.p2p],
      ...(v.rpcPort === undefined ? {} : { rpcPort: v.rpcPort }),
    })),
    ...(g.observers.length === 0
      ? {}
      : {
          observers: g.observers.map((v) => ({
            name: v.name,
            organisation: v.organisation,
            publicKey: toHex(v.publicKey),
            p2p: [...v.p2p],
            ...(v.rpcPort === undefined ? {} : { rpcPort: v.rpcPort }),
          })),
        }),
    consensus: { ...g.consensus },
    contracts: g.contracts.map((ct) => ({
      name: ct.name,
      ...(ct.sourcePath === undefined ? { source: ct.source } : { sourcePath: ct.sourcePath }),
      initArgs: ct.initArgs,
    })),
  };
}

/**
 * Reads, parses and validates a genesis file. Contract `sourcePath`s are read relative to the
 * file's directory. Throws GenesisError: READ_FAILED, NOT_JSON or INVALID_FIELD (naming the field).
 */
export function loadGenesis(path: string): Genesis {
  let text: string;
  try {
    const size = statSync(path).size;
    if (size > GenesisLimits.maxFileBytes) {
      throw new GenesisError(
        'READ_FAILED',
        `${path}: ${size} bytes exceeds the ${GenesisLimits.maxFileBytes}-byte limit`,
        { path },
      );
    }
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof GenesisError) throw err;
    throw new GenesisError('READ_FAILED', `${path}: cannot read genesis file (${(err as Error).message})`, {
      path,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text) as unknown;
  } catch (err) {
    throw new GenesisError('NOT_JSON', `${path}: not valid JSON (${(err as Error).message})`, { path });
  }
  const base = dirname(resolve(path));
  const resolveSource: SourceResolver = (sourcePath, field) => {
    const file = resolve(base, sourcePath);
    try {
      if (statSync(file).size > GenesisLimits.maxContractSourceBytes) {
        return reader.fail(field, `${file} is larger than ${GenesisLimits.maxContractSourceBytes} bytes`);
      }
      return readFileSync(file, 'utf8');
    } catch (err) {
      if (err instanceof GenesisError) throw err;
      return reader.fail(field, `cannot read ${file} (${(err as Error).message})`);
    }
  };
  try {
    return validateGenesis(json, { resolveSource });
  } catch (err) {
    if (err instanceof GenesisError)
      throw new GenesisError(err.code, `${path}: ${err.message}`, { ...err.meta, path });
    throw err;
  }
}

/**
 * Throws unless this process runs the runtime the genesis names: a validator on another V8 could
 * execute contracts differently and fork itself off.
 */
export function assertGenesisRuntime(g: Genesis, actual: string = runtimeId()): void {
  if (actual !== g.runtime) {
    throw new GenesisError(
      'WRONG_RUNTIME',
      `this process runs ${actual}, but the network's genesis requires ${g.runtime}`,
      {
        actual,
        expected: g.runtime,
      },
    );
  }
}

/** The index of a validator in the genesis set by public key, or -1. */
export function genesisValidatorIndex(g: Genesis, publicKey: Bytes): number {
  const hex = toHex(publicKey);
  return g.validators.findIndex((v) => toHex(v.publicKey) === hex);
}
