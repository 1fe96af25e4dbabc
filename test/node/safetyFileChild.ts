// Child of safetyFile.test.ts: saves numbered records forever, printing each number once its save
// has returned (when the signature it guards would be released), until the parent kills it.
import { createFileSafetyStore } from '../../node/safetyFile.ts';

const store = createFileSafetyStore(process.argv[2]!);
const first = store.load();
let n = first === undefined ? 0 : Number(Buffer.from(first).toString('utf8').split(':')[0]);
for (;;) {
  n++;
  // Records of varying length, up to 200 KiB (a locked block rides in the record).
  const pad = 'x'.repeat((n * 7919) % 200_000);
  await store.save(Buffer.from(`${n}:${pad}`));
  process.stdout.write(`${n}\n`);
}
