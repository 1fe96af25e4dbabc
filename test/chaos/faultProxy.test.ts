// Goal: members of real p2p services that know each other only through the fault proxy stay cut
// off from the other side of a partition, however often they redial, and reconnect once it heals.
import { afterEach, describe, expect, it } from 'vitest';
import { toHex, type Bytes } from '../../core/bytes.ts';
import { generateKeyPair } from '../../core/keys.ts';
import { createP2p, type P2p } from '../../node/p2p/p2p.ts';
import { createFaultProxy, FaultProxyError, type FaultProxy } from './faultProxy.ts';

// Ports: real p2p listeners 22950+, proxy listeners 28100+ (test/chaos ranges).
const P2P_BASE = 22950;
const PROXY_BASE = 28100;

const live: Array<{ stop(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(live.splice(0).map((x) => x.stop()));
});

async function waitFor(what: string, ok: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!ok()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Three members, each knowing every peer only at the proxy address of that directed link. */
async function threeNodesThroughProxy(): Promise<{
  proxy: FaultProxy;
  nodes: P2p[];
  inbox: string[][];
}> {
  const keys = [0, 1, 2].map(() => generateKeyPair());
  const proxy = createFaultProxy({ targets: keys.map((_, i) => P2P_BASE + i), basePort: PROXY_BASE });
  await proxy.start();
  live.push(proxy);
  const inbox: string[][] = [[], [], []];
  const nodes = keys.map((key, i) =>
    createP2p(
      {
        chainId: 'fault-proxy-test',
        secretKey: key.secretKey,
        listen: `/ip4/127.0.0.1/tcp/${P2P_BASE + i}`,
        members: keys.map((k, j) => ({ publicKey: k.publicKey, addrs: i === j ? [] : [proxy.addr(i, j)] })),
        // Fast redials, so a short partition sees many of them.
        reconnectBaseMs: 50,
        reconnectMaxMs: 200,
        dialTimeoutMs: 2_000,
      },
      {
        onConsensusMessage: (from: Bytes, m: Bytes) =>
          inbox[i]!.push(
            `${keys.findIndex((k) => toHex(k.publicKey) === toHex(from))}:${Buffer.from(m).toString()}`,
          ),
        onTxs: () => undefined,
        serveBlocks: () => [],
        serveStatus: () => 0,
      },
    ),
  );
  for (const p of nodes) {
    await p.start();
    live.push(p);
  }
  return { proxy, nodes, inbox };
}

const peersOf = (p: P2p): number => p.connectedMembers().length;

describe('fault proxy', () => {
  it('cuts a 1|2 partition both ways through redials, keeps the majority side linked, and heals', async () => {
    const { proxy, nodes, inbox } = await threeNodesThroughProxy();
    const [a, b, c] = nodes as [P2p, P2p, P2p];
    await waitFor('every pair connected', () => nodes.every((p) => peersOf(p) === 2));
    expect(proxy.stats().forwarded).toBeGreaterThan(0);

    proxy.partition([[0], [1, 2]]);
    expect(proxy.isCut(0, 1) && proxy.isCut(1, 0) && !proxy.isCut(1, 2)).toBe(true);
    await waitFor('node 0 cut off', () => peersOf(a) === 0 && peersOf(b) === 1 && peersOf(c) === 1);
    const refusedAtCut = proxy.stats().refused;
    // Well over ten redial periods: nothing reaches the other side by any address.
    await new Promise((r) => setTimeout(r, 2_000));
    expect(peersOf(a)).toBe(0);
    expect(b.connectedMembers().map(toHex)).toEqual([toHex(c.publicKey)]);
    expect(proxy.stats().refused).toBeGreaterThan(refusedAtCut + 4);
    expect(proxy.stats().cut).toBeGreaterThan(0);
    a.broadcastConsensus(Buffer.from('from-a'));
    b.broadcastConsensus(Buffer.from('from-b'));
    await waitFor('b reaches c', () => inbox[2]!.includes('1:from-b'));
    await new Promise((r) => setTimeout(r, 300));
    expect(inbox[0]).not.toContain('1:from-b');
    expect(inbox[1]).not.toContain('0:from-a');
    expect(inbox[2]).not.toContain('0:from-a');

    proxy.heal();
    await waitFor('every pair connected again', () => nodes.every((p) => peersOf(p) === 2));
    a.broadcastConsensus(Buffer.from('again'));
    await waitFor('a reaches both', () => inbox[1]!.includes('0:again') && inbox[2]!.includes('0:again'));
  }, 30_000);

  it('refuses a bad partition and changes nothing', () => {
    const proxy = createFaultProxy({ targets: [1, 2, 3, 4], basePort: 28200 });
    const bad = [
      [[0, 1, 2, 3]],
      [
        [0, 1],
        [1, 2, 3],
      ],
      [[0, 1], [2]],
      [
        [0, 1],
        [2, 7, 3],
      ],
      [[0, 1], []],
    ];
    for (const sides of bad) {
      expect(() => proxy.partition(sides)).toThrow(FaultProxyError);
    }
    expect(proxy.isCut(0, 2)).toBe(false);
    expect(() => proxy.port(1, 1)).toThrow(/does not dial itself/);
    expect(() => createFaultProxy({ targets: [1, 2], basePort: 32_767 })).toThrow(/below|fit/);
    expect(proxy.port(2, 3)).toBe(28200 + 2 * 4 + 3);
  });
});
