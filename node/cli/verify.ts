/**
 * `trellis verify`: checks a state value, a transaction or a receipt without trusting the node that
 * serves it. The answer is checked by its Merkle proof against a block header, the header by its
 * commit certificate against the validator set of its height, and that set is the genesis set of a
 * genesis file the caller trusts, or one every validator-set change since was proven to approve
 * (rpc/sdk/proofs.ts, the light client). A bank can thus confirm a receivable's holder from any
 * member's node.
 */
import { fromHex, toHex, utf8, type Bytes } from '../../core/bytes.ts';
import { decodeValue } from '../../core/codec.ts';
import { addressOf } from '../../core/keys.ts';
import type { BlockHeader } from '../../core/types.ts';
import { createClient, type TrellisClient } from '../../rpc/sdk/client.ts';
import { createLightClient, type LightClient } from '../../rpc/sdk/proofs.ts';
import { valueToJson } from '../../rpc/wire.ts';
import { genesisValidatorSet, loadGenesis } from '../genesis.ts';
import type { Command } from './commands.ts';
import { CliError, flag, integerOption, parseCommand, stringOption, type ParsedValues } from './parse.ts';
import { DEFAULT_RPC_URL } from './rpcCommands.ts';

const VERIFY_USAGE = `Usage: trellis verify <state|tx|receipt> ... --genesis FILE [options]

Checks an answer without trusting the node that gives it: a Merkle proof against a block header,
the header's commit certificate against the validator set of its height, and that set from the
genesis file you trust, following every validator-set change by the receipt that approved it.

  state CONTRACT KEY    a state value, or that the key is absent (KEY is text; 0x-hex with --hex-key)
  tx HASH               a committed transaction
  receipt HASH          the receipt of a committed transaction

Options:
  --genesis FILE         the genesis file you trust (required)
  --height N             state: at this height (default: the node's head)
  --hex-key              state: KEY is 0x-hex bytes
  --rpc URL              node that serves the proof (default ${DEFAULT_RPC_URL})
  --header-rpc URL       node that serves headers and certificates (default: --rpc)
  --json                 print JSON instead of text
  -h, --help             show this help

Exit code 0 when verified, 1 when a proof or certificate does not hold (the error says which).`;

const OPTIONS = {
  genesis: { type: 'string' },
  height: { type: 'string' },
  'hex-key': { type: 'boolean' },
  rpc: { type: 'string' },
  'header-rpc': { type: 'string' },
  json: { type: 'boolean' },
} as const;

interface Verified {
  readonly json: Record<string, unknown>;
  readonly text: string;
}

function headerLine(height: number, header: BlockHeader): string {
  return `block ${height}, state root ${toHex(header.stateRoot)}, certified by the validator set of height ${height}`;
}

