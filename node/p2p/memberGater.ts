import type { ConnectionGater, PeerId } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import type { Multiaddr } from '@multiformats/multiaddr';

/** Which gater check refused a peer. */
export type GaterHook =
  | 'denyDialPeer'
  | 'denyDialMultiaddr'
  | 'denyOutboundConnection'
  | 'denyInboundEncryptedConnection'
  | 'denyOutboundEncryptedConnection'
  | 'denyInboundUpgradedConnection'
  | 'denyOutboundUpgradedConnection';

const P2P_CODE = 421;

/**
 * A libp2p connection gater that admits only members. `isMember` is consulted at every call, so
 * a runtime change of the member set applies to the next connection attempt.
 *
 * An inbound connection's remote PeerId is first known after the Noise handshake, so inbound
 * peers are refused at `denyInboundEncryptedConnection`, before the muxer is negotiated and
 * before any protocol stream can be opened. Outbound dials are refused before a socket is opened
 * (`denyDialPeer`, or `denyDialMultiaddr` when the address names the peer) and again once the
 * remote identity is proven. The upgraded-connection hooks repeat the check, in case the set
 * changed during the handshake.
 */
export function createMemberGater(
  isMember: (peerId: PeerId) => boolean,
  onDeny: (hook: GaterHook, peerId: PeerId) => void = () => {},
): ConnectionGater {
  const check = (hook: GaterHook, peerId: PeerId): boolean => {
    if (isMember(peerId)) return false;
    onDeny(hook, peerId);
    return true;
  };
  return {
    denyDialPeer: (peerId) => check('denyDialPeer', peerId),
    denyDialMultiaddr: (ma: Multiaddr) => {
      const id = ma.getComponents().findLast((c) => c.code === P2P_CODE)?.value;
      if (id === undefined) return false; // unknown until the handshake; checked there
      let peerId: PeerId;
      try {
        peerId = peerIdFromString(id);
      } catch {
        return true;
      }
      return check('denyDialMultiaddr', peerId);
    },
    // The remote address alone does not identify a member; wait for the handshake.
    denyInboundConnection: () => false,
    denyOutboundConnection: (peerId) => check('denyOutboundConnection', peerId),
    denyInboundEncryptedConnection: (peerId) => check('denyInboundEncryptedConnection', peerId),
    denyOutboundEncryptedConnection: (peerId) => check('denyOutboundEncryptedConnection', peerId),
    denyInboundUpgradedConnection: (peerId) => check('denyInboundUpgradedConnection', peerId),
    denyOutboundUpgradedConnection: (peerId) => check('denyOutboundUpgradedConnection', peerId),
    // No relays in a consortium network.
    denyInboundRelayReservation: () => true,
    denyOutboundRelayedConnection: () => true,
    denyInboundRelayedConnection: () => true,
    filterMultiaddrForPeer: (peerId) => isMember(peerId),
  };
}
