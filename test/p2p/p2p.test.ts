// Goal: members on real libp2p (TCP, Noise, Yamux, 127.0.0.1) exchange consensus messages, transaction
// batches and blocks; non-members are refused; a restarted member is reconnected; oversize input never crashes.
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { tcp } from '@libp2p/tcp';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p } from 'libp2p';
import { afterEach, describe, expect, it } from 'vitest';
import { toHex, type Bytes } from '../../core/bytes.ts';
import { generateKeyPair, type KeyPair } from '../../core/keys.ts';
import { P2pError } from '../../node/p2p/errors.ts';
import { encodeFrame } from '../../node/p2p/framing.ts';
import type { P2pMember } from '../../node/p2p/members.ts';
import { createP2p, type P2p, type P2pDeps, type P2pOptions } from '../../node/p2p/p2p.ts';

const CHAIN = 'p2p-test';

interface Inbox {
  consensus: { from: string; message: string }[];
  txs: { from: string; txs: string[] }[];
  /** Members this node was told connected, in order (0x-hex public keys). */
  connected: string[];
}

interface TestNode {
  readonly key: KeyPair;
  p2p: P2p;
  inbox: Inbox;
  /** Replaceable block server: the test decides what this node serves. */
  serveBlocks: P2pDeps['serveBlocks'];
  serveStatus: P2pDeps['serveStatus'];
}

const live: P2p[] = [];

afterEach(async () => {
  await Promise.all(live.splice(0).map((p) => p.stop()));
});

const text = (b: Bytes): string => Buffer.from(b).toString('utf8');
const bytes = (s: string): Bytes => Buffer.from(s, 'utf8');

function startNode(
  key: KeyPair,
  members: readonly P2pMember[],
  extra: Partial<P2pOptions> = {},
  listen = '/ip4/127.0.0.1/tcp/0',
): TestNode {
  const inbox: Inbox = { consensus: [], txs: [], connected: [] };
  const tn: TestNode = {
    key,
    inbox,
    p2p: undefined as unknown as P2p,
    serveBlocks: () => [],
    serveStatus: () => 0,
  };
  tn.p2p = createP2p(
    {
      chainId: CHAIN,
      secretKey: key.secretKey,
      listen,
      members,
      reconnectBaseMs: 50,
      reconnectMaxMs: 400,
      requestTimeoutMs: 5_000,
      dialTimeoutMs: 2_000,
      ...extra,
    },
    {
      onConsensusMessage: (from, message) => {
        if (text(message) === 'boom') throw new Error('a driver bug');
        inbox.consensus.push({ from: toHex(from), message: text(message) });
      },
      onTxs: (from, txs) => inbox.txs.push({ from: toHex(from), txs: txs.map(text) }),
      serveBlocks: (from, max) => tn.serveBlocks(from, max),
      serveStatus: () => tn.serveStatus(),
      onPeerConnected: (publicKey) => inbox.connected.push(toHex(publicKey)),
    },
  );
  live.push(tn.p2p);
  return tn;
}

async function waitFor(what: string, ok: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!ok()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Starts `n` members on ephemeral ports, then gives everyone the full member list with real ports. */
async function cluster(
  n: number,
  extra: (i: number) => Partial<P2pOptions> = () => ({}),
): Promise<TestNode[]> {
  const keys = Array.from({ length: n }, () => generateKeyPair());
  const bare = keys.map((k) => ({ publicKey: k.publicKey, addrs: [] }));
  const nodes = keys.map((k, i) => startNode(k, bare, extra(i)));
  await Promise.all(nodes.map((t) => t.p2p.start()));
  const members = nodes.map((t) => ({ publicKey: t.key.publicKey, addrs: t.p2p.listenAddrs() }));
  for (const t of nodes) t.p2p.setMembers(members);
  await waitFor('full mesh', () => nodes.every((t) => t.p2p.status().connected === n - 1));
  return nodes;
}

function codeOf(err: unknown): string {
  return err instanceof P2pError ? err.code : `not a P2pError: ${String(err)}`;
}

async function rejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return codeOf(err);
  }
  return 'resolved';
}

