import { assertPinnedRuntime } from '../runtime.ts';
import { loadNodeConfig } from '../config.ts';
import { startNode } from '../node.ts';
import type { Command } from './commands.ts';
import { CliError, parseCommand, stringOption } from './parse.ts';

const START_USAGE = `Usage: trellis start --home DIR [--admin-token-file FILE]

Runs one node from its home directory (config.json, key file, data/): joins the network named by
its genesis, takes part in consensus if it is a validator, and serves JSON-RPC on its rpc port.
Stops cleanly on Ctrl-C (SIGINT) or SIGTERM; committed blocks are never lost, whatever stops it.

Options:
  --home DIR               the node's home directory (as written by \`trellis init\`)
  --admin-token-file FILE  enables RPC admin methods for the bearer token in FILE
  -h, --help               show this help`;

/** `trellis start`. */
export const startCommand: Command = {
  name: 'start',
  summary: 'run one node from its home directory',
  async run(argv) {
    const parsed = parseCommand(
      argv,
      { home: { type: 'string' }, 'admin-token-file': { type: 'string' } },
      START_USAGE,
    );
    if (parsed.help) {
      console.log(START_USAGE);
      return 0;
    }
    const home = stringOption(parsed.values, 'home');
    if (home === undefined) throw new CliError('USAGE', 'missing --home DIR', { usage: START_USAGE });
    assertPinnedRuntime();
    const config = loadNodeConfig(home);
    const tokenFile = stringOption(parsed.values, 'admin-token-file');
    const { readFileSync } = await import('node:fs');
    const adminToken = tokenFile === undefined ? undefined : readFileSync(tokenFile, 'utf8').trim();
    let failed = false;
    let stopNow: () => void = () => undefined;
    const node = await startNode(config, {
      ...(adminToken === undefined ? {} : { adminToken }),
      onFatal: () => {
        failed = true;
        stopNow();
      },
    });
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      };
      stopNow = stop;
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    await node.stop();
    return failed ? 1 : 0;
  },
};
