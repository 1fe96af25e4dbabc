/**
 * The benchmark's business workload: receivable transfers through the supply-chain-finance
 * contracts (contracts/receivables.ts), as ../shared/DOMAIN.md describes them. Each sender is a
 * supplier member (registered at genesis) holding vouchers that the core enterprise confirmed;
 * every timed transaction transfers a slice of one of its vouchers to the next sender as a new
 * child voucher: membership and encumbrance checks, the voucher tree's bounds, `opId`
 * idempotency and a `Transferred` event, as in production.
 *
 * A voucher tree holds at most 64 vouchers (receivables' MAX_TREE), so each sender gets one root
 * voucher per 63 transfers; setup issues and confirms what the coming run needs (not timed).
 */
import { toHex } from '../core/bytes.ts';
import { addressOf, type KeyPair } from '../core/keys.ts';
import type { Workload } from '../rpc/loadgen.ts';
import type { TrellisClient } from '../rpc/sdk/client.ts';
import { createWallet } from '../rpc/sdk/wallet.ts';

/** Transfers one root voucher can give: its tree holds 64 vouchers, the root included. */
export const TRANSFERS_PER_ROOT = 63;
/** Face value of each root voucher (units), well above its transfers and within credit lines. */
const ROOT_AMOUNT = 1_000_000;
const MATURITY_MS = 30 * 24 * 3600 * 1000;

/** The vouchers each sender holds, carried from run to run on one network. */
export interface VoucherBook {
  /** Root voucher ids by sender address (0x-hex). */
  readonly roots: Map<string, string[]>;
  /** Transfers built so far, by sender address. */
  readonly used: Map<string, number>;
}

/** An empty book for a new network. */
export function createVoucherBook(): VoucherBook {
  return { roots: new Map(), used: new Map() };
}

/** Options of {@link receivablesWorkload}. */
export interface ReceivablesWorkloadOptions {
  /** The debtor (a core enterprise organisation id) whose admin confirms the vouchers. */
  readonly debtor: string;
  /** An admin of the debtor: its approval confirms each voucher (policy `admins:<debtor>`). */
  readonly approver: KeyPair;
  /** Transfers each sender will make in the coming run. */
  readonly txsPerSender: number;
  readonly book: VoucherBook;
}

interface Issued {
  readonly id: string;
  readonly proposalId: string;
}

/** Receivable transfers between genesis-registered senders; see the module comment. */
export function receivablesWorkload(o: ReceivablesWorkloadOptions): Workload {
  return {
    name: 'receivables.transfer',
    async setup(ctx, client: TrellisClient) {
      const maturity = Date.now() + MATURITY_MS;
      const issued = await Promise.all(
        ctx.senders.map(async (key) => {
          const who = toHex(addressOf(key.publicKey));
          const have = o.book.roots.get(who) ?? [];
          const used = o.book.used.get(who) ?? 0;
          const need = Math.ceil((used + o.txsPerSender) / TRANSFERS_PER_ROOT) - have.length;
          const wallet = createWallet(client, key, { window: 16 });
          const out: Issued[] = [];
          for (let k = 0; k < need; k++) {
            const sent = await wallet.sendAndWait({
              contract: 'receivables',
              method: 'issue',
              args: {
                opId: `bench-root-${have.length + k}`,
                debtor: o.debtor,
                holder: who,
                amount: ROOT_AMOUNT,
                maturity,
              },
            });
            if (sent.receipt.status !== 'ok') {
              throw new Error(`issuing a voucher for ${who} failed: ${sent.receipt.error}`);
            }
            out.push(sent.receipt.returnValue as unknown as Issued);
          }
          return { who, have, out };
        }),
      );
      // The debtor's admin confirms every new voucher (one approval each under admins:<debtor>).
      const approver = createWallet(client, o.approver, { window: 64 });
      await Promise.all(
        issued.flatMap(({ out }) =>
          out.map(async (v) => {
            const r = await approver.sendAndWait({
              contract: 'approvals',
              method: 'approve',
              args: { id: v.proposalId },
            });
            if (r.receipt.status !== 'ok') throw new Error(`confirming ${v.id} failed: ${r.receipt.error}`);
          }),
        ),
      );
      for (const { who, have, out } of issued) o.book.roots.set(who, [...have, ...out.map((v) => v.id)]);
    },
    build(ctx, index) {
      const who = toHex(addressOf(ctx.senders[index]!.publicKey));
      const to = toHex(addressOf(ctx.senders[(index + 1) % ctx.senders.length]!.publicKey));
      const n = o.book.used.get(who) ?? 0;
      o.book.used.set(who, n + 1);
      const id = o.book.roots.get(who)?.[Math.floor(n / TRANSFERS_PER_ROOT)];
      if (id === undefined) throw new Error(`sender ${who} has no voucher left for transfer ${n}`);
      return {
        contract: 'receivables',
        method: 'transfer',
        args: { opId: `bench-${n}`, id, to, amount: 1 },
      };
    },
  };
}
