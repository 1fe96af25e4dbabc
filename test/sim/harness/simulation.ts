import { createHash } from 'node:crypto';
import { bytesEqual, toHex, type Bytes } from '../../../core/bytes.ts';
import { pack, readArray, readBytes, readUint, unpackCanonical } from '../../../core/codec.ts';
import { sha256 } from '../../../core/hash.ts';
import { keyPairFromSecret, sign, type KeyPair } from '../../../core/keys.ts';
import {
  checkCertificate,
  decodeBlock,
  decodeCertificate,
  encodeBlock,
  encodeCertificate,
  encodeCommitVote,
  hashHeader,
  quorumOf,
  validatorOf,
  type Block,
  type CommitCertificate,
  type Validator,
} from '../../../core/types.ts';
import { createMemoizedVerifier, type ConsensusOptions } from '../../../consensus/config.ts';
import { describeConsensus } from '../../../consensus/diagnostics.ts';
import {
  encodeConsensusMessage,
  encodePrepareBody,
  signedBodyOf,
  type ConsensusMessage,
  type ProposalMessage,
  type VoteMessage,
} from '../../../consensus/messages.ts';
import {
  openSafetyRules,
  createKeySigner,
  type SafetyRules,
  type SafetyStore,
  type SignRequest,
} from '../../../consensus/safetyRules.ts';
import {
  startConsensus,
  step,
  type ConsensusInput,
  type ConsensusOutput,
  type ConsensusState,
  type HeightStart,
} from '../../../consensus/stateMachine.ts';
import { EventQueue } from './eventQueue.ts';
import { GENESIS_STATE_ROOT, buildBlock, executionResult, fakeExecute, genesisHash } from './fakeChain.ts';
import { Prng } from './prng.ts';
import { SimDisk } from './simDisk.ts';

/**
 * Deterministic simulation of a Trellis consortium (model: tigerbeetle's VOPR). Everything —
 * network, clock, disks, crashes, the byzantine validator, block contents — is driven by one
 * seeded PRNG and one event queue ordered by (virtual time, scheduling order), so a seed replays
 * exactly. Each honest node runs the real consensus state machine and the real safety module
 * through the same driver loop a node runs: step, then perform outputs in order, awaiting the
 * safety module's write before anything it signed leaves the node.
 */

const CHAIN_ID = 'sim-chain';

/** Knobs of one run; everything not given is drawn from the seed. */
export interface SimOptions {
  readonly seed: number;
  readonly validators?: number;
  /** Negative control: the quorum every node uses (2f instead of 2f + 1 breaks safety). */
  readonly unsafeQuorum?: number;
  /** Negative control: the safety store writes its record but never fsyncs it. */
  readonly safetyStoreSkipsSync?: boolean;
  /** Virtual length of the fault phase. */
  readonly chaosMs?: number;
  /** After the heal, every honest node must commit `livenessBlocks` more blocks within this. */
  readonly livenessBoundMs?: number;
  readonly livenessBlocks?: number;
  /** Print every event (for replaying a failing seed). */
  readonly trace?: boolean;
  /** Disable the byzantine validator (all honest). */
  readonly noByzantine?: boolean;
}

/** Counters that show the faults were really exercised. */
export interface SimStats {
  events: number;
  messagesSent: number;
  messagesDropped: number;
  messagesDuplicated: number;
  partitions: number;
  crashes: number;
  crashesAfterPersist: number;
  restarts: number;
  rejected: Record<string, number>;
  evidence: number;
  signRefusals: number;
  syncedBlocks: number;
  byzantineActs: Record<string, number>;
  maxRound: number;
}

/** What a run found. */
export interface SimResult {
  readonly seed: number;
  readonly validators: number;
  readonly byzantine: number | null;
  readonly violations: readonly string[];
  /** Committed height of each node at the end. */
  readonly heights: readonly number[];
  readonly virtualMs: number;
  /** SHA-256 over every event's time and label: equal digests mean identical runs. */
  readonly digest: string;
  readonly stats: SimStats;
}

type Packet =
  | { readonly kind: 'consensus'; readonly bytes: Bytes }
  | { readonly kind: 'syncRequest'; readonly fromHeight: number }
  | { readonly kind: 'syncResponse'; readonly blocks: readonly Bytes[] };

/** Thrown from inside a persist to model power loss right after a durable write. */
class CrashSignal extends Error {}

interface Head {
  readonly height: number;
  readonly hash: Bytes;
  readonly timestamp: number;
  readonly stateRoot: Bytes;
}

