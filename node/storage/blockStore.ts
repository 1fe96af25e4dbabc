import { bytesEqual, toHex, type Bytes } from '../../core/bytes.ts';
import {
  canonicalValue,
  pack,
  readArray,
  readBytes,
  readString,
  readUint,
  unpackCanonical,
  type Value,
} from '../../core/codec.ts';
import { HASH_BYTES } from '../../core/hash.ts';
import { merkleRoot } from '../../core/merkle.ts';
import {
  decodeBlock,
  decodeCertificate,
  decodeReceipt,
  encodeBlock,
  encodeCertificate,
  encodeReceipt,
  hashHeader,
  Limits,
  txHashOfWire,
  type Block,
  type CommitCertificate,
  type Receipt,
} from '../../core/types.ts';
import { StorageError } from './errors.ts';
import type { BatchOp, KvStore } from './kv.ts';
import {
  Bucket,
  EVENT_POSITION_BYTES,
  createRepository,
  eventPositionKey,
  fixedBytesKey,
  heightKey,
  prefixEnd,
  receiptPositionKey,
  type Codec,
  type EventPosition,
  type ReceiptPosition,
} from './repository.ts';

export type { EventPosition } from './repository.ts';

/** The prevHash of the first block when the store is not bound to a genesis hash. */
export const ZERO_HASH: Bytes = new Uint8Array(HASH_BYTES);

/** Height of the first block; the genesis file is the chain's "block 0". */
export const FIRST_HEIGHT = 1;

/** Most events one query returns: a client pages with the cursor beyond this. */
export const MAX_EVENTS_PER_QUERY = 1000;

/**
 * Most event entries one query examines before returning a cursor, so a filter that matches
 * rarely (an event name without its contract) cannot make one request scan the whole chain.
 */
export const MAX_EVENTS_SCANNED_PER_QUERY = 10_000;

/** The committed tip of the chain. */
export interface ChainHead {
  readonly height: number;
  /** Hash of the head block's header. */
  readonly hash: Bytes;
}

/** Where a transaction (or a scheduled callback's receipt) sits in the chain. */
export interface TxLocation {
  readonly height: number;
  /** Position of its receipt in the block's receipts. */
  readonly receiptIndex: number;
  /** Position in the block's transactions; absent for a scheduled callback, which has no transaction. */
  readonly txIndex?: number;
}

/** A stored event with its position. */
export interface StoredEvent extends EventPosition {
  /** Hash of the transaction (or callback schedule entry) whose receipt carries the event. */
  readonly txHash: Bytes;
  readonly contract: string;
  readonly name: string;
  readonly data: Value;
}

/** An event query: a height range, optional filters, and a cursor to continue after. */
export interface EventQuery {
  readonly fromHeight: number;
  /** Inclusive; clamped to the head. */
  readonly toHeight: number;
  readonly contract?: string;
  /** Event name; combined with `contract` it uses an index, alone it filters a bounded scan. */
  readonly name?: string;
  /** Return only events strictly after this position (the `next` of a previous page). */
  readonly after?: EventPosition;
  /** At most {@link MAX_EVENTS_PER_QUERY}; default 100. */
  readonly limit?: number;
}

/** One page of events. */
export interface EventPage {
  readonly events: StoredEvent[];
  /** Present when the range may hold more matches: pass it as `after` to continue. */
  readonly next?: EventPosition;
}

/** What one committed block writes. */
export interface CommitInput {
  readonly block: Block;
  readonly certificate: CommitCertificate;
  /** One per transaction (matched by txHash), plus any scheduled callbacks, in execution order. */
  readonly receipts: readonly Receipt[];
  /** Further writes (the state tree's) that must land in the same atomic batch. */
  readonly extraOps?: readonly BatchOp[];
}

