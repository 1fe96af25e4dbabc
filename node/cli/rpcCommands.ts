/**
 * The client commands of the CLI, all on the SDK (rpc/sdk): `trellis status`, `trellis tx
 * send|get`, `trellis contract deploy|call|view|list`, `trellis events` and `trellis bench`.
 * Output is readable by default and JSON with `--json` (values in the RPC JSON mapping).
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { fromHex, toHex, type Bytes } from '../../core/bytes.ts';
import type { Value } from '../../core/codec.ts';
import { TX_KINDS, type TxKind } from '../../core/types.ts';
import {
  callWorkload,
  formatLoadReport,
  runLoad,
  transferWorkload,
  type AckRecord,
} from '../../rpc/loadgen.ts';
import type { ResultOf } from '../../rpc/methods.ts';
import {
  createClient,
  type ChainEventView,
  type ReceiptView,
  type TrellisClient,
} from '../../rpc/sdk/client.ts';
import { createWallet, type Wallet } from '../../rpc/sdk/wallet.ts';
import { formatCursor, parseCursor } from '../../rpc/schemas.ts';
import { valueFromJsonChecked, valueToJson, type Json } from '../../rpc/wire.ts';
import { loadKeyFile, resolvePassphrase } from '../keystore.ts';
import type { Command } from './commands.ts';
import { CliError, flag, integerOption, parseCommand, stringOption, type ParsedValues } from './parse.ts';

/** The node the commands talk to unless `--rpc` says otherwise. */
export const DEFAULT_RPC_URL = 'http://127.0.0.1:8545';
/** Environment variable holding the admin token (for admin methods). */
export const ADMIN_TOKEN_ENV = 'TRELLIS_ADMIN_TOKEN';

const RPC_OPTION = `  --rpc URL              node to talk to (default ${DEFAULT_RPC_URL})`;
const JSON_OPTION = '  --json                 print JSON instead of text';
const KEY_OPTIONS = `  --key FILE             key file of the sender (trellis keys new)
  --passphrase-file FILE passphrase of an encrypted key file (or TRELLIS_PASSPHRASE)`;

function clientOf(values: ParsedValues): TrellisClient {
  const token = process.env[ADMIN_TOKEN_ENV];
  return createClient({
    url: stringOption(values, 'rpc') ?? DEFAULT_RPC_URL,
    ...(token === undefined ? {} : { adminToken: token }),
  });
}

async function walletOf(values: ParsedValues, client: TrellisClient, usage: string): Promise<Wallet> {
  const file = stringOption(values, 'key');
  if (file === undefined) throw new CliError('USAGE', '--key FILE is required to sign', { usage });
  const passphraseFile = stringOption(values, 'passphrase-file');
  const passphrase = resolvePassphrase(passphraseFile === undefined ? {} : { passphraseFile });
  // Unencrypted development keys say so in the file; a client may use them (a node may not).
  const key = await loadKeyFile(file, {
    ...(passphrase === undefined ? {} : { passphrase }),
    allowUnencrypted: true,
  });
  return createWallet(client, key);
}

/** Parses `--args` in the RPC JSON mapping ({"$bytes": "0x…"}, {"$bigint": "…"}). */
function argsOf(values: ParsedValues, name: string, usage: string): Value {
  const text = stringOption(values, name);
  if (text === undefined) return null;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CliError('USAGE', `--${name}: not JSON (${(err as Error).message})`, { usage });
  }
  return valueFromJsonChecked(json, `--${name}`);
}

function hashOf(text: string | undefined, usage: string): Bytes {
  if (text === undefined) throw new CliError('USAGE', 'missing HASH', { usage });
  try {
    return fromHex(text, 'HASH', 32);
  } catch (err) {
    throw new CliError('USAGE', (err as Error).message, { usage });
  }
}

function show(values: ParsedValues, json: unknown, text: () => string): void {
  console.log(flag(values, 'json') ? JSON.stringify(json, null, 2) : text());
}

