// Runs the real `trellis` bin through npx, as an operator would, and captures its output.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root, where `npx trellis` resolves the package's own bin. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Exit code and output of one run. */
export interface TrellisRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `npx trellis ...args` in the repository root; TRELLIS_PASSPHRASE only when given. */
export function runTrellis(args: string[], env: Record<string, string> = {}): Promise<TrellisRun> {
  const base = { ...process.env };
  delete base['TRELLIS_PASSPHRASE'];
  return new Promise((resolve, reject) => {
    const child = spawn('npx', ['trellis', ...args], {
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
