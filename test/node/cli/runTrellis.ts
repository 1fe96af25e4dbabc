// Runs the real `trellis` bin, as an operator would, and captures its output: through npx (the
// documented way), or straight through the bin script with this Node.js (same code, without
// npx's second of start-up, for the many small argument checks).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, where `npx trellis` resolves the package's own bin. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Exit code and output of one run. */
export interface TrellisRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** How to start the bin. */
export type Launcher = 'npx' | 'bin';

/**
 * Runs `npx trellis ...args` (or `node bin/trellis.js ...args`) in the repository root;
 * TRELLIS_PASSPHRASE is set only when `env` gives it.
 */
export function runTrellis(
  args: string[],
  env: Record<string, string> = {},
  launcher: Launcher = 'bin',
): Promise<TrellisRun> {
  const base = { ...process.env };
  delete base['TRELLIS_PASSPHRASE'];
  return new Promise((resolve, reject) => {
    const [command, prefix] =
      launcher === 'npx' ? ['npx', ['trellis']] : [process.execPath, [join(REPO_ROOT, 'bin', 'trellis.js')]];
    const child = spawn(command, [...prefix, ...args], {
      cwd: REPO_ROOT,
      env: { ...base, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
