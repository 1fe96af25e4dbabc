import type { Bytes } from '../../core/bytes.ts';
import { pack, readArray, readBytes, readList, readUint, unpackCanonical } from '../../core/codec.ts';
import { CodecError } from '../../core/errors.ts';
import { NAME_RE } from '../../core/types.ts';
import { P2pError } from './errors.ts';

/** The libp2p protocol ids of one network. */
export interface ProtocolIds {
  readonly consensus: string;
  readonly txs: string;
  readonly sync: string;
}

/**
 * Protocol ids carry the chainId, so nodes of two networks that reach each other negotiate no
 * protocol in common and exchange nothing (the gater already refuses non-members; this also
 * separates two networks that share a member key by mistake).
 */
export function protocolIds(chainId: string): ProtocolIds {
  if (typeof chainId !== 'string' || !NAME_RE.test(chainId)) {
    throw new P2pError(
      'BAD_INPUT',
      'chainId: expected 1-64 characters of [A-Za-z0-9_.-], starting with a letter or _',
      {
        chainId,
      },
    );
  }
  return {
    consensus: `/trellis/${chainId}/consensus/1.0.0`,
    txs: `/trellis/${chainId}/txs/1.0.0`,
    sync: `/trellis/${chainId}/sync/1.0.0`,
  };
}

/** Largest encoded sync request: a tag and two integers. Anything longer is refused unread. */
export const MAX_SYNC_REQUEST_BYTES = 64;
/** Largest encoded status response: one integer. */
export const MAX_STATUS_RESPONSE_BYTES = 32;

const SYNC_STATUS = 0;
const SYNC_BLOCKS = 1;

/** A block-sync request: the peer's head height, or a range of (block, certificate) entries. */
export type SyncRequest =
  | { readonly kind: 'status' }
  | { readonly kind: 'blocks'; readonly fromHeight: number; readonly maxCount: number };

function protocolError(what: string, err: unknown): P2pError {
  if (err instanceof P2pError) return err;
  const reason = err instanceof CodecError ? err.message : String(err);
  return new P2pError('PROTOCOL', `${what}: ${reason}`, { what });
}

/** Canonical bytes of a sync request. */
export function encodeSyncRequest(req: SyncRequest): Bytes {
  return req.kind === 'status' ? pack([SYNC_STATUS]) : pack([SYNC_BLOCKS, req.fromHeight, req.maxCount]);
}

/** Decodes a peer's sync request; throws P2pError PROTOCOL on anything malformed. */
export function decodeSyncRequest(bytes: Bytes): SyncRequest {
  try {
    const v = unpackCanonical(bytes, 'sync request');
    if (!Array.isArray(v) || v.length === 0)
      throw new P2pError('PROTOCOL', 'sync request: expected a tagged array');
    const tag = readUint(v[0], 'sync request.tag');
    if (tag === SYNC_STATUS) {
      readArray(v, 1, 'sync request');
      return { kind: 'status' };
    }
    if (tag === SYNC_BLOCKS) {
      const f = readArray(v, 3, 'sync request');
      const fromHeight = readUint(f[1], 'sync request.fromHeight');
      const maxCount = readUint(f[2], 'sync request.maxCount');
      if (maxCount < 1) throw new P2pError('PROTOCOL', 'sync request.maxCount: expected at least 1');
      return { kind: 'blocks', fromHeight, maxCount };
    }
    throw new P2pError('PROTOCOL', `sync request: unknown tag ${tag}`, { tag });
  } catch (err) {
    throw protocolError('sync request', err);
  }
}

/** Canonical bytes of a status response (the responder's head height). */
export function encodeStatusResponse(height: number): Bytes {
  return pack([height]);
}

/** Decodes a status response; throws P2pError PROTOCOL on anything malformed. */
export function decodeStatusResponse(bytes: Bytes): number {
  try {
    const f = readArray(unpackCanonical(bytes, 'status response'), 1, 'status response');
    return readUint(f[0], 'status response.height');
  } catch (err) {
    throw protocolError('status response', err);
  }
}

// MessagePack overhead, worst case: an array header is at most 5 bytes, a bin header at most 5.
const ARRAY_HEADER_MAX = 5;
const BIN_HEADER_MAX = 5;

/** Canonical bytes of a transaction batch: an array of signed transaction byte strings. */
export function encodeTxBatch(txs: readonly Bytes[]): Bytes {
  return pack(txs);
}

/**
 * Decodes a peer's transaction batch, refusing more than `maxTxs` entries or any entry longer
 * than `maxTxBytes` (the frame bound already limits the total). Throws P2pError PROTOCOL.
 */
export function decodeTxBatch(bytes: Bytes, maxTxs: number, maxTxBytes: number): Bytes[] {
  try {
    const list = readList(unpackCanonical(bytes, 'tx batch'), maxTxs, 'tx batch');
    return list.map((tx, i) => readBytes(tx, `tx batch[${i}]`, undefined, maxTxBytes));
  } catch (err) {
    throw protocolError('tx batch', err);
  }
}

/**
 * Splits transactions into batches of at most `maxTxs` entries whose encoding fits
 * `maxBatchBytes`, preserving order (so per-sender nonces stay in sequence). Throws P2pError
 * TOO_LARGE, sending nothing, when one transaction alone exceeds `maxTxBytes` or cannot fit a batch.
 */
export function splitTxBatches(
  txs: readonly Bytes[],
  maxTxs: number,
  maxBatchBytes: number,
  maxTxBytes: number,
): Bytes[][] {
  if (!Array.isArray(txs)) throw new P2pError('BAD_INPUT', 'txs: expected an array of byte strings');
  const batches: Bytes[][] = [];
  let current: Bytes[] = [];
  let size = ARRAY_HEADER_MAX;
  txs.forEach((tx, i) => {
    if (!(tx instanceof Uint8Array))
      throw new P2pError('BAD_INPUT', `txs[${i}]: expected bytes`, { index: i });
    const cost = tx.length + BIN_HEADER_MAX;
    if (tx.length > maxTxBytes || ARRAY_HEADER_MAX + cost > maxBatchBytes) {
      throw new P2pError(
        'TOO_LARGE',
        `txs[${i}]: ${tx.length} bytes, at most ${maxTxBytes} per transaction`,
        {
          index: i,
          bytes: tx.length,
          maxTxBytes,
          maxBatchBytes,
        },
      );
    }
    if (current.length === maxTxs || size + cost > maxBatchBytes) {
      batches.push(current);
      current = [];
      size = ARRAY_HEADER_MAX;
    }
    current.push(tx);
    size += cost;
  });
  if (current.length > 0) batches.push(current);
  return batches;
}
