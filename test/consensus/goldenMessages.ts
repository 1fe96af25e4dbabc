import { hashHeader } from '../../core/types.ts';
import type { ConsensusMessage } from '../../consensus/messages.ts';
import { KEYS, blockFor, preparedCertificate, proposal, roundChange, validatorsOf, vote } from './helpers.ts';
import { claimOf } from '../../consensus/justification.ts';

/**
 * The fixed messages whose encodings are pinned in fixtures/messages.json. Ed25519 signing is
 * deterministic, so these are the same bytes on every run; regenerate the fixture only on a
 * deliberate wire-format change: `npx node test/consensus/goldenMessages.ts > test/consensus/fixtures/messages.json`.
 */
export function goldenMessages(): Record<string, ConsensusMessage> {
  const vs = validatorsOf(4);
  const b0 = blockFor(vs, 5, 0, [Uint8Array.from([7, 7, 7])]);
  const h0 = hashHeader(b0.header);
  const cert = preparedCertificate(KEYS.slice(0, 3), 5, 0, h0);
  const rcs = [1, 2, 3].map((i) => roundChange(KEYS[i]!, 5, 1, i === 1 ? cert : null, i === 1 ? b0 : null));
  return {
    prepare: vote(KEYS[0]!, 'prepare', 5, 0, h0),
    commit: vote(KEYS[1]!, 'commit', 5, 0, h0),
    proposalRound0: proposal(KEYS[1]!, 5, 0, b0, h0),
    roundChangePrepared: rcs[0]!,
    roundChangeEmpty: rcs[1]!,
    proposalRound1: proposal(KEYS[2]!, 5, 1, b0, h0, { roundChanges: rcs.map(claimOf), prepared: cert }),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { encodeConsensusMessage } = await import('../../consensus/messages.ts');
  const out: Record<string, string> = {};
  for (const [name, m] of Object.entries(goldenMessages()))
    out[name] = Buffer.from(encodeConsensusMessage(m)).toString('hex');
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
}