function valueText(v: Value): string {
  return JSON.stringify(valueToJson(v));
}

function receiptJson(r: ReceiptView): Json {
  return {
    height: r.height,
    receiptIndex: r.receiptIndex,
    txHash: toHex(r.receipt.txHash),
    status: r.receipt.status,
    gasUsed: r.receipt.gasUsed,
    returnValue: valueToJson(r.receipt.returnValue),
    events: r.receipt.events.map((e) => ({ contract: e.contract, name: e.name, data: valueToJson(e.data) })),
    errorCode: r.receipt.errorCode,
    error: r.receipt.error,
  };
}

function receiptText(r: ReceiptView): string {
  const lines = [
    `status:  ${r.receipt.status}${r.receipt.errorCode === '' ? '' : ` ${r.receipt.errorCode}: ${r.receipt.error}`}`,
    `block:   ${r.height} (receipt ${r.receiptIndex})`,
    `gas:     ${r.receipt.gasUsed}`,
    `return:  ${valueText(r.receipt.returnValue)}`,
  ];
  for (const e of r.receipt.events) lines.push(`event:   ${e.contract}.${e.name} ${valueText(e.data)}`);
  return lines.join('\n');
}

// trellis status

const STATUS_USAGE = `Usage: trellis status [--rpc URL] [--json]

Shows a node: identity, chain, height, round, peers, mempool and health.

Options:
${RPC_OPTION}
${JSON_OPTION}
  -h, --help             show this help`;

/** `trellis status`. */
export const statusCommand: Command = {
  name: 'status',
  summary: "show a node's identity, height, peers and health",
  async run(argv) {
    const parsed = parseCommand(argv, { rpc: { type: 'string' }, json: { type: 'boolean' } }, STATUS_USAGE);
    if (parsed.help) return (console.log(STATUS_USAGE), 0);
    const client = clientOf(parsed.values);
    try {
      const [info, health, head] = await Promise.all([
        client.call('node_info', {}),
        client.call('node_health', {}),
        client.head(),
      ]);
      const json = {
        url: client.url,
        chainId: info.chainId,
        nodeId: info.nodeId,
        address: toHex(info.address),
        validator: info.validator,
        version: info.version,
        runtime: info.runtime,
        genesisHash: toHex(info.genesisHash),
        height: head?.height ?? 0,
        headHash: head === null ? null : toHex(head.hash),
        headTime: head?.header.timestamp ?? null,
        round: health.round,
        peers: health.peers,
        mempoolSize: health.mempoolSize,
        live: health.live,
        ready: health.ready,
        syncing: health.syncing,
        reasons: health.reasons,
      };
      show(parsed.values, json, () =>
        [
          `node:     ${info.nodeId} (${info.validator ? 'validator' : 'non-validator'}) ${toHex(info.address)}`,
          `chain:    ${info.chainId}, genesis ${toHex(info.genesisHash)}`,
          `software: trellis ${info.version} on ${info.runtime}`,
          head === null
            ? 'height:   0 (no block yet)'
            : `height:   ${head.height} ${toHex(head.hash)} at ${new Date(head.header.timestamp).toISOString()}`,
          `round:    ${health.round}`,
          `peers:    ${health.peers}`,
          `mempool:  ${health.mempoolSize}`,
          `health:   ${health.live ? 'live' : 'NOT LIVE'}, ${health.ready ? 'ready' : 'NOT READY'}${health.syncing ? ', syncing' : ''}${
            health.reasons.length === 0 ? '' : ` (${health.reasons.join('; ')})`
          }`,
        ].join('\n'),
      );
      return health.live ? 0 : 1;
    } finally {
      client.close();
    }
  },
};

// trellis tx

