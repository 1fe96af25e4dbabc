/**
 * The delay before reconnection attempt `attempt` (0 for the first retry): exponential growth
 * from `baseMs`, capped at `capMs`, with "equal jitter" (half fixed, half random) so members
 * that lost a peer at the same instant do not redial it in lockstep. `unit` is a random number
 * in [0, 1): randomness is an input, so the schedule is testable.
 */
export function backoffDelayMs(attempt: number, baseMs: number, capMs: number, unit: number): number {
  const exp = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  const half = exp / 2;
  return Math.round(half + half * Math.min(Math.max(unit, 0), 1));
}
