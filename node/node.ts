/**
 * The composition root of a Trellis node (model: lodestar beacon-node/src/node/nodejs.ts): wires
 * storage → state → VM → chain (mempool, execution, commits) → consensus driver → p2p → RPC, and
 * closes them in reverse. Everything else is a factory over narrow dependencies.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { toHex, type Bytes } from '../core/bytes.ts';
import { TrellisError } from '../core/errors.ts';
import { addressOf, type KeyPair } from '../core/keys.ts';
import { encodeStateProof } from '../core/stateProof.ts';
import type { StateReader } from '../core/stateView.ts';
import { validatorOf, type SignedTransaction, type Validator } from '../core/types.ts';
import { createMemoizedVerifier } from '../consensus/config.ts';
import { createKeySigner, openSafetyRules } from '../consensus/safetyRules.ts';
import { NodeApiError, type ContractInfo, type NodeApi } from '../rpc/nodeApi.ts';
import { createRpcServer, type RpcServer } from '../rpc/server.ts';
import { TokenBucket } from '../rpc/tokenBucket.ts';
import { decodeArtifact } from '../vm/compile.ts';
import { VmFault } from '../vm/errors.ts';
import { createExecutor, type LifecyclePolicy } from '../vm/executor.ts';
import { SystemContract, readCodeEntry, readNonce } from '../vm/systemState.ts';
import { openChain, type Chain } from './chain.ts';
import type { NodeConfig } from './config.ts';
import { createConsensusDriver, type ConsensusDriver, type Log } from './consensusDriver.ts';
import {
  assertGenesisRuntime,
  genesisHash,
  genesisValidatorIndex,
  loadGenesis,
  type Genesis,
} from './genesis.ts';
import { loadNodeKey } from './keystore.ts';
import { createP2p, type P2p } from './p2p/p2p.ts';
import { peerIdOf } from './p2p/members.ts';
import { MempoolError } from './mempool.ts';
import { createFileSafetyStore } from './safetyFile.ts';
import { createTxVerifier, defaultVerifyWorkers, TxVerifierError } from './txVerifier.ts';
import { scfLifecyclePolicy } from './scfGenesis.ts';
import { DEFAULT_MEMORY_VERSIONS, openStateStore } from './state/stateStore.ts';
import { createBlockStore } from './storage/blockStore.ts';
import { openLevelStore, type KvStore } from './storage/kv.ts';

/** Why a node refuses to start. */
export type NodeStartErrorCode = 'NOT_A_MEMBER';

/** Raised by {@link startNode} before it opens anything. */
export class NodeStartError extends TrellisError<NodeStartErrorCode> {}

/** A running node. */
export interface TrellisNode {
  readonly chain: Chain;
  readonly driver: ConsensusDriver;
  readonly p2p: P2p | null;
  readonly rpc: RpcServer | null;
  readonly api: NodeApi;
  readonly keys: KeyPair;
  stop(): Promise<void>;
}

/** Options beyond the node config, for tests and tools. */
export interface StartNodeOptions {
  readonly log?: Log;
  /** Start the RPC server (default true). */
  readonly rpc?: boolean;
  /** Admin token for RPC admin methods. */
  readonly adminToken?: string;
  /** Called when consensus cannot go on (a broken invariant); the CLI exits non-zero. */
  readonly onFatal?: (err: Error) => void;
}

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;

