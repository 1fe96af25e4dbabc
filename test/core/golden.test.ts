// Goal: the canonical bytes of a transaction, a header, a receipt and a commit vote never change by accident.
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import { canonicalValue } from '../../core/codec.ts';
import {
  decodeHeader,
  decodeReceipt,
  decodeSignedTx,
  encodeCommitVote,
  encodeHeader,
  encodeTxBody,
  encodeReceipt,
  hashHeader,
  signTx,
  verifyTx,
} from '../../core/types.ts';
import { header, keys, receipt, tx } from './vectors.ts';

const FILE = new URL('../fixtures/core/golden.json', import.meta.url);

function current(): Record<string, string> {
  const stx = signTx(tx, keys.secretKey);
  return {
    publicKey: toHex(keys.publicKey),
    txBody: toHex(stx.body),
    txSigned: toHex(stx.bytes),
    txHash: toHex(stx.hash),
    header: toHex(encodeHeader(header)),
    blockHash: toHex(hashHeader(header)),
    receipt: toHex(encodeReceipt(receipt)),
    commitVote: toHex(encodeCommitVote('trellis-golden', 42, 1, hashHeader(header))),
  };
}

if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(FILE, JSON.stringify(current(), null, 2) + '\n');
const golden = JSON.parse(readFileSync(FILE, 'utf8')) as Record<string, string>;

describe('golden vectors', () => {
  it('encodes exactly the committed bytes', () => {
    expect(current()).toEqual(golden);
  });

  it('decodes the committed bytes back to the same structures', () => {
    const stx = decodeSignedTx(Buffer.from(golden['txSigned']!.slice(2), 'hex'), 'trellis-golden');
    expect(verifyTx(stx)).toBe(true);
    expect(stx.tx.args).toEqual(canonicalValue(tx.args));
    expect((stx.tx.args as Record<string, unknown>)['big']).toBe(2n ** 60n);
    expect(toHex(encodeTxBody(stx.tx))).toBe(golden['txBody']);
    expect(toHex(encodeHeader(decodeHeader(Buffer.from(golden['header']!.slice(2), 'hex'))))).toBe(
      golden['header'],
    );
    const decoded = decodeReceipt(Buffer.from(golden['receipt']!.slice(2), 'hex'));
    expect(toHex(decoded.txHash)).toBe(toHex(receipt.txHash));
    expect(toHex(encodeReceipt(decoded))).toBe(golden['receipt']);
  });
});
