/**
 * Plays the demo storyline (demo/storyline.ts) against a running network over JSON-RPC with the
 * SDK: one wallet per actor, each step sent and awaited to its receipt, its outcome read back
 * through the contract's view, and scheduled maturities awaited by their events (events_query
 * from the block that scheduled them) rather than by sleeping.
 *
 * The demo's own participants get keys derived from a seed, so a run can be repeated with the same
 * addresses; everything else a run creates (opIds, lot numbers, references) carries a per-run tag,
 * so running the demo again on the same network starts a fresh story instead of replaying the
 * first one's idempotent results.
 */
import { randomBytes } from 'node:crypto';
import { toHex, utf8, type Bytes } from '../core/bytes.ts';
import type { Value } from '../core/codec.ts';
import { TrellisError } from '../core/errors.ts';
import { sha256 } from '../core/hash.ts';
import { addressOf, keyPairFromSecret, type KeyPair } from '../core/keys.ts';
import type { Receipt } from '../core/types.ts';
import type { TrellisClient } from '../rpc/sdk/client.ts';
import { createWallet, type Wallet } from '../rpc/sdk/wallet.ts';
import type { EventPosition } from '../rpc/nodeApi.ts';
import {
  adminActor,
  DEFAULT_DEMO_TIMING,
  DEMO_PARTICIPANTS,
  demoChapters,
  statusOf,
  type DemoAwaitStep,
  type DemoContext,
  type DemoExpect,
  type DemoStep,
  type DemoTiming,
  type DemoTxStep,
} from './storyline.ts';

/** Why the demo stopped before running its story. */
export type DemoErrorCode =
  /** An organisation the story needs has no admin key. */
  | 'NO_ADMIN'
  /** The node did not answer, or answered for no chain. */
  | 'NO_CHAIN'
  /** A scheduled callback's event did not appear in time. */
  | 'TIMEOUT';

/** Raised by the demo runner for set-up problems; step failures are reported, not thrown. */
export class DemoError extends TrellisError<DemoErrorCode> {}

/** Options of {@link runDemo}. */
export interface DemoOptions {
  /** A client of any node of the network. */
  readonly client: TrellisClient;
  /** Admin key of each organisation, by organisation id (from `<dir>/network.json`). */
  readonly admins: ReadonlyMap<string, KeyPair>;
  /** Derives the participants' keys (default: random; the report names it so a run can be repeated). */
  readonly seed?: string;
  readonly timing?: DemoTiming;
  /** Called with each finished step, in story order (for live output). */
  readonly onStep?: (step: DemoStepResult) => void;
  /** Called when a chapter starts. */
  readonly onChapter?: (title: string) => void;
  /** Longest wait for one receipt, ms (default 60 s). */
  readonly txTimeoutMs?: number;
  /** How long after a callback is due the demo gives up waiting for its event, ms (default 60 s). */
  readonly callbackGraceMs?: number;
  readonly signal?: AbortSignal;
}

/** The outcome record a step was checked against. */
export interface DemoOutcome {
  /** e.g. "voucher V3". */
  readonly label: string;
  readonly expected: string;
  /** The status read back (null when the record does not exist). */
  readonly actual: string | null;
}

/** One finished step. */
export interface DemoStepResult {
  /** 1-based position in the story. */
  readonly index: number;
  readonly chapter: string;
  readonly title: string;
  readonly kind: 'tx' | 'await';
  /** The actor (participant name or `admin:<org>`); null for awaited callbacks. */
  readonly actor: string | null;
  readonly contract: string;
  /** The method called, or the event awaited. */
  readonly method: string;
  /** 0x-hex transaction hash (or the callback's schedule-entry hash); null when skipped. */
  readonly txHash: string | null;
  readonly height: number | null;
  /** Receipt status (`ok`, `reverted`, …), `skipped`, or `error` when the step could not run. */
  readonly status: string;
  /** Revert code and message when not ok. */
  readonly error: string | null;
  readonly outcome: DemoOutcome | null;
  /** The receipt was ok and the outcome matched (or the step was skipped as already done). */
  readonly ok: boolean;
}

/** A step's result before it is numbered and placed in its chapter. */
export type DemoStepOutcome = Omit<DemoStepResult, 'index' | 'chapter'>;

/** Who did what in a step, as its result names it. */
function stepIdentity(
  step: DemoStep,
): Pick<DemoStepResult, 'title' | 'kind' | 'actor' | 'contract' | 'method'> {
  return step.kind === 'tx'
    ? { title: step.title, kind: 'tx', actor: step.actor, contract: step.contract, method: step.method }
    : { title: step.title, kind: 'await', actor: null, contract: step.contract, method: step.event };
}

/** What `expect` says about the value its view returned. */
export function demoOutcome(expect: DemoExpect, c: DemoContext, value: Value): DemoOutcome {
  return { label: expect.label(c), expected: expect.status, actual: statusOf(value) };
}

const matches = (outcome: DemoOutcome | null): boolean =>
  outcome === null || outcome.actual === outcome.expected;

