/**
 * bench:core — the primitives on the hot path: canonical encode/decode, SHA-256, Ed25519 sign and
 * verify with node:crypto next to @noble/curves, and LevelDB batch commits. Prints a table.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256 } from '../core/hash.ts';
import { generateKeyPair, sign, verify } from '../core/keys.ts';
import { decodeSignedTx, signTx, verifyTx } from '../core/types.ts';
import { openLevelStore, type BatchOp } from '../node/storage/kv.ts';
import { measure, table, type Row } from './measure.ts';

const kp = generateKeyPair();
const stx = signTx(
  {
    chainId: 'bench',
    from: kp.publicKey,
    nonce: 1,
    kind: 'call',
    contract: 'receivables',
    method: 'transfer',
    args: { id: 'RCV-000123', to: '0x' + 'ab'.repeat(20), amount: 125_000, opId: 'op-42' },
    gasLimit: 1_000_000,
  },
  kp.secretKey,
);
const msg = stx.body;
const sig = sign(msg, kp.secretKey);
const kb = new Uint8Array(1024).fill(7);

const rows: Row[] = [];
rows.push(await measure('tx encode + sign (node:crypto)', () => signTx(stx.tx, kp.secretKey)));
rows.push(await measure('tx decode (canonical check)', () => decodeSignedTx(stx.bytes, 'bench')));
rows.push(await measure('tx decode + verify', () => verifyTx(decodeSignedTx(stx.bytes, 'bench'))));
rows.push(await measure('sha256 32 B (node:crypto)', () => sha256(kp.publicKey)));
rows.push(await measure('sha256 32 B (@noble/hashes)', () => nobleSha256(kp.publicKey)));
rows.push(await measure('sha256 1 KiB (node:crypto)', () => sha256(kb)));
rows.push(await measure('sha256 1 KiB (@noble/hashes)', () => nobleSha256(kb)));
rows.push(await measure('ed25519 sign (node:crypto)', () => sign(msg, kp.secretKey)));
rows.push(await measure('ed25519 sign (@noble/curves)', () => ed25519.sign(msg, kp.secretKey)));
rows.push(await measure('ed25519 verify (node:crypto)', () => verify(sig, msg, kp.publicKey)));
rows.push(await measure('ed25519 verify (@noble/curves)', () => ed25519.verify(sig, msg, kp.publicKey)));

const dir = mkdtempSync(join(tmpdir(), 'trellis-bench-'));
for (const syncWrites of [false, true]) {
  const db = await openLevelStore(join(dir, `db-${syncWrites}`), { syncWrites });
  let n = 0;
  const ops = (): BatchOp[] => {
    const out: BatchOp[] = [];
    for (let i = 0; i < 1000; i++) {
      const key = Buffer.alloc(8);
      key.writeBigUInt64BE(BigInt(n++));
      out.push({ type: 'put', key, value: kb.subarray(0, 200) });
    }
    return out;
  };
  const row = await measure(
    `LevelDB batch of 1,000 × 200 B puts (fsync ${syncWrites ? 'on' : 'off'})`,
    () => db.batch(ops()),
    {
      note: 'ops = batches',
    },
  );
  rows.push(row);
  await db.close();
}
rmSync(dir, { recursive: true, force: true });

console.log(`# bench:core on Node.js ${process.version}\n`);
console.log(table(rows));