function encodeHead(h: Head): Bytes {
  return pack([h.height, h.hash, h.timestamp, h.stateRoot]);
}

function decodeHead(bytes: Bytes): Head {
  const f = readArray(unpackCanonical(bytes, 'head'), 4, 'head');
  return {
    height: readUint(f[0], 'head.height'),
    hash: readBytes(f[1], 'head.hash', 32),
    timestamp: readUint(f[2], 'head.timestamp'),
    stateRoot: readBytes(f[3], 'head.stateRoot', 32),
  };
}

/** Records everything honest nodes do and reports the first broken invariant. */
class Checker {
  readonly violations: string[] = [];
  private readonly committed = new Map<number, { hash: string; stateRoot: string; by: number }>();
  private readonly signed = new Map<string, { body: string; by: number }>();

  private readonly world: World;

  constructor(world: World) {
    this.world = world;
  }

  violation(text: string): void {
    this.violations.push(`t=${this.world.now}ms ${text}`);
  }

  /** Honest validators never sign two different bodies for one (validator, type, height, round). */
  onSigned(node: number, m: ConsensusMessage): void {
    const key = `${toHex(m.sender)}|${m.type}|${m.height}|${m.round}`;
    const body = toHex(sha256(signedBodyOf(CHAIN_ID, m)));
    const prev = this.signed.get(key);
    if (prev === undefined) this.signed.set(key, { body, by: node });
    else if (prev.body !== body) {
      this.violation(
        `CONFLICTING_SIGNATURE: honest node ${node} signed two different ${m.type} messages at height ${m.height} round ${m.round}`,
      );
    }
  }

  /** Agreement, equal state roots, valid certificates — checked at every honest commit. */
  onCommit(node: number, parentStateRoot: Bytes, block: Block, hash: Bytes, cert: CommitCertificate): void {
    const h = block.header.height;
    const executed = fakeExecute(parentStateRoot, block.txs);
    if ('invalid' in executed) {
      this.violation(`INVALID_BLOCK_COMMITTED: node ${node} committed height ${h}, which fails execution`);
      return;
    }
    if (!bytesEqual(executed.stateRoot, block.header.stateRoot)) {
      this.violation(
        `STATE_ROOT_MISMATCH: node ${node} height ${h}: header stateRoot differs from execution`,
      );
    }
    const hashHex = toHex(hash);
    const rootHex = toHex(executed.stateRoot);
    const prev = this.committed.get(h);
    if (prev === undefined) this.committed.set(h, { hash: hashHex, stateRoot: rootHex, by: node });
    else {
      if (prev.hash !== hashHex) {
        this.violation(
          `FORK: height ${h} committed as ${prev.hash.slice(0, 18)} by node ${prev.by} and ${hashHex.slice(0, 18)} by node ${node}`,
        );
      }
      if (prev.stateRoot !== rootHex) {
        this.violation(
          `STATE_ROOT_DIVERGENCE: height ${h}: node ${prev.by} and node ${node} computed different state roots`,
        );
      }
    }
    if (this.world.quorum === quorumOf(this.world.validators.length)) {
      const fault = checkCertificate(cert, CHAIN_ID, hash, h, this.world.validators);
      if (fault !== null) this.violation(`BAD_CERTIFICATE: node ${node} height ${h}: ${fault}`);
    }
  }
}

/** One validator process: the real state machine + safety module behind the reference driver loop. */
class SimNode {
  readonly key: KeyPair;
  readonly validator: Validator;
  readonly disk = new SimDisk();
  up = false;
  incarnation = 0;
  state: ConsensusState | null = null;
  safety: SafetyRules | null = null;
  head: Head;
  crashAfterPersist = false;
  private lastClockMs = -Infinity;
  private lastSyncMs = -Infinity;
  /** Byzantine only: the alternative block it equivocates with, per height. */
  private altBlock: Block | null = null;

  private readonly world: World;
  readonly index: number;
  readonly byzantine: boolean;

  constructor(world: World, index: number, secret: Bytes, byzantine: boolean) {
    this.world = world;
    this.index = index;
    this.byzantine = byzantine;
    this.key = keyPairFromSecret(secret);
    this.validator = validatorOf(this.key.publicKey);
    this.head = { height: 0, hash: genesisHash(CHAIN_ID), timestamp: 0, stateRoot: GENESIS_STATE_ROOT };
  }

  private heightStart(): HeightStart {
    return {
      height: this.head.height + 1,
      prevHash: this.head.hash,
      prevTimestamp: this.head.timestamp,
      validators: this.world.validators,
    };
  }

