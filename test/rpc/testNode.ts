// The in-process harness most RPC tests run against: it implements rpc/nodeApi.ts NodeApi over
// real components (core types, signed transactions, node/mempool.ts, RFC 9162 tx/receipt roots,
// the state-root rules of core/stateProof.ts, commit certificates signed by a quorum of four
// validator keys) and a chain of blocks kept in memory, with block production under the test's
// control, so ordering, overflow and cut-connection cases are exact and fast. Contracts are a small
// built-in executor standing in for the VM: `token` (mint, transfer, balanceOf), `ticker` (emit N
// events, a reverting view) and anything deployed (kept as source, no methods). The real node
// (node/node.ts) implements the same NodeApi; realNode.test.ts runs the core of these suites
// against it.
/* eslint-disable @typescript-eslint/require-await -- an in-memory chain answers at once; NodeApi is async for storage-backed nodes. */
import { compareBytes, toHex, utf8, type Bytes } from '../../core/bytes.ts';
import { canonicalValue, decodeValue, encodeValue, type Value } from '../../core/codec.ts';
import { sha256 } from '../../core/hash.ts';
import { addressOf, keyPairFromSecret, sign, type KeyPair } from '../../core/keys.ts';
import { merkleRoot } from '../../core/merkle.ts';
import {
  encodeCommitVote,
  encodeReceipt,
  hashHeader,
  quorumOf,
  signTx,
  validatorOf,
  hashValidators,
  type Block,
  type BlockHeader,
  type CommitCertificate,
  type Receipt,
  type SignedTransaction,
  type Transaction,
  type Event,
} from '../../core/types.ts';
import { createMempool, type Mempool } from '../../node/mempool.ts';
import {
  NodeApiError,
  type ChainEvent,
  type CommitListener,
  type CommitNotification,
  type ContractInfo,
  type EventPage,
  type EventQuery,
  type NodeApi,
  type ViewResult,
} from '../../rpc/nodeApi.ts';
import { comparePositions } from '../../rpc/streams.ts';
import { StateSnapshot } from './stateTree.ts';

/** Chain id of the harness. */
export const TEST_CHAIN_ID = 'rpc-test';

/** A key pair derived from a label, so tests are reproducible. */
export function seededKey(label: string): KeyPair {
  return keyPairFromSecret(sha256(utf8(label)));
}

/** The four validator keys of the harness. */
export const validatorKeys: readonly KeyPair[] = [0, 1, 2, 3].map((i) => seededKey(`rpc-validator-${i}`));
/** The validator set. */
export const validatorSet = validatorKeys.map((k) => validatorOf(k.publicKey));

const GENESIS_HASH = sha256(utf8('rpc-test-genesis'));
const BALANCE_PREFIX = 'bal/';

function balanceKey(address: Bytes): Bytes {
  return utf8(BALANCE_PREFIX + toHex(address));
}

interface StoredBlock {
  readonly block: Block;
  readonly hash: Bytes;
  readonly certificate: CommitCertificate;
  readonly receipts: readonly Receipt[];
  readonly txHashes: readonly Bytes[];
  /** State after this block. */
  readonly state: StateSnapshot;
  readonly nonces: ReadonlyMap<string, number>;
}

class Revert extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

function asAmount(v: Value | undefined, what: string): bigint {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === 'bigint' && v >= 0n) return v;
  throw new Revert('BAD_ARGS', `${what}: expected a non-negative integer`);
}

function asAddress(v: Value | undefined, what: string): Bytes {
  if (v instanceof Uint8Array && v.length === 20) return v;
  throw new Revert('BAD_ARGS', `${what}: expected 20 address bytes`);
}

function argsObject(args: Value): Record<string, Value> {
  if (typeof args !== 'object' || args === null || Array.isArray(args) || args instanceof Uint8Array) {
    throw new Revert('BAD_ARGS', 'args: expected an object');
  }
  return args;
}