async function verifyOne(
  kind: string,
  args: readonly string[],
  values: ParsedValues,
  light: LightClient,
  sources: { proofFrom: TrellisClient; headerFrom: TrellisClient },
): Promise<Verified> {
  if (kind === 'state') {
    const [contract, keyText] = args;
    if (contract === undefined || keyText === undefined) {
      throw new CliError('USAGE', 'verify state needs CONTRACT and KEY', { usage: VERIFY_USAGE });
    }
    let key: Bytes;
    try {
      key = flag(values, 'hex-key') ? fromHex(keyText, 'KEY') : utf8(keyText);
    } catch (err) {
      throw new CliError('USAGE', (err as Error).message, { usage: VERIFY_USAGE });
    }
    const heightText = stringOption(values, 'height');
    const height =
      heightText === undefined
        ? undefined
        : integerOption(heightText, 'height', 1, Number.MAX_SAFE_INTEGER, VERIFY_USAGE);
    const r = await light.verifyState(contract, key, {
      ...sources,
      ...(height === undefined ? {} : { height }),
    });
    const value = r.value === undefined ? undefined : valueToJson(decodeValue(r.value, 'state value'));
    return {
      json: {
        verified: true,
        contract,
        key: toHex(key),
        height: r.height,
        present: r.value !== undefined,
        value,
      },
      text: [
        r.value === undefined
          ? `verified: ${contract}/${keyText} is absent`
          : `verified: ${contract}/${keyText} = ${JSON.stringify(value)}`,
        headerLine(r.height, r.header),
      ].join('\n'),
    };
  }
  if (kind === 'tx' || kind === 'receipt') {
    const [hashText] = args;
    let hash: Bytes;
    try {
      hash = fromHex(hashText ?? '', 'HASH', 32);
    } catch (err) {
      throw new CliError('USAGE', (err as Error).message, { usage: VERIFY_USAGE });
    }
    if (kind === 'tx') {
      const r = await light.verifyTx(hash, sources);
      const { tx } = r.tx;
      return {
        json: {
          verified: true,
          hash: toHex(hash),
          height: r.height,
          from: toHex(addressOf(tx.from)),
          contract: tx.contract,
          method: tx.method,
          nonce: tx.nonce,
        },
        text: [
          `verified: transaction ${toHex(hash)} (${tx.kind} ${tx.contract}.${tx.method}, nonce ${tx.nonce})`,
          headerLine(r.height, r.header),
        ].join('\n'),
      };
    }
    const r = await light.verifyReceipt(hash, sources);
    return {
      json: {
        verified: true,
        hash: toHex(hash),
        height: r.height,
        status: r.receipt.status,
        errorCode: r.receipt.errorCode,
        events: r.receipt.events.map((e) => ({
          contract: e.contract,
          name: e.name,
          data: valueToJson(e.data),
        })),
      },
      text: [
        `verified: receipt of ${toHex(hash)}: ${r.receipt.status}${r.receipt.errorCode === '' ? '' : ` ${r.receipt.errorCode}`}, ${r.receipt.events.length} event(s)`,
        ...r.receipt.events.map(
          (e) => `  event ${e.contract}.${e.name} ${JSON.stringify(valueToJson(e.data))}`,
        ),
        headerLine(r.height, r.header),
      ].join('\n'),
    };
  }
  throw new CliError('USAGE', `unknown subcommand "verify ${kind}"`, { usage: VERIFY_USAGE });
}

/** `trellis verify`. */
export const verifyCommand: Command = {
  name: 'verify',
  summary: 'check a state value, transaction or receipt by its proof, trusting only a genesis file',
  async run(argv) {
    const parsed = parseCommand(argv, OPTIONS, VERIFY_USAGE, 3);
    if (parsed.help) return (console.log(VERIFY_USAGE), 0);
    const [kind, ...args] = parsed.positionals;
    if (kind === undefined)
      throw new CliError('USAGE', 'say what to verify: state, tx or receipt', { usage: VERIFY_USAGE });
    const genesisFile = stringOption(parsed.values, 'genesis');
    if (genesisFile === undefined) {
      throw new CliError('USAGE', '--genesis FILE is required: the proofs are checked against it', {
        usage: VERIFY_USAGE,
      });
    }
    const genesis = loadGenesis(genesisFile);
    const light = createLightClient({
      chainId: genesis.chainId,
      genesisValidators: genesisValidatorSet(genesis),
    });
    const proofFrom = createClient({ url: stringOption(parsed.values, 'rpc') ?? DEFAULT_RPC_URL });
    const headerUrl = stringOption(parsed.values, 'header-rpc');
    const headerFrom = headerUrl === undefined ? proofFrom : createClient({ url: headerUrl });
    try {
      const r = await verifyOne(kind, args, parsed.values, light, { proofFrom, headerFrom });
      console.log(flag(parsed.values, 'json') ? JSON.stringify(r.json, null, 2) : r.text);
      return 0;
    } finally {
      proofFrom.close();
      if (headerFrom !== proofFrom) headerFrom.close();
    }
  },
};