  private safetyStore(): SafetyStore {
    return {
      load: () => this.disk.read('safety'),
      save: (record) => {
        this.disk.write('safety', record);
        if (this.world.options.safetyStoreSkipsSync !== true) this.disk.sync();
        this.persistPoint();
      },
    };
  }

  private persistPoint(): void {
    if (this.crashAfterPersist) {
      this.crashAfterPersist = false;
      this.world.stats.crashesAfterPersist++;
      throw new CrashSignal('crash after persist');
    }
  }

  async boot(): Promise<void> {
    if (this.up) return;
    this.up = true;
    this.incarnation++;
    const headBytes = this.disk.read('head');
    this.head =
      headBytes === undefined
        ? { height: 0, hash: genesisHash(CHAIN_ID), timestamp: 0, stateRoot: GENESIS_STATE_ROOT }
        : decodeHead(headBytes);
    this.safety = await openSafetyRules(
      { chainId: CHAIN_ID },
      { signer: createKeySigner(this.key.secretKey), store: this.safetyStore() },
    );
    const r = startConsensus(
      this.world.consensusOptions(this.validator.address),
      this.heightStart(),
      this.safety.record,
      this.world.now,
    );
    this.state = r.state;
    this.lastClockMs = this.world.now;
    this.world.trace(
      `node ${this.index} boot head=${this.head.height} record=${this.safety.record === null ? '-' : `${this.safety.record.height}/${this.safety.record.round}/${this.safety.record.step}`}`,
    );
    await this.run([], r.outputs);
  }

  crash(): void {
    if (!this.up) return;
    this.up = false;
    this.incarnation++;
    this.state = null;
    this.safety = null;
    this.altBlock = null;
    this.crashAfterPersist = false;
    const lost = this.disk.crash();
    this.world.stats.crashes++;
    this.world.trace(`node ${this.index} crash (lost ${lost} unsynced writes)`);
  }

  /** The driver loop for one external input: step, perform outputs in order, drain internal inputs. */
  async input(first: ConsensusInput): Promise<void> {
    if (!this.up || this.state === null) return;
    const pending: ConsensusInput[] = [];
    if (this.world.now - this.lastClockMs >= 1000) {
      this.lastClockMs = this.world.now;
      pending.push({ kind: 'clock', nowMs: this.world.now });
    }
    pending.push(first);
    await this.run(pending, []);
  }

  private async run(pending: ConsensusInput[], initial: readonly ConsensusOutput[]): Promise<void> {
    const incarnation = this.incarnation;
    try {
      for (const o of initial) await this.perform(o, pending);
      while (pending.length > 0 && this.up && this.incarnation === incarnation) {
        const r = step(this.state!, pending.shift()!);
        this.state = r.state;
        this.world.stats.maxRound = Math.max(this.world.stats.maxRound, r.state.round);
        for (const o of r.outputs) await this.perform(o, pending);
      }
    } catch (err) {
      if (!(err instanceof CrashSignal)) throw err;
      this.crash();
      this.world.scheduleRestart(this, this.world.prng.int(100, 3000));
    }
  }

  /** Runs `fn` later unless this node crashed in between. */
  private later(delayMs: number, label: string, fn: () => Promise<void>): void {
    const incarnation = this.incarnation;
    this.world.schedule(delayMs, `n${this.index} ${label}`, async () => {
      if (this.up && this.incarnation === incarnation) await fn();
    });
  }