const TX_SEND_USAGE = `Usage: trellis tx send --contract NAME --method NAME [--args JSON] --key FILE [options]
       trellis tx send --raw 0xHEX [options]

Signs and sends a transaction (or sends signed wire bytes as they are).

Options:
  --contract NAME        target contract
  --method NAME          method to call
  --args JSON            arguments in the RPC JSON mapping (bytes {"$bytes":"0x.."}, big integers {"$bigint":".."})
  --kind KIND            ${TX_KINDS.join(', ')} (default call)
  --gas N                gas limit (default 1000000)
${KEY_OPTIONS}
  --raw 0xHEX            signed wire bytes to send instead
  --wait                 wait for the receipt
${RPC_OPTION}
${JSON_OPTION}
  -h, --help             show this help`;

const TX_GET_USAGE = `Usage: trellis tx get HASH [--rpc URL] [--json]

Shows a committed transaction and its receipt.

Options:
${RPC_OPTION}
${JSON_OPTION}
  -h, --help             show this help`;

const TX_USAGE = `Usage: trellis tx <send|get> [options]

  send  sign and send a transaction
  get   show a committed transaction and its receipt`;

async function txSend(argv: string[]): Promise<number> {
  const parsed = parseCommand(
    argv,
    {
      contract: { type: 'string' },
      method: { type: 'string' },
      args: { type: 'string' },
      kind: { type: 'string' },
      gas: { type: 'string' },
      key: { type: 'string' },
      'passphrase-file': { type: 'string' },
      raw: { type: 'string' },
      wait: { type: 'boolean' },
      rpc: { type: 'string' },
      json: { type: 'boolean' },
    },
    TX_SEND_USAGE,
  );
  if (parsed.help) return (console.log(TX_SEND_USAGE), 0);
  const v = parsed.values;
  const client = clientOf(v);
  try {
    let hash: Bytes;
    const raw = stringOption(v, 'raw');
    if (raw !== undefined) {
      hash = await client.sendTx(fromHex(raw, '--raw'));
    } else {
      const contract = stringOption(v, 'contract');
      if (contract === undefined)
        throw new CliError('USAGE', '--contract is required', { usage: TX_SEND_USAGE });
      const kind = (stringOption(v, 'kind') ?? 'call') as TxKind;
      if (!(TX_KINDS as readonly string[]).includes(kind)) {
        throw new CliError('USAGE', `--kind: expected one of ${TX_KINDS.join(', ')}`, {
          usage: TX_SEND_USAGE,
        });
      }
      const gas = stringOption(v, 'gas');
      const wallet = await walletOf(v, client, TX_SEND_USAGE);
      const sent = await wallet.send({
        contract,
        method: stringOption(v, 'method') ?? '',
        args: argsOf(v, 'args', TX_SEND_USAGE),
        kind,
        ...(gas === undefined
          ? {}
          : { gasLimit: integerOption(gas, 'gas', 1, Number.MAX_SAFE_INTEGER, TX_SEND_USAGE) }),
      });
      hash = sent.hash;
    }
    if (!flag(v, 'wait')) {
      show(v, { hash: toHex(hash) }, () => toHex(hash));
      return 0;
    }
    const r = await client.waitTx(hash, 60_000);
    show(v, { hash: toHex(hash), receipt: receiptJson(r) }, () => `${toHex(hash)}\n${receiptText(r)}`);
    return r.receipt.status === 'ok' ? 0 : 1;
  } finally {
    client.close();
  }
}