/** Options of {@link createBlockStore}. */
export interface BlockStoreOptions {
  /**
   * The network's genesis hash: the first block's prevHash, and recorded in the store so a data
   * dir can never be opened for another network. Without it the first prevHash is {@link ZERO_HASH}.
   */
  readonly genesisHash?: Bytes;
  /** When set, every committed block must carry this chainId. */
  readonly chainId?: string;
}

/**
 * Durable blocks, commit certificates, receipts, events and their indexes over a {@link KvStore}.
 * Each committed block is one atomic batch (with the caller's state writes), so after a crash
 * the head is either the old block or the new one, complete with every index.
 */
export interface BlockStore {
  /** The committed head, or undefined before the first block. Cached; no I/O. */
  getHead(): ChainHead | undefined;
  /** The genesis hash this store is bound to, if any. */
  readonly genesisHash: Bytes | undefined;
  /**
   * Validates and commits the next block in one atomic batch: block by height and hash,
   * certificate, receipts, tx index, events and their indexes, head pointer, and `extraOps`.
   * Calls are serialised. Throws StorageError (nothing written) if the block does not extend the
   * head, the certificate is not for it, or the receipts do not match it (a transaction without a
   * receipt, or receipts whose Merkle root of encodeReceipt bytes is not header.receiptsRoot).
   * It does not verify certificate signatures (that needs the validator set: see
   * core checkCertificate) nor look up earlier blocks for a repeated tx hash (nonces rule that
   * out before execution; a repeat would re-point the tx index).
   */
  commitBlock(input: CommitInput): Promise<ChainHead>;
  getBlockByHeight(height: number): Promise<Block | undefined>;
  /** The block's canonical bytes, exactly as stored, for serving to peers. */
  getBlockBytes(height: number): Promise<Bytes | undefined>;
  getBlockByHash(hash: Bytes): Promise<Block | undefined>;
  getHeightByHash(hash: Bytes): Promise<number | undefined>;
  getCertificate(height: number): Promise<CommitCertificate | undefined>;
  getCertificateBytes(height: number): Promise<Bytes | undefined>;
  getTxLocation(txHash: Bytes): Promise<TxLocation | undefined>;
  getReceipt(height: number, receiptIndex: number): Promise<Receipt | undefined>;
  /** The receipt of a transaction or scheduled callback by its hash. */
  getReceiptByTxHash(txHash: Bytes): Promise<Receipt | undefined>;
  /** Every receipt of a block, in order. */
  getReceipts(height: number): Promise<Receipt[]>;
  /** Events in a height range, optionally of one contract and name, in chain order, paged. */
  getEvents(query: EventQuery): Promise<EventPage>;
}

// Value codecs.

const blockCodec: Codec<Block> = { encode: encodeBlock, decode: decodeBlock };
const certificateCodec: Codec<CommitCertificate> = { encode: encodeCertificate, decode: decodeCertificate };
const receiptCodec: Codec<Receipt> = { encode: encodeReceipt, decode: decodeReceipt };

const heightValue: Codec<number> = {
  encode: (h) => pack(h),
  decode: (b) => readUint(unpackCanonical(b, 'height'), 'height'),
};

const txLocationValue: Codec<TxLocation> = {
  encode: (l) => pack([l.height, l.receiptIndex, l.txIndex ?? null]),
  decode(b) {
    const f = readArray(unpackCanonical(b, 'tx location'), 3, 'tx location');
    const loc = {
      height: readUint(f[0], 'tx location.height'),
      receiptIndex: readUint(f[1], 'tx location.receiptIndex'),
    };
    return f[2] === null ? loc : { ...loc, txIndex: readUint(f[2], 'tx location.txIndex') };
  },
};

interface EventRecord {
  readonly txHash: Bytes;
  readonly contract: string;
  readonly name: string;
  readonly data: Value;
}

