/**
 * `trellis contract check <file>`: type-checks a contract against the authoring API and runs the
 * VM's deploy-time checks locally, printing file:line:column errors (vm/check.ts). It joins the
 * other `trellis contract` subcommands: {@link addContractCheck} wraps the registered `contract`
 * command, answering `check` itself and handing everything else on unchanged.
 */
import type { Command } from './commands.ts';
import { CliError, flag, parseCommand } from './parse.ts';

const USAGE = `Usage: trellis contract check FILE.ts [--json]

Type-checks a contract against contracts/api.ts (import it as '@trellis/contract' or by path),
checks that it exports methods/views/init/migrate in the shape of a contract, and runs every check
a deploy runs (regular expressions, module-level state, code generation, async code, limits).
Prints one line per problem as file:line:column and exits 1 if there is any.

  --json    print the result as JSON`;

/** Runs `trellis contract check`. */
export async function runContractCheck(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, { json: { type: 'boolean' } }, USAGE, 1);
  if (parsed.help) return (console.log(USAGE), 0);
  const [file] = parsed.positionals;
  if (file === undefined) throw new CliError('USAGE', 'contract check: missing FILE', { usage: USAGE });
  // Loaded on demand: the TypeScript compiler is large and only this command needs it.
  const { checkContractFile, formatDiagnostic } = await import('../../vm/check.ts');
  let result;
  try {
    result = checkContractFile(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT' || e.code === 'EISDIR')
      throw new CliError('USAGE', `cannot read ${file}`, { usage: USAGE });
    throw err;
  }
  if (flag(parsed.values, 'json')) {
    console.log(JSON.stringify(result, null, 2));
  } else {
    for (const d of result.diagnostics) console.log(formatDiagnostic(d));
    if (result.diagnostics.length === 0) {
      console.log(
        `ok: ${result.methods.length} method(s) [${result.methods.join(', ')}], ${result.views.length} view(s) [${result.views.join(', ')}]; source hash ${result.sourceHash}`,
      );
    } else {
      console.log(`${result.diagnostics.length} problem(s)`);
    }
  }
  return result.diagnostics.length === 0 ? 0 : 1;
}

/**
 * Adds `check` to the `trellis contract` command in `commands`: the registered `contract` command
 * (if any) is wrapped so `check` runs here and every other subcommand reaches it unchanged.
 */
export function addContractCheck(commands: Command[]): void {
  const i = commands.findIndex((c) => c.name === 'contract');
  const inner = i >= 0 ? commands[i] : undefined;
  const wrapped: Command = {
    name: 'contract',
    summary:
      inner === undefined ? 'check a contract before deploying it' : `${inner.summary}; check a contract`,
    async run(argv) {
      if (argv[0] === 'check') return runContractCheck(argv.slice(1));
      if (inner === undefined) {
        console.log(USAGE);
        return argv.length === 0 ? 2 : 0;
      }
      const code = await inner.run(argv);
      if (argv.length === 0 || argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') {
        console.log(
          '\n  check FILE.ts          type-check a contract and run the deploy-time checks locally',
        );
      }
      return code;
    },
  };
  if (inner === undefined) commands.push(wrapped);
  else commands[i] = wrapped;
}