async function txGet(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, { rpc: { type: 'string' }, json: { type: 'boolean' } }, TX_GET_USAGE, 1);
  if (parsed.help) return (console.log(TX_GET_USAGE), 0);
  const hash = hashOf(parsed.positionals[0], TX_GET_USAGE);
  const client = clientOf(parsed.values);
  try {
    const [rec, receipt] = await Promise.all([client.call('tx_get', { hash }), client.getReceipt(hash)]);
    const { tx } = rec;
    const json = {
      hash: toHex(tx.hash),
      height: rec.height,
      index: rec.index,
      sender: toHex(tx.sender),
      nonce: tx.nonce,
      kind: tx.kind,
      contract: tx.contract,
      method: tx.method,
      args: valueToJson(tx.args),
      gasLimit: tx.gasLimit,
      receipt: receiptJson(receipt),
    };
    show(parsed.values, json, () =>
      [
        `hash:    ${toHex(tx.hash)}`,
        `from:    ${toHex(tx.sender)} (nonce ${tx.nonce})`,
        `call:    ${tx.kind} ${tx.contract}${tx.method === '' ? '' : `.${tx.method}`} ${valueText(tx.args)}`,
        `gas:     limit ${tx.gasLimit}`,
        receiptText(receipt),
      ].join('\n'),
    );
    return 0;
  } finally {
    client.close();
  }
}

/** `trellis tx`. */
export const txCommand: Command = {
  name: 'tx',
  summary: 'send a transaction (tx send) or show one (tx get)',
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === 'send') return txSend(rest);
    if (sub === 'get') return txGet(rest);
    if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
      console.log(TX_USAGE);
      return sub === undefined ? 2 : 0;
    }
    throw new CliError('USAGE', `unknown subcommand "tx ${sub}"`, { usage: TX_USAGE });
  },
};

// trellis contract

const CONTRACT_USAGE = `Usage: trellis contract <deploy|call|view|list> [options]

  deploy NAME FILE.ts   deploy a TypeScript contract (--init-args JSON)
  call NAME METHOD      run a method in a transaction and wait for its receipt (--args JSON)
  view NAME METHOD      run a view, read-only (--args JSON, --height N)
  list                  list deployed contracts

Options:
  --args JSON            arguments in the RPC JSON mapping
  --init-args JSON       deploy: arguments of the contract's init
  --height N             view: state height (default head)
  --gas N                deploy/call: gas limit
${KEY_OPTIONS}
${RPC_OPTION}
${JSON_OPTION}
  -h, --help             show this help`;

const CONTRACT_OPTIONS = {
  args: { type: 'string' },
  'init-args': { type: 'string' },
  height: { type: 'string' },
  gas: { type: 'string' },
  key: { type: 'string' },
  'passphrase-file': { type: 'string' },
  rpc: { type: 'string' },
  json: { type: 'boolean' },
} as const;

async function sendAndReport(
  values: ParsedValues,
  client: TrellisClient,
  call: { contract: string; method: string; args: Value; kind: TxKind },
): Promise<number> {
  const gas = stringOption(values, 'gas');
  const wallet = await walletOf(values, client, CONTRACT_USAGE);
  const r = await wallet.sendAndWait({
    ...call,
    ...(gas === undefined
      ? {}
      : { gasLimit: integerOption(gas, 'gas', 1, Number.MAX_SAFE_INTEGER, CONTRACT_USAGE) }),
  });
  show(values, receiptJson(r), () => `${toHex(r.receipt.txHash)}\n${receiptText(r)}`);
  return r.receipt.status === 'ok' ? 0 : 1;
}