  private async perform(o: ConsensusOutput, pending: ConsensusInput[]): Promise<void> {
    switch (o.kind) {
      case 'broadcast':
        if (this.byzantine) this.world.byzantineBroadcast(this, o.message);
        else
          for (const peer of this.world.nodes)
            if (peer !== this) this.world.send(this, peer, { kind: 'consensus', bytes: o.bytes });
        return;
      case 'send': {
        const peer = this.world.nodes[Number(o.peer)];
        if (peer !== undefined && !(this.byzantine && this.world.prng.chance(0.3))) {
          this.world.send(this, peer, { kind: 'consensus', bytes: o.bytes });
        }
        return;
      }
      case 'sign': {
        if (this.byzantine) {
          pending.push({ kind: 'signed', outcome: { ok: true, message: this.forge(o.request) } });
          return;
        }
        const outcome = await this.safety!.sign(o.request);
        if (outcome.ok) this.world.checker.onSigned(this.index, outcome.message);
        else this.world.stats.signRefusals++;
        pending.push({ kind: 'signed', outcome });
        return;
      }
      case 'execute': {
        if (o.height !== this.head.height + 1) return;
        const result = executionResult(this.head.stateRoot, o.block);
        this.later(this.world.prng.int(1, 8), 'executed', () =>
          this.input({ kind: 'executed', height: o.height, blockHash: o.blockHash, result }),
        );
        return;
      }
      case 'buildProposal':
        this.later(this.world.blockDelayMs(), 'build', async () => {
          if (o.height !== this.head.height + 1) return;
          const block = buildBlock({
            chainId: CHAIN_ID,
            height: o.height,
            round: o.round,
            prevHash: o.prevHash,
            proposer: o.proposer,
            validators: this.world.validators,
            timestamp: Math.max(this.world.now, o.minTimestamp),
            parentStateRoot: this.head.stateRoot,
            txs: this.world.randomTxs(),
          });
          await this.input({ kind: 'proposalBuilt', height: o.height, round: o.round, block });
        });
        return;
      case 'scheduleTimer':
        this.later(o.delayMs, `timer h${o.height} r${o.round}`, () =>
          this.input({ kind: 'timeout', height: o.height, round: o.round }),
        );
        return;
      case 'commit': {
        const next = this.persistBlock(o.block, o.blockHash, o.certificate);
        if (next !== null) pending.push({ kind: 'committed', next });
        return;
      }
      case 'syncNeeded':
        this.requestSync(o.peers);
        return;
      case 'rejected':
        this.world.stats.rejected[o.code] = (this.world.stats.rejected[o.code] ?? 0) + 1;
        return;
      case 'evidence':
        this.world.stats.evidence++;
        return;
      case 'log':
        if (o.level === 'error' && !this.byzantine)
          this.world.checker.violation(`node ${this.index} logged ${o.event} ${JSON.stringify(o.fields)}`);
        if (o.level !== 'debug') this.world.trace(`n${this.index} ${o.event} ${JSON.stringify(o.fields)}`);
        return;
    }
  }

  /** The one atomic write of a commit (block, certificate, head), then the invariant check. */
  private persistBlock(block: Block, hash: Bytes, cert: CommitCertificate): HeightStart | null {
    const h = block.header.height;
    if (h !== this.head.height + 1) return null;
    if (!this.byzantine) this.world.checker.onCommit(this.index, this.head.stateRoot, block, hash, cert);
    const executed = fakeExecute(this.head.stateRoot, block.txs);
    const stateRoot = 'invalid' in executed ? this.head.stateRoot : executed.stateRoot;
    this.disk.write(`block:${h}`, pack([encodeBlock(block), encodeCertificate(cert)]));
    const head: Head = { height: h, hash, timestamp: block.header.timestamp, stateRoot };
    this.disk.write('head', encodeHead(head));
    this.disk.sync();
    this.head = head;
    this.altBlock = null;
    this.world.trace(`n${this.index} COMMIT h${h} r${cert.round} ${toHex(hash).slice(0, 12)}`);
    this.persistPoint();
    return this.heightStart();
  }

  private requestSync(peers: readonly Bytes[]): void {
    if (this.world.now - this.lastSyncMs < 250) return;
    this.lastSyncMs = this.world.now;
    const candidates = this.world.nodes.filter(
      (n) => n !== this && peers.some((p) => bytesEqual(p, n.validator.address)),
    );
    if (candidates.length === 0) return;
    this.world.send(this, this.world.prng.pick(candidates), {
      kind: 'syncRequest',
      fromHeight: this.head.height + 1,
    });
  }

  async receive(from: SimNode, packet: Packet): Promise<void> {
    if (!this.up) return;
    switch (packet.kind) {
      case 'consensus':
        await this.input({ kind: 'message', from: String(from.index), bytes: packet.bytes });
        return;
      case 'syncRequest': {
        if (this.byzantine && this.world.prng.chance(0.5)) return;
        const blocks: Bytes[] = [];
        for (let h = packet.fromHeight; h <= Math.min(this.head.height, packet.fromHeight + 7); h++) {
          const b = this.disk.read(`block:${h}`);
          if (b !== undefined) blocks.push(b);
        }
        if (blocks.length > 0) this.world.send(this, from, { kind: 'syncResponse', blocks });
        return;
      }
      case 'syncResponse':
        for (const raw of packet.blocks) {
          if (!this.up) return;
          const f = readArray(unpackCanonical(raw, 'synced block'), 2, 'synced block');
          const block = decodeBlock(readBytes(f[0], 'block'));
          const cert = decodeCertificate(readBytes(f[1], 'cert'));
          const h = block.header.height;
          if (h !== this.head.height + 1) continue;
          const hash = hashHeader(block.header);
          // Block sync trusts no peer: the certificate must verify against the validator set and
          // the block must execute to the roots in its header.
          if (
            !bytesEqual(block.header.prevHash, this.head.hash) ||
            !this.world.certificateValid(cert, hash, h)
          )
            return;
          const executed = fakeExecute(this.head.stateRoot, block.txs);
          if ('invalid' in executed || !bytesEqual(executed.stateRoot, block.header.stateRoot)) return;
          this.world.stats.syncedBlocks++;
          const incarnation = this.incarnation;
          let next: HeightStart | null;
          try {
            next = this.persistBlock(block, hash, cert);
          } catch (err) {
            if (!(err instanceof CrashSignal)) throw err;
            this.crash();
            this.world.scheduleRestart(this, this.world.prng.int(100, 3000));
            return;
          }
          if (next !== null && this.incarnation === incarnation)
            await this.input({ kind: 'committed', next });
        }
        return;
    }
  }

