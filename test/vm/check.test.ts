// Goal: `trellis contract check` type-checks a contract against the authoring API, runs the deploy
// checks, and reports each problem as file:line:column with a failing exit code.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { checkContractFile, formatDiagnostic } from '../../vm/check.ts';

const dir = mkdtempSync(join(tmpdir(), 'trellis-check-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const bin = fileURLToPath(new URL('../../bin/trellis.js', import.meta.url));
const examples = fileURLToPath(new URL('../../contracts/examples/', import.meta.url));

const BAD = `import type { Context, ViewContext } from '@trellis/contract';
let calls = 0;
export const methods = {
  run(ctx: Context, args: { n: number }) {
    calls += 1;
    return args.n.toUpperCase();
  },
};
export const views = {
  write: (ctx: ViewContext) => ctx.emit('E', 1),
};
`;

describe('checkContractFile', () => {
  it('passes the example contracts', () => {
    for (const name of ['counter', 'receivable', 'maturity', 'relay']) {
      const r = checkContractFile(join(examples, `${name}.ts`));
      expect(
        r.diagnostics.map((d) => formatDiagnostic(d)),
        name,
      ).toEqual([]);
      expect(r.methods.length).toBeGreaterThan(0);
    }
  });

  it('reports type errors and deploy errors with their positions', () => {
    const file = join(dir, 'bad.ts');
    writeFileSync(file, BAD);
    const r = checkContractFile(file);
    const lines = r.diagnostics.map((d) => `${d.line}:${d.column} ${d.source} ${d.code}`);
    expect(lines).toContain('2:1 deploy MODULE_SHAPE');
    expect(lines).toContain('6:19 typescript TS2339');
    expect(r.diagnostics.some((d) => d.line === 10 && d.source === 'typescript')).toBe(true);
    expect(formatDiagnostic(r.diagnostics[0]!, dir)).toMatch(/^bad\.ts:2:1: error MODULE_SHAPE: /);
  });

  it('reports exports that are not a contract module', () => {
    const file = join(dir, 'shape.ts');
    writeFileSync(file, 'export const methods = { run: 5 };\n');
    const r = checkContractFile(file);
    expect(
      r.diagnostics.some((d) => d.source === 'typescript' && /shape of a contract/.test(d.message)),
    ).toBe(true);
  });
});

describe('trellis contract check', () => {
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [bin, 'contract', 'check', ...args], { encoding: 'utf8', cwd: dir });

  it('exits 0 with a summary for a valid contract', () => {
    const r = run(join(examples, 'receivable.ts'));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^ok: 2 method\(s\) \[issue, transfer\], 2 view\(s\) \[balanceOf, supply\]/);
  });

  it('exits 1 and prints file:line:column for each problem', () => {
    writeFileSync(join(dir, 'bad.ts'), BAD);
    const r = run('bad.ts');
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^bad\.ts:2:1: error MODULE_SHAPE: module-level "let"/m);
    expect(r.stdout).toMatch(/^bad\.ts:6:19: error TS2339: /m);
  });

  it('exits 2 on usage errors', () => {
    expect(run('missing.ts').status).toBe(2);
  });
});