/** `trellis contract`. */
export const contractCommand: Command = {
  name: 'contract',
  summary: 'deploy, call, view or list contracts',
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
      console.log(CONTRACT_USAGE);
      return sub === undefined ? 2 : 0;
    }
    if (!['deploy', 'call', 'view', 'list'].includes(sub)) {
      throw new CliError('USAGE', `unknown subcommand "contract ${sub}"`, { usage: CONTRACT_USAGE });
    }
    const parsed = parseCommand(rest, CONTRACT_OPTIONS, CONTRACT_USAGE, 2);
    if (parsed.help) return (console.log(CONTRACT_USAGE), 0);
    const v = parsed.values;
    const [a, b] = parsed.positionals;
    const need = (x: string | undefined, what: string): string => {
      if (x === undefined)
        throw new CliError('USAGE', `contract ${sub}: missing ${what}`, { usage: CONTRACT_USAGE });
      return x;
    };
    const client = clientOf(v);
    try {
      switch (sub) {
        case 'deploy': {
          const name = need(a, 'NAME');
          const file = need(b, 'FILE');
          const source = readFileSync(file, 'utf8');
          const initArgs =
            stringOption(v, 'init-args') === undefined ? undefined : argsOf(v, 'init-args', CONTRACT_USAGE);
          const args: Value = initArgs === undefined ? { source } : { source, initArgs };
          return await sendAndReport(v, client, { contract: name, method: '', args, kind: 'deploy' });
        }
        case 'call':
          return await sendAndReport(v, client, {
            contract: need(a, 'NAME'),
            method: need(b, 'METHOD'),
            args: argsOf(v, 'args', CONTRACT_USAGE),
            kind: 'call',
          });
        case 'view': {
          const height = stringOption(v, 'height');
          const r = await client.call('contract_call', {
            contract: need(a, 'NAME'),
            method: need(b, 'METHOD'),
            args: argsOf(v, 'args', CONTRACT_USAGE),
            ...(height === undefined
              ? {}
              : { height: integerOption(height, 'height', 0, Number.MAX_SAFE_INTEGER, CONTRACT_USAGE) }),
          });
          show(v, { value: valueToJson(r.value), height: r.height, gasUsed: r.gasUsed }, () =>
            valueText(r.value),
          );
          return 0;
        }
        default: {
          const all: ResultOf<'contract_list'>['contracts'] = [];
          let after: string | undefined;
          for (;;) {
            const page = await client.call('contract_list', {
              limit: 500,
              ...(after === undefined ? {} : { after }),
            });
            all.push(...page.contracts);
            if (page.next === undefined) break;
            after = page.next;
          }
          const json = all.map((c) => ({ ...c, codeHash: toHex(c.codeHash) }));
          show(v, json, () =>
            all.length === 0
              ? '(no contracts)'
              : all
                  .map(
                    (c) =>
                      `${c.name.padEnd(24)} ${toHex(c.codeHash).slice(0, 18)}… deployed at ${c.deployedAt}${c.frozen ? ' FROZEN' : ''}${
                        c.methods.length === 0 ? '' : `  [${c.methods.join(', ')}]`
                      }`,
                  )
                  .join('\n'),
          );
          return 0;
        }
      }
    } finally {
      client.close();
    }
  },
};

// trellis events

const EVENTS_USAGE = `Usage: trellis events [--contract NAME] [--name NAME] [--from H] [--to H] [--cursor C] [--limit N] [--follow [--count N]]

Lists committed events in chain order, or follows new ones (--follow) and resumes after a lost
connection from the last cursor. Each line starts with the event's cursor (height:receipt:event):
pass it to --cursor to continue after it.

Options:
  --contract NAME        only this contract's events
  --name NAME            only events with this name
  --from H, --to H       height range (default: all)
  --cursor C             only events after this cursor
  --limit N              most events to list (default 100; with --follow: unlimited)
  --follow               keep running and print events as blocks commit
  --count N              with --follow: exit after N events
${RPC_OPTION}
${JSON_OPTION}  (one JSON object per line)
  -h, --help             show this help`;

function eventLine(values: ParsedValues, e: ChainEventView): string {
  if (flag(values, 'json')) {
    return JSON.stringify({
      cursor: formatCursor(e.cursor),
      height: e.height,
      txHash: toHex(e.txHash),
      contract: e.contract,
      name: e.name,
      data: valueToJson(e.data),
    });
  }
  return `${formatCursor(e.cursor).padEnd(14)} ${e.contract}.${e.name} ${valueText(e.data)}`;
}

