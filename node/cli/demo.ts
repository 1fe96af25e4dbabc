/**
 * `trellis demo`: plays the supply-chain-finance storyline (demo/storyline.ts) against a running
 * network with the admin keys `trellis init` wrote, printing one line per step with its
 * transaction hash and outcome. `trellis up` runs it in-process once its nodes are ready
 * ({@link playDemo}).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { KeyPair } from '../../core/keys.ts';
import { DemoError, runDemo, type DemoReport, type DemoStepResult } from '../../demo/runDemo.ts';
import { DEFAULT_DEMO_TIMING, type DemoTiming } from '../../demo/storyline.ts';
import { createClient } from '../../rpc/sdk/client.ts';
import { networkLayout } from '../config.ts';
import { loadKeyFile, PASSPHRASE_ENV, resolvePassphrase } from '../keystore.ts';
import type { Command } from './commands.ts';
import { CliError, flag, integerOption, parseCommand, stringOption } from './parse.ts';

const DEMO_USAGE = `Usage: trellis demo [--dir DIR] [--rpc URL] [--seed SEED] [--maturity SECONDS] [--json]

Plays the supply-chain-finance story on a running network (start one with \`trellis up\`): gives
the consortium's organisations new staff and approval policies through membership and approvals,
then runs a receivable voucher (issue → 2-of-3 confirmation → transfer → split → financing →
maturity → payment), an order-financing round and a warehouse receipt (issued → listed → traded →
pledged → released → delivered). Each step prints its transaction hash and the state it produced.

Options:
  -d, --dir DIR            network directory written by \`trellis init\` (default ./trellis-net):
                           the organisation admin keys come from there
      --rpc URL            node to talk to (default: node 0 of the network in DIR)
      --seed SEED          derive the demo's participant keys from SEED (default: random)
      --maturity SECONDS   voucher and order maturities, seconds after issue (default ${DEFAULT_DEMO_TIMING.voucherMaturityMs / 1000})
      --passphrase-file F  passphrase of encrypted admin keys (or ${PASSPHRASE_ENV})
      --json               print one JSON report at the end instead of lines
  -h, --help               show this help`;

/** Longest --seed accepted. */
const MAX_SEED_LENGTH = 64;

interface Manifest {
  readonly chainId: string;
  readonly nodes: ReadonlyArray<{ readonly rpcPort: number }>;
  readonly admins: ReadonlyArray<{ readonly organisation: string; readonly keyFile: string }>;
}

/** Options of {@link playDemo}. */
export interface PlayDemoOptions {
  /** Network directory written by `trellis init`. */
  readonly dir: string;
  /** Node URL (default: node 0 of the network). */
  readonly rpcUrl?: string;
  readonly seed?: string;
  readonly timing?: DemoTiming;
  readonly passphrase?: string;
  /** Receives each output line (default console.log). */
  readonly print?: (line: string) => void;
  /** Print nothing while running (for --json). */
  readonly quiet?: boolean;
  readonly signal?: AbortSignal;
}

function readManifest(dir: string): Manifest {
  const file = networkLayout(dir).manifestFile;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new CliError(
      'USAGE',
      `${dir} holds no network (no ${file}); run \`trellis init\` or \`trellis up\` first`,
      {
        usage: DEMO_USAGE,
      },
    );
  }
  const m = JSON.parse(text) as Partial<Manifest>;
  if (!Array.isArray(m.nodes) || !Array.isArray(m.admins) || m.nodes.length === 0)
    throw new CliError('USAGE', `${file} does not describe nodes and admins as trellis init writes them`, {});
  return m as Manifest;
}

/** One readable line for a finished step. */
export function formatStep(s: DemoStepResult): string {
  const n = String(s.index).padStart(2);
  const mark = s.ok ? 'ok' : 'FAILED';
  if (s.status === 'skipped') return `${n}. ${s.title}: skipped (already done)`;
  const parts = [`${n}. ${s.title}: ${mark}`];
  if (s.outcome !== null)
    parts.push(
      s.outcome.actual === s.outcome.expected
        ? `${s.outcome.label} ${s.outcome.actual}`
        : `${s.outcome.label} is ${s.outcome.actual ?? 'missing'}, expected ${s.outcome.expected}`,
    );
  if (s.error !== null) parts.push(`${s.status} ${s.error}`);
  if (s.txHash !== null)
    parts.push(`${s.kind === 'await' ? 'callback' : 'tx'} ${s.txHash.slice(0, 18)}… block ${s.height}`);
  return parts.join(' | ');
}

