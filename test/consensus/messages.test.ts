// Goal: consensus messages have exactly one canonical encoding, pinned by golden vectors, and any
// malformed peer bytes come back as a MALFORMED_MESSAGE rejection value, never an exception.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { pack } from '../../core/codec.ts';
import { Tag, encodeCommitVote, hashHeader } from '../../core/types.ts';
import {
  decodeConsensusMessage,
  encodeConsensusMessage,
  signedBodyOf,
  type ConsensusMessage,
} from '../../consensus/messages.ts';
import { goldenMessages } from './goldenMessages.ts';
import { CHAIN, KEYS, blockFor, preparedCertificate, roundChange, validatorsOf, vote } from './helpers.ts';

const golden = JSON.parse(
  readFileSync(new URL('./fixtures/messages.json', import.meta.url), 'utf8'),
) as Record<string, string>;

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

function decodeOk(bytes: Uint8Array): ConsensusMessage {
  const r = decodeConsensusMessage(bytes);
  if (!r.ok) throw new Error(`expected a message, got ${r.error.message}`);
  return r.message;
}

function decodeErr(bytes: Uint8Array): string {
  const r = decodeConsensusMessage(bytes);
  if (r.ok) throw new Error('expected a rejection');
  expect(r.error.code).toBe('MALFORMED_MESSAGE');
  return r.error.message;
}