/** `trellis events`. */
export const eventsCommand: Command = {
  name: 'events',
  summary: 'list or follow contract events (resumable by cursor)',
  async run(argv) {
    const parsed = parseCommand(
      argv,
      {
        contract: { type: 'string' },
        name: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        cursor: { type: 'string' },
        limit: { type: 'string' },
        follow: { type: 'boolean' },
        count: { type: 'string' },
        rpc: { type: 'string' },
        json: { type: 'boolean' },
      },
      EVENTS_USAGE,
    );
    if (parsed.help) return (console.log(EVENTS_USAGE), 0);
    const v = parsed.values;
    const int = (name: string) => {
      const s = stringOption(v, name);
      return s === undefined ? undefined : integerOption(s, name, 0, Number.MAX_SAFE_INTEGER, EVENTS_USAGE);
    };
    const contract = stringOption(v, 'contract');
    const name = stringOption(v, 'name');
    const cursorText = stringOption(v, 'cursor');
    let cursor;
    try {
      cursor = cursorText === undefined ? undefined : parseCursor(cursorText, '--cursor');
    } catch (err) {
      throw new CliError('USAGE', (err as Error).message, { usage: EVENTS_USAGE });
    }
    const filter = {
      ...(contract === undefined ? {} : { contract }),
      ...(name === undefined ? {} : { name }),
    };
    const client = clientOf(v);
    try {
      if (flag(v, 'follow')) {
        const count = int('count');
        const from = int('from');
        let seen = 0;
        let done: () => void = () => undefined;
        const finished = new Promise<void>((r) => (done = r));
        const sub = await client.subscribeEvents(
          {
            ...filter,
            ...(cursor === undefined ? {} : { cursor }),
            ...(from === undefined ? {} : { fromHeight: from }),
          },
          (e) => {
            if (count !== undefined && seen >= count) return;
            console.log(eventLine(v, e));
            if (count !== undefined && ++seen >= count) done();
          },
        );
        const stop = () => done();
        process.once('SIGINT', stop);
        await finished;
        process.off('SIGINT', stop);
        await sub.close();
        return 0;
      }
      const limit = int('limit') ?? 100;
      const fromHeight = int('from');
      const toHeight = int('to');
      let printed = 0;
      let next = cursor;
      while (printed < limit) {
        const page = await client.call('events_query', {
          ...filter,
          limit: Math.min(1000, limit - printed),
          ...(fromHeight === undefined ? {} : { fromHeight }),
          ...(toHeight === undefined ? {} : { toHeight }),
          ...(next === undefined ? {} : { cursor: next }),
        });
        for (const e of page.events) console.log(eventLine(v, e));
        printed += page.events.length;
        if (page.next === undefined) break;
        next = page.next;
      }
      if (printed === 0 && !flag(v, 'json')) console.error('(no events)');
      return 0;
    } finally {
      client.close();
    }
  },
};

// trellis bench

const BENCH_USAGE = `Usage: trellis bench [--rpc URL[,URL...]] [--txs N] [--senders N] [--rate TPS] [options]

Load generator in the manner of Hyperledger Caliper: pre-signs N transactions from many senders,
sends them round-robin to the nodes at a fixed rate (--rate) or as fast as they are accepted,
watches blocks commit and reports send rate, throughput, latency (avg, p50, p95, p99) and
successes and failures.

Options:
  --rpc URL[,URL...]     nodes to load (default ${DEFAULT_RPC_URL}); the first one is watched for commits
  --txs N                transactions to send (default 10000)
  --senders N            distinct sender keys (default 100)
  --rate TPS             fixed send rate; default: as fast as accepted
  --concurrency N        most sends awaiting an answer (default 256)
  --batch N              most transactions per JSON-RPC batch request, 1..100 (default 50; sends
                         ready together share a request, none waits to fill one)
  --workload NAME        transfer (default: token transfers, senders funded first) or call
  --contract NAME        --workload call: contract
  --method NAME          --workload call: method
  --args JSON            --workload call: arguments; "$sender", "$peer" and "$seq" are filled in
  --seed TEXT            seed of the sender keys (default trellis-bench)
  --idle-timeout-ms MS   stop waiting for commits after this long without one (default 60000)
  --acked-file FILE      write each transaction seen committed to FILE as it is seen, one JSON line
                         {"hash","height","status"} (emptied first; at most --txs lines)
${JSON_OPTION}
  -h, --help             show this help`;