const eventValue: Codec<EventRecord> = {
  encode: (e) => pack([e.txHash, e.contract, e.name, canonicalValue(e.data, 'event.data')]),
  decode(b) {
    const f = readArray(unpackCanonical(b, 'event'), 4, 'event');
    return {
      txHash: readBytes(f[0], 'event.txHash', HASH_BYTES),
      contract: readString(f[1], 'event.contract', Limits.maxNameLength),
      name: readString(f[2], 'event.name', Limits.maxNameLength),
      data: canonicalValue(f[3], 'event.data'),
    };
  },
};

const headValue: Codec<ChainHead> = {
  encode: (h) => pack([h.height, h.hash]),
  decode(b) {
    const f = readArray(unpackCanonical(b, 'head'), 2, 'head');
    return { height: readUint(f[0], 'head.height'), hash: readBytes(f[1], 'head.hash', HASH_BYTES) };
  },
};

const emptyValue: Codec<null> = { encode: () => new Uint8Array(0), decode: () => null };

// Keys of the secondary event indexes: length-prefixed names, then the event position, so one
// contract's (or one contract-and-name's) events form one contiguous, ordered key range.

/**
 * Encoded name prefixes, cached because every event of a block builds two index keys from the
 * same few contract and event names. Bounded: cleared when full, since names come from contracts.
 */
const MAX_CACHED_PREFIXES = 4096;
const prefixCache = new Map<string, Bytes>();

function namePrefix(names: readonly string[]): Bytes {
  const id = names.join('\u0000');
  const cached = prefixCache.get(id);
  if (cached !== undefined) return cached;
  const encoded = names.map((n) => Buffer.from(n, 'utf8'));
  const out = new Uint8Array(encoded.reduce((sum, b) => sum + 1 + b.length, 0));
  let at = 0;
  for (const [i, b] of encoded.entries()) {
    if (b.length > 255) {
      throw new StorageError('BAD_QUERY', `name "${names[i]}" is longer than 255 bytes`, {});
    }
    out[at] = b.length;
    out.set(b, at + 1);
    at += 1 + b.length;
  }
  if (prefixCache.size >= MAX_CACHED_PREFIXES) prefixCache.clear();
  prefixCache.set(id, out);
  return out;
}

interface IndexedEvent {
  readonly names: readonly string[];
  readonly position: EventPosition;
}

function indexedEventKey(nameCount: number): Codec<IndexedEvent> {
  return {
    encode(e) {
      const prefix = namePrefix(e.names);
      const out = new Uint8Array(prefix.length + EVENT_POSITION_BYTES);
      out.set(prefix, 0);
      out.set(eventPositionKey.encode(e.position), prefix.length);
      return out;
    },
    decode(bytes) {
      const names: string[] = [];
      let at = 0;
      for (let i = 0; i < nameCount; i++) {
        const len = bytes[at];
        if (len === undefined || at + 1 + len > bytes.length) throw new Error('truncated event index key');
        names.push(Buffer.from(bytes.subarray(at + 1, at + 1 + len)).toString('utf8'));
        at += 1 + len;
      }
      return { names, position: eventPositionKey.decode(bytes.subarray(at)) };
    },
  };
}

/** Buckets the block store owns: extraOps may not write into them. */
const BLOCK_STORE_BUCKETS: ReadonlySet<number> = new Set([
  Bucket.meta,
  Bucket.blockByHeight,
  Bucket.heightByHash,
  Bucket.certificate,
  Bucket.txLocation,
  Bucket.receipt,
  Bucket.event,
  Bucket.eventByContract,
  Bucket.eventByContractName,
]);

const META_HEAD = Uint8Array.from(Buffer.from('head'));
const META_GENESIS = Uint8Array.from(Buffer.from('genesis'));

const metaKey: Codec<Bytes> = { encode: (b) => b, decode: (b) => Uint8Array.from(b) };
const hashBytesValue: Codec<Bytes> = {
  encode: (b) => pack(b),
  decode: (b) => readBytes(unpackCanonical(b, 'genesis hash'), 'genesis hash', HASH_BYTES),
};

