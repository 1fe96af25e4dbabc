// Goal: over seeds 0..149 of the deterministic simulation (drops, duplicates, delays, partitions,
// crash-restart with lost unsynced writes, one byzantine validator), no two honest nodes commit
// different blocks or state roots at a height, no honest validator signs conflicting messages,
// and after the heal every honest node commits again within the bound.
import { describeSeeds } from './harness/seedRange.ts';

describeSeeds(0, 150, 'test/sim/replay.test.ts');
