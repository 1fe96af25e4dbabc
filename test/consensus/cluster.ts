import { bytesEqual, type Bytes } from '../../core/bytes.ts';
import type { Block, CommitCertificate, Validator } from '../../core/types.ts';
import {
  createKeySigner,
  createMemorySafetyStore,
  openSafetyRules,
  type SafetyRules,
} from '../../consensus/safetyRules.ts';
import {
  startConsensus,
  step,
  type ConsensusInput,
  type ConsensusOutput,
  type ConsensusState,
} from '../../consensus/stateMachine.ts';
import type { ConsensusOptions } from '../../consensus/config.ts';
import {
  createValidatorSchedule,
  validatorsAt,
  type ValidatorSchedule,
} from '../../consensus/validatorSet.ts';
import { GENESIS_STATE_ROOT, buildBlock, executionResult, fakeExecute } from '../sim/harness/fakeChain.ts';
import { CHAIN, GENESIS_HASH, GENESIS_TIME, keyOf, optionsFor } from './helpers.ts';

/**
 * A tiny in-process cluster on a perfect FIFO network with a virtual clock, for unit tests that
 * want whole-protocol behaviour without the simulator's faults. Each node runs the reference
 * driver loop: step, perform outputs in order, await the safety module before sending.
 */

interface Pending {
  readonly at: number;
  readonly seq: number;
  readonly node: number;
  readonly input: ConsensusInput;
}

export interface ClusterNode {
  readonly validator: Validator;
  state: ConsensusState;
  safety: SafetyRules;
  head: { height: number; hash: Bytes; timestamp: number; stateRoot: Bytes };
  readonly commits: { block: Block; hash: Bytes; certificate: CommitCertificate }[];
  readonly outputs: ConsensusOutput[];
  /** When set, outgoing messages of these types are dropped (to provoke round changes). */
  muted: ReadonlySet<string>;
}

export class Cluster {
  now = 0;
  readonly nodes: ClusterNode[] = [];
  private readonly queue: Pending[] = [];
  private seq = 0;

  readonly validators: readonly Validator[];
  /** Which set certifies which height; defaults to all nodes at every height. */
  readonly schedule: ValidatorSchedule;

  private constructor(validators: readonly Validator[], schedule: ValidatorSchedule) {
    this.validators = validators;
    this.schedule = schedule;
  }

  /** `mute[i]` lists message types node i never sends (to provoke round changes). */
  static async create(
    validators: readonly Validator[],
    extra: Partial<ConsensusOptions> = {},
    mute: Record<number, readonly string[]> = {},
    schedule: ValidatorSchedule = createValidatorSchedule(validators),
  ): Promise<Cluster> {
    const c = new Cluster(validators, schedule);
    const initial: (readonly ConsensusOutput[])[] = [];
    for (const v of validators) {
      const safety = await openSafetyRules(
        { chainId: CHAIN },
        { signer: createKeySigner(keyOf(v).secretKey), store: createMemorySafetyStore() },
      );
      const r = startConsensus(optionsFor(v, extra), {
        height: 1,
        prevHash: GENESIS_HASH,
        prevTimestamp: GENESIS_TIME,
        validators: validatorsAt(schedule, 1),
      });
      initial.push(r.outputs);
      c.nodes.push({
        validator: v,
        state: r.state,
        safety,
        head: { height: 0, hash: GENESIS_HASH, timestamp: GENESIS_TIME, stateRoot: GENESIS_STATE_ROOT },
        commits: [],
        outputs: [],
        muted: new Set(mute[c.nodes.length] ?? []),
      });
    }
    for (let i = 0; i < c.nodes.length; i++) await c.input(i, null, initial[i]);
    return c;
  }

  private push(at: number, node: number, input: ConsensusInput): void {
    this.queue.push({ at, seq: this.seq++, node, input });
  }

  private async perform(
    index: number,
    outputs: readonly ConsensusOutput[],
    pending: ConsensusInput[],
  ): Promise<void> {
    const node = this.nodes[index]!;
    for (const o of outputs) {
      node.outputs.push(o);
      switch (o.kind) {
        case 'broadcast':
          if (node.muted.has(o.message.type)) break;
          for (let j = 0; j < this.nodes.length; j++) {
            if (j !== index)
              this.push(this.now + 1, j, { kind: 'message', from: String(index), bytes: o.bytes });
          }
          break;
        case 'send':
          this.push(this.now + 1, Number(o.peer), { kind: 'message', from: String(index), bytes: o.bytes });
          break;
        case 'sign':
          pending.push({ kind: 'signed', outcome: await node.safety.sign(o.request) });
          break;
        case 'execute':
          pending.push({
            kind: 'executed',
            height: o.height,
            blockHash: o.blockHash,
            result: executionResult(node.head.stateRoot, o.block),
          });
          break;
        case 'buildProposal': {
          const block = buildBlock({
            chainId: CHAIN,
            height: o.height,
            round: o.round,
            prevHash: o.prevHash,
            proposer: o.proposer,
            validators: validatorsAt(this.schedule, o.height),
            timestamp: Math.max(o.minTimestamp, GENESIS_TIME + this.now),
            parentStateRoot: node.head.stateRoot,
            txs: [Uint8Array.from([o.height, o.round, index])],
          });
          pending.push({ kind: 'proposalBuilt', height: o.height, round: o.round, block });
          break;
        }
        case 'scheduleTimer':
          this.push(this.now + o.delayMs, index, { kind: 'timeout', height: o.height, round: o.round });
          break;
        case 'commit': {
          const executed = fakeExecute(node.head.stateRoot, o.block.txs);
          if ('invalid' in executed) throw new Error('committed an invalid block');
          node.commits.push({ block: o.block, hash: o.blockHash, certificate: o.certificate });
          node.head = {
            height: o.height,
            hash: o.blockHash,
            timestamp: o.block.header.timestamp,
            stateRoot: executed.stateRoot,
          };
          pending.push({
            kind: 'committed',
            next: {
              height: o.height + 1,
              prevHash: o.blockHash,
              prevTimestamp: o.block.header.timestamp,
              validators: validatorsAt(this.schedule, o.height + 1),
            },
          });
          break;
        }
        case 'syncNeeded':
        case 'rejected':
        case 'evidence':
        case 'log':
          break;
      }
    }
  }

  /** Feeds one input (and/or initial outputs) to a node through the driver loop. */
  async input(
    index: number,
    first: ConsensusInput | null,
    initial: readonly ConsensusOutput[] = [],
  ): Promise<void> {
    const pending: ConsensusInput[] = first === null ? [] : [first];
    await this.perform(index, initial, pending);
    while (pending.length > 0) {
      const r = step(this.nodes[index]!.state, pending.shift()!);
      this.nodes[index]!.state = r.state;
      await this.perform(index, r.outputs, pending);
    }
  }

  /** Runs events in time order until every node committed `height` or `maxMs` of virtual time passed. */
  async runUntilHeight(height: number, maxMs = 120_000): Promise<void> {
    while (this.nodes.some((n) => n.head.height < height)) {
      this.queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const e = this.queue.shift();
      if (e === undefined || e.at > maxMs) return;
      this.now = e.at;
      await this.input(e.node, e.input);
    }
  }

  /** True when every node committed the same hashes so far. */
  agree(): boolean {
    const first = this.nodes[0]!.commits;
    return this.nodes.every((n) =>
      n.commits.every((c, i) => first[i] === undefined || bytesEqual(first[i].hash, c.hash)),
    );
  }
}
