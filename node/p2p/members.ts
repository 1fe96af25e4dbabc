import { generateKeyPairFromSeed, publicKeyFromRaw } from '@libp2p/crypto/keys';
import type { Ed25519PrivateKey, PeerId } from '@libp2p/interface';
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { toHex, type Bytes } from '../../core/bytes.ts';
import { PUBLIC_KEY_BYTES, SECRET_KEY_BYTES } from '../../core/keys.ts';
import { P2pError } from './errors.ts';

/** A network member (validator or registered observer) as configuration names it. */
export interface P2pMember {
  /** The member's Ed25519 node public key (32 bytes); its libp2p PeerId derives from it. */
  readonly publicKey: Bytes;
  /**
   * Where to dial it, e.g. `/ip4/10.0.0.7/tcp/26656`. May be empty: the member is then admitted
   * when it dials us, but never dialled. A `/p2p/<id>` suffix is allowed if it names this member.
   */
  readonly addrs: readonly string[];
}

/** Most dial addresses kept per member: a bound on what configuration can make us try. */
export const MAX_ADDRS_PER_MEMBER = 8;

/** A validated member with its derived identity. */
export interface MemberRecord {
  readonly publicKey: Bytes;
  /** 0x-hex of the public key, for logs and diagnostics. */
  readonly publicKeyHex: string;
  readonly peerId: PeerId;
  /** `peerId.toString()`: the key of every per-peer map. */
  readonly id: string;
  /** Dial addresses without a `/p2p` suffix. */
  readonly addrs: readonly Multiaddr[];
}

const P2P_CODE = 421;

/** The libp2p PeerId of an Ed25519 node public key: a pure function of the key. */
export function peerIdOf(publicKey: Bytes): PeerId {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== PUBLIC_KEY_BYTES) {
    throw new P2pError('BAD_INPUT', `publicKey: expected ${PUBLIC_KEY_BYTES} bytes`, {
      actual: publicKey instanceof Uint8Array ? publicKey.length : typeof publicKey,
    });
  }
  try {
    return peerIdFromPublicKey(publicKeyFromRaw(publicKey));
  } catch (err) {
    throw new P2pError('BAD_INPUT', `publicKey: not an Ed25519 public key (${String(err)})`);
  }
}

/**
 * The libp2p private key of a 32-byte node seed (core/keys.ts). Ed25519 derives the same public
 * key from the seed in both libraries, so the node's PeerId equals `peerIdOf(its public key)`.
 */
export async function libp2pKeyFromSeed(secretKey: Bytes): Promise<Ed25519PrivateKey> {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== SECRET_KEY_BYTES) {
    throw new P2pError('BAD_INPUT', `secretKey: expected a ${SECRET_KEY_BYTES}-byte Ed25519 seed`);
  }
  return generateKeyPairFromSeed('Ed25519', secretKey);
}

function parseAddr(addr: unknown, member: string, peerId: PeerId, path: string): Multiaddr {
  if (typeof addr !== 'string')
    throw new P2pError('BAD_INPUT', `${path}: expected a multiaddr string`, { member });
  let ma: Multiaddr;
  try {
    ma = multiaddr(addr);
  } catch (err) {
    throw new P2pError('BAD_INPUT', `${path}: not a multiaddr (${String(err)})`, { member, addr });
  }
  const components = ma.getComponents();
  const p2p = components.findLast((c) => c.code === P2P_CODE)?.value;
  if (p2p !== undefined) {
    let named: PeerId;
    try {
      named = peerIdFromString(p2p);
    } catch {
      throw new P2pError('BAD_INPUT', `${path}: /p2p/${p2p} is not a PeerId`, { member, addr });
    }
    if (!named.equals(peerId)) {
      throw new P2pError('BAD_INPUT', `${path}: /p2p/${p2p} names another peer than the member's key`, {
        member,
        addr,
        expected: peerId.toString(),
      });
    }
    ma = ma.decapsulateCode(P2P_CODE);
  }
  if (!components.some((c) => c.name === 'tcp')) {
    throw new P2pError('BAD_INPUT', `${path}: expected a TCP address such as /ip4/127.0.0.1/tcp/26656`, {
      member,
      addr,
    });
  }
  return ma;
}

/**
 * Validates a member list and derives each member's PeerId. Throws P2pError BAD_INPUT naming the
 * first bad entry; a duplicate key is an error, since it would make one member count twice.
 */
export function parseMembers(members: readonly P2pMember[], maxMembers: number): MemberRecord[] {
  if (!Array.isArray(members)) throw new P2pError('BAD_INPUT', 'members: expected an array');
  if (members.length > maxMembers) {
    throw new P2pError('BAD_INPUT', `members: at most ${maxMembers} entries, got ${members.length}`, {
      maxMembers,
    });
  }
  const seen = new Set<string>();
  return members.map((m: P2pMember, i) => {
    const path = `members[${i}]`;
    if (typeof m !== 'object' || m === null) throw new P2pError('BAD_INPUT', `${path}: expected an object`);
    const peerId = peerIdOf(m.publicKey);
    const id = peerId.toString();
    const publicKeyHex = toHex(m.publicKey);
    if (seen.has(id)) throw new P2pError('BAD_INPUT', `${path}: duplicate public key ${publicKeyHex}`);
    seen.add(id);
    if (!Array.isArray(m.addrs))
      throw new P2pError('BAD_INPUT', `${path}.addrs: expected an array of multiaddrs`);
    if (m.addrs.length > MAX_ADDRS_PER_MEMBER) {
      throw new P2pError('BAD_INPUT', `${path}.addrs: at most ${MAX_ADDRS_PER_MEMBER} addresses`, {
        count: m.addrs.length,
      });
    }
    const addrs = m.addrs.map((a, j) => parseAddr(a, publicKeyHex, peerId, `${path}.addrs[${j}]`));
    return { publicKey: Uint8Array.from(m.publicKey), publicKeyHex, peerId, id, addrs };
  });
}
