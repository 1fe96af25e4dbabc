// Runs the determinism scenario in a fresh process and prints its summary as JSON.
import { createTestChain } from '../../../vm/testing.ts';
import { runScenario } from './scenario.ts';

process.removeAllListeners('warning');
const chain = createTestChain();
const summary = runScenario(chain);
chain.close();
process.stdout.write(JSON.stringify(summary));