  /** Byzantine signing: no safety module, no questions asked. */
  forge(r: SignRequest): ConsensusMessage {
    const empty = new Uint8Array(64);
    const sender = this.validator.address;
    switch (r.type) {
      case 'proposal':
        return this.signAs({
          type: 'proposal',
          height: r.height,
          round: r.round,
          block: r.block,
          blockHash: r.blockHash,
          justification: r.justification,
          sender,
          signature: empty,
        });
      case 'prepare':
      case 'commit':
        return this.forgeVote(r.type, r.height, r.round, r.blockHash);
      case 'roundChange':
        return this.signAs({
          type: 'roundChange',
          height: r.height,
          round: r.round,
          prepared: r.prepared,
          preparedBlock: r.preparedBlock,
          sender,
          signature: empty,
        });
    }
  }

  /** Byzantine: a validly signed vote for any hash. */
  forgeVote(type: 'prepare' | 'commit', height: number, round: number, blockHash: Bytes): VoteMessage {
    return this.signAs({
      type,
      height,
      round,
      blockHash,
      sender: this.validator.address,
      signature: new Uint8Array(64),
    });
  }

  /** Signs a message with this node's key, bypassing the safety module. */
  signAs<M extends ConsensusMessage>(m: M): M {
    return { ...m, signature: sign(signedBodyOf(CHAIN_ID, m), this.key.secretKey) };
  }

  /** Byzantine: a second block for the proposal's height and round, possibly invalid, to equivocate with. */
  alternativeBlock(p: ProposalMessage): Block {
    return this.makeAltBlock(
      p.height,
      p.block.header.round,
      p.block.header.proposer,
      p.block.header.timestamp + 1,
    );
  }

  /** Byzantine: some other block for this height (for conflicting votes and forged certificates). */
  alternativeBlockFor(height: number): Block {
    return this.makeAltBlock(height, 0, this.validator.address, this.head.timestamp + 1);
  }

  private makeAltBlock(height: number, round: number, proposer: Bytes, timestamp: number): Block {
    if (this.altBlock?.header.height === height && this.altBlock.header.round === round) return this.altBlock;
    const prng = this.world.byzPrng;
    const kind = prng.int(0, 2);
    const txs = this.world.randomTxs(1);
    if (kind === 1) txs.push(Uint8Array.from([0xff, ...prng.bytes(8)]));
    this.altBlock = buildBlock({
      chainId: CHAIN_ID,
      height,
      round,
      prevHash: this.head.hash,
      proposer,
      validators: this.world.validators,
      timestamp,
      parentStateRoot: this.head.stateRoot,
      txs,
      ...(kind === 2 ? { forgeStateRoot: prng.bytes(32) } : {}),
    });
    return this.altBlock;
  }
}

/** The simulated world: clock, queue, network, nodes, faults and the checker. */
class World {
  now = 0;
  readonly queue = new EventQueue();
  readonly prng: Prng;
  readonly netPrng: Prng;
  readonly byzPrng: Prng;
  readonly nodes: SimNode[] = [];
  readonly validators: Validator[];
  readonly quorum: number;
  readonly checker: Checker;
  readonly stats: SimStats = {
    events: 0,
    messagesSent: 0,
    messagesDropped: 0,
    messagesDuplicated: 0,
    partitions: 0,
    crashes: 0,
    crashesAfterPersist: 0,
    restarts: 0,
    rejected: {},
    evidence: 0,
    signRefusals: 0,
    syncedBlocks: 0,
    byzantineActs: {},
    maxRound: 0,
  };
  readonly byzantine: number | null;
  private readonly verify = createMemoizedVerifier();
  private readonly digest = createHash('sha256');
  // Network conditions (changed by the fault schedule).
  dropRate = 0;
  dupRate = 0;
  minDelayMs = 1;
  maxDelayMs = 50;
  spikeRate = 0;
  partition: { id: number; side: ReadonlySet<number> } | null = null;
  healed = false;

