/**
 * Child process of the crash test: reopens the state at the stored head, then commits versions
 * forever (state ops plus head record in one synced batch) until it is killed.
 * Usage: node test/state/crashChild.ts <leveldb folder>
 */
import { openLevelStore } from '../../node/storage/kv.ts';
import { openStateStore } from '../../node/state/stateStore.ts';
import { CRASH_CONTRACT, HEAD_KEY, decodeHead, encodeHead, writesOf } from './crashShared.ts';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: crashChild.ts <folder>');
const kv = await openLevelStore(dir, { syncWrites: true });
const headBytes = await kv.get(HEAD_KEY);
const head = headBytes === undefined ? undefined : decodeHead(headBytes);
const store = await openStateStore(kv, {
  retainVersions: 4,
  ...(head === undefined ? {} : { version: head.version }),
});
let version = head?.version ?? -1;
process.stdout.write(`ready ${version}\n`);
for (;;) {
  version++;
  const view = store.view();
  for (const w of writesOf(version)) {
    if (w.value === null) view.delete(CRASH_CONTRACT, w.key);
    else view.set(CRASH_CONTRACT, w.key, w.value);
  }
  const c = store.commitOps(view, version);
  await kv.batch([...c.ops, { type: 'put', key: HEAD_KEY, value: encodeHead(version, c.root) }]);
  c.finalize();
  process.stdout.write(`committed ${version}\n`);
}
