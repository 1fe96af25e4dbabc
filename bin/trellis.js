#!/usr/bin/env node
// The `trellis` command. Checks the runtime before loading any TypeScript: every validator must
// run the exact Node.js (and so the exact V8) that package.json pins, or contract execution could
// differ between nodes.
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const expected = `v${pkg.dependencies.node}`;
if (process.version !== expected) {
  console.error(
    `trellis: refusing to start on Node.js ${process.version}; Trellis is pinned to Node.js ${expected} ` +
      `so that every validator runs the same V8 and executes contracts identically.\n` +
      `Run it through npm scripts or npx (they put the pinned runtime from node_modules/.bin first on PATH), ` +
      `e.g. \`npx trellis ...\`.`,
  );
  process.exit(1);
}
const { main } = await import('../node/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