/** `trellis bench`. */
export const benchCommand: Command = {
  name: 'bench',
  summary: 'load-test nodes: send rate, throughput, latency percentiles',
  async run(argv) {
    const parsed = parseCommand(
      argv,
      {
        rpc: { type: 'string' },
        txs: { type: 'string' },
        senders: { type: 'string' },
        rate: { type: 'string' },
        concurrency: { type: 'string' },
        batch: { type: 'string' },
        workload: { type: 'string' },
        contract: { type: 'string' },
        method: { type: 'string' },
        args: { type: 'string' },
        seed: { type: 'string' },
        'idle-timeout-ms': { type: 'string' },
        'acked-file': { type: 'string' },
        json: { type: 'boolean' },
      },
      BENCH_USAGE,
    );
    if (parsed.help) return (console.log(BENCH_USAGE), 0);
    const v = parsed.values;
    const int = (name: string, def: number, max: number) => {
      const s = stringOption(v, name);
      return s === undefined ? def : integerOption(s, name, 1, max, BENCH_USAGE);
    };
    const urls = (stringOption(v, 'rpc') ?? DEFAULT_RPC_URL).split(',').filter((u) => u !== '');
    const kind = stringOption(v, 'workload') ?? 'transfer';
    let workload = transferWorkload;
    if (kind === 'call') {
      const contract = stringOption(v, 'contract');
      const method = stringOption(v, 'method');
      if (contract === undefined || method === undefined) {
        throw new CliError('USAGE', '--workload call needs --contract and --method', { usage: BENCH_USAGE });
      }
      workload = callWorkload(contract, method, argsOf(v, 'args', BENCH_USAGE));
    } else if (kind !== 'transfer') {
      throw new CliError('USAGE', `--workload: expected transfer or call, got "${kind}"`, {
        usage: BENCH_USAGE,
      });
    }
    const rate = stringOption(v, 'rate');
    const seed = stringOption(v, 'seed');
    const idle = stringOption(v, 'idle-timeout-ms');
    const ackedFile = stringOption(v, 'acked-file');
    if (ackedFile !== undefined) {
      try {
        writeFileSync(ackedFile, '');
      } catch (err) {
        throw new CliError('USAGE', `--acked-file: cannot write ${ackedFile} (${(err as Error).message})`, {
          usage: BENCH_USAGE,
        });
      }
    }
    const report = await runLoad({
      urls,
      workload,
      txs: int('txs', 10_000, 10_000_000),
      senders: int('senders', 100, 100_000),
      concurrency: int('concurrency', 256, 100_000),
      batch: int('batch', 50, 100),
      ...(rate === undefined ? {} : { rate: int('rate', 0, 10_000_000) }),
      ...(seed === undefined ? {} : { seed }),
      ...(idle === undefined
        ? {}
        : { idleTimeoutMs: integerOption(idle, 'idle-timeout-ms', 1, 86_400_000, BENCH_USAGE) }),
      // Appended synchronously per block, so a reader (or a kill) never sees half a line.
      ...(ackedFile === undefined
        ? {}
        : {
            onAcknowledged: (acks: readonly AckRecord[]) =>
              appendFileSync(ackedFile, acks.map((a) => JSON.stringify(a) + '\n').join('')),
          }),
    });
    show(v, report, () => formatLoadReport(report));
    return report.sent > 0 && report.unconfirmed === 0 ? 0 : 1;
  },
};

/** Every command of this file, in the order `trellis help` lists them. */
export const rpcCommands: Command[] = [
  statusCommand,
  txCommand,
  contractCommand,
  eventsCommand,
  benchCommand,
];
