// Goal: deploy-time compilation is deterministic and refuses, with a position, every construct
// that could carry state between calls, generate code, break determinism or overflow a parser.
import { describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import { CompileError } from '../../vm/errors.ts';
import { checkContractSource, compileContract, decodeArtifact } from '../../vm/compile.ts';
import { scanSourceShape } from '../../vm/sourceScan.ts';
import { VmLimits } from '../../vm/gasTable.ts';
import { example } from './helpers/contracts.ts';

function problems(source: string): string[] {
  return checkContractSource(source).map((d) => `${d.line}:${d.column} ${d.code} ${d.message}`);
}

function refusedWith(source: string, pattern: RegExp): void {
  const p = problems(source);
  expect(p.length, source).toBeGreaterThan(0);
  expect(p.join('\n'), source).toMatch(pattern);
}

describe('compileContract', () => {
  it('is deterministic and round-trips its artifact', () => {
    for (const name of ['counter', 'receivable', 'maturity', 'relay']) {
      const a = compileContract(example(name));
      const b = compileContract(example(name));
      expect(toHex(a.artifact)).toBe(toHex(b.artifact));
      expect(toHex(a.artifactHash)).toBe(toHex(b.artifactHash));
      const back = decodeArtifact(a.artifact);
      expect(back.code).toBe(a.code);
      expect(back.methods).toEqual(a.methods);
      expect(back.views).toEqual(a.views);
    }
    const r = compileContract(example('receivable'));
    expect(r.methods).toEqual(['issue', 'transfer']);
    expect(r.views).toEqual(['balanceOf', 'supply']);
    expect(r.hasInit).toBe(true);
    expect(r.hasMigrate).toBe(false);
  });

  it('different sources give different identities; whitespace is part of the identity', () => {
    const a = compileContract(example('counter'));
    const b = compileContract(`${example('counter')}\n`);
    expect(toHex(a.sourceHash)).not.toBe(toHex(b.sourceHash));
  });

  it('instruments every function, loop, catch and finally', () => {
    const { code } = compileContract(`export const methods = {
      run() { let n = 0; for (;;) { try { n++; } catch { n--; } finally { n = 0; } while (n) n--; do n++; while (n < 2); } },
    };`);
    expect(code).toMatch(/__G\.g -= \d+\) < 0 \| \(__S\.s -= \d+\) < 0/);
    expect(code.match(/if \(\(__G\.g -= \d+\) < 0\) __oog\(\)/g)).toHaveLength(3);
    expect(code.match(/__ck\(/g)).toHaveLength(2);
    // The factory is an arrow function, so module code cannot reach its arguments.
    expect(
      code.startsWith('(__rt => {') || code.startsWith('((__rt) => {') || /^\(*__rt\s*=>/.test(code),
    ).toBe(true);
  });

  it('throws CompileError with every diagnostic and the first one in its message', () => {
    try {
      compileContract('let a = 1;\nexport const methods = { run() { return /x/; } };');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(CompileError);
      const e = err as CompileError;
      expect(e.diagnostics.length).toBe(2);
      expect(e.message).toMatch(/^1:1: module-level "let"/);
    }
  });
});

describe('deploy-time checks', () => {
  it('refuse module-level state and load-time code', () => {
    refusedWith('let n = 0; export const methods = {};', /module-level "let"/);
    refusedWith('var n = 0; export const methods = {};', /module-level "var"/);
    refusedWith('const f = () => 1; const x = f(); export const methods = {};', /a call at module load time/);
    refusedWith('const m = new Map(); export const methods = {};', /a call at module load time/);
    refusedWith(
      'const o = { get x() { return 1; } }; const y = o.x; export const methods = {};',
      /reading a property/,
    );
    refusedWith('const a = [1]; const b = [...a]; export const methods = {};', /spread/);
    refusedWith(
      'const s = `${{ toString() { return "x"; } }}`; export const methods = {};',
      /template literal/,
    );
    refusedWith('const o = {}; const n = -o; export const methods = {};', /unary -/);
    refusedWith('class A { static { } } export const methods = {};', /static blocks/);
    refusedWith('class A { static #n = 0; } export const methods = {};', /static private fields/);
    refusedWith('const { a } = { a: 1 }; export const methods = {};', /destructuring/);
    refusedWith('console.log(1); export const methods = {};', /top-level statements|console/);
    refusedWith('export default {};', /named exports/);
    refusedWith('export const helper = 1;', /"helper" is not one of them/);
    refusedWith('import { x } from "./other.ts"; export const methods = {};', /import only types/);
    refusedWith('export const methods = { ...{} };', /must be plain named functions/);
    refusedWith('export const methods = { "bad name"() {} };', /not a valid method name/);
    refusedWith(
      'export const methods = { a() {} }; export const views = { a() {} };',
      /both a method and a view/,
    );
    refusedWith('export const init = 5;', /must be a function/);
  });

  it('accept constants, functions, classes and operators on constants', () => {
    expect(
      problems(`
        const A = 10n ** 18n;
        const B = A * 2n + 1n;
        const NAME = 'x' + 'y';
        const LIST = [1, 2, NAME, A];
        const TABLE = { a: 1, [Symbol.iterator]: null, nested: { f() { return LIST; } } };
        const MAX = Number.MAX_SAFE_INTEGER;
        class Base { static kind = 'base'; m() { return 1; } }
        class Child extends Base {}
        function helper() { return new Child().m() + Number(B > A); }
        export const methods = { run: () => helper(), other: helper };
        export const views = { table: () => TABLE.a + MAX };
      `),
    ).toEqual([]);
  });

  it('refuse code generation, nondeterminism, async code and regular expressions', () => {
    refusedWith('export const methods = { run() { return eval("1"); } };', /eval/);
    refusedWith('export const methods = { run() { return new Function("1"); } };', /Function/);
    refusedWith('export const methods = { run() { return Date.now(); } };', /clock/);
    refusedWith('export const methods = { run() { return Math.random(); } };', /ctx\.random/);
    refusedWith('export const methods = { run() { return /(a+)+$/.test("a"); } };', /regular expression/);
    refusedWith('export const methods = { run() { return RegExp("a"); } };', /RegExp/);
    refusedWith('export const methods = { async run() {} };', /async/);
    refusedWith('export const methods = { run() { return import("x"); } };', /dynamic import/);
    refusedWith('export const methods = { run() { return import.meta; } };', /import\.meta/);
    refusedWith('export const methods = { *run() {} };', /generator/);
    refusedWith('export const methods = { run() { debugger; } };', /debugger/);
    refusedWith('export const methods = { run() { const __x = 1; } };', /reserved/);
    refusedWith(`export const methods = { run() { return ${'9'.repeat(1300)}n; } };`, /BigInt literal wider/);
    refusedWith(
      'export const methods = { run(a: any) { const [x, ...r] = a; return [r, (([p, ...q]: any) => q)(a)]; } };',
      /not parameters/,
    );
  });

  it('report TypeScript that cannot be stripped, and syntax errors, with positions', () => {
    expect(problems('enum E { A }\nexport const methods = {};')[0]).toMatch(/^1:1 TYPESCRIPT .*enum/);
    expect(problems('export const methods = {\n  run( {\n};')[0]).toMatch(/^\d+:\d+ (SYNTAX|TYPESCRIPT) /);
  });
});

describe('source shape limits', () => {
  it('refuse deep nesting and long operator chains before any parser runs', () => {
    const deep = `export const methods = { run() { return ${'('.repeat(200)}1${')'.repeat(200)}; } };`;
    expect(scanSourceShape(deep)?.message).toMatch(/brackets nest more than/);
    const chain = `export const methods = { run() { return 1${' + 1'.repeat(600)}; } };`;
    expect(scanSourceShape(chain)?.message).toMatch(/more than 512 tokens/);
    const elseIf = `export const methods = { run(a: number) { if (a === 0) return 0;${' else if (a === 1) return 1;'.repeat(300)} return 2; } };`;
    expect(scanSourceShape(elseIf)?.message).toMatch(/nested without braces/);
    const huge = `export const methods = { run() { return ${'['.repeat(50_000)}${']'.repeat(50_000)}; } };`;
    const p = problems(huge);
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/TOO_DEEP/);
    expect(problems('x'.repeat(VmLimits.maxSourceBytes + 1))[0]).toMatch(/TOO_LARGE/);
  });

  it('let ordinary large sources through', () => {
    const wide = `export const methods = { run() { return [${Array.from({ length: 5000 }, (_, i) => i).join(', ')}].length; } };`;
    expect(problems(wide)).toEqual([]);
    const many = `${Array.from({ length: 400 }, (_, i) => `function f${i}(x: number) { if (x > ${i}) { return x; } else { return ${i}; } }`).join('\n')}
      export const methods = { run: () => f1(2) };`;
    expect(problems(many)).toEqual([]);
  });
});
