import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { NetworkFiles, networkLayout } from '../config.ts';
import type { Command } from './commands.ts';
import { integerOption, parseCommand, stringOption } from './parse.ts';
import { MAX_LOCAL_VALIDATORS, writeLocalNetwork } from './init.ts';
import { playDemo } from './demo.ts';
import { resolvePassphrase } from '../keystore.ts';
import { createClient } from '../../rpc/sdk/client.ts';

const UP_USAGE = `Usage: trellis up [--validators N] [--dir DIR] [--no-demo] [--verbose]

Starts a local consortium: N validators (default 4) as separate processes on 127.0.0.1 from the
network in DIR (default ./trellis-net), writing it with \`trellis init\` first if DIR holds none.
Node i serves JSON-RPC at http://127.0.0.1:${8545}+i. Each node's log lines are prefixed with its
name. Once every node has committed a block, the supply-chain-finance demo (\`trellis demo\`) plays
against node 0 (lines prefixed "demo |"); the nodes keep running afterwards. Ctrl-C stops them all.

Options:
  -n, --validators N   validators of a new network (default 4; 1 is the single-node dev mode)
  -d, --dir DIR        network directory (default ./trellis-net)
      --no-demo        do not run the demo once the nodes are up
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

/** Longest wait for every node to commit its first block before the demo gives up. */
const READY_TIMEOUT_MS = 120_000;

/**
 * Waits until every node reports a committed block (chain_getHead height ≥ 1), then plays the demo
 * in-process against node 0, printing its lines prefixed `demo | `. Never throws: a demo failure is
 * printed and the nodes keep running.
 */
async function demoWhenReady(
  dir: string,
  manifest: Manifest,
  signal: AbortSignal,
  stopping: () => boolean,
): Promise<void> {
  const print = (line: string): void => {
    if (!stopping()) process.stdout.write(`demo | ${line}\n`);
  };
  const clients = manifest.nodes.map((n) => createClient({ url: `http://127.0.0.1:${n.rpcPort}` }));
  try {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (signal.aborted) return;
      const heights = await Promise.all(
        clients.map((c) =>
          c.head().then(
            (h) => h?.height ?? 0,
            () => -1,
          ),
        ),
      );
      if (heights.every((h) => h >= 1)) break;
      if (Date.now() > deadline) {
        print(`not run: the nodes did not all commit a block within ${READY_TIMEOUT_MS / 1000} s`);
        return;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    print('every node is up; playing the supply-chain-finance story (skip it with --no-demo)');
    // Encrypted admin keys open with the passphrase from the environment, as the nodes' keys do.
    const passphrase = resolvePassphrase();
    const report = await playDemo({
      dir,
      rpcUrl: `http://127.0.0.1:${manifest.nodes[0]!.rpcPort}`,
      print,
      signal,
      ...(passphrase === undefined ? {} : { passphrase }),
    });
    if (report.ok) print('the network keeps running; Ctrl-C stops it');
  } catch (err) {
    if (!signal.aborted) print(`failed: ${(err as Error).message}`);
  } finally {
    for (const c of clients) c.close();
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
        'no-demo': { type: 'boolean' },
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

    const demoAbort = new AbortController();
    const stopAll = (): void => {
      if (stopping) return;
      stopping = true;
      demoAbort.abort(new Error('stopping'));
      console.log('\ntrellis up: stopping every node…');
      for (const c of children.values()) c.kill('SIGTERM');
    };
    process.on('SIGINT', stopAll);
    process.on('SIGTERM', stopAll);
    const demo =
      parsed.values['no-demo'] === true
        ? Promise.resolve()
        : demoWhenReady(dir, manifest, demoAbort.signal, () => stopping);
    const codes = await Promise.all(exited);
    // Nodes that all exited on their own leave the demo nothing to talk to.
    if (!demoAbort.signal.aborted) demoAbort.abort(new Error('every node exited'));
    await demo;
    process.off('SIGINT', stopAll);
    process.off('SIGTERM', stopAll);
    console.log(
      `trellis up: all nodes stopped (network kept in ${dir}; ${NetworkFiles.manifest} describes it)`,
    );
    return stopping ? 0 : Math.max(...codes);
  },
};
