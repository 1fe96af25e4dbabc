// Goal: key files give back exactly the key that was saved, and a wrong passphrase, a damaged or
// edited file, or an unencrypted dev key loaded without consent each fail with their own code.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import { addressHexOf, generateKeyPair } from '../../core/keys.ts';
import {
  DEFAULT_SCRYPT,
  KeystoreError,
  PASSPHRASE_ENV,
  loadKeyFile,
  loadNodeKey,
  readKeyFileInfo,
  resolvePassphrase,
  saveKeyFile,
  type EncryptedKeyFile,
  type ScryptParams,
} from '../../node/keystore.ts';

/** Cheaper than the default so the suite stays fast; the default is exercised once below. */
const FAST: ScryptParams = { N: 2 ** 14, r: 8, p: 1 };
const dir = mkdtempSync(join(tmpdir(), 'trellis-keystore-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const path = (): string => join(dir, `key-${n++}.json`);

async function codeOf(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'no error',
    (e: unknown) => (e instanceof KeystoreError ? e.code : `not a KeystoreError: ${String(e)}`),
  );
}

function edit(file: string, change: (json: EncryptedKeyFile & Record<string, unknown>) => unknown): void {
  const json = JSON.parse(readFileSync(file, 'utf8')) as EncryptedKeyFile & Record<string, unknown>;
  writeFileSync(file, JSON.stringify(change(json)));
}

function flipHex(hex: string, at = 4): string {
  const c = hex[at] === '0' ? '1' : '0';
  return hex.slice(0, at) + c + hex.slice(at + 1);
}

describe('encrypted key files', () => {
  const key = generateKeyPair();

  it('give back the saved key with the right passphrase, and never store it in clear', async () => {
    const file = path();
    await saveKeyFile(file, key, { passphrase: 'correct horse', scrypt: FAST });
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain(toHex(key.secretKey).slice(2));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const loaded = await loadKeyFile(file, { passphrase: 'correct horse' });
    expect(toHex(loaded.secretKey)).toBe(toHex(key.secretKey));
    expect(toHex(loaded.publicKey)).toBe(toHex(key.publicKey));
    expect(await readKeyFileInfo(file)).toEqual({
      address: addressHexOf(key.publicKey),
      publicKey: toHex(key.publicKey),
      encrypted: true,
    });
  });

  it('use the default scrypt cost unless told otherwise, and record it in the file', async () => {
    const file = path();
    await saveKeyFile(file, key, { passphrase: 'pw' });
    const json = JSON.parse(readFileSync(file, 'utf8')) as EncryptedKeyFile;
    expect(json.crypto.kdfParams).toMatchObject(DEFAULT_SCRYPT);
    expect(toHex((await loadKeyFile(file, { passphrase: 'pw' })).publicKey)).toBe(toHex(key.publicKey));
  });

  it('refuse a wrong or missing passphrase', async () => {
    const file = path();
    await saveKeyFile(file, key, { passphrase: 'right', scrypt: FAST });
    expect(await codeOf(loadKeyFile(file, { passphrase: 'wrong' }))).toBe('WRONG_PASSPHRASE');
    expect(await codeOf(loadKeyFile(file, {}))).toBe('NO_PASSPHRASE');
    expect(await codeOf(loadKeyFile(file, { passphrase: '' }))).toBe('BAD_PASSPHRASE');
    const err = await loadKeyFile(file, { passphrase: 'wrong' }).catch((e: unknown) => e as Error);
    expect((err as Error).message).toContain(file);
  });

  it('detect every kind of damage or editing', async () => {
    const cases: Array<[string, (j: EncryptedKeyFile & Record<string, unknown>) => unknown, string]> = [
      [
        'ciphertext flipped',
        (j) => ({ ...j, crypto: { ...j.crypto, ciphertext: flipHex(j.crypto.ciphertext) } }),
        'TAMPERED',
      ],
      ['tag flipped', (j) => ({ ...j, crypto: { ...j.crypto, tag: flipHex(j.crypto.tag) } }), 'TAMPERED'],
      ['iv flipped', (j) => ({ ...j, crypto: { ...j.crypto, iv: flipHex(j.crypto.iv) } }), 'TAMPERED'],
      [
        'public key swapped (with a matching address)',
        (j) => {
          const other = generateKeyPair();
          return { ...j, publicKey: toHex(other.publicKey), address: addressHexOf(other.publicKey) };
        },
        'TAMPERED',
      ],
      ['address edited', (j) => ({ ...j, address: flipHex(j.address) }), 'TAMPERED'],
      [
        'salt edited',
        (j) => ({
          ...j,
          crypto: {
            ...j.crypto,
            kdfParams: { ...j.crypto.kdfParams, salt: flipHex(j.crypto.kdfParams.salt) },
          },
        }),
        'WRONG_PASSPHRASE',
      ],
      [
        'ciphertext truncated',
        (j) => ({ ...j, crypto: { ...j.crypto, ciphertext: j.crypto.ciphertext.slice(0, 20) } }),
        'MALFORMED',
      ],
      ['crypto removed', (j) => ({ ...j, crypto: undefined }), 'MALFORMED'],
      ['unknown version', (j) => ({ ...j, version: 2 }), 'UNSUPPORTED'],
      [
        'absurd scrypt cost',
        (j) => ({ ...j, crypto: { ...j.crypto, kdfParams: { ...j.crypto.kdfParams, N: 2 ** 30 } } }),
        'UNSUPPORTED',
      ],
      ['unknown cipher', (j) => ({ ...j, crypto: { ...j.crypto, cipher: 'aes-128-cbc' } }), 'UNSUPPORTED'],
      ['not an object', () => [1, 2, 3], 'MALFORMED'],
    ];
    for (const [what, change, code] of cases) {
      const file = path();
      await saveKeyFile(file, key, { passphrase: 'pw', scrypt: FAST });
      edit(file, change);
      expect(`${what}: ${await codeOf(loadKeyFile(file, { passphrase: 'pw' }))}`).toBe(`${what}: ${code}`);
    }
    const cut = path();
    await saveKeyFile(cut, key, { passphrase: 'pw', scrypt: FAST });
    writeFileSync(cut, readFileSync(cut, 'utf8').slice(0, 100));
    expect(await codeOf(loadKeyFile(cut, { passphrase: 'pw' }))).toBe('MALFORMED');
    expect(await codeOf(loadKeyFile(join(dir, 'missing.json'), { passphrase: 'pw' }))).toBe('IO');
  });

  it('refuse to overwrite an existing file unless asked', async () => {
    const file = path();
    await saveKeyFile(file, key, { passphrase: 'pw', scrypt: FAST });
    const other = generateKeyPair();
    expect(await codeOf(saveKeyFile(file, other, { passphrase: 'pw', scrypt: FAST }))).toBe('EXISTS');
    expect(toHex((await loadKeyFile(file, { passphrase: 'pw' })).publicKey)).toBe(toHex(key.publicKey));
    await saveKeyFile(file, other, { passphrase: 'pw', scrypt: FAST }, { overwrite: true });
    expect(toHex((await loadKeyFile(file, { passphrase: 'pw' })).publicKey)).toBe(toHex(other.publicKey));
  });
});

describe('unencrypted development key files', () => {
  const key = generateKeyPair();

  it('say so plainly and load only with the explicit flag', async () => {
    const file = path();
    await saveKeyFile(file, key, { unencrypted: true });
    const json = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    expect(json['encrypted']).toBe(false);
    expect(String(json['warning'])).toMatch(/UNENCRYPTED DEVELOPMENT KEY/);
    expect(await codeOf(loadKeyFile(file))).toBe('UNENCRYPTED_NOT_ALLOWED');
    expect(await codeOf(loadKeyFile(file, { passphrase: 'anything' }))).toBe('UNENCRYPTED_NOT_ALLOWED');
    const loaded = await loadKeyFile(file, { allowUnencrypted: true });
    expect(toHex(loaded.secretKey)).toBe(toHex(key.secretKey));
    expect((await readKeyFileInfo(file)).encrypted).toBe(false);
  });

  it('detect a secret key that does not match the public key', async () => {
    const file = path();
    await saveKeyFile(file, key, { unencrypted: true });
    edit(file, (j) => ({ ...j, secretKey: toHex(generateKeyPair().secretKey) }));
    expect(await codeOf(loadKeyFile(file, { allowUnencrypted: true }))).toBe('TAMPERED');
  });
});

describe('passphrase sources', () => {
  it('reads a file (one trailing newline dropped) before the environment', () => {
    const file = join(dir, 'pass.txt');
    writeFileSync(file, 'from file\n');
    expect(resolvePassphrase({ passphraseFile: file, env: { [PASSPHRASE_ENV]: 'from env' } })).toBe(
      'from file',
    );
    writeFileSync(file, ' spaced  \r\n');
    expect(resolvePassphrase({ passphraseFile: file })).toBe(' spaced  ');
    expect(resolvePassphrase({ env: { [PASSPHRASE_ENV]: 'from env' } })).toBe('from env');
    expect(resolvePassphrase({ env: {} })).toBeUndefined();
  });

  it('refuses empty passphrases and unreadable files', () => {
    const file = join(dir, 'empty.txt');
    writeFileSync(file, '\n');
    const code = (f: () => unknown): string => {
      try {
        f();
        return 'no error';
      } catch (e) {
        return (e as KeystoreError).code;
      }
    };
    expect(code(() => resolvePassphrase({ passphraseFile: file }))).toBe('BAD_PASSPHRASE');
    expect(code(() => resolvePassphrase({ passphraseFile: join(dir, 'nope') }))).toBe('BAD_PASSPHRASE');
    expect(code(() => resolvePassphrase({ env: { [PASSPHRASE_ENV]: '' } }))).toBe('BAD_PASSPHRASE');
  });
});

describe('node keys', () => {
  it('load as the node config describes', async () => {
    const key = generateKeyPair();
    const enc = path();
    const pass = join(dir, 'node-pass.txt');
    writeFileSync(pass, 'node secret\n');
    await saveKeyFile(enc, key, { passphrase: 'node secret', scrypt: FAST });
    const viaFile = await loadNodeKey({ keyFile: enc, passphraseFile: pass, allowUnencryptedKey: false }, {});
    expect(toHex(viaFile.publicKey)).toBe(toHex(key.publicKey));
    const viaEnv = await loadNodeKey(
      { keyFile: enc, allowUnencryptedKey: false },
      { [PASSPHRASE_ENV]: 'node secret' },
    );
    expect(toHex(viaEnv.publicKey)).toBe(toHex(key.publicKey));
    expect(await codeOf(loadNodeKey({ keyFile: enc, allowUnencryptedKey: false }, {}))).toBe('NO_PASSPHRASE');
    const dev = path();
    await saveKeyFile(dev, key, { unencrypted: true });
    expect(await codeOf(loadNodeKey({ keyFile: dev, allowUnencryptedKey: false }, {}))).toBe(
      'UNENCRYPTED_NOT_ALLOWED',
    );
    expect(toHex((await loadNodeKey({ keyFile: dev, allowUnencryptedKey: true }, {})).publicKey)).toBe(
      toHex(key.publicKey),
    );
  });
});