/**
 * Loads the network's admin keys and plays the storyline against `rpcUrl` (or node 0), printing as
 * it goes. Resolves with the report; `report.ok` says whether every step succeeded.
 */
export async function playDemo(options: PlayDemoOptions): Promise<DemoReport> {
  const dir = resolve(options.dir);
  const manifest = readManifest(dir);
  const print = options.print ?? ((line: string) => console.log(line));
  const admins = new Map<string, KeyPair>();
  for (const a of manifest.admins) {
    const file = isAbsolute(a.keyFile) ? a.keyFile : join(dir, a.keyFile);
    admins.set(
      a.organisation,
      await loadKeyFile(file, {
        allowUnencrypted: true,
        ...(options.passphrase === undefined ? {} : { passphrase: options.passphrase }),
      }),
    );
  }
  const rpcUrl = options.rpcUrl ?? `http://127.0.0.1:${manifest.nodes[0]!.rpcPort}`;
  const client = createClient({ url: rpcUrl, chainId: manifest.chainId });
  try {
    if (options.quiet !== true) print(`trellis demo: chain ${manifest.chainId} via ${rpcUrl}`);
    const report = await runDemo({
      client,
      admins,
      ...(options.seed === undefined ? {} : { seed: options.seed }),
      ...(options.timing === undefined ? {} : { timing: options.timing }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.quiet === true
        ? {}
        : {
            onChapter: (title: string) => {
              print('');
              print(`== ${title}`);
            },
            onStep: (s: DemoStepResult) => print(formatStep(s)),
          }),
    });
    if (options.quiet !== true) {
      print('');
      print(
        report.ok
          ? `trellis demo: all ${report.steps.length} steps ok in ${(report.durationMs / 1000).toFixed(1)} s ` +
              `(voucher ${report.ids.voucher}, order ${report.ids.order}, receipt ${report.ids.receipt}; ` +
              `participants from seed ${report.seed})`
          : `trellis demo: FAILED at step ${report.steps.at(-1)?.index}: ${report.steps.at(-1)?.title}`,
      );
    }
    return report;
  } finally {
    client.close();
  }
}

/** `trellis demo`. */
export const demoCommand: Command = {
  name: 'demo',
  summary: 'play the supply-chain-finance story on a running network',
  async run(argv) {
    const parsed = parseCommand(
      argv,
      {
        dir: { type: 'string', short: 'd' },
        rpc: { type: 'string' },
        seed: { type: 'string' },
        maturity: { type: 'string' },
        'passphrase-file': { type: 'string' },
        json: { type: 'boolean' },
      },
      DEMO_USAGE,
    );
    if (parsed.help) {
      console.log(DEMO_USAGE);
      return 0;
    }
    const { values } = parsed;
    const rpcUrl = stringOption(values, 'rpc');
    if (rpcUrl !== undefined && !/^https?:\/\/[^\s]+$/.test(rpcUrl))
      throw new CliError('USAGE', `--rpc: expected an http(s) URL, got "${rpcUrl}"`, { usage: DEMO_USAGE });
    const seed = stringOption(values, 'seed');
    if (seed !== undefined && (seed.length < 1 || seed.length > MAX_SEED_LENGTH))
      throw new CliError('USAGE', `--seed: expected 1..${MAX_SEED_LENGTH} characters`, { usage: DEMO_USAGE });
    const maturityArg = stringOption(values, 'maturity');
    const timing =
      maturityArg === undefined
        ? undefined
        : (() => {
            const ms = integerOption(maturityArg, 'maturity', 5, 86_400, DEMO_USAGE) * 1000;
            return { voucherMaturityMs: ms, orderMaturityMs: ms };
          })();
    const passphraseFile = stringOption(values, 'passphrase-file');
    const passphrase = resolvePassphrase(passphraseFile === undefined ? {} : { passphraseFile });
    const json = flag(values, 'json');
    let report: DemoReport;
    try {
      report = await playDemo({
        dir: stringOption(values, 'dir') ?? 'trellis-net',
        ...(rpcUrl === undefined ? {} : { rpcUrl }),
        ...(seed === undefined ? {} : { seed }),
        ...(timing === undefined ? {} : { timing }),
        ...(passphrase === undefined ? {} : { passphrase }),
        quiet: json,
      });
    } catch (err) {
      if (err instanceof DemoError && json) {
        console.log(JSON.stringify({ ok: false, error: { code: err.code, message: err.message } }, null, 2));
        return 1;
      }
      throw err;
    }
    if (json) console.log(JSON.stringify(report, null, 2));
    return report.ok ? 0 : 1;
  },
};
