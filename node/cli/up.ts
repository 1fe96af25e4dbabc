import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { NetworkFiles, networkLayout } from '../config.ts';
import type { Command } from './commands.ts';
import { integerOption, parseCommand, stringOption } from './parse.ts';
import { MAX_LOCAL_VALIDATORS, writeLocalNetwork } from './init.ts';

const UP_USAGE = `Usage: trellis up [--validators N] [--dir DIR] [--verbose]

Starts a local consortium: N validators (default 4) as separate processes on 127.0.0.1 from the
network in DIR (default ./trellis-net), writing it with \`trellis init\` first if DIR holds none.
Node i serves JSON-RPC at http://127.0.0.1:${8545}+i. Each node's log lines are prefixed with its
name. Ctrl-C stops them all.

Options:
  -n, --validators N   validators of a new network (default 4; 1 is the single-node dev mode)
  -d, --dir DIR        network directory (default ./trellis-net)
      --verbose        show debug log lines
  -h, --help           show this help`;

const BIN = fileURLToPath(new URL('../../bin/trellis.js', import.meta.url));
const COLORS = [36, 33, 35, 32, 34, 31, 96, 93];

interface Manifest {
  readonly chainId: string;
  readonly nodes: ReadonlyArray<{ name: string; home: string; rpcPort: number }>;
}

/** One JSON log line as a short readable one; other lines pass through. */
function pretty(line: string, verbose: boolean): string | null {
  if (!line.startsWith('{')) return line;
  try {
    const o = JSON.parse(line) as Record<string, unknown>;
    const { t, level, node: _node, msg, ...fields } = o;
    if (level === 'debug' && !verbose) return null;
    const time = typeof t === 'string' ? t.slice(11, 23) : '';
    const rest = Object.entries(fields)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    return `${time} ${String(level).padEnd(5)} ${String(msg)} ${rest}`.trimEnd();
  } catch {
    return line;
  }
}

/** `trellis up`. */
export const upCommand: Command = {
  name: 'up',
  summary: 'start a local consortium of N validators (default 4) and stop it with Ctrl-C',
  async run(argv) {
    const parsed = parseCommand(
      argv,
      {
        validators: { type: 'string', short: 'n' },
        dir: { type: 'string', short: 'd' },
        verbose: { type: 'boolean' },
      },
      UP_USAGE,
    );
    if (parsed.help) {
      console.log(UP_USAGE);
      return 0;
    }
    const dir = resolve(stringOption(parsed.values, 'dir') ?? 'trellis-net');
    const nArg = stringOption(parsed.values, 'validators');
    const verbose = parsed.values['verbose'] === true;
    const layout = networkLayout(dir);
    if (!existsSync(layout.manifestFile)) {
      const validators =
        nArg === undefined ? 4 : integerOption(nArg, 'validators', 1, MAX_LOCAL_VALIDATORS, UP_USAGE);
      await writeLocalNetwork({ dir, validators });
      console.log(`trellis up: wrote a new ${validators}-validator network in ${dir}`);
    } else if (nArg !== undefined) {
      console.log(`trellis up: ${dir} already holds a network; using it as it is (--validators ignored)`);
    }
    const manifest = JSON.parse(readFileSync(layout.manifestFile, 'utf8')) as Manifest;
    console.log(
      `trellis up: chain ${manifest.chainId}, ${manifest.nodes.length} validator(s); Ctrl-C stops them all`,
    );
    for (const n of manifest.nodes) console.log(`  ${n.name.padEnd(14)} rpc http://127.0.0.1:${n.rpcPort}`);

    const children = new Map<string, ChildProcess>();
    let stopping = false;
    const width = Math.max(...manifest.nodes.map((n) => n.name.length));
    const exited = manifest.nodes.map(
      (n, i) =>
        new Promise<number>((done) => {
          const color = COLORS[i % COLORS.length]!;
          const prefix = process.stdout.isTTY
            ? `\x1b[${color}m${n.name.padEnd(width)}\x1b[0m | `
            : `${n.name.padEnd(width)} | `;
          const child = spawn(process.execPath, [BIN, 'start', '--home', join(dir, n.home)], {
            stdio: ['ignore', 'pipe', 'pipe'],
            env: process.env,
          });
          children.set(n.name, child);
          for (const stream of [child.stdout, child.stderr]) {
            createInterface({ input: stream }).on('line', (line) => {
              const out = pretty(line, verbose);
              if (out !== null) process.stdout.write(prefix + out + '\n');
            });
          }
          child.on('exit', (code, signal) => {
            children.delete(n.name);
            if (!stopping) {
              process.stdout.write(`${prefix}exited (${signal ?? `code ${code}`})\n`);
            }
            done(code ?? 1);
          });
        }),
    );

    const stopAll = (): void => {
      if (stopping) return;
      stopping = true;
      console.log('\ntrellis up: stopping every node…');
      for (const c of children.values()) c.kill('SIGTERM');
    };
    process.on('SIGINT', stopAll);
    process.on('SIGTERM', stopAll);
    const codes = await Promise.all(exited);
    process.off('SIGINT', stopAll);
    process.off('SIGTERM', stopAll);
    console.log(
      `trellis up: all nodes stopped (network kept in ${dir}; ${NetworkFiles.manifest} describes it)`,
    );
    return stopping ? 0 : Math.max(...codes);
  },
};
