import { initCommand } from './init.ts';
import { keysCommand } from './keys.ts';
import { startCommand } from './start.ts';
import { upCommand } from './up.ts';
import { rpcCommands } from './rpcCommands.ts';
import { addContractCheck } from './contractCheck.ts';
import { gatewayCommand } from './gateway.ts';
import { iotCommand } from './iot.ts';
import { demoCommand } from './demo.ts';
import { validatorsCommand } from './validators.ts';
import { verifyCommand } from './verify.ts';

/** A CLI subcommand. */
export interface Command {
  readonly name: string;
  readonly summary: string;
  /** Runs with the arguments after the subcommand name; resolves to the exit code. */
  run(argv: string[]): Promise<number>;
}

/** Every subcommand, in the order `trellis help` lists them. */
export const commands: Command[] = [
  initCommand,
  keysCommand,
  startCommand,
  upCommand,
  validatorsCommand,
  ...rpcCommands,
  verifyCommand,
  gatewayCommand,
  iotCommand,
  demoCommand,
];
// `trellis contract check` (vm/check.ts) joins the `trellis contract` subcommands.
addContractCheck(commands);
