// Goal: the safety module never releases two different signatures for one (height, round, step),
// never goes backwards, keeps its lock, and persists all of it before a signature leaves — so the
// same holds across a restart.
import { describe, expect, it } from 'vitest';
import type { Bytes } from '../../core/bytes.ts';
import { verify } from '../../core/keys.ts';
import { hashHeader, validatorOf } from '../../core/types.ts';
import { signedBodyOf } from '../../consensus/messages.ts';
import {
  createKeySigner,
  createMemorySafetyStore,
  decodeSafetyRecord,
  encodeSafetyRecord,
  openSafetyRules,
  positionOf,
  type SafetyStore,
  type SignOutcome,
  type SignRequest,
} from '../../consensus/safetyRules.ts';
import { CHAIN, KEYS, blockFor, preparedCertificate, validatorsOf } from './helpers.ts';

const vs = validatorsOf(4);
const key = KEYS[0]!;
const signer = createKeySigner(key.secretKey);
const blockA = blockFor(vs, 1, 0, [Uint8Array.from([0xa])]);
const hashA = hashHeader(blockA.header);
const blockB = blockFor(vs, 1, 1, [Uint8Array.from([0xb])]);
const hashB = hashHeader(blockB.header);

const prepare = (height: number, round: number, blockHash: Bytes): SignRequest => ({
  type: 'prepare',
  height,
  round,
  blockHash,
});
const commitA = (round: number): SignRequest => ({
  type: 'commit',
  height: 1,
  round,
  blockHash: hashA,
  prepared: preparedCertificate(KEYS.slice(0, 3), 1, round, hashA),
  block: blockA,
});

function ok(o: SignOutcome) {
  if (!o.ok) throw new Error(`refused: ${o.error.code} ${o.error.message}`);
  return o.message;
}

function refused(o: SignOutcome): string {
  if (o.ok) throw new Error('expected a refusal');
  return o.error.code;
}

async function open(store: SafetyStore = createMemorySafetyStore()) {
  return openSafetyRules({ chainId: CHAIN }, { signer, store });
}

