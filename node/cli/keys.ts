/**
 * `trellis keys new|show`: create an Ed25519 key file (encrypted, or an explicit unencrypted dev
 * key) and show a key file's address and public key without its passphrase.
 */
import { generateKeyPair } from '../../core/keys.ts';
import {
  PASSPHRASE_ENV,
  keyFileOf,
  readKeyFileInfo,
  resolvePassphrase,
  saveKeyFile,
  type KeyProtection,
} from '../keystore.ts';
import type { Command } from './commands.ts';
import { CliError, flag, parseCommand, stringOption } from './parse.ts';

const NEW_USAGE = `Usage: trellis keys new [--out FILE] [--passphrase-file FILE | --dev-unencrypted] [--force] [--json]

Creates a new Ed25519 key (a validator's or an organisation admin's).

The key is encrypted (scrypt + AES-256-GCM) with a passphrase read from --passphrase-file, or
else from the ${PASSPHRASE_ENV} environment variable. --dev-unencrypted writes an UNENCRYPTED
key instead, for local development networks only.

Options:
  --out FILE              write the key file here (mode 0600); without it the key file JSON
                          goes to stdout and the summary to stderr
  --passphrase-file FILE  read the passphrase from FILE (one trailing newline is dropped)
  --dev-unencrypted       store the key unencrypted (development only; says so in the file)
  --force                 replace an existing --out file
  --json                  print the summary as JSON
  -h, --help              show this help`;

const SHOW_USAGE = `Usage: trellis keys show FILE [--json]

Prints a key file's address and public key (no passphrase needed) and whether it is encrypted.

Options:
  --json      print as JSON
  -h, --help  show this help`;

const KEYS_USAGE = `Usage: trellis keys <new|show> [options]

  new   create a key file
  show  print a key file's address and public key

Run \`trellis keys <new|show> --help\` for options.`;

/** Works out how keys are protected from --passphrase-file / env / --dev-unencrypted. */
export function keyProtectionFrom(
  passphraseFile: string | undefined,
  devUnencrypted: boolean,
  usage: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): KeyProtection | undefined {
  if (devUnencrypted && passphraseFile !== undefined) {
    throw new CliError('USAGE', `--dev-unencrypted and --passphrase-file contradict each other`, {
      usage: usage,
    });
  }
  if (devUnencrypted) return { unencrypted: true };
  const passphrase = resolvePassphrase({ ...(passphraseFile === undefined ? {} : { passphraseFile }), env });
  return passphrase === undefined ? undefined : { passphrase };
}

async function keysNew(argv: string[]): Promise<number> {
  const parsed = parseCommand(
    argv,
    {
      out: { type: 'string', short: 'o' },
      'passphrase-file': { type: 'string' },
      'dev-unencrypted': { type: 'boolean' },
      force: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    NEW_USAGE,
  );
  if (parsed.help) {
    console.log(NEW_USAGE);
    return 0;
  }
  const { values } = parsed;
  const protection = keyProtectionFrom(
    stringOption(values, 'passphrase-file'),
    flag(values, 'dev-unencrypted'),
    NEW_USAGE,
  );
  if (protection === undefined) {
    throw new CliError(
      'USAGE',
      `no passphrase: give --passphrase-file FILE, set ${PASSPHRASE_ENV}, or pass --dev-unencrypted for a development key`,
      { usage: NEW_USAGE },
    );
  }
  const key = generateKeyPair();
  const out = stringOption(values, 'out');
  const file =
    out === undefined
      ? await keyFileOf(key, protection)
      : await saveKeyFile(out, key, protection, { overwrite: flag(values, 'force') });
  const summary = {
    file: out ?? null,
    address: file.address,
    publicKey: file.publicKey,
    encrypted: file.encrypted,
  };
  if (out === undefined) {
    // The key file itself is the output; the summary goes to stderr so stdout can be redirected.
    console.log(JSON.stringify(file, null, 2));
  }
  const print = out === undefined ? console.error : console.log;
  if (flag(values, 'json')) {
    print(JSON.stringify(summary, null, 2));
  } else {
    print(
      [
        out === undefined ? 'Created key (key file printed to stdout)' : `Wrote key file ${out}`,
        `  address:    ${file.address}`,
        `  public key: ${file.publicKey}`,
        file.encrypted
          ? '  encrypted:  yes (scrypt + AES-256-GCM)'
          : '  encrypted:  NO - development key, readable by anyone who can read the file',
      ].join('\n'),
    );
  }
  return 0;
}

async function keysShow(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, { json: { type: 'boolean' } }, SHOW_USAGE, 1);
  if (parsed.help) {
    console.log(SHOW_USAGE);
    return 0;
  }
  const file = parsed.positionals[0];
  if (file === undefined) throw new CliError('USAGE', `missing FILE`, { usage: SHOW_USAGE });
  const info = await readKeyFileInfo(file);
  if (flag(parsed.values, 'json')) {
    console.log(JSON.stringify({ file, ...info }, null, 2));
  } else {
    console.log(
      [
        `${file}`,
        `  address:    ${info.address}`,
        `  public key: ${info.publicKey}`,
        `  encrypted:  ${info.encrypted ? 'yes' : 'NO (development key)'}`,
      ].join('\n'),
    );
  }
  return 0;
}

/** `trellis keys`. */
export const keysCommand: Command = {
  name: 'keys',
  summary: 'create a key file (keys new) or show one (keys show)',
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === 'new') return keysNew(rest);
    if (sub === 'show') return keysShow(rest);
    if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
      console.log(KEYS_USAGE);
      return sub === undefined ? 2 : 0;
    }
    throw new CliError('USAGE', `unknown subcommand "keys ${sub}"`, { usage: KEYS_USAGE });
  },
};
