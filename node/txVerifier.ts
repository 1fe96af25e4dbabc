/**
 * Signature verification of incoming transactions off the main thread.
 *
 * Ed25519 verification is the largest cost of admitting a transaction (node:crypto, ~70 µs on a
 * free core), and the main thread also runs the RPC server, the consensus driver, the VM and
 * commits. With workers, transactions arriving through RPC and gossip are checked in batches on
 * other cores while the main thread goes on. Results are booleans only: what a transaction may do
 * is still decided on the main thread, so verification order cannot change any block.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { TrellisError } from '../core/errors.ts';
import { verifyTx, type SignedTransaction } from '../core/types.ts';

/** Why a verification was not run. */
export type TxVerifierErrorCode = 'BUSY' | 'CLOSED';

/** Raised when the verifier cannot take more work (BUSY) or was closed (CLOSED). */
export class TxVerifierError extends TrellisError<TxVerifierErrorCode> {}

/** Options of {@link createTxVerifier}. */
export interface TxVerifierOptions {
  /** Worker threads; 0 verifies on the calling thread. Default {@link defaultVerifyWorkers}. */
  readonly workers?: number;
  /** Most signatures waiting or in flight; clients and peers grow this, so it is bounded. */
  readonly maxPending?: number;
  /** Most signatures in one message to a worker. */
  readonly maxBatch?: number;
}

/** Verifies transaction signatures, in batches on worker threads when it has them. */
export interface TxVerifier {
  /** Resolves one boolean per transaction (true: the signature is valid for sender and body). */
  verify(txs: readonly SignedTransaction[]): Promise<boolean[]>;
  /** Signatures waiting or in flight. */
  readonly pending: number;
  readonly workers: number;
  /** Stops the workers; verifications still pending are finished on the calling thread. */
  close(): Promise<void>;
}

/** One worker per spare core, at most 4: the main thread keeps one core for itself. */
export function defaultVerifyWorkers(): number {
  return Math.max(0, Math.min(4, availableParallelism() - 1));
}

interface Item {
  readonly stx: SignedTransaction;
  readonly done: (ok: boolean) => void;
}

interface WorkerSlot {
  worker: Worker;
  /** Batches sent and not answered, by request id. */
  readonly inFlight: Map<number, Item[]>;
  load: number;
}

const WORKER_URL = new URL('./txVerifierWorker.ts', import.meta.url);

/** Creates a verifier; with `workers: 0` it verifies synchronously on the calling thread. */
export function createTxVerifier(options: TxVerifierOptions = {}): TxVerifier {
  const workerCount = options.workers ?? defaultVerifyWorkers();
  const maxPending = options.maxPending ?? 20_000;
  const maxBatch = options.maxBatch ?? 256;
  let queue: Item[] = [];
  let pending = 0;
  let nextId = 1;
  let closed = false;
  let flushScheduled = false;
  const slots: WorkerSlot[] = [];

  function verifyHere(items: readonly Item[]): void {
    for (const it of items) it.done(verifyTx(it.stx));
  }

  function spawn(): WorkerSlot {
    const slot: WorkerSlot = { worker: new Worker(WORKER_URL), inFlight: new Map(), load: 0 };
    slot.worker.unref();
    slot.worker.on('message', (m: { id: number; results: Uint8Array }) => {
      const items = slot.inFlight.get(m.id);
      if (items === undefined) return;
      slot.inFlight.delete(m.id);
      slot.load -= items.length;
      for (let i = 0; i < items.length; i++) items[i]!.done(m.results[i] === 1);
    });
    // A worker that dies takes no verification with it: its batches are verified here, and a new
    // worker takes its place (unless the verifier is closing).
    const lost = (): void => {
      const items = [...slot.inFlight.values()].flat();
      slot.inFlight.clear();
      slot.load = 0;
      verifyHere(items);
      if (!closed) {
        const i = slots.indexOf(slot);
        if (i >= 0) slots[i] = spawn();
      }
    };
    slot.worker.on('error', lost);
    slot.worker.on('exit', lost);
    return slot;
  }
  for (let i = 0; i < workerCount; i++) slots.push(spawn());

  function encode(items: readonly Item[]): Uint8Array<ArrayBuffer> {
    let size = 0;
    for (const it of items) size += 100 + it.stx.body.length;
    const data = new Uint8Array(new ArrayBuffer(size));
    const view = new DataView(data.buffer);
    let at = 0;
    for (const it of items) {
      const { signature, body, tx } = it.stx;
      data.set(signature, at);
      data.set(tx.from, at + 64);
      view.setUint32(at + 96, body.length);
      data.set(body, at + 100);
      at += 100 + body.length;
    }
    return data;
  }

  function flush(): void {
    flushScheduled = false;
    const items = queue;
    queue = [];
    for (let start = 0; start < items.length; start += maxBatch) {
      const batch = items.slice(start, start + maxBatch);
      let slot = slots[0]!;
      for (const s of slots) if (s.load < slot.load) slot = s;
      const id = nextId++;
      slot.inFlight.set(id, batch);
      slot.load += batch.length;
      const data = encode(batch);
      slot.worker.postMessage({ id, count: batch.length, data }, [data.buffer]);
    }
  }

  return {
    verify(txs) {
      if (closed) return Promise.reject(new TxVerifierError('CLOSED', 'the verifier is closed', {}));
      if (slots.length === 0) return Promise.resolve(txs.map((t) => verifyTx(t)));
      if (pending + txs.length > maxPending) {
        return Promise.reject(
          new TxVerifierError('BUSY', `${pending} signatures are waiting for verification`, { pending }),
        );
      }
      pending += txs.length;
      return new Promise<boolean[]>((resolve) => {
        const results = new Array<boolean>(txs.length);
        let left = txs.length;
        if (left === 0) resolve(results);
        txs.forEach((stx, i) => {
          // The batch frame holds exactly 64 + 32 bytes of signature and key: anything else is not
          // a valid signature anyway (decodeSignedTx refuses it first).
          if (stx.signature.length !== 64 || stx.tx.from.length !== 32) {
            pending--;
            results[i] = false;
            if (--left === 0) resolve(results);
            return;
          }
          queue.push({
            stx,
            done: (ok) => {
              pending--;
              results[i] = ok;
              if (--left === 0) resolve(results);
            },
          });
        });
        if (!flushScheduled) {
          flushScheduled = true;
          setImmediate(flush);
        }
      });
    },
    get pending() {
      return pending;
    },
    workers: workerCount,
    async close() {
      if (closed) return;
      closed = true;
      if (flushScheduled) flush();
      await Promise.all(slots.map((s) => s.worker.terminate()));
    },
  };
}
