// Goal: KvStore.getMany gives, on both backends, every key's value (undefined where absent) in the
// order asked, as the store stood when the call was made: a batch written while it is pending is
// not seen (the state store relies on this to fetch a version's values off the main thread).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createMemoryStore, openLevelStore, type KvStore } from '../../../node/storage/kv.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const BACKENDS: ReadonlyArray<[string, () => Promise<KvStore>]> = [
  ['memory', () => Promise.resolve(createMemoryStore())],
  [
    'leveldb',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'trellis-kv-'));
      dirs.push(dir);
      return openLevelStore(dir, { syncWrites: false });
    },
  ],
];

const k = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s));
const text = (v: Uint8Array | undefined): string | undefined =>
  v === undefined ? undefined : Buffer.from(v).toString();

describe.each(BACKENDS)('KvStore.getMany (%s)', (_name, open) => {
  it('returns the values in the order asked, undefined for absent keys', async () => {
    const kv = await open();
    await kv.batch([
      { type: 'put', key: k('a'), value: k('1') },
      { type: 'put', key: k('c'), value: k('3') },
    ]);
    expect((await kv.getMany([k('c'), k('b'), k('a'), k('c')])).map(text)).toEqual([
      '3',
      undefined,
      '1',
      '3',
    ]);
    expect(await kv.getMany([])).toEqual([]);
    await kv.close();
  });

  it('reads the store as it stood at the call, not a batch written while pending', async () => {
    const kv = await open();
    await kv.batch([{ type: 'put', key: k('x'), value: k('old') }]);
    const pending = kv.getMany([k('x'), k('y')]);
    const written = kv.batch([
      { type: 'put', key: k('x'), value: k('new') },
      { type: 'put', key: k('y'), value: k('new') },
    ]);
    expect((await pending).map(text)).toEqual(['old', undefined]);
    await written;
    expect((await kv.getMany([k('x'), k('y')])).map(text)).toEqual(['new', 'new']);
    await kv.close();
  });
});
