// Goal: the block store keeps blocks, certificates, receipts, events and their indexes exactly
// as committed, refuses anything that would break the chain, and behaves the same on LevelDB and
// in memory.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bytesEqual, toHex, type Bytes } from '../../../core/bytes.ts';
import { sha256 } from '../../../core/hash.ts';
import { encodeBlock, encodeCertificate, hashHeader, type Block } from '../../../core/types.ts';
import {
  MAX_EVENTS_PER_QUERY,
  ZERO_HASH,
  createBlockStore,
  type BlockStore,
  type CommitInput,
  type EventPosition,
  type StoredEvent,
} from '../../../node/storage/blockStore.ts';
import { StorageError } from '../../../node/storage/errors.ts';
import { createMemoryStore, openLevelStore, type KvStore } from '../../../node/storage/kv.ts';
import { Bucket, bucketKey, heightKey } from '../../../node/storage/repository.ts';
import { CHAIN_ID, callbackHash, makeCommit } from './chainFixture.ts';

interface Backend {
  readonly name: string;
  open(): Promise<KvStore>;
  /** Closes and reopens the same data. */
  reopen(kv: KvStore): Promise<KvStore>;
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const backends: Backend[] = [
  {
    name: 'memory',
    open: () => Promise.resolve(createMemoryStore()),
    reopen: (kv) => Promise.resolve(kv),
  },
  {
    name: 'leveldb',
    open() {
      const dir = mkdtempSync(join(tmpdir(), 'trellis-blockstore-'));
      dirs.push(dir);
      return openLevelStore(dir, { syncWrites: false });
    },
    async reopen(kv) {
      const dir = dirs.at(-1)!;
      await kv.close();
      return openLevelStore(dir, { syncWrites: false });
    },
  },
];

async function commitChain(
  store: BlockStore,
  count: number,
  firstPrev: Bytes = ZERO_HASH,
): Promise<CommitInput[]> {
  const inputs: CommitInput[] = [];
  for (let h = 1; h <= count; h++) {
    const input = makeCommit(h, store.getHead(), firstPrev);
    await store.commitBlock(input);
    inputs.push(input);
  }
  return inputs;
}

/** Every event of the inputs, in chain order, computed from the inputs alone. */
function expectedEvents(inputs: CommitInput[]): StoredEvent[] {
  return inputs.flatMap((input) =>
    input.receipts.flatMap((r, receiptIndex) =>
      r.events.map((e, eventIndex) => ({
        height: input.block.header.height,
        receiptIndex,
        eventIndex,
        txHash: r.txHash,
        contract: e.contract,
        name: e.name,
        data: e.data,
      })),
    ),
  );
}

/** Deep copy with every byte string (Buffer or Uint8Array) as hex, so comparisons ignore the class. */
function norm(v: unknown): unknown {
  if (v instanceof Uint8Array) return toHex(v);
  if (Array.isArray(v)) return v.map(norm);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)]));
  }
  return v;
}

function strip(events: StoredEvent[]): unknown {
  return norm(events);
}

async function expectError(p: Promise<unknown>, code: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StorageError);
  expect((err as StorageError).code).toBe(code);
}

