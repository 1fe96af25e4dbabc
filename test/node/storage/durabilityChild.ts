// Child process of the durability test: opens the LevelDB store in argv[2], prints "ready", then
// commits fixture blocks forever (until the parent SIGKILLs it), printing each height only after
// its batch has been written. The state tree's part of the batch is simulated by an extra write.
import { writeSync } from 'node:fs';
import { createBlockStore } from '../../../node/storage/blockStore.ts';
import { openLevelStore } from '../../../node/storage/kv.ts';
import { DURABILITY_GENESIS, stateHeadKey, stateHeadValue } from './durabilityShared.ts';
import { makeCommit } from './chainFixture.ts';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: durabilityChild.ts <dir>');
const kv = await openLevelStore(dir, { syncWrites: true });
const store = await createBlockStore(kv, { genesisHash: DURABILITY_GENESIS });
// writeSync to fd 1: once the line is printed it is in the pipe, even if SIGKILL follows at once.
writeSync(1, `ready ${store.getHead()?.height ?? 0}\n`);
for (;;) {
  const head = store.getHead();
  const height = (head?.height ?? 0) + 1;
  const input = makeCommit(height, head, DURABILITY_GENESIS);
  await store.commitBlock({
    ...input,
    extraOps: [{ type: 'put', key: stateHeadKey, value: stateHeadValue(height) }],
  });
  writeSync(1, `${height}\n`);
}