/** The result of a transaction step skipped because its `skipIf` held (a re-run). */
export function skippedStep(step: DemoTxStep): DemoStepOutcome {
  return {
    ...stepIdentity(step),
    txHash: null,
    height: null,
    status: 'skipped',
    error: null,
    outcome: null,
    ok: true,
  };
}

/**
 * The result of a transaction step from its receipt (committed at `height`) and the outcome read
 * back after it (null when the receipt was not ok or the step names none).
 */
export function txStepResult(
  step: DemoTxStep,
  receipt: Pick<Receipt, 'txHash' | 'status' | 'errorCode' | 'error'>,
  height: number,
  outcome: DemoOutcome | null,
): DemoStepOutcome {
  const ok = receipt.status === 'ok';
  return {
    ...stepIdentity(step),
    txHash: toHex(receipt.txHash),
    height,
    status: receipt.status,
    error: ok ? null : `${receipt.errorCode}: ${receipt.error}`,
    outcome,
    ok: ok && matches(outcome),
  };
}

/** The result of an await step whose event was found (emitted by `txHash` at `height`). */
export function awaitStepResult(
  step: DemoAwaitStep,
  txHash: Bytes,
  height: number,
  outcome: DemoOutcome | null,
): DemoStepOutcome {
  return {
    ...stepIdentity(step),
    txHash: toHex(txHash),
    height,
    status: 'ok',
    error: null,
    outcome,
    ok: matches(outcome),
  };
}

/** The result of a step that could not run: status `error`, with the error's code (or name) and message. */
export function failedStep(step: DemoStep, err: unknown): DemoStepOutcome {
  const e = err as Error & { code?: string };
  return {
    ...stepIdentity(step),
    txHash: null,
    height: null,
    status: 'error',
    error: `${e.code ?? e.name}: ${e.message}`,
    outcome: null,
    ok: false,
  };
}

/** What a run did. */
export interface DemoReport {
  readonly ok: boolean;
  readonly seed: string;
  /** The per-run tag in opIds, lots and references. */
  readonly run: string;
  readonly participants: ReadonlyArray<{ name: string; org: string; roles: string[]; address: string }>;
  readonly steps: readonly DemoStepResult[];
  /** Ids the story created: voucher root, order, warehouse receipt (when it got that far). */
  readonly ids: { readonly voucher?: string; readonly order?: string; readonly receipt?: string };
  readonly durationMs: number;
}

/** The key of demo participant `name` for `seed`: SHA-256 of a fixed label, the seed and the name. */
export function demoParticipantKey(seed: string, name: string): KeyPair {
  return keyPairFromSecret(sha256(utf8(`trellis-demo/v1/${seed}/${name}`)));
}

const POLL_MS = 250;

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(signal.reason as Error);
      return;
    }
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs the whole storyline once. Resolves with a report whether or not every step succeeded: the
 * run stops at the first failed step (later steps depend on it), and `ok` says whether all passed.
 * Throws {@link DemoError} only for set-up problems (no node, a missing admin key).
 */