  readonly options: SimOptions;

  constructor(options: SimOptions) {
    this.options = options;
    this.prng = new Prng(options.seed);
    this.netPrng = this.prng.fork();
    this.byzPrng = this.prng.fork();
    const n = options.validators ?? this.prng.pick([4, 4, 4, 5, 7]);
    const keys: Bytes[] = [];
    for (let i = 0; i < n; i++) keys.push(sha256(Buffer.from(`sim-validator-${i}`)));
    const pairs = keys.map((k) => keyPairFromSecret(k));
    this.validators = pairs.map((p) => validatorOf(p.publicKey));
    this.quorum = options.unsafeQuorum ?? quorumOf(n);
    this.byzantine = options.noByzantine === true ? null : this.prng.int(0, n - 1);
    for (let i = 0; i < n; i++) this.nodes.push(new SimNode(this, i, keys[i]!, i === this.byzantine));
    this.checker = new Checker(this);
  }

  consensusOptions(self: Bytes): ConsensusOptions {
    return {
      chainId: CHAIN_ID,
      self,
      roundTimeoutBaseMs: 600,
      roundTimeoutGrowth: 1.5,
      roundTimeoutMaxMs: 3000,
      verifySignature: this.verify,
      ...(this.options.unsafeQuorum === undefined
        ? {}
        : { unsafeQuorumForTesting: this.options.unsafeQuorum }),
    };
  }

  trace(line: string): void {
    if (this.options.trace === true) process.stdout.write(`[${String(this.now).padStart(7)}] ${line}\n`);
  }

  schedule(delayMs: number, label: string, run: () => void | Promise<void>): void {
    this.queue.push(this.now + Math.max(0, delayMs), label, run);
  }

  blockDelayMs(): number {
    return this.prng.int(20, 150);
  }

  randomTxs(max = 3): Uint8Array[] {
    const txs: Uint8Array[] = [];
    const count = this.prng.int(0, max);
    for (let i = 0; i < count; i++) {
      const tx = this.prng.bytes(this.prng.int(8, 40));
      if (tx[0] === 0xff) tx[0] = 0;
      txs.push(tx);
    }
    return txs;
  }

  certificateValid(cert: CommitCertificate, hash: Bytes, height: number): boolean {
    if (this.quorum === quorumOf(this.validators.length)) {
      return checkCertificate(cert, CHAIN_ID, hash, height, this.validators) === null;
    }
    // Negative control only: the same check with the broken quorum.
    const message = encodeCommitVote(CHAIN_ID, height, cert.round, hash);
    const ok = cert.signatures.filter((s) => {
      const v = this.validators.find((x) => bytesEqual(x.address, s.validator));
      return v !== undefined && this.verify(s.signature, message, v.publicKey);
    });
    return cert.height === height && bytesEqual(cert.blockHash, hash) && ok.length >= this.quorum;
  }

  /** The seeded lossy network: drop, duplicate, delay (so reorder), partition. */
  send(from: SimNode, to: SimNode, packet: Packet): void {
    this.stats.messagesSent++;
    const p = this.netPrng;
    if (
      this.partition !== null &&
      this.partition.side.has(from.index) !== this.partition.side.has(to.index)
    ) {
      this.stats.messagesDropped++;
      return;
    }
    if (p.chance(this.dropRate)) {
      this.stats.messagesDropped++;
      return;
    }
    const copies = p.chance(this.dupRate) ? 2 : 1;
    if (copies === 2) this.stats.messagesDuplicated++;
    for (let i = 0; i < copies; i++) {
      const spike = p.chance(this.spikeRate) ? p.int(200, 2000) : 0;
      const delay = p.int(this.minDelayMs, this.maxDelayMs) + spike;
      this.schedule(delay, `deliver ${from.index}->${to.index} ${packet.kind}`, () =>
        to.receive(from, packet),
      );
    }
  }

  private act(name: string): void {
    this.stats.byzantineActs[name] = (this.stats.byzantineActs[name] ?? 0) + 1;
  }

