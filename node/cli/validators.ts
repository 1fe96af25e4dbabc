/**
 * `trellis validators`: the validator set as the chain knows it, and governance proposals that
 * change it — after a pre-flight check that refuses a set of which fewer than a quorum are
 * reachable now (such a change would halt the chain at the height it takes effect).
 */
import { readFileSync } from 'node:fs';
import { fromHex, toHex } from '../../core/bytes.ts';
import type { Value } from '../../core/codec.ts';
import { validatorOf, type Validator } from '../../core/types.ts';
import {
  applyValidatorChange,
  createValidatorSchedule,
  type ChangeOutcome,
} from '../../consensus/validatorSet.ts';
import { loadKeyFile, resolvePassphrase } from '../keystore.ts';
import { createClient, type TrellisClient } from '../../rpc/sdk/client.ts';
import { createWallet } from '../../rpc/sdk/wallet.ts';
import type { Command } from './commands.ts';
import { CliError, flag, parseCommand, stringOption } from './parse.ts';

/** One entry of a proposed set, as the approvals contract's `setValidators` takes it. */
export interface ProposedValidator {
  readonly name: string;
  readonly organisation: string;
  readonly publicKey: string;
}

/**
 * The pre-flight check against what `client`'s node sees now: the node itself and its connected
 * peers are reachable. Pure over that observation (consensus/validatorSet.ts applyValidatorChange).
 */
export async function preflightValidatorSet(
  client: TrellisClient,
  proposed: readonly ProposedValidator[],
): Promise<ChangeOutcome> {
  const head = (await client.head())?.height ?? 0;
  const current = await client.call('chain_getValidators', {});
  const info = await client.call('node_info', {});
  const peers = await client.call('node_peers', {});
  const reachable = new Set<string>([
    toHex(info.address),
    ...peers.peers.flatMap((p) => (p.address === undefined ? [] : [toHex(p.address)])),
  ]);
  const validators: Validator[] = proposed.map((v) => validatorOf(fromHex(v.publicKey, 'publicKey', 32)));
  const schedule = createValidatorSchedule(current.validators.map((v) => validatorOf(v.publicKey)));
  // The approvals contract applies a change two blocks after the approving one: at least head + 2.
  return applyValidatorChange(
    schedule,
    { effectiveHeight: head + 2, validators },
    { currentHeight: head, reachable },
  );
}

/** The governance proposal (a call to approvals.propose) that sets `proposed` as the validator set. */
export function setValidatorsProposal(proposed: readonly ProposedValidator[]): {
  contract: string;
  method: string;
  args: Value;
} {
  return {
    contract: 'approvals',
    method: 'propose',
    args: {
      policy: 'governance',
      target: 'approvals',
      method: 'setValidators',
      args: {
        validators: proposed.map((v) => ({
          name: v.name,
          organisation: v.organisation,
          publicKey: fromHex(v.publicKey, 'publicKey', 32),
        })),
      },
    },
  };
}

const USAGE = `Usage: trellis validators list [--rpc URL] [--json]
       trellis validators propose --set FILE.json --key ADMIN_KEY [--force] [--rpc URL] [--passphrase-file F]

list     the validator set that certifies the next height.
propose  proposes, under the governance policy, the complete new ordered set in FILE.json
         ([{ "name", "organisation", "publicKey": "0x…" }]); it takes effect two blocks after the
         proposal gathers its approvals. Refused before sending when fewer than a quorum of the
         new set are reachable from the node now (--force sends it anyway).`;

/** `trellis validators`. */
export const validatorsCommand: Command = {
  name: 'validators',
  summary: 'show the validator set, or propose a new one (with a reachability pre-flight)',
  async run(argv) {
    const [sub, ...rest] = argv;
    const parsed = parseCommand(
      rest,
      {
        rpc: { type: 'string' },
        json: { type: 'boolean' },
        set: { type: 'string' },
        key: { type: 'string' },
        force: { type: 'boolean' },
        'passphrase-file': { type: 'string' },
      },
      USAGE,
    );
    if (parsed.help || sub === undefined || sub === '--help' || sub === '-h') {
      console.log(USAGE);
      return sub === undefined ? 2 : 0;
    }
    const client = createClient({ url: stringOption(parsed.values, 'rpc') ?? 'http://127.0.0.1:8545' });
    try {
      if (sub === 'list') {
        const set = await client.call('chain_getValidators', {});
        if (flag(parsed.values, 'json')) {
          console.log(
            JSON.stringify({ height: set.height, validators: set.validators.map((v) => toHex(v.address)) }),
          );
        } else {
          console.log(`validators certifying height ${set.height}:`);
          for (const v of set.validators) console.log(`  ${toHex(v.address)}  ${toHex(v.publicKey)}`);
        }
        return 0;
      }
      if (sub !== 'propose') throw new CliError('USAGE', `unknown subcommand "${sub}"`, { usage: USAGE });
      const file = stringOption(parsed.values, 'set');
      const keyFile = stringOption(parsed.values, 'key');
      if (file === undefined || keyFile === undefined) {
        throw new CliError('USAGE', 'propose needs --set FILE.json and --key ADMIN_KEY', { usage: USAGE });
      }
      const proposed = JSON.parse(readFileSync(file, 'utf8')) as ProposedValidator[];
      const check = await preflightValidatorSet(client, proposed);
      if (!check.ok) {
        console.error(`trellis validators: pre-flight refused the change: ${check.error.message}`);
        if (!flag(parsed.values, 'force')) return 1;
        console.error('trellis validators: --force given, proposing anyway');
      }
      const passphraseFile = stringOption(parsed.values, 'passphrase-file');
      const passphrase = resolvePassphrase(passphraseFile === undefined ? {} : { passphraseFile });
      const key = await loadKeyFile(keyFile, {
        ...(passphrase === undefined ? {} : { passphrase }),
        allowUnencrypted: true,
      });
      const r = await createWallet(client, key).sendAndWait(setValidatorsProposal(proposed));
      if (r.receipt.status !== 'ok') {
        console.error(`trellis validators: proposal refused: ${r.receipt.errorCode} ${r.receipt.error}`);
        return 1;
      }
      console.log(
        `proposal ${JSON.stringify(r.receipt.returnValue)} created at height ${r.height}; admins approve it with approvals.approve`,
      );
      return 0;
    } finally {
      client.close();
    }
  },
};
