import { readFileSync } from 'node:fs';
import { TrellisError } from '../core/errors.ts';

/** Reasons the process refuses to run. */
export type RuntimeErrorCode = 'WRONG_RUNTIME';

/** Raised when the process runs on a runtime other than the pinned one. */
export class RuntimeError extends TrellisError<RuntimeErrorCode> {}

/** The exact Node.js version package.json pins, as `process.version` spells it (`v24.x.y`). */
export function pinnedNodeVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  const v = pkg.dependencies['node'];
  if (v === undefined) throw new Error('package.json does not pin the dependency "node"');
  return `v${v}`;
}

/** The runtime string genesis records: every validator must match it. */
export function runtimeId(): string {
  return `node-${process.version}`;
}

/**
 * Throws unless this process runs on the pinned Node.js: contract determinism depends on every
 * validator running the same V8.
 */
export function assertPinnedRuntime(actual: string = process.version): void {
  const expected = pinnedNodeVersion();
  if (actual !== expected) {
    throw new RuntimeError(
      'WRONG_RUNTIME',
      `Node.js ${actual} is not the pinned runtime ${expected}: every validator must run the same V8 so contracts execute identically`,
      { actual, expected },
    );
  }
}
