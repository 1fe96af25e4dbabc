/**
 * Worker thread of node/txVerifier.ts: verifies batches of Ed25519 signatures with node:crypto
 * (its own per-key KeyObject cache, in core/keys.ts) and answers one byte per item (1 valid, 0 not).
 */
import { parentPort } from 'node:worker_threads';
import { verify } from '../core/keys.ts';

/** One batch: concatenated items, each signature (64) + public key (32) + body length (u32) + body. */
interface VerifyRequest {
  readonly id: number;
  readonly count: number;
  readonly data: Uint8Array;
}

const port = parentPort;
if (port === null) throw new Error('txVerifierWorker must run in a worker thread');

port.on('message', (req: VerifyRequest) => {
  const out = new Uint8Array(req.count);
  const d = req.data;
  const view = new DataView(d.buffer, d.byteOffset, d.byteLength);
  let at = 0;
  for (let i = 0; i < req.count; i++) {
    const signature = d.subarray(at, at + 64);
    const publicKey = d.subarray(at + 64, at + 96);
    const len = view.getUint32(at + 96);
    const body = d.subarray(at + 100, at + 100 + len);
    at += 100 + len;
    out[i] = verify(signature, body, publicKey) ? 1 : 0;
  }
  port.postMessage({ id: req.id, results: out }, [out.buffer]);
});