describe('p2p over libp2p', () => {
  it('derives the PeerId from the node key and reports it', async () => {
    const key = generateKeyPair();
    const a = startNode(key, []);
    const b = startNode(key, []);
    expect(a.p2p.peerId).toBe(b.p2p.peerId); // a pure function of the key, before start
    await a.p2p.start();
    expect(a.p2p.status().peerId).toBe(a.p2p.peerId);
    expect(a.p2p.listenAddrs()[0]).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+$/);
    // The same instance can be stopped and started again (stop is idempotent).
    await a.p2p.stop();
    await a.p2p.stop();
    expect(a.p2p.status().running).toBe(false);
    expect(() => a.p2p.broadcastConsensus(bytes('x'))).toThrow(P2pError);
    await a.p2p.start();
    expect(a.p2p.status().running).toBe(true);
  });

  it('four members exchange consensus messages (broadcast, unicast, in order) and transaction batches', async () => {
    const nodes = await cluster(4, () => ({ maxTxsPerBatch: 4 }));
    const [n0, n1, n2, n3] = nodes as [TestNode, TestNode, TestNode, TestNode];
    const hex = (t: TestNode): string => toHex(t.key.publicKey);

    for (const [i, t] of nodes.entries()) t.p2p.broadcastConsensus(bytes(`hello from ${i}`));
    await waitFor('every broadcast everywhere', () => nodes.every((t) => t.inbox.consensus.length === 3));
    for (const [i, t] of nodes.entries()) {
      const expected = nodes
        .map((o, j) => ({ from: hex(o), message: `hello from ${j}` }))
        .filter((_, j) => j !== i);
      expect([...t.inbox.consensus].sort((x, y) => x.message.localeCompare(y.message))).toEqual(expected);
    }

    // Unicast reaches only its target, and many messages keep their order on the shared stream.
    for (let k = 0; k < 200; k++) n0.p2p.sendConsensus(n2.key.publicKey, bytes(`seq ${k}`));
    await waitFor('200 ordered messages', () => n2.inbox.consensus.length === 3 + 200);
    expect(n2.inbox.consensus.slice(3).map((m) => m.message)).toEqual(
      Array.from({ length: 200 }, (_, k) => `seq ${k}`),
    );
    expect(n2.inbox.consensus.slice(3).every((m) => m.from === hex(n0))).toBe(true);
    await sleep(100);
    expect(n1.inbox.consensus.length).toBe(3);
    expect(n3.inbox.consensus.length).toBe(3);
    // One long-lived stream carried them all.
    const toN2 = n0.p2p.status().peers.find((p) => p.publicKey === hex(n2));
    expect(toN2?.consensus).toMatchObject({ sent: 201, depth: 0, dropped: 0 });

    // Ten transactions in batches of at most four, received in order with the sender's key.
    const txs = Array.from({ length: 10 }, (_, k) => `tx-${k}`);
    n1.p2p.broadcastTxs(txs.map(bytes));
    await waitFor('tx batches', () =>
      [n0, n2, n3].every((t) => t.inbox.txs.flatMap((b) => b.txs).length === 10),
    );
    for (const t of [n0, n2, n3]) {
      expect(t.inbox.txs.map((b) => b.txs.length)).toEqual([4, 4, 2]);
      expect(t.inbox.txs.flatMap((b) => b.txs)).toEqual(txs);
      expect(t.inbox.txs.every((b) => b.from === hex(n1))).toBe(true);
    }
    n3.p2p.sendTxs(n0.key.publicKey, [bytes('only-for-n0')]);
    await waitFor('unicast tx', () => n0.inbox.txs.some((b) => b.txs[0] === 'only-for-n0'));
    expect(n2.inbox.txs.flatMap((b) => b.txs)).not.toContain('only-for-n0');

    const status = n0.p2p.status();
    expect(status).toMatchObject({ running: true, members: 3, connected: 3, deniedConnections: 0 });
    expect(n0.p2p.connectedMembers().map(toHex).sort()).toEqual([hex(n1), hex(n2), hex(n3)].sort());
  });

  it('refuses a non-member at the gater and delivers nothing from it; member-set changes apply at runtime', async () => {
    const nodes = await cluster(3);
    const [n0, n1, n2] = nodes as [TestNode, TestNode, TestNode];
    const members = nodes.map((t) => ({ publicKey: t.key.publicKey, addrs: t.p2p.listenAddrs() }));

    // The outsider knows n0 and tries everything; n0 does not list it.
    const outsider = startNode(generateKeyPair(), members);
    await outsider.p2p.start();
    expect(await rejection(outsider.p2p.requestStatus(n0.key.publicKey))).toBe('UNREACHABLE');
    outsider.p2p.broadcastConsensus(bytes('let me in'));
    outsider.p2p.sendConsensus(n0.key.publicKey, bytes('let me in'));
    await waitFor('n0 gater refusals', () => n0.p2p.status().deniedConnections >= 2);
    await waitFor('outsider retried with backoff', () =>
      outsider.p2p.status().peers.every((p) => p.dialFailures >= 2),
    );
    // Noise lets the dialer finish its handshake before the responder's gater decides, so the
    // outsider may see a connection for an instant; what matters is what the members admit.
    for (const t of nodes) {
      expect(t.p2p.status().connected).toBe(2);
      expect(t.inbox.consensus).toEqual([]);
      expect(t.p2p.status().members).toBe(2);
    }
    // A member cannot address the outsider either.
    expect(() => n0.p2p.sendConsensus(outsider.key.publicKey, bytes('x'))).toThrow(P2pError);
    expect(await rejection(n0.p2p.requestStatus(outsider.key.publicKey))).toBe('NOT_MEMBER');

    // Removing n2 from n0's set disconnects it and refuses its redials; adding it back reconnects.
    const denied = n0.p2p.status().deniedConnections;
    n0.p2p.setMembers(members.slice(0, 2));
    await waitFor(
      'n2 dropped by n0',
      () => !n2.p2p.connectedMembers().some((k) => toHex(k) === toHex(n0.key.publicKey)),
    );
    n2.p2p.sendConsensus(n0.key.publicKey, bytes('from removed n2'));
    await waitFor('n2 redial refused', () => n0.p2p.status().deniedConnections > denied);
    await sleep(200);
    expect(n0.inbox.consensus).toEqual([]);
    n0.p2p.setMembers(members);
    await waitFor('n2 delivered after re-admission', () =>
      n0.inbox.consensus.some((m) => m.message === 'from removed n2'),
    );
    expect(n1.inbox.consensus).toEqual([]);
  });

  it('serves block sync: status, ranges bounded in count and bytes, timeouts and aborts', async () => {
    const nodes = await cluster(3, (i) =>
      i === 1
        ? { maxBlocksPerResponse: 16 }
        : i === 2
          ? { maxMessageBytes: 4096, maxBlockResponseBytes: 8192, requestTimeoutMs: 500 }
          : {},
    );
    const [n0, n1, n2] = nodes as [TestNode, TestNode, TestNode];
    const chain = Array.from({ length: 200 }, (_, h) => bytes(`block ${h} `.padEnd(1000, '.')));
    n1.serveStatus = () => chain.length - 1;
    n1.serveBlocks = (from, max) => chain.slice(from, from + max);

    expect(await n0.p2p.requestStatus(n1.key.publicKey)).toBe(199);
    const range = await n0.p2p.requestBlocks(n1.key.publicKey, 10, 5);
    expect(range.map(text)).toEqual(chain.slice(10, 15).map(text));
    // Past the head: only what exists.
    expect((await n0.p2p.requestBlocks(n1.key.publicKey, 195, 50)).length).toBe(5);
    expect(await n0.p2p.requestBlocks(n1.key.publicKey, 1000, 10)).toEqual([]);
    // The server caps the count at its own maxBlocksPerResponse.
    const capped = await n0.p2p.requestBlocks(n1.key.publicKey, 0, 100);
    expect(capped.map(text)).toEqual(chain.slice(0, 16).map(text));
    // A node catching up walks the range in requests.
    const fetched: Bytes[] = [];
    while (fetched.length < chain.length) {
      const got = await n0.p2p.requestBlocks(n1.key.publicKey, fetched.length, 64);
      expect(got.length).toBeGreaterThan(0);
      fetched.push(...got);
    }
    expect(fetched.map(text)).toEqual(chain.map(text));

    // The requester enforces its own byte bound whatever the server sends (16 × 1000 > 8192).
    expect(await rejection(n2.p2p.requestBlocks(n1.key.publicKey, 0, 16))).toBe('TOO_LARGE');
    // Bad arguments change nothing and say why.
    expect(await rejection(n0.p2p.requestBlocks(n1.key.publicKey, -1, 5))).toBe('BAD_INPUT');
    expect(await rejection(n0.p2p.requestBlocks(n1.key.publicKey, 0, 0))).toBe('BAD_INPUT');
    expect(await rejection(n0.p2p.requestBlocks(n1.key.publicKey, 0, 10_000))).toBe('BAD_INPUT');

    // A server that never answers: the requester times out, or the caller aborts first.
    n0.serveBlocks = () => new Promise(() => {});
    expect(await rejection(n2.p2p.requestBlocks(n0.key.publicKey, 0, 1))).toBe('TIMEOUT');
    const controller = new AbortController();
    const pending = n1.p2p.requestBlocks(n0.key.publicKey, 0, 1, { signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    expect(await rejection(pending)).toBe('ABORTED');
    // A server whose callback fails resets the stream: the requester gets an error, not a hang.
    n0.serveBlocks = () => {
      throw new Error('storage broke');
    };
    expect(await rejection(n1.p2p.requestBlocks(n0.key.publicKey, 0, 1))).toBe('UNREACHABLE');
    // And the service still works afterwards.
    expect(await n1.p2p.requestStatus(n0.key.publicKey)).toBe(0);
  });

  it('rejects oversize messages without crashing and keeps serving the peer', async () => {
    const nodes = await cluster(2, (i) =>
      i === 1 ? { maxMessageBytes: 16 * 1024, maxTxBatchBytes: 8 * 1024 } : {},
    );
    const [n0, n1] = nodes as [TestNode, TestNode];

    // The sender refuses what exceeds its own bound, synchronously, queueing nothing.
    let caught: unknown;
    try {
      n1.p2p.sendConsensus(n0.key.publicKey, new Uint8Array(16 * 1024 + 1));
    } catch (err) {
      caught = err;
    }
    expect(codeOf(caught)).toBe('TOO_LARGE');
    expect(() => n0.p2p.sendTxs(n1.key.publicKey, [new Uint8Array(300 * 1024)])).toThrow(P2pError);

    // n0 allows 4 MiB, n1 only 16 KiB: n1 refuses the frame at its header and aborts that stream.
    n0.p2p.sendConsensus(n1.key.publicKey, new Uint8Array(64 * 1024));
    await waitFor('oversize frame rejected', () => n1.p2p.status().peers[0]?.rejectedFrames === 1);
    expect(n1.inbox.consensus).toEqual([]);
    // The same for a transaction batch over n1's batch bound.
    n0.p2p.sendTxs(n1.key.publicKey, [new Uint8Array(10 * 1024)]);
    await waitFor('oversize batch rejected', () => n1.p2p.status().peers[0]?.rejectedFrames === 2);
    expect(n1.inbox.txs).toEqual([]);

    // The connection survives; the sender opens a fresh stream and later messages arrive. A
    // callback that throws is counted and logged, and delivery goes on.
    n0.p2p.sendConsensus(n1.key.publicKey, bytes('boom'));
    n0.p2p.sendConsensus(n1.key.publicKey, bytes('small'));
    n0.p2p.sendTxs(n1.key.publicKey, [bytes('tx')]);
    await waitFor(
      'later messages delivered',
      () => n1.inbox.consensus.length === 1 && n1.inbox.txs.length === 1,
    );
    expect(n1.inbox.consensus[0]?.message).toBe('small');
    expect(n1.p2p.status()).toMatchObject({ connected: 1, callbackErrors: 1 });
  });

  it('reconnects automatically to a member that stopped and restarted, flushing the bounded queue', async () => {
    const nodes = await cluster(4, () => ({ maxQueuedMessages: 8 }));
    const [n0, n1, n2, n3] = nodes as [TestNode, TestNode, TestNode, TestNode];
    const listen = n3.p2p.listenAddrs()[0];
    if (listen === undefined) throw new Error('n3 has no listen address');

    const n3hex = toHex(n3.key.publicKey);
    const connectsOf = (t: TestNode): number => t.inbox.connected.filter((k) => k === n3hex).length;
    const before = [n0, n1, n2].map(connectsOf);
    await n3.p2p.stop();
    await waitFor('n3 seen down', () => [n0, n1, n2].every((t) => t.p2p.status().connected === 2));
    // While n3 is down, n0 keeps sending: the queue holds the newest 8 and counts the rest.
    for (let k = 0; k < 20; k++) n0.p2p.sendConsensus(n3.key.publicKey, bytes(`while down ${k}`));
    const queued = n0.p2p.status().peers.find((p) => p.publicKey === toHex(n3.key.publicKey));
    expect(queued?.consensus).toMatchObject({ depth: 8, dropped: 12, policy: 'drop-oldest' });
    await waitFor('redials failing with backoff', () =>
      [n0, n1, n2].every(
        (t) =>
          (t.p2p.status().peers.find((p) => p.publicKey === toHex(n3.key.publicKey))?.dialFailures ?? 0) >= 2,
      ),
    );

    // n3 comes back on the same address but dials nobody (its member list has no addresses):
    // reconnection must come from the others' backoff loops.
    const bare = nodes.map((t) => ({ publicKey: t.key.publicKey, addrs: [] }));
    const n3b = startNode(n3.key, bare, { maxQueuedMessages: 8 }, listen);
    await n3b.p2p.start();
    await waitFor(
      'n3 reconnected by everyone',
      () => n3b.p2p.status().connected === 3 && [n0, n1, n2].every((t) => t.p2p.status().connected === 3),
    );
    await waitFor('queued messages flushed', () => n3b.inbox.consensus.length === 8);
    expect(n3b.inbox.consensus.map((m) => m.message)).toEqual(
      Array.from({ length: 8 }, (_, k) => `while down ${k + 12}`),
    );
    // Each side was told of the new connection (so it can offer what the peer missed).
    [n0, n1, n2].forEach((t, i) => expect(connectsOf(t)).toBeGreaterThan(before[i]!));
    expect(new Set(n3b.inbox.connected).size).toBe(3);
    n3b.p2p.broadcastConsensus(bytes('back'));
    await waitFor('restarted node heard', () =>
      [n0, n1, n2].every((t) => t.inbox.consensus.some((m) => m.message === 'back')),
    );
  });

  it('bounds what a misbehaving member sends: too many sync entries, a malformed batch', async () => {
    // The "member" is a raw libp2p node holding a member key, free to break the protocol.
    const rogueKey = generateKeyPair();
    const rogue = await createLibp2p({
      privateKey: await generateKeyPairFromSeed('Ed25519', rogueKey.secretKey),
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
    });
    try {
      const rogueAddr = rogue.getMultiaddrs()[0]?.decapsulateCode(421).toString() ?? '';
      const honestKey = generateKeyPair();
      const honest = startNode(honestKey, [
        { publicKey: honestKey.publicKey, addrs: [] },
        { publicKey: rogueKey.publicKey, addrs: [rogueAddr] },
      ]);
      await honest.p2p.start();
      await rogue.handle(honest.p2p.protocols.sync, (stream) => {
        stream.addEventListener(
          'message',
          () => {
            // Asked for at most 2 entries, it answers 5.
            for (let i = 0; i < 5; i++) stream.send(encodeFrame(bytes(`entry ${i}`)));
            void stream.close();
          },
          { once: true },
        );
      });
      expect(await rejection(honest.p2p.requestBlocks(rogueKey.publicKey, 0, 2))).toBe('TOO_LARGE');

      const honestAddr = multiaddr(`${honest.p2p.listenAddrs()[0] ?? ''}/p2p/${honest.p2p.peerId}`);
      const txStream = await rogue.dialProtocol(honestAddr, honest.p2p.protocols.txs);
      txStream.send(encodeFrame(new Uint8Array([0xc1, 0x00]))); // not MessagePack
      await waitFor('malformed batch rejected', () => honest.p2p.status().peers[0]?.rejectedFrames === 1);
      expect(honest.inbox.txs).toEqual([]);

      // Over the handshake-proven identity, well-formed messages are delivered as the rogue's.
      const consensus = await rogue.dialProtocol(honestAddr, honest.p2p.protocols.consensus);
      consensus.send(encodeFrame(bytes('well formed')));
      await waitFor('delivered', () => honest.inbox.consensus.length === 1);
      expect(honest.inbox.consensus[0]).toEqual({ from: toHex(rogueKey.publicKey), message: 'well formed' });
    } finally {
      await rogue.stop();
    }
  });

  it('refuses calls before start and bad options', async () => {
    const key = generateKeyPair();
    const t = startNode(key, []);
    expect(() => t.p2p.broadcastConsensus(bytes('x'))).toThrow(P2pError);
    expect(await rejection(t.p2p.requestStatus(generateKeyPair().publicKey))).toBe('NOT_MEMBER');
    const bad = (o: Partial<P2pOptions>): string => {
      try {
        createP2p(
          { chainId: CHAIN, secretKey: key.secretKey, listen: '/ip4/127.0.0.1/tcp/0', members: [], ...o },
          {
            onConsensusMessage: () => {},
            onTxs: () => {},
            serveBlocks: () => [],
            serveStatus: () => 0,
          },
        );
      } catch (err) {
        return codeOf(err);
      }
      return 'accepted';
    };
    // A taken port fails start() cleanly; starting twice is refused.
    await t.p2p.start();
    expect(await rejection(t.p2p.start())).toBe('NOT_RUNNING');
    const clash = startNode(generateKeyPair(), [], {}, t.p2p.listenAddrs()[0]);
    expect(await rejection(clash.p2p.start())).toBe('START_FAILED');
    expect(clash.p2p.status().running).toBe(false);
    expect(bad({ chainId: 'x/y' })).toBe('BAD_INPUT');
    expect(bad({ secretKey: new Uint8Array(5) })).toBe('BAD_INPUT');
    expect(bad({ listen: 'nope' })).toBe('BAD_INPUT');
    expect(bad({ maxMessageBytes: 0 })).toBe('BAD_INPUT');
    expect(bad({ maxMessageBytes: 1000, maxQueuedMessageBytes: 10 })).toBe('BAD_INPUT');
    expect(bad({ members: [{ publicKey: new Uint8Array(3), addrs: [] }] })).toBe('BAD_INPUT');
  });
});
