// Goal: identities derive from node keys, member lists and peer bytes are validated, and the gater admits only members.
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { describe, expect, it } from 'vitest';
import { pack } from '../../core/codec.ts';
import { generateKeyPair } from '../../core/keys.ts';
import { P2pError } from '../../node/p2p/errors.ts';
import { createMemberGater } from '../../node/p2p/memberGater.ts';
import { parseMembers, peerIdOf } from '../../node/p2p/members.ts';
import {
  decodeStatusResponse,
  decodeSyncRequest,
  decodeTxBatch,
  encodeStatusResponse,
  encodeSyncRequest,
  encodeTxBatch,
  protocolIds,
  splitTxBatches,
} from '../../node/p2p/wire.ts';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof P2pError ? err.code : `not a P2pError: ${String(err)}`;
  }
  return undefined;
}

describe('identity', () => {
  it('the libp2p PeerId of a node seed equals peerIdOf(its core public key)', async () => {
    const kp = generateKeyPair();
    const libp2pKey = await generateKeyPairFromSeed('Ed25519', kp.secretKey);
    expect(peerIdFromPrivateKey(libp2pKey).toString()).toBe(peerIdOf(kp.publicKey).toString());
    expect(peerIdOf(kp.publicKey).toString()).toBe(peerIdOf(Uint8Array.from(kp.publicKey)).toString());
  });

  it('refuses a public key of the wrong length', () => {
    expect(codeOf(() => peerIdOf(new Uint8Array(31)))).toBe('BAD_INPUT');
  });
});

describe('member list', () => {
  const a = generateKeyPair().publicKey;
  const b = generateKeyPair().publicKey;

  it('accepts TCP multiaddrs, with or without a matching /p2p suffix', () => {
    const id = peerIdOf(a).toString();
    const [rec] = parseMembers(
      [{ publicKey: a, addrs: ['/ip4/127.0.0.1/tcp/26656', `/ip4/10.0.0.1/tcp/1/p2p/${id}`] }],
      10,
    );
    expect(rec?.addrs.map(String)).toEqual(['/ip4/127.0.0.1/tcp/26656', '/ip4/10.0.0.1/tcp/1']);
    expect(rec?.id).toBe(id);
  });

  it('refuses duplicates, foreign /p2p suffixes, non-TCP or garbage addresses, and too many members', () => {
    expect(
      codeOf(() =>
        parseMembers(
          [
            { publicKey: a, addrs: [] },
            { publicKey: a, addrs: [] },
          ],
          10,
        ),
      ),
    ).toBe('BAD_INPUT');
    const other = peerIdOf(b).toString();
    expect(
      codeOf(() => parseMembers([{ publicKey: a, addrs: [`/ip4/127.0.0.1/tcp/1/p2p/${other}`] }], 10)),
    ).toBe('BAD_INPUT');
    expect(codeOf(() => parseMembers([{ publicKey: a, addrs: ['/ip4/127.0.0.1/udp/1'] }], 10))).toBe(
      'BAD_INPUT',
    );
    expect(codeOf(() => parseMembers([{ publicKey: a, addrs: ['not an address'] }], 10))).toBe('BAD_INPUT');
    expect(
      codeOf(() =>
        parseMembers(
          [
            { publicKey: a, addrs: [] },
            { publicKey: b, addrs: [] },
          ],
          1,
        ),
      ),
    ).toBe('BAD_INPUT');
  });
});

