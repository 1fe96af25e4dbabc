// Goal: the same invariants as simulationSeedsA over seeds 150..299 (split so two cores share the work).
import { describeSeeds } from './harness/seedRange.ts';

describeSeeds(150, 300, 'test/sim/replay.test.ts');
