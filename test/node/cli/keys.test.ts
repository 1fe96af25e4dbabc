// Goal: `npx trellis keys new|show` create key files that load back, encrypt unless told
// otherwise explicitly, and report damaged files with a clear error.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toHex } from '../../../core/bytes.ts';
import { loadKeyFile, openKeyFile } from '../../../node/keystore.ts';
import { runTrellis } from './runTrellis.ts';

const tmp = mkdtempSync(join(tmpdir(), 'trellis-keys-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('trellis keys', () => {
  it('new writes an encrypted key from a passphrase file, and show reads it without the passphrase', async () => {
    const out = join(tmp, 'a.json');
    const pass = join(tmp, 'pass');
    writeFileSync(pass, 'hunter2\n');
    const made = await runTrellis(
      ['keys', 'new', '--out', out, '--passphrase-file', pass, '--json'],
      {},
      'npx',
    );
    expect(made.code).toBe(0);
    const summary = JSON.parse(made.stdout) as { address: string; publicKey: string; encrypted: boolean };
    expect(summary.encrypted).toBe(true);
    const key = await loadKeyFile(out, { passphrase: 'hunter2' });
    expect(toHex(key.publicKey)).toBe(summary.publicKey);

    const shown = await runTrellis(['keys', 'show', out]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`address:    ${summary.address}`);
    expect(shown.stdout).toContain(`public key: ${summary.publicKey}`);

    const again = await runTrellis(['keys', 'new', '--out', out, '--passphrase-file', pass]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists.*\[EXISTS\]/);
  });

  it('new takes the passphrase from TRELLIS_PASSPHRASE and prints the key file when there is no --out', async () => {
    const made = await runTrellis(['keys', 'new'], { TRELLIS_PASSPHRASE: 'from-env' });
    expect(made.code).toBe(0);
    expect(made.stderr).toMatch(/address: {4}0x[0-9a-f]{40}/);
    const key = await openKeyFile(JSON.parse(made.stdout), { passphrase: 'from-env' });
    expect(key.publicKey).toHaveLength(32);
  });

  it('new refuses to write an unprotected key unless --dev-unencrypted is explicit', async () => {
    const none = await runTrellis(['keys', 'new', '--out', join(tmp, 'b.json')]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('no passphrase');
    const dev = await runTrellis(['keys', 'new', '--out', join(tmp, 'b.json'), '--dev-unencrypted']);
    expect(dev.code).toBe(0);
    expect(dev.stdout).toMatch(/encrypted: {2}NO/);
    const json = JSON.parse(readFileSync(join(tmp, 'b.json'), 'utf8')) as {
      encrypted: boolean;
      warning: string;
    };
    expect(json.encrypted).toBe(false);
    expect(json.warning).toMatch(/UNENCRYPTED/);
    const both = await runTrellis([
      'keys',
      'new',
      '--dev-unencrypted',
      '--passphrase-file',
      join(tmp, 'pass'),
    ]);
    expect(both.code).toBe(2);
  });

  it('show reports a tampered file', async () => {
    const out = join(tmp, 'c.json');
    await runTrellis(['keys', 'new', '--out', out, '--dev-unencrypted']);
    const json = JSON.parse(readFileSync(out, 'utf8')) as { address: string };
    json.address = '0x' + '00'.repeat(20);
    writeFileSync(out, JSON.stringify(json));
    const shown = await runTrellis(['keys', 'show', out]);
    expect(shown.code).toBe(1);
    expect(shown.stderr).toMatch(/address: does not match its public key \[TAMPERED\]/);
    writeFileSync(out, '{ not json');
    expect((await runTrellis(['keys', 'show', out])).stderr).toMatch(/not valid JSON.*\[MALFORMED\]/);
  });

  it('has help for every command', async () => {
    for (const args of [
      ['keys', 'new', '--help'],
      ['keys', 'show', '--help'],
      ['keys', '--help'],
      ['--help'],
    ]) {
      const run = await runTrellis(args);
      expect(run.code, args.join(' ')).toBe(0);
      expect(run.stdout).toMatch(/Usage: trellis/);
    }
  });
});