/** A JSON-lines logger on stdout: constant message, values in fields. */
export function createJsonLog(name: string, minLevel: keyof typeof LEVELS): Log {
  return (level, event, fields = {}) => {
    if (LEVELS[level] < LEVELS[minLevel]) return;
    process.stdout.write(
      JSON.stringify({ t: new Date().toISOString(), level, node: name, msg: event, ...fields }) + '\n',
    );
  };
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

/**
 * Who may deploy, upgrade, freeze and unfreeze contracts. A network whose genesis deploys the
 * approvals contract is governed: only a grant written by an executed governance proposal allows a
 * lifecycle transaction (node/scfGenesis.ts). Without it, the genesis organisations' admins decide.
 */
export function lifecyclePolicyOf(genesis: Genesis): LifecyclePolicy {
  if (genesis.contracts.some((c) => c.name === 'approvals')) return scfLifecyclePolicy();
  const admins = new Set(genesis.organisations.flatMap((o) => o.admins.map((a) => toHex(addressOf(a)))));
  return (r) => admins.has(r.sender);
}

/** Most transactions (and bytes) offered again to a member that (re)connects. */
const REGOSSIP_MAX_TXS = 4096;
/** State proofs below the in-memory trees the node serves per second (burst: 4), all clients together. */
const HISTORICAL_PROOFS_PER_SECOND = 1;
const HISTORICAL_PROOFS_BURST = 4;
const REGOSSIP_MAX_BYTES = 4 * 1024 * 1024;

/** Throws NodeStartError unless the node key is a validator or a registered observer. */
function assertMember(genesis: Genesis, keys: KeyPair, keyFile: string): void {
  const hex = toHex(keys.publicKey);
  if ([...genesis.validators, ...genesis.observers].some((v) => toHex(v.publicKey) === hex)) return;
  const address = toHex(addressOf(keys.publicKey));
  throw new NodeStartError(
    'NOT_A_MEMBER',
    `the key in ${keyFile} (address ${address}) is neither a validator nor a registered observer of ${genesis.chainId}; its peers would refuse it`,
    { address },
  );
}

/** Starts a node from its validated config: opens its data, joins the network, serves RPC. */
export async function startNode(config: NodeConfig, options: StartNodeOptions = {}): Promise<TrellisNode> {
  const log = options.log ?? createJsonLog(config.name, config.logLevel);
  const genesis = loadGenesis(config.genesisFile);
  assertGenesisRuntime(genesis);
  const keys = await loadNodeKey(config);
  assertMember(genesis, keys, config.keyFile);
  mkdirSync(config.dataDir, { recursive: true });
  const kv = await openLevelStore(join(config.dataDir, 'chain'));
  const closers: Array<() => Promise<void> | void> = [() => kv.close()];
  try {
    return await assemble(config, genesis, keys, kv, log, options, closers);
  } catch (err) {
    for (const c of closers.reverse()) await c();
    throw err;
  }
}

async function assemble(
  config: NodeConfig,
  genesis: Genesis,
  keys: KeyPair,
  kv: KvStore,
  log: Log,
  options: StartNodeOptions,
  closers: Array<() => Promise<void> | void>,
): Promise<TrellisNode> {
  const blocks = await createBlockStore(kv, {
    genesisHash: genesisHash(genesis),
    chainId: genesis.chainId,
  });
  const head = blocks.getHead();
  const state = await openStateStore(kv, head === undefined ? {} : { version: head.height });
  // Runs before the KvStore closes (closers run last first): pruned entries being deleted finish.
  closers.push(() => state.settled());
  const executor = createExecutor();
  closers.push(() => executor.close());
  const chain = await openChain(
    { genesis, policy: lifecyclePolicyOf(genesis) },
    { kv, blocks, state, executor, log },
  );

  const selfAddress = addressOf(keys.publicKey);
  const isValidator = genesisValidatorIndex(genesis, keys.publicKey) >= 0;

  const safetyStore = createFileSafetyStore(join(config.dataDir, 'safety.bin'));
  closers.push(() => safetyStore.close());
  const safety = await openSafetyRules(
    { chainId: genesis.chainId },
    { signer: createKeySigner(keys.secretKey), store: safetyStore },
  );

  // Signatures of incoming transactions are verified in batches on worker threads (one per spare
  // core), so the main thread keeps executing and committing meanwhile.
  const verifier = createTxVerifier({ workers: config.verifyWorkers ?? defaultVerifyWorkers() });
  closers.push(() => verifier.close());

  /** Admits one transaction from RPC: every cheap check, then the signature off-thread. */
  async function admit(bytes: Bytes): Promise<SignedTransaction> {
    const stx = chain.mempool.decode(bytes);
    chain.mempool.check(stx);
    let ok: boolean;
    try {
      [ok = false] = await verifier.verify([stx]);
    } catch (err) {
      if (err instanceof TxVerifierError && err.code === 'BUSY') {
        throw new MempoolError('MEMPOOL_FULL', `${err.message}; try again shortly`, {});
      }
      throw err;
    }
    if (!ok)
      throw new MempoolError('BAD_SIGNATURE', 'signature does not match the sender and transaction', {});
    // Checked again as it is added: another transaction may have taken the nonce meanwhile.
    return chain.mempool.add(stx, { verified: true });
  }

  /** Admits a gossiped batch; refusals are normal in gossip (duplicates, stale nonces) and dropped. */
  async function admitGossip(txs: readonly Bytes[]): Promise<void> {
    const candidates: SignedTransaction[] = [];
    for (const t of txs) {
      try {
        const stx = chain.mempool.decode(t);
        chain.mempool.check(stx);
        candidates.push(stx);
      } catch {
        // The sender's node reported the refusal to its client.
      }
    }
    if (candidates.length === 0) return;
    let results: boolean[];
    try {
      results = await verifier.verify(candidates);
    } catch {
      return; // busy or closing: gossip is best effort; the proposal carries the transactions anyway.
    }
    let added = 0;
    for (const [i, stx] of candidates.entries()) {
      if (results[i] !== true) continue;
      try {
        chain.mempool.add(stx, { verified: true });
        added++;
      } catch {
        // Taken meanwhile (duplicate or nonce): fine.
      }
    }
    if (added > 0) driverRef?.onTransactions();
  }

  // Members: validators and registered observers; the gater admits no one else.
  const members = [...genesis.validators, ...genesis.observers].map((v) => ({
    publicKey: v.publicKey,
    addrs: v.p2p,
  }));
  let driverRef: ConsensusDriver | null = null;
  let p2pRef: P2p | null = null;
  const p2p: P2p | null =
    genesis.validators.length > 1 || !isValidator
      ? createP2p(
          {
            chainId: genesis.chainId,
            secretKey: keys.secretKey,
            listen: `/ip4/${config.p2p.host}/tcp/${config.p2p.port}`,
            members,
          },
          {
            onConsensusMessage: (from, bytes) => driverRef?.onPeerMessage(from, bytes),
            onTxs: (_from, txs) => {
              void admitGossip(txs);
            },
            serveBlocks: async (from, max) => {
              const out: Bytes[] = [];
              for (let h = from; h < from + max && h <= chain.tip().height; h++) {
                const e = await chain.syncEntry(h);
                if (e === undefined) break;
                out.push(e);
              }
              return out;
            },
            serveStatus: () => chain.tip().height,
            // Transactions gossiped while the peer was away (down, restarting, partitioned) never
            // reached it; offer it the ready ones again, bounded (duplicates are dropped there).
            onPeerConnected: (peer) => {
              const c = genesis.consensus;
              const ready = chain.mempool.reap({
                maxTxs: REGOSSIP_MAX_TXS,
                maxBytes: Math.min(c.maxBlockBytes, REGOSSIP_MAX_BYTES),
                maxGas: Number.MAX_SAFE_INTEGER,
              });
              for (let i = 0; i < ready.length; i += 256) {
                try {
                  p2pRef?.sendTxs(
                    peer,
                    ready.slice(i, i + 256).map((t) => t.bytes),
                  );
                } catch {
                  return; // the peer's queue is full or it left: gossip is best effort
                }
              }
            },
            log: (level, message, fields) => log(level, message, fields),
          },
        )
      : null;

  p2pRef = p2p;
  const c = genesis.consensus;
  const driver = createConsensusDriver(
    {
      consensus: {
        chainId: genesis.chainId,
        self: selfAddress,
        roundTimeoutBaseMs: c.roundTimeoutMs,
        roundTimeoutGrowth: c.roundTimeoutGrowth,
        verifySignature: createMemoizedVerifier(),
      },
      heartbeatMs: c.heartbeatMs,
    },
    {
      chain,
      p2p,
      safety,
      log,
      now: () => Date.now(),
      onCommitted: (_h, latencyMs) => {
        lastLatencyMs = latencyMs;
      },
      ...(options.onFatal === undefined ? {} : { onFatal: options.onFatal }),
    },
  );
  driverRef = driver;
  let lastLatencyMs: number | undefined;

  // Gossip new transactions in small batches: one frame per peer per flush, not one per tx.
  let gossip: Bytes[] = [];
  let gossipTimer: NodeJS.Timeout | null = null;
  const flushGossip = (): void => {
    gossipTimer = null;
    const batch = gossip;
    gossip = [];
    if (p2p !== null && batch.length > 0) p2p.broadcastTxs(batch);
  };

  const api = createNodeApi({
    chain,
    driver,
    p2p,
    isValidator: () =>
      chain.validatorsAt(chain.tip().height + 1).some((v) => toHex(v.address) === toHex(selfAddress)),
    selfAddress,
    publicKey: keys.publicKey,
    version: packageVersion(),
    admit,
    onAccepted: (bytes) => {
      driver.onTransactions();
      if (p2p === null) return;
      gossip.push(bytes);
      if (gossip.length >= 256) flushGossip();
      else gossipTimer ??= setTimeout(flushGossip, 10);
    },
    lastLatencyMs: () => lastLatencyMs,
  });

  if (p2p !== null) {
    await p2p.start();
    closers.push(() => p2p.stop());
    // Validators that governance adds become members too (dialled if genesis knows their address).
    const known = new Map(
      [...genesis.validators, ...genesis.observers].map((v) => [toHex(v.publicKey), v.p2p]),
    );
    let memberIds = members.map((m) => toHex(m.publicKey)).join();
    closers.push(
      chain.onCommit(() => {
        const current = chain.validatorsAt(chain.tip().height + 1).map((v) => toHex(v.publicKey));
        const ids = [...new Set([...known.keys(), ...current])];
        if (ids.join() === memberIds) return;
        memberIds = ids.join();
        p2p.setMembers(
          ids.map((id) => ({ publicKey: Buffer.from(id.slice(2), 'hex'), addrs: known.get(id) ?? [] })),
        );
      }),
    );
  }
  await driver.start();
  closers.push(() => driver.stop());

  let rpc: RpcServer | null = null;
  if (options.rpc !== false) {
    rpc = createRpcServer(
      {
        host: config.rpc.host,
        port: config.rpc.port,
        ...(options.adminToken === undefined ? {} : { adminToken: options.adminToken }),
        log: (level, msg, fields) => log(level, msg, fields),
      },
      { node: api },
    );
    const bound = await rpc.start();
    const server = rpc;
    closers.push(() => server.stop());
    log('info', 'RPC_LISTENING', { url: bound.url });
  }
  log('info', 'NODE_STARTED', {
    chainId: genesis.chainId,
    address: toHex(selfAddress),
    validator: isValidator,
    height: chain.tip().height,
    p2p: p2p?.listenAddrs() ?? [],
  });

  return {
    chain,
    driver,
    p2p,
    rpc,
    api,
    keys,
    async stop() {
      if (gossipTimer !== null) clearTimeout(gossipTimer);
      for (const close of closers.reverse()) await close();
      closers.length = 0;
    },
  };
}

interface NodeApiDeps {
  readonly chain: Chain;
  readonly driver: ConsensusDriver;
  readonly p2p: P2p | null;
  /** Whether this node is in the set that certifies the next height (governance can change it). */
  readonly isValidator: () => boolean;
  readonly selfAddress: Bytes;
  readonly publicKey: Bytes;
  readonly version: string;
  /** Admits a transaction to the mempool (signature verified off the main thread). */
  readonly admit: (bytes: Bytes) => Promise<SignedTransaction>;
  readonly onAccepted: (bytes: Bytes) => void;
  readonly lastLatencyMs: () => number | undefined;
}

/** The node as RPC sees it (rpc/nodeApi.ts), over the chain, driver and p2p. */
function createNodeApi(d: NodeApiDeps): NodeApi {
  const historicalProofs = new TokenBucket(HISTORICAL_PROOFS_PER_SECOND, HISTORICAL_PROOFS_BURST);
  const { chain } = d;
  const nodeId = peerIdOf(d.publicKey).toString();

  function readerAt(height: number | undefined): { reader: StateReader; height: number } {
    const tip = chain.tip().height;
    const h = height ?? tip;
    if (h === tip) return { reader: chain.state.view(), height: h };
    const oldest = chain.state.oldestVersion;
    if (h > tip || oldest === undefined || h < oldest) {
      throw new NodeApiError(
        'HEIGHT_UNAVAILABLE',
        `state at height ${h} is not available (kept: ${oldest ?? '-'}..${tip})`,
        {
          height: h,
        },
      );
    }
    return {
      height: h,
      reader: {
        get: (c, k) => chain.state.getAt(h, c, k),
        has: (c, k) => chain.state.getAt(h, c, k) !== undefined,
        range: () => {
          throw new NodeApiError('HEIGHT_UNAVAILABLE', 'range scans are served at the head height only', {});
        },
      },
    };
  }

  function contractInfo(reader: StateReader, name: string): ContractInfo | undefined {
    const entry = readCodeEntry(reader, name);
    if (entry === undefined) return undefined;
    const artifact = reader.get(SystemContract.artifact, entry.artifactHash);
    const a = artifact === undefined ? undefined : decodeArtifact(artifact);
    return {
      name,
      codeHash: entry.artifactHash,
      deployedAt: entry.height,
      frozen: entry.frozen,
      methods: a === undefined ? [] : [...a.methods, ...a.views],
    };
  }

  return {
    info: () => ({
      chainId: chain.chainId,
      nodeId,
      address: d.selfAddress,
      validator: d.isValidator(),
      version: d.version,
      runtime: `node-${process.version}`,
      genesisHash: chain.genesisHash,
    }),
    peers: () =>
      d.p2p === null
        ? []
        : d.p2p
            .status()
            .peers.filter((p) => p.connected)
            .map((p) => ({
              nodeId: p.peerId,
              address: addressOf(Buffer.from(p.publicKey.slice(2), 'hex')),
              remote: p.peerId,
              direction: 'outbound' as const,
            })),
    health: () => {
      const s = d.driver.stats();
      const peers = d.p2p?.connectedMembers().length ?? 0;
      const reasons: string[] = [];
      if ('fatal' in s) reasons.push(`consensus stopped: ${String((s as { fatal: unknown }).fatal)}`);
      if (s.syncing) reasons.push('catching up by block sync');
      return {
        live: !('fatal' in s),
        ready: reasons.length === 0,
        syncing: s.syncing,
        height: chain.tip().height,
        round: s.round,
        peers,
        mempoolSize: chain.mempool.size,
        reasons,
      };
    },
    head: () => {
      const tip = chain.tip();
      return tip.header === undefined
        ? undefined
        : { height: tip.height, hash: tip.hash, header: tip.header };
    },
    getBlock: async (ref) =>
      'height' in ref ? chain.blocks.getBlockByHeight(ref.height) : chain.blocks.getBlockByHash(ref.hash),
    getCertificate: (height) => chain.blocks.getCertificate(height),
    getReceipts: async (height) =>
      (await chain.blocks.getBlockByHeight(height)) === undefined
        ? undefined
        : chain.blocks.getReceipts(height),
    getValidators: (height) => {
      const h = height ?? chain.tip().height + 1;
      if (h < 1 || h > chain.tip().height + 1) return Promise.resolve(undefined);
      const epoch = chain.validatorEpochAt(h);
      const validators: Validator[] = epoch.validators.map((v) => validatorOf(v.publicKey));
      return Promise.resolve({
        height: h,
        validators,
        fromHeight: epoch.fromHeight,
        ...(epoch.recordedBy === undefined ? {} : { changedBy: epoch.recordedBy }),
      });
    },
    submitTx: async (bytes) => {
      const stx = await d.admit(bytes);
      d.onAccepted(stx.bytes);
      return stx.hash;
    },
    getTx: async (hash) => {
      const loc = await chain.blocks.getTxLocation(hash);
      if (loc === undefined || loc.txIndex === undefined) return undefined;
      const block = await chain.blocks.getBlockByHeight(loc.height);
      const bytes = block?.txs[loc.txIndex];
      return bytes === undefined ? undefined : { bytes, height: loc.height, index: loc.txIndex };
    },
    getReceipt: async (hash) => {
      const loc = await chain.blocks.getTxLocation(hash);
      if (loc === undefined) return undefined;
      const receipt = await chain.blocks.getReceipt(loc.height, loc.receiptIndex);
      return receipt === undefined
        ? undefined
        : { receipt, height: loc.height, receiptIndex: loc.receiptIndex };
    },
    nextNonce: (address) => Promise.resolve(readNonce(chain.state.view(), address)),
    callView: async (contract, method, args, height) => {
      const { reader, height: h } = readerAt(height);
      const info = contractInfo(reader, contract);
      if (info === undefined)
        throw new NodeApiError('UNKNOWN_CONTRACT', `no contract "${contract}"`, { contract });
      if (!info.methods.includes(method)) {
        throw new NodeApiError('UNKNOWN_METHOD', `contract "${contract}" has no method or view "${method}"`, {
          contract,
          method,
        });
      }
      // A view sees the time of the block whose state it reads.
      const time =
        h === chain.tip().height
          ? chain.tip().timestamp
          : ((await chain.blocks.getBlockByHeight(h))?.header.timestamp ?? chain.tip().timestamp);
      let r: ReturnType<typeof chain.executor.view>;
      try {
        r = chain.executor.view({ state: reader, contract, method, args, height: h, time });
      } catch (err) {
        // The historical reader refuses range scans; the VM reports that as a host fault.
        if (err instanceof VmFault && h !== chain.tip().height && /range scans/.test(err.message)) {
          throw new NodeApiError(
            'HEIGHT_UNAVAILABLE',
            `view ${contract}.${method} scans a key range, which is served at the head height only`,
            { height: h },
          );
        }
        throw err;
      }
      return r.status === 'ok'
        ? { ok: true as const, value: r.returnValue, gasUsed: r.gasUsed, height: h }
        : {
            ok: false as const,
            status: r.status,
            errorCode: r.errorCode,
            error: r.error,
            gasUsed: r.gasUsed,
            height: h,
          };
    },
    getContract: (name) => Promise.resolve(contractInfo(chain.state.view(), name)),
    listContracts: ({ after, limit }) => {
      const view = chain.state.view();
      const entries = view.range(
        SystemContract.code,
        new Uint8Array(0),
        Math.min(limit, 1000),
        after === undefined ? undefined : Buffer.from(after, 'utf8'),
      );
      const out: ContractInfo[] = [];
      for (const [k] of entries) {
        const info = contractInfo(view, Buffer.from(k).toString('utf8'));
        if (info !== undefined) out.push(info);
      }
      return Promise.resolve(out);
    },
    getState: (contract, key, { height, withProof }) => {
      const { reader, height: h } = readerAt(height);
      if (!withProof) return Promise.resolve({ height: h, value: reader.get(contract, key) });
      // A proof below the trees held in memory rebuilds that version's tree from stale records on
      // the main thread (~1 s per 250 blocks of a million-key state): a budget keeps RPC clients
      // from spending the node's time on them.
      if (h <= chain.tip().height - DEFAULT_MEMORY_VERSIONS && !historicalProofs.take()) {
        throw new NodeApiError(
          'RATE_LIMITED',
          `proofs more than ${DEFAULT_MEMORY_VERSIONS} blocks below the head are rebuilt from stale records, at most ${HISTORICAL_PROOFS_PER_SECOND} per second; retry later`,
          { height: h },
        );
      }
      const p = chain.state.prove(contract, key, h);
      return Promise.resolve({ height: h, value: p.value, proof: encodeStateProof(p.proof) });
    },
    queryEvents: (q) => chain.blocks.getEvents(q),
    consensusState: () => {
      const diag = d.driver.diagnostics();
      return diag === null
        ? null
        : (JSON.parse(
            JSON.stringify(diag, (_k, v: unknown) => (v instanceof Uint8Array ? toHex(v) : v)),
          ) as unknown);
    },
    subscribeCommits: (listener) =>
      chain.onCommit((c) => {
        const latency = d.lastLatencyMs();
        listener({
          block: c.block,
          certificate: c.certificate,
          receipts: c.receipts,
          ...(latency === undefined ? {} : { latencyMs: latency }),
        });
      }),
  };
}
