/**
 * Argument parsing shared by the subcommands: node:util parseArgs in strict mode, `--help` on
 * every command, and usage errors that carry exit code 2 (the shell convention for misuse).
 */
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { TrellisError } from '../../core/errors.ts';

/** Reasons a command stops before doing anything. */
export type CliErrorCode =
  /** Bad or missing arguments. */
  | 'USAGE'
  /** The target already exists and --force was not given. */
  | 'EXISTS';

/** Raised by CLI commands for operator mistakes; main prints the message and exits non-zero. */
export class CliError extends TrellisError<CliErrorCode> {
  /** Process exit code: 2 for usage errors, 1 otherwise. */
  get exitCode(): number {
    return this.code === 'USAGE' ? 2 : 1;
  }
}

/** Parsed values: strings, booleans, or undefined when absent. */
export type ParsedValues = Record<string, string | boolean | undefined>;

/** Result of {@link parseCommand}: either help was asked for, or the values and positionals. */
export type ParsedCommand =
  | { readonly help: true }
  | { readonly help: false; readonly values: ParsedValues; readonly positionals: string[] };

/**
 * Parses `argv` strictly against `options` (plus `--help`/`-h`). Unknown options, missing values
 * and unexpected positionals become CliError('USAGE') with the command's usage text.
 */
export function parseCommand(
  argv: string[],
  options: ParseArgsOptionsConfig,
  usage: string,
  maxPositionals = 0,
): ParsedCommand {
  let parsed: { values: ParsedValues; positionals: string[] };
  try {
    const result = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: maxPositionals > 0,
    });
    parsed = { values: result.values, positionals: result.positionals };
  } catch (err) {
    throw new CliError('USAGE', (err as Error).message, { usage });
  }
  if (parsed.values['help'] === true) return { help: true };
  if (parsed.positionals.length > maxPositionals) {
    throw new CliError('USAGE', `unexpected argument "${parsed.positionals[maxPositionals]}"`, {
      usage: usage,
    });
  }
  return { help: false, values: parsed.values, positionals: parsed.positionals };
}

/** A string option's value, or undefined. */
export function stringOption(values: ParsedValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** A boolean flag's value. */
export function flag(values: ParsedValues, name: string): boolean {
  return values[name] === true;
}

/** Parses an integer option within bounds, or throws a usage error naming the option. */
export function integerOption(value: string, name: string, min: number, max: number, usage: string): number {
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new CliError('USAGE', `--${name}: expected an integer from ${min} to ${max}, got "${value}"`, {
      usage: usage,
    });
  }
  return Number(value);
}
