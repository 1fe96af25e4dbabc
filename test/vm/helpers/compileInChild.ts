// Compiles a contract source (from stdin) in a fresh process and prints the artifact as hex.
import { readFileSync } from 'node:fs';
import { toHex } from '../../../core/bytes.ts';
import { compileContract } from '../../../vm/compile.ts';

process.removeAllListeners('warning');
const c = compileContract(readFileSync(0, 'utf8'));
process.stdout.write(JSON.stringify({ artifact: toHex(c.artifact), hash: toHex(c.artifactHash) }));
