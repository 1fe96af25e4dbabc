/**
 * The `trellis` command line: parses the subcommand and dispatches to it. Subcommands register in
 * `commands.ts`; each returns a process exit code.
 */
import { commands } from './commands.ts';
import { CliError } from './parse.ts';

/** Runs the CLI with the given arguments (without `node` and the script path). */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    console.log(usage());
    return name === undefined ? 1 : 0;
  }
  const command = commands.find((c) => c.name === name);
  if (command === undefined) {
    console.error(`trellis: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    const e = err as Error & { code?: string };
    console.error(`trellis ${name}: ${e.message}${e.code === undefined ? '' : ` [${e.code}]`}`);
    if (err instanceof CliError && typeof err.meta['usage'] === 'string')
      console.error(`\n${err.meta['usage']}`);
    if (process.env['TRELLIS_DEBUG'] !== undefined) console.error(e.stack);
    // Operator mistakes carry their own exit code (2 for usage errors).
    return err instanceof CliError ? err.exitCode : 1;
  }
}

function usage(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'Usage: trellis <command> [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `trellis <command> --help` for the options of a command.',
  ].join('\n');
}
