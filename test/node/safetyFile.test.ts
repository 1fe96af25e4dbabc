// Goal: the safety record on disk survives a crash at any instant: after SIGKILL the store loads
// the last record whose save returned (or the one being saved), never an older one, never garbage.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createFileSafetyStore } from '../../node/safetyFile.ts';

const dir = mkdtempSync(join(tmpdir(), 'trellis-safety-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const CHILD = fileURLToPath(new URL('./safetyFileChild.ts', import.meta.url));
const text = (b: Uint8Array | undefined): string | undefined =>
  b === undefined ? undefined : Buffer.from(b).toString('utf8');

describe('file safety store', () => {
  it('loads the newest record; a torn newest slot falls back to the previous record', async () => {
    const path = join(dir, 'a.bin');
    const s = createFileSafetyStore(path);
    expect(s.load()).toBeUndefined();
    for (const r of ['one', 'two-longer-record', 'three']) await s.save(Buffer.from(r));
    await s.close();
    expect(text(createFileSafetyStore(path).load())).toBe('three');
    // 'three' is record 3, in slot 1; tear it: the previous record comes back.
    const slot = readFileSync(`${path}.1`);
    slot.writeUInt8(slot.readUInt8(slot.length - 1) ^ 0xff, slot.length - 1);
    writeFileSync(`${path}.1`, slot);
    const again = createFileSafetyStore(path);
    expect(text(again.load())).toBe('two-longer-record');
    // Saving goes on from there, into the torn slot, never over the good one.
    await again.save(Buffer.from('four'));
    await again.close();
    expect(text(createFileSafetyStore(path).load())).toBe('four');
  });

  it('reads a record written by the older single-file format', () => {
    const path = join(dir, 'legacy.bin');
    writeFileSync(path, 'legacy-record');
    expect(text(createFileSafetyStore(path).load())).toBe('legacy-record');
  });

  it('after SIGKILL at random instants, loads the last acknowledged record or the next', async () => {
    const path = join(dir, 'killed.bin');
    for (let round = 0; round < 12; round++) {
      const child = spawn(process.execPath, [CHILD, path], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      // Wait for some saves, then kill at a random moment.
      await new Promise<void>((resolve) => {
        const t = setInterval(() => {
          if (out.split('\n').length > 3) {
            clearInterval(t);
            setTimeout(resolve, Math.random() * 50);
          }
        }, 5);
      });
      child.kill('SIGKILL');
      await exited;
      const acked = Math.max(...out.trim().split('\n').map(Number));
      const loaded = text(createFileSafetyStore(path).load())!;
      const n = Number(loaded.split(':')[0]);
      expect(n === acked || n === acked + 1, `round ${round}: acked ${acked}, loaded ${n}`).toBe(true);
      expect(loaded.length).toBe(`${n}:`.length + ((n * 7919) % 200_000));
    }
  });
});