/** The hash of a transaction's wire bytes: SHA-256 of its signed body, as core defines it. */
function positionAfter(p: EventPosition): EventPosition {
  // The next possible position in key order: same receipt, next event. Indexes fit 32 bits, so
  // bumping past 0xffffffff carries into the receipt index.
  if (p.eventIndex < 0xffff_ffff) return { ...p, eventIndex: p.eventIndex + 1 };
  if (p.receiptIndex < 0xffff_ffff)
    return { height: p.height, receiptIndex: p.receiptIndex + 1, eventIndex: 0 };
  return { height: p.height + 1, receiptIndex: 0, eventIndex: 0 };
}

function comparePositions(a: EventPosition, b: EventPosition): number {
  return a.height - b.height || a.receiptIndex - b.receiptIndex || a.eventIndex - b.eventIndex;
}

function checkHeightArg(h: number, what: string): void {
  if (!Number.isSafeInteger(h) || h < 0) {
    throw new StorageError('BAD_QUERY', `${what}: expected a non-negative integer, got ${h}`, { [what]: h });
  }
}

/**
 * Opens the block store over `kv`: reads and checks the head (its block and certificate must be
 * present) and binds the store to `options.genesisHash`, refusing a data dir of another network.
 */
export async function createBlockStore(kv: KvStore, options: BlockStoreOptions = {}): Promise<BlockStore> {
  const meta = createRepository(kv, 'meta', Bucket.meta, metaKey, {
    encode: (v: Bytes) => v,
    decode: (v: Bytes) => v,
  });
  const blocks = createRepository(kv, 'blockByHeight', Bucket.blockByHeight, heightKey, blockCodec);
  const heightByHash = createRepository(
    kv,
    'heightByHash',
    Bucket.heightByHash,
    fixedBytesKey(HASH_BYTES),
    heightValue,
  );
  const certificates = createRepository(kv, 'certificate', Bucket.certificate, heightKey, certificateCodec);
  const txLocations = createRepository(
    kv,
    'txLocation',
    Bucket.txLocation,
    fixedBytesKey(HASH_BYTES),
    txLocationValue,
  );
  const receipts = createRepository(kv, 'receipt', Bucket.receipt, receiptPositionKey, receiptCodec);
  const events = createRepository(kv, 'event', Bucket.event, eventPositionKey, eventValue);
  const eventsByContract = createRepository(
    kv,
    'eventByContract',
    Bucket.eventByContract,
    indexedEventKey(1),
    emptyValue,
  );
  const eventsByName = createRepository(
    kv,
    'eventByContractName',
    Bucket.eventByContractName,
    indexedEventKey(2),
    emptyValue,
  );

  const decodeMeta = <T>(codec: Codec<T>, key: Bytes, bytes: Bytes): T => {
    try {
      return codec.decode(bytes);
    } catch (err) {
      throw new StorageError(
        'CORRUPT',
        `meta ${Buffer.from(key).toString()}: stored bytes do not decode (${String(err)})`,
        {
          key: Buffer.from(key).toString(),
        },
      );
    }
  };

  // Bind to the genesis: a data dir written for one network must never serve another.
  const storedGenesisBytes = await meta.get(META_GENESIS);
  const storedGenesis =
    storedGenesisBytes === undefined
      ? undefined
      : decodeMeta(hashBytesValue, META_GENESIS, storedGenesisBytes);
  if (options.genesisHash !== undefined) {
    if (storedGenesis !== undefined && !bytesEqual(storedGenesis, options.genesisHash)) {
      throw new StorageError(
        'WRONG_GENESIS',
        `data dir belongs to the network with genesis ${toHex(storedGenesis)}, not ${toHex(options.genesisHash)}`,
        { stored: toHex(storedGenesis), expected: toHex(options.genesisHash) },
      );
    }
    if (storedGenesis === undefined) {
      await kv.batch([meta.putOp(META_GENESIS, hashBytesValue.encode(options.genesisHash))]);
    }
  }
  const genesisHash = options.genesisHash ?? storedGenesis;

  const headBytes = await meta.get(META_HEAD);
  let head = headBytes === undefined ? undefined : decodeMeta(headValue, META_HEAD, headBytes);
  if (head !== undefined) {
    // A head pointer written in the same batch as its block: if the block is not there, the
    // data dir was damaged outside our control.
    const block = await blocks.get(head.height);
    if (block === undefined || !bytesEqual(hashHeader(block.header), head.hash)) {
      throw new StorageError('CORRUPT', `head ${head.height} points at a missing or different block`, {
        height: head.height,
      });
    }
    if (!(await certificates.has(head.height))) {
      throw new StorageError('CORRUPT', `head ${head.height} has no commit certificate`, {
        height: head.height,
      });
    }
  }

  let queue: Promise<unknown> = Promise.resolve();

  function buildCommit(input: CommitInput): { ops: BatchOp[]; next: ChainHead } {
    const { block, certificate } = input;
    const h = block.header;
    const expectedHeight = head === undefined ? FIRST_HEIGHT : head.height + 1;
    if (h.height !== expectedHeight) {
      throw new StorageError('WRONG_HEIGHT', `block height ${h.height}: expected ${expectedHeight}`, {
        height: h.height,
        expected: expectedHeight,
      });
    }
    const expectedPrev = head?.hash ?? genesisHash ?? ZERO_HASH;
    if (!bytesEqual(h.prevHash, expectedPrev)) {
      throw new StorageError(
        'WRONG_PREV_HASH',
        `block ${h.height}: prevHash ${toHex(h.prevHash)}, expected ${toHex(expectedPrev)}`,
        { height: h.height, prevHash: toHex(h.prevHash), expected: toHex(expectedPrev) },
      );
    }
    if (options.chainId !== undefined && h.chainId !== options.chainId) {
      throw new StorageError(
        'WRONG_CHAIN',
        `block ${h.height}: chainId "${h.chainId}", expected "${options.chainId}"`,
        {
          chainId: h.chainId,
          expected: options.chainId,
        },
      );
    }
    const hash = hashHeader(h);
    if (certificate.height !== h.height || !bytesEqual(certificate.blockHash, hash)) {
      throw new StorageError(
        'BAD_CERTIFICATE',
        `certificate for height ${certificate.height} block ${toHex(certificate.blockHash)} does not certify block ${h.height} ${toHex(hash)}`,
        { height: h.height },
      );
    }

    const receiptBytes = input.receipts.map(encodeReceipt);
    const root = merkleRoot(receiptBytes);
    if (!bytesEqual(root, h.receiptsRoot)) {
      throw new StorageError(
        'BAD_RECEIPTS',
        `block ${h.height}: receipts have root ${toHex(root)}, header says ${toHex(h.receiptsRoot)}`,
        { height: h.height },
      );
    }
    const receiptIndexByHash = new Map<string, number>();
    input.receipts.forEach((r, i) => {
      const id = toHex(r.txHash);
      if (receiptIndexByHash.has(id)) {
        throw new StorageError('BAD_RECEIPTS', `block ${h.height}: two receipts for ${id}`, {
          height: h.height,
          txHash: id,
        });
      }
      receiptIndexByHash.set(id, i);
    });

    const ops: BatchOp[] = [
      { type: 'put', key: blocks.key(h.height), value: encodeBlock(block) },
      heightByHash.putOp(hash, h.height),
      certificates.putOp(h.height, certificate),
    ];
    const txIndexByReceipt = new Map<number, number>();
    block.txs.forEach((tx, txIndex) => {
      const txHash = txHashOfWire(tx, `block.txs[${txIndex}]`);
      const receiptIndex = receiptIndexByHash.get(toHex(txHash));
      if (receiptIndex === undefined) {
        throw new StorageError('BAD_RECEIPTS', `block ${h.height}: transaction ${txIndex} has no receipt`, {
          height: h.height,
          txIndex,
        });
      }
      txIndexByReceipt.set(receiptIndex, txIndex);
    });
    input.receipts.forEach((r, receiptIndex) => {
      ops.push({
        type: 'put',
        key: receipts.key({ height: h.height, receiptIndex }),
        value: receiptBytes[receiptIndex]!,
      });
      const txIndex = txIndexByReceipt.get(receiptIndex);
      ops.push(
        txLocations.putOp(r.txHash, {
          height: h.height,
          receiptIndex,
          ...(txIndex === undefined ? {} : { txIndex }),
        }),
      );
      r.events.forEach((e, eventIndex) => {
        const position = { height: h.height, receiptIndex, eventIndex };
        ops.push(
          events.putOp(position, { txHash: r.txHash, contract: e.contract, name: e.name, data: e.data }),
        );
        ops.push(eventsByContract.putOp({ names: [e.contract], position }, null));
        ops.push(eventsByName.putOp({ names: [e.contract, e.name], position }, null));
      });
    });
    const next = { height: h.height, hash };
    for (const op of input.extraOps ?? []) {
      // Extra writes belong to other stores (state); they must not touch block-store buckets.
      if (op.key.length === 0 || BLOCK_STORE_BUCKETS.has(op.key[0]!)) {
        throw new StorageError(
          'FORBIDDEN_KEY',
          `extraOps: key ${toHex(op.key)} lies in a block-store bucket; use Bucket.state or another reserved bucket`,
          { key: toHex(op.key) },
        );
      }
      ops.push(op);
    }
    // The head pointer goes last in the batch; LevelDB applies a batch atomically anyway.
    ops.push(meta.putOp(META_HEAD, headValue.encode(next)));
    return { ops, next };
  }

  async function getEventsIndexed(
    index: typeof eventsByContract,
    names: string[],
    start: EventPosition,
    end: EventPosition,
    limit: number,
  ): Promise<EventPage> {
    const prefix = namePrefix(names);
    const lower = new Uint8Array(prefix.length + EVENT_POSITION_BYTES);
    lower.set(prefix);
    lower.set(eventPositionKey.encode(start), prefix.length);
    const upper = new Uint8Array(prefix.length + EVENT_POSITION_BYTES);
    upper.set(prefix);
    upper.set(eventPositionKey.encode(end), prefix.length);
    const found: StoredEvent[] = [];
    for await (const [k] of index.entries({ gte: lower, lt: upper, limit })) {
      const record = await events.get(k.position);
      if (record === undefined) {
        throw new StorageError(
          'CORRUPT',
          `${index.name} lists an event at ${JSON.stringify(k.position)} that is missing`,
          {
            position: k.position,
          },
        );
      }
      found.push({ ...k.position, ...record });
    }
    const last = found.at(-1);
    return found.length === limit && last !== undefined
      ? { events: found, next: positionOf(last) }
      : { events: found };
  }

  return {
    getHead: () => head,
    genesisHash,

    commitBlock(input) {
      const run = async (): Promise<ChainHead> => {
        const { ops, next } = buildCommit(input);
        await kv.batch(ops);
        head = next;
        return next;
      };
      const result = queue.then(run, run);
      queue = result.catch(() => undefined);
      return result;
    },

    async getBlockByHeight(height) {
      checkHeightArg(height, 'height');
      return blocks.get(height);
    },
    getBlockBytes(height) {
      checkHeightArg(height, 'height');
      return blocks.getBytes(height);
    },
    async getBlockByHash(hash) {
      const height = await heightByHash.get(hash);
      if (height === undefined) return undefined;
      const block = await blocks.get(height);
      if (block === undefined || !bytesEqual(hashHeader(block.header), hash)) {
        throw new StorageError(
          'CORRUPT',
          `hash index ${toHex(hash)} points at height ${height}, which holds another block`,
          {
            hash: toHex(hash),
            height,
          },
        );
      }
      return block;
    },
    getHeightByHash: (hash) => heightByHash.get(hash),
    getCertificate(height) {
      checkHeightArg(height, 'height');
      return certificates.get(height);
    },
    getCertificateBytes(height) {
      checkHeightArg(height, 'height');
      return certificates.getBytes(height);
    },
    getTxLocation: (txHash) => txLocations.get(txHash),
    getReceipt(height, receiptIndex) {
      checkHeightArg(height, 'height');
      return receipts.get({ height, receiptIndex });
    },
    async getReceiptByTxHash(txHash) {
      const loc = await txLocations.get(txHash);
      if (loc === undefined) return undefined;
      const r = await receipts.get(loc);
      if (r === undefined || !bytesEqual(r.txHash, txHash)) {
        throw new StorageError(
          'CORRUPT',
          `tx index ${toHex(txHash)} points at a missing or different receipt`,
          {
            txHash: toHex(txHash),
            ...loc,
          },
        );
      }
      return r;
    },
    async getReceipts(height) {
      checkHeightArg(height, 'height');
      const out: Receipt[] = [];
      const start: ReceiptPosition = { height, receiptIndex: 0 };
      const prefix = heightKey.encode(height);
      for await (const [pos, r] of receipts.entries({
        gte: receiptPositionKey.encode(start),
        ...(prefixEnd(prefix) === undefined ? {} : { lt: prefixEnd(prefix)! }),
      })) {
        if (pos.receiptIndex !== out.length) {
          throw new StorageError('CORRUPT', `block ${height}: receipt ${out.length} is missing`, { height });
        }
        out.push(r);
      }
      return out;
    },

    async getEvents(query) {
      checkHeightArg(query.fromHeight, 'fromHeight');
      checkHeightArg(query.toHeight, 'toHeight');
      const limit = query.limit ?? 100;
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_EVENTS_PER_QUERY) {
        throw new StorageError(
          'BAD_QUERY',
          `limit: expected an integer in [1, ${MAX_EVENTS_PER_QUERY}], got ${limit}`,
          {
            limit,
          },
        );
      }
      if (query.name === '' || query.contract === '') {
        throw new StorageError('BAD_QUERY', 'contract and name filters must be non-empty when given', {});
      }
      const toHeight = Math.min(query.toHeight, head?.height ?? 0);
      let start: EventPosition = { height: query.fromHeight, receiptIndex: 0, eventIndex: 0 };
      if (query.after !== undefined) {
        for (const f of ['height', 'receiptIndex', 'eventIndex'] as const)
          checkHeightArg(query.after[f], `after.${f}`);
        const afterNext = positionAfter(query.after);
        if (comparePositions(afterNext, start) > 0) start = afterNext;
      }
      const end: EventPosition = { height: toHeight + 1, receiptIndex: 0, eventIndex: 0 };
      if (query.fromHeight > toHeight || comparePositions(start, end) >= 0) return { events: [] };

      if (query.contract !== undefined) {
        return query.name === undefined
          ? getEventsIndexed(eventsByContract, [query.contract], start, end, limit)
          : getEventsIndexed(eventsByName, [query.contract, query.name], start, end, limit);
      }
      // No contract: walk the primary event order, filtering by name if asked, within a budget.
      const found: StoredEvent[] = [];
      let scanned = 0;
      for await (const [position, record] of events.entries({
        gte: eventPositionKey.encode(start),
        lt: eventPositionKey.encode(end),
      })) {
        scanned++;
        if (query.name === undefined || record.name === query.name) {
          found.push({ ...position, ...record });
          if (found.length === limit) return { events: found, next: position };
        }
        if (scanned >= MAX_EVENTS_SCANNED_PER_QUERY) return { events: found, next: position };
      }
      return { events: found };
    },
  };
}

function positionOf(e: EventPosition): EventPosition {
  return { height: e.height, receiptIndex: e.receiptIndex, eventIndex: e.eventIndex };
}