export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  const started = performance.now();
  const { client, signal } = options;
  const timing = options.timing ?? DEFAULT_DEMO_TIMING;
  const txTimeoutMs = options.txTimeoutMs ?? 60_000;
  const graceMs = options.callbackGraceMs ?? 60_000;
  const seed = options.seed ?? toHex(randomBytes(8)).slice(2);
  const head = await client.head().catch((err: unknown) => {
    throw new DemoError('NO_CHAIN', `cannot reach ${client.url}: ${(err as Error).message}`, {
      url: client.url,
    });
  });
  const startHeight = head?.height ?? 0;
  // Unique per run on one chain: the seed names the participants, the start height the run.
  const run = `${seed.slice(0, 8)}-${startHeight}`;

  const keys = new Map<string, KeyPair>();
  for (const p of DEMO_PARTICIPANTS) keys.set(p.name, demoParticipantKey(seed, p.name));
  for (const org of new Set(DEMO_PARTICIPANTS.map((p) => p.org))) {
    const key = options.admins.get(org);
    if (key === undefined)
      throw new DemoError(
        'NO_ADMIN',
        `no admin key for organisation ${org}; the demo needs the trellis init consortium`,
        {
          org,
        },
      );
    keys.set(adminActor(org), key);
  }
  // Wallets retry refused sends for up to two minutes; once aborted, every call they make fails
  // at once with the abort reason (not an RPC error, so they stop instead of retrying).
  const walletClient: TrellisClient =
    signal === undefined
      ? client
      : new Proxy(client, {
          get(target, prop, receiver) {
            const v: unknown = Reflect.get(target, prop, receiver);
            if (typeof v !== 'function') return v;
            return (...args: unknown[]): unknown => {
              signal.throwIfAborted();
              return (v as (...a: unknown[]) => unknown).apply(target, args);
            };
          },
        });
  const wallets = new Map<string, Wallet>();
  const walletOf = (actor: string): Wallet => {
    let w = wallets.get(actor);
    if (w === undefined) {
      const key = keys.get(actor);
      if (key === undefined) throw new Error(`demo: unknown actor ${actor}`);
      w = createWallet(walletClient, key);
      wallets.set(actor, w);
    }
    return w;
  };
  const address = (actor: string): string => {
    const key = keys.get(actor);
    if (key === undefined) throw new Error(`demo: unknown actor ${actor}`);
    return toHex(addressOf(key.publicKey));
  };

  const results = new Map<string, Value>();
  /** Height and chain time at which each keyed step ran. */
  const marks = new Map<string, { height: number; now: number }>();
  let now = Math.max(Date.now(), head?.header.timestamp ?? 0);
  const ctx = (): DemoContext => ({ results, address, now, run });
  const refreshNow = async (): Promise<void> => {
    const h = await client.head();
    now = Math.max(Date.now(), h?.header.timestamp ?? 0);
  };

  async function check(expect: DemoExpect | undefined): Promise<DemoOutcome | null> {
    if (expect === undefined) return null;
    const c = ctx();
    return demoOutcome(expect, c, await client.view(expect.contract, expect.view, expect.args(c)));
  }

  async function runTx(step: DemoTxStep): Promise<DemoStepOutcome> {
    if (step.skipIf !== undefined) {
      const c = ctx();
      const v = await client.view(step.skipIf.contract, step.skipIf.view, step.skipIf.args(c));
      if (step.skipIf.holds(v)) return skippedStep(step);
    }
    const args = step.args(ctx());
    const r = await walletOf(step.actor).sendAndWait(
      { contract: step.contract, method: step.method, args },
      txTimeoutMs,
    );
    const ok = r.receipt.status === 'ok';
    if (ok && step.key !== undefined) {
      results.set(step.key, r.receipt.returnValue);
      marks.set(step.key, { height: r.height, now });
    }
    return txStepResult(step, r.receipt, r.height, ok ? await check(step.expect) : null);
  }

  async function runAwait(step: DemoAwaitStep): Promise<DemoStepOutcome> {
    const mark = marks.get(step.since);
    if (mark === undefined)
      throw new Error(`demo: await step "${step.title}" names no earlier step ${step.since}`);
    const deadline = Date.now() + Math.max(0, mark.now + step.dueInMs - Date.now()) + graceMs;
    let cursor: EventPosition | undefined;
    for (;;) {
      const page = await client.call('events_query', {
        contract: step.contract,
        name: step.event,
        ...(cursor === undefined ? { fromHeight: mark.height } : { cursor }),
        limit: 100,
      });
      const hit = page.events.find((e) => step.match(e.data, ctx()));
      if (hit !== undefined) return awaitStepResult(step, hit.txHash, hit.height, await check(step.expect));
      const last = page.events.at(-1);
      if (page.next !== undefined) cursor = page.next;
      else if (last !== undefined) cursor = last.cursor;
      if (page.next !== undefined) continue;
      if (Date.now() > deadline)
        throw new DemoError(
          'TIMEOUT',
          `no ${step.contract}.${step.event} event within ${graceMs} ms after it was due`,
          { contract: step.contract, event: step.event },
        );
      await sleep(POLL_MS, signal);
    }
  }

  async function runStep(step: DemoStep): Promise<DemoStepOutcome> {
    try {
      return step.kind === 'tx' ? await runTx(step) : await runAwait(step);
    } catch (err) {
      if (signal?.aborted === true) throw err;
      return failedStep(step, err);
    }
  }

  const steps: DemoStepResult[] = [];
  let failed = false;
  try {
    outer: for (const chapter of demoChapters(timing)) {
      options.onChapter?.(chapter.title);
      const list = chapter.steps;
      for (let i = 0; i < list.length;) {
        // A run of steps sharing a group goes out together; others one at a time.
        const group = list[i]!.kind === 'tx' ? (list[i] as DemoTxStep).group : undefined;
        let j = i + 1;
        if (group !== undefined)
          while (j < list.length && list[j]!.kind === 'tx' && (list[j] as DemoTxStep).group === group) j++;
        signal?.throwIfAborted();
        await refreshNow();
        const batch = list.slice(i, j);
        const done = await Promise.all(batch.map((s) => runStep(s)));
        for (const d of done) {
          const r: DemoStepResult = { index: steps.length + 1, chapter: chapter.title, ...d };
          steps.push(r);
          options.onStep?.(r);
          if (!r.ok) failed = true;
        }
        if (failed) break outer;
        i = j;
      }
    }
  } finally {
    // Wallets hold no connections of their own; the caller owns the client.
    wallets.clear();
  }

  const id = (key: string): string | undefined => {
    const v = results.get(key);
    if (typeof v === 'string') return v;
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array)) {
      const x = v['id'];
      if (typeof x === 'string') return x;
    }
    return undefined;
  };
  const ids: { voucher?: string; order?: string; receipt?: string } = {};
  for (const k of ['voucher', 'order', 'receipt'] as const) {
    const v = id(k);
    if (v !== undefined) ids[k] = v;
  }
  return {
    ok: !failed,
    seed,
    run,
    participants: DEMO_PARTICIPANTS.map((p) => ({
      name: p.name,
      org: p.org,
      roles: [...p.roles],
      address: address(p.name),
    })),
    steps,
    ids,
    durationMs: Math.round(performance.now() - started),
  };
}