describe.each(backends)('block store on $name', (backend) => {
  it('starts empty', async () => {
    const store = await createBlockStore(await backend.open());
    expect(store.getHead()).toBeUndefined();
    expect(await store.getBlockByHeight(1)).toBeUndefined();
    expect(await store.getBlockByHash(sha256(Buffer.from('x')))).toBeUndefined();
    expect(await store.getEvents({ fromHeight: 0, toHeight: 100 })).toEqual({ events: [] });
  });

  it('serves every committed block, certificate, receipt and index back exactly', async () => {
    const kv = await backend.open();
    const store = await createBlockStore(kv, { chainId: CHAIN_ID });
    const inputs = await commitChain(store, 12);
    const last = inputs.at(-1)!.block;
    expect(store.getHead()).toEqual({ height: 12, hash: hashHeader(last.header) });

    for (const { block, certificate, receipts } of inputs) {
      const h = block.header.height;
      const hash = hashHeader(block.header);
      expect(norm(await store.getBlockByHeight(h))).toEqual(norm(block));
      expect(norm(await store.getBlockByHash(hash))).toEqual(norm(block));
      expect(await store.getHeightByHash(hash)).toBe(h);
      expect(bytesEqual((await store.getBlockBytes(h))!, encodeBlock(block))).toBe(true);
      expect(norm(await store.getCertificate(h))).toEqual(norm(certificate));
      expect(bytesEqual((await store.getCertificateBytes(h))!, encodeCertificate(certificate))).toBe(true);
      expect(norm(await store.getReceipts(h))).toEqual(norm(receipts));
      for (const [receiptIndex, r] of receipts.entries()) {
        expect(norm(await store.getReceipt(h, receiptIndex))).toEqual(norm(r));
        expect(norm(await store.getReceiptByTxHash(r.txHash))).toEqual(norm(r));
        const loc = await store.getTxLocation(r.txHash);
        if (bytesEqual(r.txHash, callbackHash(h))) {
          expect(loc).toEqual({ height: h, receiptIndex });
        } else {
          expect(loc).toEqual({ height: h, receiptIndex, txIndex: receiptIndex });
        }
      }
    }
    expect(await store.getBlockByHeight(13)).toBeUndefined();

    // Reopening finds the same head and data.
    const again = await createBlockStore(await backend.reopen(kv), { chainId: CHAIN_ID });
    expect(norm(again.getHead())).toEqual(norm(store.getHead()));
    expect(norm(await again.getBlockByHeight(7))).toEqual(norm(inputs[6]!.block));
  });

  it('refuses a block that does not extend the head, and writes nothing', async () => {
    const kv = await backend.open();
    const store = await createBlockStore(kv, { chainId: CHAIN_ID });
    await commitChain(store, 3);
    const head = store.getHead()!;
    const good = makeCommit(4, head, ZERO_HASH);

    const skip = makeCommit(5, head, ZERO_HASH);
    await expectError(store.commitBlock(skip), 'WRONG_HEIGHT');

    const forkHeader = { ...good.block.header, prevHash: sha256(Buffer.from('elsewhere')) };
    const fork: Block = { ...good.block, header: forkHeader };
    await expectError(
      store.commitBlock({
        ...good,
        block: fork,
        certificate: { ...good.certificate, blockHash: hashHeader(forkHeader) },
      }),
      'WRONG_PREV_HASH',
    );

    await expectError(
      store.commitBlock({
        ...good,
        certificate: { ...good.certificate, blockHash: sha256(Buffer.from('other')) },
      }),
      'BAD_CERTIFICATE',
    );
    await expectError(
      store.commitBlock({ ...good, certificate: { ...good.certificate, height: 5 } }),
      'BAD_CERTIFICATE',
    );

    // A receipt list that does not match the header's receiptsRoot.
    await expectError(store.commitBlock({ ...good, receipts: good.receipts.slice(1) }), 'BAD_RECEIPTS');
    // A transaction without a receipt, even when the root is recomputed to match.
    const missing = makeCommit(4, head, ZERO_HASH);
    expect(missing.block.txs.length).toBeGreaterThan(0);
    const { merkleRoot } = await import('../../../core/merkle.ts');
    const { encodeReceipt } = await import('../../../core/types.ts');
    const fewer = missing.receipts.slice(1);
    const hdr = { ...missing.block.header, receiptsRoot: merkleRoot(fewer.map(encodeReceipt)) };
    const blk = { ...missing.block, header: hdr };
    await expectError(
      store.commitBlock({
        block: blk,
        certificate: { ...missing.certificate, blockHash: hashHeader(hdr) },
        receipts: fewer,
      }),
      'BAD_RECEIPTS',
    );

    const otherChain = { ...good.block.header, chainId: 'other-chain' };
    await expectError(
      store.commitBlock({
        ...good,
        block: { ...good.block, header: otherChain },
        certificate: { ...good.certificate, blockHash: hashHeader(otherChain) },
      }),
      'WRONG_CHAIN',
    );

    await expectError(
      store.commitBlock({
        ...good,
        extraOps: [
          { type: 'put', key: bucketKey(Bucket.blockByHeight, heightKey.encode(4)), value: Uint8Array.of(1) },
        ],
      }),
      'FORBIDDEN_KEY',
    );

    expect(norm(store.getHead())).toEqual(norm(head));
    expect(await store.getBlockByHeight(4)).toBeUndefined();
    expect(await store.getTxLocation(good.receipts[0]!.txHash)).toBeUndefined();

    // The good block still goes in afterwards.
    await store.commitBlock(good);
    expect(store.getHead()!.height).toBe(4);
  });

  it('writes extraOps in the same batch as the block', async () => {
    const kv = await backend.open();
    const store = await createBlockStore(kv);
    const stateKey = bucketKey(Bucket.state, Buffer.from('root'));
    const input = makeCommit(1, undefined, ZERO_HASH);
    await store.commitBlock({
      ...input,
      extraOps: [{ type: 'put', key: stateKey, value: input.block.header.stateRoot }],
    });
    expect(norm(await kv.get(stateKey))).toEqual(norm(input.block.header.stateRoot));
  });

  it('serialises concurrent commits in call order', async () => {
    const store = await createBlockStore(await backend.open());
    const first = makeCommit(1, undefined, ZERO_HASH);
    const second = makeCommit(2, { height: 1, hash: hashHeader(first.block.header) }, ZERO_HASH);
    const [a, b] = await Promise.all([store.commitBlock(first), store.commitBlock(second)]);
    expect([a.height, b.height]).toEqual([1, 2]);
  });

  it('answers event queries by height range, contract and name, paging with a cursor', async () => {
    const store = await createBlockStore(await backend.open());
    const inputs = await commitChain(store, 15);
    const all = expectedEvents(inputs);
    expect(all.length).toBeGreaterThan(30);

    const everything = await store.getEvents({ fromHeight: 0, toHeight: 1000, limit: MAX_EVENTS_PER_QUERY });
    expect(strip(everything.events)).toEqual(strip(all));
    expect(everything.next).toBeUndefined();

    const inRange = await store.getEvents({ fromHeight: 4, toHeight: 9, limit: 1000 });
    expect(strip(inRange.events)).toEqual(strip(all.filter((e) => e.height >= 4 && e.height <= 9)));

    const byContract = await store.getEvents({
      fromHeight: 2,
      toHeight: 14,
      contract: 'warehouse',
      limit: 1000,
    });
    expect(strip(byContract.events)).toEqual(
      strip(all.filter((e) => e.contract === 'warehouse' && e.height >= 2 && e.height <= 14)),
    );
    const byName = await store.getEvents({
      fromHeight: 0,
      toHeight: 15,
      contract: 'receivables',
      name: 'Audited',
      limit: 1000,
    });
    expect(strip(byName.events)).toEqual(
      strip(all.filter((e) => e.contract === 'receivables' && e.name === 'Audited')),
    );
    expect(byName.events.length).toBeGreaterThan(0);
    const nameOnly = await store.getEvents({ fromHeight: 0, toHeight: 15, name: 'Matured', limit: 1000 });
    expect(strip(nameOnly.events)).toEqual(strip(all.filter((e) => e.name === 'Matured')));
    expect(nameOnly.events.length).toBe(5);

    // Paging with the cursor, three at a time, gives the same sequence for every filter.
    for (const filter of [
      {},
      { contract: 'receivables' },
      { contract: 'receivables', name: 'Transferred' },
      { name: 'Audited' },
    ]) {
      const paged: StoredEvent[] = [];
      let after: EventPosition | undefined;
      for (let pages = 0; pages < 100; pages++) {
        const page = await store.getEvents({
          fromHeight: 3,
          toHeight: 13,
          limit: 3,
          ...filter,
          ...(after ? { after } : {}),
        });
        paged.push(...page.events);
        if (page.next === undefined) break;
        after = page.next;
      }
      const one = await store.getEvents({ fromHeight: 3, toHeight: 13, limit: 1000, ...filter });
      expect(strip(paged)).toEqual(strip(one.events));
      expect(one.events.length).toBeGreaterThan(0);
    }

    await expectError(
      store.getEvents({ fromHeight: 0, toHeight: 5, limit: MAX_EVENTS_PER_QUERY + 1 }),
      'BAD_QUERY',
    );
    await expectError(store.getEvents({ fromHeight: -1, toHeight: 5 }), 'BAD_QUERY');
    expect((await store.getEvents({ fromHeight: 9, toHeight: 3 })).events).toEqual([]);
  });

  it('binds the data to one genesis and starts the chain from its hash', async () => {
    const kv = await backend.open();
    const genesisHash = sha256(Buffer.from('genesis-a'));
    const store = await createBlockStore(kv, { genesisHash });
    await expectError(store.commitBlock(makeCommit(1, undefined, ZERO_HASH)), 'WRONG_PREV_HASH');
    await store.commitBlock(makeCommit(1, undefined, genesisHash));
    const again = await backend.reopen(kv);
    await expectError(
      createBlockStore(again, { genesisHash: sha256(Buffer.from('genesis-b')) }),
      'WRONG_GENESIS',
    );
    const reopened = await createBlockStore(again);
    expect(norm(reopened.genesisHash)).toEqual(norm(genesisHash));
  });

  it('crashes loudly on corrupt stored data', async () => {
    const kv = await backend.open();
    const store = await createBlockStore(kv);
    const inputs = await commitChain(store, 4);
    await kv.batch([
      { type: 'put', key: bucketKey(Bucket.blockByHeight, heightKey.encode(2)), value: Uint8Array.of(0xc1) },
    ]);
    await expectError(store.getBlockByHeight(2), 'CORRUPT');
    await expectError(store.getBlockByHash(hashHeader(inputs[1]!.block.header)), 'CORRUPT');
    // A head whose block vanished: refuse to open rather than serve a broken chain.
    await kv.batch([{ type: 'del', key: bucketKey(Bucket.blockByHeight, heightKey.encode(4)) }]);
    await expectError(createBlockStore(kv), 'CORRUPT');
  });
});
