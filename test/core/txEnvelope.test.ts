// Goal: the direct reading of a transaction envelope accepts exactly the canonical encoding, as the
// generic decoder does: the same body and signature for every valid transaction, and the same
// refusals (non-canonical lengths, trailing bytes, wrong shapes) for every variant of it.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import { pack } from '../../core/codec.ts';
import { CodecError } from '../../core/errors.ts';
import { keyPairFromSecret } from '../../core/keys.ts';
import { sha256 } from '../../core/hash.ts';
import { decodeSignedTx, signTx } from '../../core/types.ts';

const key = keyPairFromSecret(sha256(Buffer.from('envelope')));
const signed = (memo: string) =>
  signTx(
    {
      chainId: 'env',
      from: key.publicKey,
      nonce: 1,
      kind: 'call',
      contract: 'c',
      method: 'm',
      args: { memo },
      gasLimit: 10,
    },
    key.secretKey,
  );

function codeOf(bytes: Uint8Array): string {
  try {
    decodeSignedTx(bytes);
    return 'OK';
  } catch (e) {
    expect(e).toBeInstanceOf(CodecError);
    return (e as CodecError).code;
  }
}

/** The envelope with the body's length written in a longer form than the shortest. */
function widened(body: Uint8Array, sig: Uint8Array, form: 0xc5 | 0xc6): Uint8Array {
  const head =
    form === 0xc5
      ? [0x92, 0xc5, body.length >> 8, body.length & 0xff]
      : [0x92, 0xc6, 0, 0, body.length >> 8, body.length & 0xff];
  return Uint8Array.from([...head, ...body, 0xc4, 0x40, ...sig]);
}

describe('transaction envelope', () => {
  it('decodes every canonical envelope to its body and signature, across the bin8/bin16/bin32 boundaries', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 300 }), fc.constantFrom('x'.repeat(65_600), 'y'.repeat(200))),
        (memo) => {
          const t = signed(memo);
          const d = decodeSignedTx(t.bytes, 'env');
          expect(toHex(d.body)).toBe(toHex(t.body));
          expect(toHex(d.signature)).toBe(toHex(t.signature));
          expect(toHex(d.hash)).toBe(toHex(t.hash));
          expect(toHex(pack([d.body, d.signature]))).toBe(toHex(t.bytes));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses longer-than-needed length forms, trailing bytes and other shapes, as the generic decoder does', () => {
    const t = signed('hello');
    expect(codeOf(widened(t.body, t.signature, 0xc5))).toBe('NON_CANONICAL');
    expect(codeOf(widened(t.body, t.signature, 0xc6))).toBe('NON_CANONICAL');
    expect(codeOf(Uint8Array.from([...t.bytes, 0]))).toBe('TRAILING_BYTES');
    expect(codeOf(t.bytes.subarray(0, t.bytes.length - 1))).toBe('MALFORMED');
    const three = pack([t.body, t.signature, 1]);
    expect(codeOf(three)).toBe('WRONG_SHAPE');
    const shortSig = pack([t.body, t.signature.subarray(0, 63)]);
    expect(codeOf(shortSig)).toBe('WRONG_SHAPE');
    // A body with a changed length byte no longer frames the signature.
    const bent = Uint8Array.from(t.bytes);
    bent[2] = bent[2]! - 1;
    expect(codeOf(bent)).not.toBe('OK');
  });
});