describe('consensus message codec', () => {
  const messages = goldenMessages();

  it.each(Object.keys(messages))('%s encodes to the committed golden bytes and decodes back', (name) => {
    const m = messages[name]!;
    const bytes = encodeConsensusMessage(m);
    expect(hex(bytes)).toBe(golden[name]);
    const back = decodeOk(Buffer.from(golden[name]!, 'hex'));
    expect(hex(encodeConsensusMessage(back))).toBe(golden[name]);
    expect(back.type).toBe(m.type);
    expect(hex(back.signature)).toBe(hex(m.signature));
    expect(hex(signedBodyOf(CHAIN, back))).toBe(hex(signedBodyOf(CHAIN, m)));
  });

  it('derives the proposal block hash from the header it carries', () => {
    const p = decodeOk(encodeConsensusMessage(messages['proposalRound1']!));
    expect(p.type).toBe('proposal');
    if (p.type !== 'proposal') return;
    expect(hex(p.blockHash)).toBe(hex(hashHeader(p.block.header)));
    expect(p.justification?.roundChanges).toHaveLength(3);
    expect(p.justification?.prepared?.prepares).toHaveLength(3);
  });

  it('signs bodies that start with the domain tag and the chainId', () => {
    const h = new Uint8Array(32).fill(9);
    const prepare = vote(KEYS[0]!, 'prepare', 3, 1, h);
    const commit = vote(KEYS[0]!, 'commit', 3, 1, h);
    expect(hex(signedBodyOf(CHAIN, prepare))).toBe(hex(pack([Tag.prepareVote, CHAIN, 3, 1, h])));
    // A commit signature is exactly a commit-certificate signature.
    expect(hex(signedBodyOf(CHAIN, commit))).toBe(hex(encodeCommitVote(CHAIN, 3, 1, h)));
    const rc = roundChange(KEYS[0]!, 3, 2);
    expect(hex(signedBodyOf(CHAIN, rc))).toBe(hex(pack([Tag.roundChange, CHAIN, 3, 2, null, null])));
    // Another chain's body differs, so a signature cannot be replayed across chains.
    expect(hex(signedBodyOf('other-chain', prepare))).not.toBe(hex(signedBodyOf(CHAIN, prepare)));
  });

  it('rejects trailing bytes, non-canonical integers and unknown types', () => {
    const bytes = encodeConsensusMessage(messages['prepare']!);
    expect(decodeErr(Buffer.concat([bytes, Buffer.from([0])]))).toMatch(/trailing/);
    // 0x96 array(6), then type 1 written as uint8 (0xcc 0x01) instead of a positive fixint.
    const nonCanonical = Buffer.concat([Buffer.from([0x96, 0xcc, 0x01]), bytes.subarray(2)]);
    expect(decodeErr(nonCanonical)).toMatch(/canonical/);
    expect(decodeErr(pack([9, 1, 0, new Uint8Array(32), new Uint8Array(20), new Uint8Array(64)]))).toMatch(
      /unknown message type/,
    );
    expect(decodeErr(pack([]))).toMatch(/non-empty array/);
    expect(decodeErr(pack({ type: 1 }))).toMatch(/non-empty array/);
  });

  it('rejects wrong field counts and wrong byte lengths, naming the field', () => {
    const h = new Uint8Array(32);
    expect(decodeErr(pack([1, 1, 0, h, new Uint8Array(20)]))).toMatch(/prepare: expected 6 fields/);
    expect(decodeErr(pack([1, 1, 0, h, new Uint8Array(19), new Uint8Array(64)]))).toMatch(/prepare.sender/);
    expect(decodeErr(pack([2, 1, 0, new Uint8Array(31), new Uint8Array(20), new Uint8Array(64)]))).toMatch(
      /commit.blockHash/,
    );
    expect(decodeErr(pack([1, -1, 0, h, new Uint8Array(20), new Uint8Array(64)]))).toMatch(/prepare.height/);
    expect(decodeErr(pack([1, 1, 0, h, new Uint8Array(20), new Uint8Array(63)]))).toMatch(
      /prepare.signature/,
    );
  });

  it('rejects a prepared certificate with unsorted or duplicate signers', () => {
    const vs = validatorsOf(4);
    const b = blockFor(vs, 2, 0);
    const cert = preparedCertificate(KEYS.slice(0, 3), 2, 0, hashHeader(b.header));
    const reversed = { ...cert, prepares: [...cert.prepares].reverse() };
    const rc = roundChange(KEYS[0]!, 2, 1, reversed, b);
    expect(decodeErr(encodeConsensusMessage(rc))).toMatch(/sorted/);
    const dup = { ...cert, prepares: [cert.prepares[0]!, cert.prepares[0]!] };
    expect(decodeErr(encodeConsensusMessage(roundChange(KEYS[0]!, 2, 1, dup, b)))).toMatch(/sorted/);
  });

  it('rejects a round change whose prepared certificate travels without its block', () => {
    const vs = validatorsOf(4);
    const b = blockFor(vs, 2, 0);
    const cert = preparedCertificate(KEYS.slice(0, 3), 2, 0, hashHeader(b.header));
    const rc = roundChange(KEYS[0]!, 2, 1, cert, b);
    const bytes = encodeConsensusMessage({ ...rc, preparedBlock: null });
    expect(decodeErr(bytes)).toMatch(/travels with its block/);
  });

  it('rejects messages above the size limit before parsing them', () => {
    const bytes = encodeConsensusMessage(messages['proposalRound0']!);
    const r = decodeConsensusMessage(bytes, bytes.length - 1);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.meta['size']).toBe(bytes.length);
    expect(decodeConsensusMessage(bytes, bytes.length).ok).toBe(true);
  });

  it('never throws on arbitrary bytes or on mutations of valid messages', () => {
    const valid = Object.values(messages).map((m) => encodeConsensusMessage(m));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const r = decodeConsensusMessage(bytes);
        expect(typeof r.ok).toBe('boolean');
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(
        fc.constantFrom(...valid),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        (bytes, edits) => {
          const copy = Uint8Array.from(bytes);
          for (const [at, value] of edits) copy[at % copy.length] = value;
          const r = decodeConsensusMessage(copy);
          // Either rejected, or decoded to something that re-encodes to exactly these bytes.
          if (r.ok) expect(hex(encodeConsensusMessage(r.message))).toBe(hex(copy));
        },
      ),
      { numRuns: 500 },
    );
    expect(decodeConsensusMessage('not bytes' as unknown as Uint8Array).ok).toBe(false);
  });
});