  /** The byzantine validator's outgoing traffic: equivocation, invalid blocks, bad signatures, silence. */
  byzantineBroadcast(node: SimNode, m: ConsensusMessage): void {
    const p = this.byzPrng;
    const others = this.nodes.filter((n) => n !== node);
    const sendAll = (msg: ConsensusMessage | Bytes, to: readonly SimNode[] = others): void => {
      const bytes = msg instanceof Uint8Array ? msg : encodeConsensusMessage(msg);
      for (const peer of to) this.send(node, peer, { kind: 'consensus', bytes });
    };
    const roll = p.float();
    if (roll < 0.1) {
      this.act('silent');
      return;
    }
    if (roll < 0.18) {
      this.act('badSignature');
      const sig = Uint8Array.from(m.signature);
      sig[p.int(0, sig.length - 1)]! ^= 1 << p.int(0, 7);
      sendAll({ ...m, signature: sig });
      return;
    }
    if (roll < 0.22) {
      this.act('garbage');
      const bytes = Uint8Array.from(encodeConsensusMessage(m));
      for (let i = 0; i < 4; i++) bytes[p.int(0, bytes.length - 1)] = p.int(0, 255);
      sendAll(p.chance(0.5) ? bytes : p.bytes(p.int(1, 64)));
      return;
    }
    const split = (): [SimNode[], SimNode[]] => {
      const a: SimNode[] = [];
      const b: SimNode[] = [];
      for (const n of others) (p.chance(0.5) ? a : b).push(n);
      return [a, b];
    };
    switch (m.type) {
      case 'proposal': {
        if (roll < 0.7) {
          // Equivocate: a second, different (often invalid) block for the same round.
          this.act('equivocateProposal');
          const alt = node.alternativeBlock(m);
          const altMsg = node.forge({
            type: 'proposal',
            height: m.height,
            round: m.round,
            block: alt,
            blockHash: hashHeader(alt.header),
            justification: m.justification,
          });
          const [a, b] = split();
          sendAll(m, a);
          sendAll(altMsg, b);
          // Vote for the alternative (invalid) block to everyone.
          sendAll(node.forgeVote('prepare', m.height, m.round, hashHeader(alt.header)));
          sendAll(node.forgeVote('commit', m.height, m.round, hashHeader(alt.header)));
          return;
        }
        break;
      }
      case 'prepare':
      case 'commit': {
        if (roll < 0.6) {
          this.act('conflictingVotes');
          const other = node.forgeVote(
            m.type,
            m.height,
            m.round,
            p.chance(0.5) ? p.bytes(32) : hashHeader(node.alternativeBlockFor(m.height).header),
          );
          const [a, b] = split();
          sendAll(m, a);
          sendAll(other, b);
          if (m.type === 'prepare' && p.chance(0.5)) {
            this.act('prematureCommit');
            sendAll(node.forgeVote('commit', m.height, m.round, other.blockHash));
          }
          return;
        }
        break;
      }
      case 'roundChange': {
        if (roll < 0.45 && m.round >= 1) {
          // A round change claiming a prepared certificate signed only by itself.
          this.act('forgedPreparedCertificate');
          const fake = node.alternativeBlockFor(m.height);
          const fakeHash = hashHeader(fake.header);
          const pr = p.int(0, m.round - 1);
          const prepares = [
            {
              sender: node.validator.address,
              signature: sign(encodePrepareBody(CHAIN_ID, m.height, pr, fakeHash), node.key.secretKey),
            },
          ];
          sendAll(
            node.signAs({
              type: 'roundChange',
              height: m.height,
              round: m.round,
              prepared: { round: pr, blockHash: fakeHash, prepares },
              preparedBlock: fake,
              sender: node.validator.address,
              signature: new Uint8Array(64),
            }),
          );
          return;
        }
        break;
      }
    }
    sendAll(m);
  }

  scheduleRestart(node: SimNode, delayMs: number): void {
    this.schedule(delayMs, `restart ${node.index}`, async () => {
      if (node.up) return;
      this.stats.restarts++;
      await node.boot();
    });
  }