/** Execution context of one call in the harness's built-in contracts: writes buffer until it succeeds. */
interface Exec {
  readonly base: StateSnapshot;
  readonly writes: Map<string, { contract: string; key: Bytes; value: Bytes }>;
  readonly sender: Bytes;
  readonly events: Event[];
}

function readState(x: Exec, contract: string, key: Bytes): Bytes | undefined {
  return x.writes.get(`${contract}/${toHex(key)}`)?.value ?? x.base.get(contract, key);
}

function readBalance(x: Exec, address: Bytes): bigint {
  const raw = readState(x, 'token', balanceKey(address));
  if (raw === undefined) return 0n;
  const v = decodeValue(raw);
  return typeof v === 'bigint' ? v : BigInt(v as number);
}

function writeBalance(x: Exec, address: Bytes, amount: bigint): void {
  const key = balanceKey(address);
  x.writes.set(`token/${toHex(key)}`, { contract: 'token', key, value: encodeValue(amount) });
}

const BUILTIN: Record<string, Record<string, (x: Exec, args: Value) => Value>> = {
  token: {
    mint(x, args) {
      const a = argsObject(args);
      const to = asAddress(a['to'], 'to');
      const amount = asAmount(a['amount'], 'amount');
      writeBalance(x, to, readBalance(x, to) + amount);
      x.events.push({ contract: 'token', name: 'Minted', data: { to, amount } });
      return null;
    },
    transfer(x, args) {
      const a = argsObject(args);
      const to = asAddress(a['to'], 'to');
      const amount = asAmount(a['amount'], 'amount');
      const from = x.sender;
      const have = readBalance(x, from);
      if (have < amount) throw new Revert('INSUFFICIENT', `balance ${have} is less than ${amount}`);
      writeBalance(x, from, have - amount);
      writeBalance(x, to, readBalance(x, to) + amount);
      x.events.push({ contract: 'token', name: 'Transfer', data: { from, to, amount } });
      return true;
    },
    balanceOf(x, args) {
      return readBalance(x, asAddress(argsObject(args)['owner'], 'owner'));
    },
  },
  ticker: {
    tick(x, args) {
      const n = Number(asAmount(argsObject(args)['count'], 'count'));
      if (n > 100) throw new Revert('TOO_MANY', 'at most 100 ticks');
      for (let i = 0; i < n; i++) x.events.push({ contract: 'ticker', name: 'Tick', data: { i } });
      return n;
    },
    fail() {
      throw new Revert('ALWAYS', 'this method always reverts');
    },
  },
};

/** Options of the harness. */
export interface TestNetworkOptions {
  readonly mempoolMaxTxs?: number;
  readonly maxNonceGap?: number;
  /** Transactions per block. */
  readonly maxBlockTxs?: number;
}

/** The harness: one chain, one mempool, NodeApi views for several "nodes" over them. */
export interface TestNetwork {
  readonly chainId: string;
  readonly mempool: Mempool;
  /** A NodeApi for node `index` (distinct identity, same chain). */
  node(index?: number): NodeApi;
  /** Executes the mempool's ready transactions into one block, commits and announces it. */
  produceBlock(): CommitNotification;
  /** Produces a block every `intervalMs` while there is something to include; returns the stopper. */
  autoProduce(intervalMs: number): () => void;
  readonly height: number;
  /** Fingerprint of everything a bad request must not change: head, mempool, state root. */
  fingerprint(): string;
  /** Listeners currently attached to the commit feed. */
  readonly listenerCount: number;
}