describe('safety rules', () => {
  it('signs with the validator key over the canonical body', async () => {
    const rules = await open();
    const m = ok(await rules.sign(prepare(1, 0, hashA)));
    expect(Buffer.compare(m.sender, validatorOf(key.publicKey).address)).toBe(0);
    expect(verify(m.signature, signedBodyOf(CHAIN, m), key.publicKey)).toBe(true);
  });

  it('persists the record before releasing the signature', async () => {
    const events: string[] = [];
    const store: SafetyStore = {
      load: () => undefined,
      save: async (record) => {
        events.push('save-start');
        await new Promise((resolve) => setImmediate(resolve));
        events.push(`save-done ${decodeSafetyRecord(record).step}`);
      },
    };
    const rules = await open(store);
    const pending = rules.sign(prepare(1, 0, hashA)).then((o) => {
      events.push(`signed ${o.ok}`);
    });
    await pending;
    expect(events).toEqual(['save-start', 'save-done 2', 'signed true']);
  });

  it('releases nothing when the store fails, and keeps its old record', async () => {
    let fail = false;
    const inner = createMemorySafetyStore();
    const store: SafetyStore = {
      load: () => inner.load(),
      save: (r) => {
        if (fail) throw new Error('disk full');
        return inner.save(r);
      },
    };
    const rules = await open(store);
    ok(await rules.sign(prepare(1, 0, hashA)));
    fail = true;
    await expect(rules.sign(prepare(1, 1, hashA))).rejects.toThrow('disk full');
    expect(rules.record?.round).toBe(0);
    fail = false;
    // The failed request did not count: the same position may still be signed.
    ok(await rules.sign(prepare(1, 1, hashB)));
  });

  it('refuses a different body at the same position and re-signs the same body identically', async () => {
    const rules = await open();
    const first = ok(await rules.sign(prepare(1, 0, hashA)));
    expect(refused(await rules.sign(prepare(1, 0, hashB)))).toBe('SIGN_CONFLICT');
    const again = ok(await rules.sign(prepare(1, 0, hashA)));
    expect(Buffer.compare(again.signature, first.signature)).toBe(0);
  });

  it('refuses anything before the last signed (height, round, step)', async () => {
    const rules = await open();
    ok(await rules.sign(commitA(2)));
    expect(refused(await rules.sign(prepare(1, 2, hashA)))).toBe('SIGN_REGRESSION');
    expect(refused(await rules.sign(prepare(1, 1, hashA)))).toBe('SIGN_REGRESSION');
    expect(
      refused(
        await rules.sign({
          type: 'proposal',
          height: 1,
          round: 2,
          block: blockA,
          blockHash: hashA,
          justification: null,
        }),
      ),
    ).toBe('SIGN_REGRESSION');
    // Later rounds and heights are fine.
    ok(await rules.sign(prepare(1, 3, hashA)));
    ok(await rules.sign(prepare(2, 0, hashB)));
    expect(refused(await rules.sign(prepare(1, 9, hashA)))).toBe('SIGN_REGRESSION');
  });

  it('orders a round change to round r after everything in round r − 1 and before round r', async () => {
    expect(
      positionOf({ type: 'roundChange', height: 1, round: 3, prepared: null, preparedBlock: null }),
    ).toEqual({
      height: 1,
      round: 2,
      step: 4,
    });
    const rules = await open();
    ok(await rules.sign(prepare(1, 2, hashA)));
    ok(await rules.sign({ type: 'roundChange', height: 1, round: 3, prepared: null, preparedBlock: null }));
    expect(refused(await rules.sign(prepare(1, 2, hashA)))).toBe('SIGN_REGRESSION');
    ok(await rules.sign(prepare(1, 3, hashB)));
  });

  it('keeps the lock: a round change must report it, a proposal must re-propose it', async () => {
    const rules = await open();
    ok(await rules.sign(commitA(0)));
    expect(rules.record?.lock?.prepared.round).toBe(0);
    expect(
      refused(
        await rules.sign({ type: 'roundChange', height: 1, round: 1, prepared: null, preparedBlock: null }),
      ),
    ).toBe('SIGN_LOCK_VIOLATION');
    const certB = preparedCertificate(KEYS.slice(0, 3), 1, 0, hashB);
    expect(
      refused(
        await rules.sign({
          type: 'roundChange',
          height: 1,
          round: 1,
          prepared: certB,
          preparedBlock: blockB,
        }),
      ),
    ).toBe('SIGN_LOCK_VIOLATION');
    const certA = preparedCertificate(KEYS.slice(0, 3), 1, 0, hashA);
    ok(
      await rules.sign({ type: 'roundChange', height: 1, round: 1, prepared: certA, preparedBlock: blockA }),
    );
    // Proposing another block needs a strictly higher prepared certificate.
    const noCert = { roundChanges: [], prepared: null };
    expect(
      refused(
        await rules.sign({
          type: 'proposal',
          height: 1,
          round: 1,
          block: blockB,
          blockHash: hashB,
          justification: noCert,
        }),
      ),
    ).toBe('SIGN_LOCK_VIOLATION');
    ok(
      await rules.sign({
        type: 'proposal',
        height: 2,
        round: 0,
        block: blockB,
        blockHash: hashB,
        justification: null,
      }),
    );
    // At a new height the old lock no longer binds.
    expect(rules.record?.lock).toBeNull();
  });

  it('lets a higher prepared certificate free a locked proposer', async () => {
    const rules = await open();
    ok(await rules.sign(commitA(0)));
    const higher = { roundChanges: [], prepared: preparedCertificate(KEYS.slice(0, 3), 1, 1, hashB) };
    ok(
      await rules.sign({
        type: 'proposal',
        height: 1,
        round: 2,
        block: blockB,
        blockHash: hashB,
        justification: higher,
      }),
    );
  });

  it('refuses malformed requests', async () => {
    const rules = await open();
    expect(refused(await rules.sign(prepare(0, 0, hashA)))).toBe('SIGN_BAD_REQUEST');
    expect(refused(await rules.sign(prepare(1, -1, hashA)))).toBe('SIGN_BAD_REQUEST');
    expect(refused(await rules.sign(prepare(1, 0, new Uint8Array(5))))).toBe('SIGN_BAD_REQUEST');
    expect(
      refused(
        await rules.sign({
          type: 'proposal',
          height: 1,
          round: 0,
          block: blockA,
          blockHash: hashB,
          justification: null,
        }),
      ),
    ).toBe('SIGN_BAD_REQUEST');
    expect(refused(await rules.sign({ ...commitA(1), round: 2 }))).toBe('SIGN_BAD_REQUEST');
    expect(
      refused(
        await rules.sign({ type: 'roundChange', height: 1, round: 0, prepared: null, preparedBlock: null }),
      ),
    ).toBe('SIGN_BAD_REQUEST');
    expect(rules.record).toBeNull();
  });

  it('after a restart from the same store, refuses what would conflict and keeps the lock', async () => {
    const store = createMemorySafetyStore();
    const before = await open(store);
    ok(await before.sign(commitA(1)));
    const after = await open(store);
    expect(after.record).toMatchObject({ height: 1, round: 1, step: 3 });
    expect(after.record?.lock?.prepared.round).toBe(1);
    expect(refused(await after.sign(prepare(1, 1, hashB)))).toBe('SIGN_REGRESSION');
    expect(
      refused(
        await after.sign({
          type: 'commit',
          height: 1,
          round: 1,
          blockHash: hashB,
          prepared: preparedCertificate(KEYS.slice(0, 3), 1, 1, hashB),
          block: blockB,
        }),
      ),
    ).toBe('SIGN_CONFLICT');
    expect(
      refused(
        await after.sign({ type: 'roundChange', height: 1, round: 2, prepared: null, preparedBlock: null }),
      ),
    ).toBe('SIGN_LOCK_VIOLATION');
  });

  it('serialises concurrent requests so the second sees the first record', async () => {
    const rules = await open({
      load: () => undefined,
      save: () => new Promise((resolve) => setImmediate(resolve)),
    });
    const [a, b] = await Promise.all([rules.sign(prepare(1, 0, hashA)), rules.sign(prepare(1, 0, hashB))]);
    expect(a.ok).toBe(true);
    expect(refused(b)).toBe('SIGN_CONFLICT');
  });

  it('round-trips its record and refuses a corrupt one at open', async () => {
    const rules = await open();
    ok(await rules.sign(commitA(0)));
    const bytes = encodeSafetyRecord(rules.record!);
    expect(encodeSafetyRecord(decodeSafetyRecord(bytes))).toEqual(bytes);
    const corrupt = bytes.subarray(0, bytes.length - 1);
    await expect(open(createMemorySafetyStore(corrupt))).rejects.toMatchObject({
      code: 'CORRUPT_SAFETY_RECORD',
    });
    await expect(open(createMemorySafetyStore(Uint8Array.from([1, 2, 3])))).rejects.toMatchObject({
      code: 'CORRUPT_SAFETY_RECORD',
    });
  });
});