  private scheduleFaults(chaosMs: number): void {
    const f = this.prng.fork();
    this.dropRate = f.pick([0, 0.02, 0.05, 0.15, 0.3]);
    this.dupRate = f.pick([0, 0.05, 0.2]);
    this.minDelayMs = f.int(1, 10);
    this.maxDelayMs = f.int(20, 250);
    this.spikeRate = f.pick([0, 0.01, 0.05]);
    const honest = this.nodes.filter((n) => !n.byzantine);
    const partitions = f.int(0, 3);
    for (let i = 0; i < partitions; i++) {
      const at = f.int(0, chaosMs);
      const duration = f.int(300, 6000);
      const side = new Set<number>();
      for (const n of this.nodes) if (f.chance(0.5)) side.add(n.index);
      if (side.size === 0 || side.size === this.nodes.length) side.add(0).delete(this.nodes.length - 1);
      const id = i + 1;
      this.queue.push(at, `partition ${id}`, () => {
        this.partition = { id, side };
        this.stats.partitions++;
        this.trace(`partition ${[...side].join(',')} | rest`);
      });
      this.queue.push(at + duration, `unpartition ${id}`, () => {
        if (this.partition?.id === id) this.partition = null;
      });
    }
    const crashes = f.int(0, 4);
    for (let i = 0; i < crashes; i++) {
      const node = f.pick(honest);
      const at = f.int(0, chaosMs);
      const afterPersist = f.chance(0.5);
      const downMs = f.int(100, 4000);
      this.queue.push(at, `crash ${node.index}`, () => {
        if (!node.up) return;
        if (afterPersist) {
          // Crash at the worst instant: right after the next durable write, before anything is sent.
          node.crashAfterPersist = true;
          // Disarm if no durable write happened in time (the node may be idle or partitioned).
          this.schedule(downMs + 2000, `disarm-crash ${node.index}`, () => {
            node.crashAfterPersist = false;
          });
          return;
        }
        node.crash();
        this.scheduleRestart(node, downMs);
      });
    }
  }

  /** Runs the seed to the end; returns what the checker found. */
  async run(): Promise<SimResult> {
    const chaosMs = this.options.chaosMs ?? this.prng.int(6000, 12000);
    const boundMs = this.options.livenessBoundMs ?? 40_000;
    const needBlocks = this.options.livenessBlocks ?? 3;
    for (const n of this.nodes) this.queue.push(0, `boot ${n.index}`, () => n.boot());
    this.scheduleFaults(chaosMs);
    let livenessTarget = Infinity;
    let deadline = Infinity;
    let satisfiedAt = Infinity;
    this.queue.push(chaosMs, 'heal', async () => {
      this.healed = true;
      this.partition = null;
      this.dropRate = 0;
      this.dupRate = 0;
      this.spikeRate = 0;
      for (const n of this.nodes) n.crashAfterPersist = false;
      for (const n of this.nodes) if (!n.up) await n.boot();
      livenessTarget = Math.max(...this.honest().map((n) => n.head.height)) + needBlocks;
      deadline = this.now + boundMs;
      this.trace(`heal: every honest node must reach height ${livenessTarget} by t=${deadline}`);
    });
    for (;;) {
      const e = this.queue.pop();
      if (e === undefined) break;
      this.now = e.at;
      this.digest.update(`${e.at}|${e.label}\n`);
      await e.run();
      this.stats.events++;
      // Invariants: safety ones are checked inside the event as honest nodes sign and commit;
      // liveness is checked here after every event.
      if (this.checker.violations.length > 0) break;
      if (this.healed) {
        const lowest = Math.min(...this.honest().map((n) => n.head.height));
        if (lowest >= livenessTarget && satisfiedAt === Infinity) satisfiedAt = this.now;
        if (this.now >= satisfiedAt + 500) break;
        if (this.now > deadline && lowest < livenessTarget) {
          const stuck = this.honest()
            .filter((n) => n.head.height < livenessTarget)
            .map(
              (n) =>
                `node ${n.index} at height ${n.head.height}: ${n.state === null ? 'down' : describeConsensus(n.state).waitingFor}`,
            );
          this.checker.violation(
            `LIVENESS: ${boundMs} ms after the heal not every honest node reached height ${livenessTarget}; ${stuck.join('; ')}`,
          );
          break;
        }
      }
    }
    return {
      seed: this.options.seed,
      validators: this.nodes.length,
      byzantine: this.byzantine,
      violations: this.checker.violations,
      heights: this.nodes.map((n) => n.head.height),
      virtualMs: this.now,
      digest: this.digest.digest('hex'),
      stats: this.stats,
    };
  }

  honest(): SimNode[] {
    return this.nodes.filter((n) => !n.byzantine);
  }
}

/** Runs one seed. */
export async function runSimulation(options: SimOptions): Promise<SimResult> {
  return new World(options).run();
}

/** The line a failing seed prints so it can be replayed exactly. */
export function replayHint(seed: number, file: string): string {
  return `replay with: SIM_SEED=${seed} SIM_TRACE=1 npx vitest run ${file}`;
}
