// Goal: an idle network commits empty blocks only at the heartbeat, however many blocks a burst
// of transactions made before (a heartbeat timer left from an earlier height must not start a
// later one; each would re-arm itself and empty blocks would follow one another).
import { afterAll, describe, expect, it } from 'vitest';
import { addressOf } from '../../core/keys.ts';
import { createWallet } from '../../rpc/sdk/wallet.ts';
import { startRealNode, type RealNode } from '../rpc/realNode.ts';

let real: RealNode | undefined;
afterAll(async () => {
  await real?.close();
});

const head = async (): Promise<number> => (await real!.client.head())?.height ?? 0;

describe('idle heights', () => {
  it('after a burst of one-transaction blocks, empty blocks come at the heartbeat only', async () => {
    const heartbeatMs = 1500;
    real = await startRealNode({ heartbeatMs });
    const wallet = createWallet(real.client, real.admin, { window: 1 });
    const to = addressOf(real.admin.publicKey);
    // Each transaction waits for the previous one's block: one block each.
    for (let i = 0; i < 15; i++) {
      const r = await wallet.sendAndWait({ contract: 'token', method: 'mint', args: { to, amount: 1 } });
      expect(r.receipt.status).toBe('ok');
    }
    const before = await head();
    await new Promise((r) => setTimeout(r, 3 * heartbeatMs));
    // At most one empty block per heartbeat (3, and one more at a boundary). With one leftover
    // timer per earlier height, this was more than 15.
    expect((await head()) - before).toBeLessThanOrEqual(4);
  });
});