/** Creates the harness. */
export function createTestNetwork(options: TestNetworkOptions = {}): TestNetwork {
  const chainId = TEST_CHAIN_ID;
  const blocks: StoredBlock[] = [];
  const byHash = new Map<string, number>();
  const txIndex = new Map<string, { height: number; index: number; receiptIndex: number }>();
  const contracts = new Map<string, ContractInfo>(
    Object.entries(BUILTIN).map(([name, m]) => [
      name,
      {
        name,
        codeHash: sha256(utf8(`builtin:${name}`)),
        deployedAt: 0,
        frozen: false,
        methods: Object.keys(m),
      },
    ]),
  );
  const listeners = new Set<CommitListener>();
  let state = new StateSnapshot();
  let nonces = new Map<string, number>();
  const nextNonceOf = (address: Bytes) => nonces.get(toHex(address)) ?? 0;
  const mempool = createMempool(
    { chainId, maxTxs: options.mempoolMaxTxs ?? 20_000, maxNonceGap: options.maxNonceGap ?? 64 },
    { nextNonce: nextNonceOf },
  );

  function stateAt(height: number | undefined): { state: StateSnapshot; height: number } {
    const head = blocks.length;
    const h = height ?? head;
    if (h > head) throw new NodeApiError('HEIGHT_UNAVAILABLE', `height ${h} is beyond the head ${head}`, {});
    return { state: h === 0 ? new StateSnapshot() : blocks[h - 1]!.state, height: h };
  }

  function execute(stx: SignedTransaction, st: StateSnapshot, n: Map<string, number>): Receipt {
    const tx: Transaction = stx.tx;
    const sender = addressOf(tx.from);
    n.set(toHex(sender), tx.nonce + 1);
    const events: Event[] = [];
    const base = { txHash: stx.hash, gasUsed: 21_000 };
    const fail = (status: Receipt['status'], code: string, error: string): Receipt => ({
      ...base,
      status,
      returnValue: null,
      events: [],
      errorCode: code,
      error,
    });
    if (tx.kind === 'deploy') {
      if (contracts.has(tx.contract)) return fail('reverted', 'EXISTS', `contract ${tx.contract} exists`);
      // The VM's deploy arguments: { source: string, initArgs?: value }.
      const a =
        typeof tx.args === 'object' &&
        tx.args !== null &&
        !Array.isArray(tx.args) &&
        !(tx.args instanceof Uint8Array)
          ? tx.args
          : {};
      const source = a['source'];
      if (typeof source !== 'string' || Object.keys(a).some((k) => k !== 'source' && k !== 'initArgs')) {
        return fail('reverted', 'BAD_ARGS', 'deploy arguments must be { source: string, initArgs?: value }');
      }
      contracts.set(tx.contract, {
        name: tx.contract,
        codeHash: sha256(utf8(source)),
        deployedAt: blocks.length + 1,
        frozen: false,
        methods: [],
      });
      return { ...base, status: 'ok', returnValue: null, events: [], errorCode: '', error: '' };
    }
    const fn = BUILTIN[tx.contract]?.[tx.method];
    if (fn === undefined)
      return fail('reverted', 'UNKNOWN_METHOD', `${tx.contract}.${tx.method} does not exist`);
    const x: Exec = { base: st, writes: new Map(), sender, events };
    try {
      // Canonical values, as the VM returns them (small bigints become numbers).
      const returnValue = canonicalValue(fn(x, tx.args));
      const emitted = events.map((e) => ({ ...e, data: canonicalValue(e.data) }));
      for (const w of x.writes.values()) st.set(w.contract, w.key, w.value);
      return {
        ...base,
        gasUsed: 21_000 + events.length * 100,
        status: 'ok',
        returnValue,
        events: emitted,
        errorCode: '',
        error: '',
      };
    } catch (err) {
      if (err instanceof Revert) return fail('reverted', err.code, err.message);
      throw err;
    }
  }

  function certify(header: BlockHeader): CommitCertificate {
    const blockHash = hashHeader(header);
    const vote = encodeCommitVote(chainId, header.height, header.round, blockHash);
    const signatures = validatorKeys
      .slice(0, quorumOf(validatorKeys.length))
      .map((k) => ({ validator: addressOf(k.publicKey), signature: sign(vote, k.secretKey) }))
      .sort((a, b) => compareBytes(a.validator, b.validator));
    return { height: header.height, round: header.round, blockHash, signatures };
  }

  function produceBlock(): CommitNotification {
    const started = performance.now();
    const txs = mempool.reap({
      maxTxs: options.maxBlockTxs ?? 2000,
      maxBytes: 8 * 1024 * 1024,
      maxGas: 1e12,
    });
    const prev = blocks[blocks.length - 1];
    // Each height keeps its own snapshot so views and proofs can name past heights.
    const st = state.copy();
    const n = new Map(nonces);
    const receipts = txs.map((stx) => execute(stx, st, n));
    const height = blocks.length + 1;
    const header: BlockHeader = {
      chainId,
      height,
      prevHash: prev?.hash ?? GENESIS_HASH,
      timestamp: Math.max(Date.now(), (prev?.block.header.timestamp ?? 0) + 1),
      proposer: validatorSet[height % validatorSet.length]!.address,
      round: 0,
      txRoot: merkleRoot(txs.map((t) => t.bytes)),
      stateRoot: st.root(),
      receiptsRoot: merkleRoot(receipts.map(encodeReceipt)),
      validatorsHash: hashValidators(validatorSet),
    };
    const block: Block = { header, txs: txs.map((t) => t.bytes) };
    const certificate = certify(header);
    const hash = hashHeader(header);
    blocks.push({
      block,
      hash,
      certificate,
      receipts,
      txHashes: txs.map((t) => t.hash),
      state: st,
      nonces: n,
    });
    byHash.set(toHex(hash), height);
    txs.forEach((t, i) => txIndex.set(toHex(t.hash), { height, index: i, receiptIndex: i }));
    state = st;
    nonces = n;
    mempool.update(txs);
    const commit: CommitNotification = {
      block,
      certificate,
      receipts,
      latencyMs: performance.now() - started,
    };
    for (const l of [...listeners]) l(commit);
    return commit;
  }

  function eventsOf(height: number): ChainEvent[] {
    const b = blocks[height - 1];
    if (b === undefined) return [];
    const out: ChainEvent[] = [];
    b.receipts.forEach((r, receiptIndex) =>
      r.events.forEach((e, eventIndex) =>
        out.push({ height, receiptIndex, eventIndex, txHash: r.txHash, ...e }),
      ),
    );
    return out;
  }

  async function queryEvents(q: EventQuery): Promise<EventPage> {
    const out: ChainEvent[] = [];
    const to = Math.min(q.toHeight, blocks.length);
    for (let h = Math.max(1, q.fromHeight); h <= to; h++) {
      for (const e of eventsOf(h)) {
        if (q.contract !== undefined && e.contract !== q.contract) continue;
        if (q.name !== undefined && e.name !== q.name) continue;
        if (q.after !== undefined && comparePositions(e, q.after) <= 0) continue;
        if (out.length === q.limit) return { events: out, next: out[out.length - 1]! };
        out.push(e);
      }
    }
    return { events: out };
  }

  function nodeApi(index: number): NodeApi {
    const key = seededKey(`rpc-node-${index}`);
    return {
      info: () => ({
        chainId,
        nodeId: `test-node-${index}`,
        address: addressOf(key.publicKey),
        validator: index < validatorKeys.length,
        version: '0.1.0',
        runtime: `node-${process.version}`,
        genesisHash: GENESIS_HASH,
      }),
      peers: () =>
        [0, 1, 2, 3]
          .filter((i) => i !== index)
          .map((i) => ({
            nodeId: `test-node-${i}`,
            address: addressOf(seededKey(`rpc-node-${i}`).publicKey),
            remote: `127.0.0.1:${26656 + i}`,
            direction: i < index ? ('inbound' as const) : ('outbound' as const),
            height: blocks.length,
          })),
      health: () => ({
        live: true,
        ready: true,
        syncing: false,
        height: blocks.length,
        round: 0,
        peers: 3,
        mempoolSize: mempool.size,
        reasons: [],
      }),
      head() {
        const b = blocks[blocks.length - 1];
        return b === undefined
          ? undefined
          : { height: b.block.header.height, hash: b.hash, header: b.block.header };
      },
      async getBlock(ref) {
        const h = 'height' in ref ? ref.height : byHash.get(toHex(ref.hash));
        return h === undefined ? undefined : blocks[h - 1]?.block;
      },
      async getCertificate(height) {
        return blocks[height - 1]?.certificate;
      },
      async getReceipts(height) {
        return blocks[height - 1]?.receipts;
      },
      async getValidators(height) {
        const h = height ?? blocks.length + 1;
        return h >= 1 && h <= blocks.length + 1
          ? { height: h, validators: validatorSet, fromHeight: 1 }
          : undefined;
      },
      async submitTx(bytes) {
        return mempool.add(bytes).hash;
      },
      async getTx(hash) {
        const loc = txIndex.get(toHex(hash));
        if (loc === undefined) return undefined;
        return { bytes: blocks[loc.height - 1]!.block.txs[loc.index]!, height: loc.height, index: loc.index };
      },
      async getReceipt(hash) {
        const loc = txIndex.get(toHex(hash));
        if (loc === undefined) return undefined;
        const receipt = blocks[loc.height - 1]!.receipts[loc.receiptIndex]!;
        return { receipt, height: loc.height, receiptIndex: loc.receiptIndex };
      },
      async nextNonce(address) {
        return nextNonceOf(address);
      },
      async callView(contract, method, args, height): Promise<ViewResult> {
        if (!contracts.has(contract))
          throw new NodeApiError('UNKNOWN_CONTRACT', `no contract "${contract}"`, {});
        const fn = BUILTIN[contract]?.[method];
        if (fn === undefined) throw new NodeApiError('UNKNOWN_METHOD', `no method ${contract}.${method}`, {});
        const at = stateAt(height);
        try {
          const value = fn(
            { base: at.state, writes: new Map(), sender: new Uint8Array(20), events: [] },
            args,
          );
          return { ok: true, value, gasUsed: 1000, height: at.height };
        } catch (err) {
          if (err instanceof Revert) {
            return {
              ok: false,
              status: 'reverted',
              errorCode: err.code,
              error: err.message,
              gasUsed: 1000,
              height: at.height,
            };
          }
          throw err;
        }
      },
      async getContract(name) {
        return contracts.get(name);
      },
      async listContracts({ after, limit }) {
        return [...contracts.values()]
          .sort((a, b) => (a.name < b.name ? -1 : 1))
          .filter((c) => after === undefined || c.name > after)
          .slice(0, limit);
      },
      async getState(contract, key, { height, withProof }) {
        const at = stateAt(height);
        const value = at.state.get(contract, key);
        return withProof
          ? { height: at.height, value, proof: at.state.proof(contract, key) }
          : { height: at.height, value };
      },
      queryEvents,
      consensusState: () => ({
        height: blocks.length + 1,
        round: 0n,
        step: 'propose',
        lastCommit: blocks[blocks.length - 1]?.hash ?? null,
      }),
      subscribeCommits(listener) {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
    };
  }

  return {
    chainId,
    mempool,
    node: (index = 0) => nodeApi(index),
    produceBlock,
    autoProduce(intervalMs) {
      const t = setInterval(() => {
        if (mempool.readyCount() > 0) produceBlock();
      }, intervalMs);
      return () => clearInterval(t);
    },
    get height() {
      return blocks.length;
    },
    fingerprint() {
      const head = blocks[blocks.length - 1];
      return `${blocks.length}/${head === undefined ? '-' : toHex(head.hash)}/${mempool.size}/${toHex(state.root())}`;
    },
    get listenerCount() {
      return listeners.size;
    },
  };
}

/** Builds and signs a transaction for the harness chain. */
export function makeTx(
  key: KeyPair,
  nonce: number,
  contract: string,
  method: string,
  args: Value,
  overrides: Partial<Transaction> = {},
): SignedTransaction {
  return signTx(
    {
      chainId: TEST_CHAIN_ID,
      from: key.publicKey,
      nonce,
      kind: 'call',
      contract,
      method,
      args,
      gasLimit: 1_000_000,
      ...overrides,
    },
    key.secretKey,
  );
}
