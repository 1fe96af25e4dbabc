// Goal: the CLI's client commands (status, tx, contract, events, bench) work end to end against a node over RPC, in text and JSON.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import { addressOf } from '../../core/keys.ts';
import { saveKeyFile } from '../../node/keystore.ts';
import { trellis } from '../cliRunner.ts';
import { startHarness, type Harness } from './harness.ts';
import { makeTx, seededKey } from './testNode.ts';

let h: Harness;
let stop: () => void;
let dir: string;
let keyFile: string;
const alice = seededKey('cli-alice');
const aliceAddr = toHex(addressOf(alice.publicKey));

beforeAll(async () => {
  h = await startHarness({ network: { maxBlockTxs: 200 } });
  stop = h.net.autoProduce(5);
  dir = mkdtempSync(join(tmpdir(), 'trellis-cli-'));
  keyFile = join(dir, 'alice.json');
  await saveKeyFile(keyFile, alice, { unencrypted: true });
});

afterAll(async () => {
  stop();
  await h.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('trellis status', () => {
  it('prints the node in text and in JSON', async () => {
    const text = await trellis('status', '--rpc', h.urls[0]!);
    expect(text.code).toBe(0);
    expect(text.out).toContain('chain:    rpc-test');
    expect(text.out).toContain('health:   live, ready');
    const json = await trellis('status', '--rpc', h.urls[0]!, '--json');
    expect(JSON.parse(json.out)).toMatchObject({
      chainId: 'rpc-test',
      validator: true,
      peers: 3,
      live: true,
    });
  });
});

describe('trellis tx and contract', () => {
  it('sends, waits for, and shows a transaction', async () => {
    const args = JSON.stringify({ to: { $bytes: aliceAddr }, amount: 500 });
    const sent = await trellis(
      'tx',
      'send',
      '--rpc',
      h.urls[0]!,
      '--key',
      keyFile,
      '--contract',
      'token',
      '--method',
      'mint',
      '--args',
      args,
      '--wait',
      '--json',
    );
    expect(sent.code).toBe(0);
    const { hash, receipt } = JSON.parse(sent.out) as {
      hash: string;
      receipt: { status: string; events: unknown[] };
    };
    expect(receipt.status).toBe('ok');
    expect(receipt.events).toHaveLength(1);
    const shown = await trellis('tx', 'get', hash, '--rpc', h.urls[0]!);
    expect(shown.code).toBe(0);
    expect(shown.out).toContain(`from:    ${aliceAddr} (nonce 0)`);
    expect(shown.out).toContain('call:    call token.mint');
    expect(shown.out).toContain('status:  ok');
  });

  it('calls a method in a transaction, runs a view, lists contracts and deploys one', async () => {
    const bob = toHex(addressOf(seededKey('cli-bob').publicKey));
    const transfer = (amount: number) =>
      trellis(
        'contract',
        'call',
        'token',
        'transfer',
        '--rpc',
        h.urls[0]!,
        '--key',
        keyFile,
        '--args',
        JSON.stringify({ to: { $bytes: bob }, amount }),
      );
    const call = await transfer(120);
    expect(call.code).toBe(0);
    expect(call.out).toContain('event:   token.Transfer');
    const view = await trellis(
      'contract',
      'view',
      'token',
      'balanceOf',
      '--rpc',
      h.urls[0]!,
      '--args',
      JSON.stringify({ owner: { $bytes: bob } }),
    );
    expect(view.out).toBe('120');
    const reverted = await transfer(10_000);
    expect(reverted.code).toBe(1);
    expect(reverted.out).toContain('status:  reverted INSUFFICIENT');
    const source = join(dir, 'hello.ts');
    writeFileSync(source, 'export const views = { hi: () => "hi" };\n');
    const deployed = await trellis(
      'contract',
      'deploy',
      'hello',
      source,
      '--rpc',
      h.urls[0]!,
      '--key',
      keyFile,
      '--json',
    );
    expect(deployed.code).toBe(0);
    expect(JSON.parse(deployed.out)).toMatchObject({ status: 'ok' });
    const list = await trellis('contract', 'list', '--rpc', h.urls[0]!);
    expect(list.out.split('\n').map((l) => l.split(' ')[0])).toEqual(['hello', 'ticker', 'token']);
  });
});

/**
 * A command that must fail: bad usage exits with 2 before anything is sent, a failure of the node
 * or of the request with 1; `err` is what the message must contain (or match).
 */
interface Refusal {
  readonly what: string;
  /** The command line, given the harness node's RPC URL. */
  readonly argv: (rpc: string) => string[];
  readonly code: 1 | 2;
  readonly err: string | RegExp;
}

const REFUSALS: readonly Refusal[] = [
  {
    what: 'status when nothing listens',
    argv: () => ['status', '--rpc', 'http://127.0.0.1:1'],
    code: 1,
    err: /ECONNREFUSED.*\[TRANSPORT\]/,
  },
  {
    what: 'contract call without --key',
    argv: (rpc) => ['contract', 'call', 'token', 'mint', '--rpc', rpc],
    code: 2,
    err: '--key FILE is required',
  },
  {
    what: 'contract view with --args that is not JSON',
    argv: (rpc) => ['contract', 'view', 'token', 'balanceOf', '--rpc', rpc, '--args', '{oops'],
    code: 2,
    err: '--args: not JSON',
  },
  {
    what: 'tx get with a short hash',
    argv: (rpc) => ['tx', 'get', '0x1234', '--rpc', rpc],
    code: 2,
    err: 'HASH: expected 32 bytes',
  },
  {
    what: 'contract view with arguments the node rejects',
    argv: (rpc) => ['contract', 'view', 'token', 'balanceOf', '--rpc', rpc, '--args', '{"owner":1.5}'],
    code: 1,
    err: '[INVALID_PARAMS]',
  },
];

describe('refusals', () => {
  it.each(REFUSALS)('$what: exit code $code', async ({ argv, code, err }) => {
    const r = await trellis(...argv(h.urls[0]!));
    expect(r.code).toBe(code);
    expect(r.err).toMatch(err);
    // Bad usage also prints the command's usage text.
    if (code === 2) expect(r.err).toContain('Usage: trellis');
  });
});

describe('trellis events', () => {
  it('lists events with cursors and continues after a cursor', async () => {
    const all = await trellis('events', '--rpc', h.urls[0]!, '--contract', 'token', '--json');
    const lines = all.out.split('\n').map((l) => JSON.parse(l) as { cursor: string; name: string });
    expect(lines.map((l) => l.name)).toEqual(['Minted', 'Transfer']);
    const after = await trellis(
      'events',
      '--rpc',
      h.urls[0]!,
      '--contract',
      'token',
      '--cursor',
      lines[0]!.cursor,
    );
    expect(after.out.split('\n')).toHaveLength(1);
    expect(after.out).toMatch(/^\d+:0:0 +token\.Transfer /);
  });

  it('follows new events until --count is reached', async () => {
    const following = trellis(
      'events',
      '--rpc',
      h.urls[0]!,
      '--follow',
      '--contract',
      'ticker',
      '--count',
      '3',
    );
    await new Promise((r) => setTimeout(r, 100));
    // Sent through the harness, not the CLI: two in-process commands would share console capture.
    h.net.mempool.add(makeTx(seededKey('cli-ticker'), 0, 'ticker', 'tick', { count: 4 }).bytes);
    const r = await following;
    expect(r.code).toBe(0);
    expect(r.out.split('\n').map((l) => l.split(' ').pop())).toEqual(['{"i":0}', '{"i":1}', '{"i":2}']);
  });
});

describe('trellis bench', () => {
  it('runs a small load and reports it as a table and as JSON', async () => {
    const table = await trellis(
      'bench',
      '--rpc',
      h.urls[0]!,
      '--txs',
      '60',
      '--senders',
      '6',
      '--seed',
      'cli-bench-1',
    );
    expect(table.code).toBe(0);
    expect(table.out).toMatch(/\| Succeeded +\| +60 \|/);
    const json = await trellis(
      'bench',
      '--rpc',
      h.urls[0]!,
      '--txs',
      '40',
      '--senders',
      '4',
      '--rate',
      '400',
      '--json',
      '--seed',
      'cli-bench-2',
    );
    expect(JSON.parse(json.out)).toMatchObject({ sent: 40, succeeded: 40, unconfirmed: 0, targetRate: 400 });
  });
});
