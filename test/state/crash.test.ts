// Goal: killed with SIGKILL in the middle of committing, the state reopens at the last committed
// head with exactly that head's root, again and again.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openLevelStore } from '../../node/storage/kv.ts';
import { openStateStore } from '../../node/state/stateStore.ts';
import { CRASH_CONTRACT, HEAD_KEY, decodeHead, modelAt } from './crashShared.ts';

const CHILD = fileURLToPath(new URL('./crashChild.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'trellis-state-crash-'));
const children: ChildProcess[] = [];

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** Runs the child until it has committed at least `commits` versions, then SIGKILLs it. */
async function runAndKill(commits: number, extraMs: number): Promise<number> {
  const child = spawn(process.execPath, [CHILD, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if ((out.match(/committed/g) ?? []).length >= commits) resolve();
    });
    child.on('exit', () => reject(new Error(`child exited early: ${err}`)));
  });
  // Let it run on into the middle of some later commit, then kill it without warning.
  await new Promise((r) => setTimeout(r, extraMs));
  child.kill('SIGKILL');
  await exited;
  const lines = out.trim().split('\n');
  return Number(lines[lines.length - 1]!.split(' ')[1]);
}

describe('crash during commit (LevelDB, separate process, kill -9)', () => {
  it('reopens at the last committed head with its root, six times over', async () => {
    let lastHead = -1;
    const delays = [0, 13, 37, 71, 120, 5];
    for (const delay of delays) {
      const lastReported = await runAndKill(3, delay);
      const kv = await openLevelStore(dir);
      try {
        const head = decodeHead((await kv.get(HEAD_KEY))!);
        // The head is at least what the child reported committed, and at most one further (the
        // batch may have landed before the child could print it).
        expect(head.version).toBeGreaterThanOrEqual(lastReported);
        expect(head.version).toBeLessThanOrEqual(lastReported + 1);
        expect(head.version).toBeGreaterThan(lastHead);
        lastHead = head.version;
        const store = await openStateStore(kv, { retainVersions: 4, version: head.version });
        const model = modelAt(head.version);
        expect(Buffer.from(store.root).equals(Buffer.from(head.root))).toBe(true);
        expect(Buffer.from(store.root).equals(model.root())).toBe(true);
        // The stored values and key index came back consistent with the tree.
        expect(store.keyCount).toBe(model.entries.size);
        const view = store.view();
        const all = view.range(CRASH_CONTRACT, Buffer.from(''), 10_000);
        expect(all.length).toBe(model.entries.size);
        for (const [k, v] of all)
          expect(Buffer.from(v).equals(Buffer.from(model.get(CRASH_CONTRACT, k)!))).toBe(true);
      } finally {
        await kv.close();
      }
    }
  });
});