describe('member gater', () => {
  const member = peerIdOf(generateKeyPair().publicKey);
  const stranger = peerIdOf(generateKeyPair().publicKey);
  const denied: string[] = [];
  const gater = createMemberGater(
    (p) => p.equals(member),
    (hook) => denied.push(hook),
  );
  const maConn = {} as never;

  it('denies a non-member at every hook that knows the remote PeerId, and admits a member', async () => {
    expect(await gater.denyDialPeer?.(stranger)).toBe(true);
    expect(await gater.denyOutboundConnection?.(stranger, maConn)).toBe(true);
    expect(await gater.denyInboundEncryptedConnection?.(stranger, maConn)).toBe(true);
    expect(await gater.denyOutboundEncryptedConnection?.(stranger, maConn)).toBe(true);
    expect(await gater.denyInboundUpgradedConnection?.(stranger, maConn)).toBe(true);
    expect(
      await gater.denyDialMultiaddr?.(multiaddr(`/ip4/127.0.0.1/tcp/1/p2p/${stranger.toString()}`)),
    ).toBe(true);
    expect(denied).toContain('denyInboundEncryptedConnection');

    expect(await gater.denyDialPeer?.(member)).toBe(false);
    expect(await gater.denyInboundEncryptedConnection?.(member, maConn)).toBe(false);
    expect(await gater.denyDialMultiaddr?.(multiaddr(`/ip4/127.0.0.1/tcp/1/p2p/${member.toString()}`))).toBe(
      false,
    );
    // Without a PeerId the address alone decides nothing; the handshake hook does.
    expect(await gater.denyDialMultiaddr?.(multiaddr('/ip4/127.0.0.1/tcp/1'))).toBe(false);
    expect(await gater.denyInboundConnection?.(maConn)).toBe(false);
  });
});

describe('wire encodings', () => {
  it('protocol ids carry the chainId and refuse a chainId that could break the path', () => {
    expect(protocolIds('trellis-dev').consensus).toBe('/trellis/trellis-dev/consensus/1.0.0');
    expect(protocolIds('a').sync).not.toBe(protocolIds('b').sync);
    expect(codeOf(() => protocolIds('a/b'))).toBe('BAD_INPUT');
    expect(codeOf(() => protocolIds(''))).toBe('BAD_INPUT');
  });

  it('round-trips sync requests and status responses', () => {
    expect(decodeSyncRequest(encodeSyncRequest({ kind: 'status' }))).toEqual({ kind: 'status' });
    expect(decodeSyncRequest(encodeSyncRequest({ kind: 'blocks', fromHeight: 7, maxCount: 3 }))).toEqual({
      kind: 'blocks',
      fromHeight: 7,
      maxCount: 3,
    });
    expect(decodeStatusResponse(encodeStatusResponse(123_456))).toBe(123_456);
  });

  it('refuses malformed requests and responses with PROTOCOL', () => {
    expect(codeOf(() => decodeSyncRequest(pack([9])))).toBe('PROTOCOL');
    expect(codeOf(() => decodeSyncRequest(pack([1, 0, 0])))).toBe('PROTOCOL');
    expect(codeOf(() => decodeSyncRequest(pack([1, -1, 2])))).toBe('PROTOCOL');
    expect(codeOf(() => decodeSyncRequest(new Uint8Array([0xc1])))).toBe('PROTOCOL');
    expect(codeOf(() => decodeStatusResponse(pack(['x'])))).toBe('PROTOCOL');
    expect(codeOf(() => decodeTxBatch(pack([1, 2]), 10, 10))).toBe('PROTOCOL');
  });

  it('tx batches: round-trip, and refuse too many or too long entries', () => {
    const txs = [new Uint8Array([1]), new Uint8Array([2, 3])];
    expect(decodeTxBatch(encodeTxBatch(txs), 2, 2).map((t) => [...t])).toEqual([[1], [2, 3]]);
    expect(codeOf(() => decodeTxBatch(encodeTxBatch(txs), 1, 2))).toBe('PROTOCOL');
    expect(codeOf(() => decodeTxBatch(encodeTxBatch(txs), 2, 1))).toBe('PROTOCOL');
  });

  it('splits transactions into ordered batches within count and byte bounds', () => {
    const txs = Array.from({ length: 10 }, (_, i) => new Uint8Array(100).fill(i));
    const byCount = splitTxBatches(txs, 4, 1_000_000, 1000);
    expect(byCount.map((b) => b.length)).toEqual([4, 4, 2]);
    const byBytes = splitTxBatches(txs, 100, 350, 1000);
    for (const batch of byBytes) expect(encodeTxBatch(batch).length).toBeLessThanOrEqual(350);
    expect(byBytes.flat().map((t) => t[0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(codeOf(() => splitTxBatches([new Uint8Array(1001)], 4, 1_000_000, 1000))).toBe('TOO_LARGE');
    expect(codeOf(() => splitTxBatches([new Uint8Array(400)], 4, 350, 1000))).toBe('TOO_LARGE');
    expect(splitTxBatches([], 4, 350, 1000)).toEqual([]);
  });
});
