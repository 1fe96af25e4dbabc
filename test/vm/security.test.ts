// Goal: every known escape and abuse ends in a deterministic failed receipt or a refused deploy;
// none crashes the node, reaches the host, or depends on this machine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Receipt } from '../../core/types.ts';
import { createTestChain, type TestChain } from '../../vm/testing.ts';
import { example } from './helpers/contracts.ts';

let chain: TestChain;
let other: TestChain;
beforeAll(() => {
  chain = createTestChain();
  other = createTestChain();
  expect(chain.deploy('counter', example('counter')).status).toBe('ok');
});
afterAll(() => {
  chain.close();
  other.close();
});

let seq = 0;
/** Deploys `body` (the inside of a `methods` object's `run(ctx, args)`) and calls it. */
function attack(body: string, options: { gasLimit?: number; prelude?: string } = {}): Receipt {
  const name = `attack${seq++}`;
  const source = `${options.prelude ?? ''}\nexport const methods = { run(ctx: any, args: any) { ${body} } };`;
  const d = chain.deploy(name, source);
  expect(d.status, d.error).toBe('ok');
  const r = chain.call(name, 'run', null, { gasLimit: options.gasLimit ?? 2_000_000 });
  // The same call on another executor (fresh isolate) must give the very same receipt.
  other.deploy(name, source);
  const r2 = other.call(name, 'run', null, { gasLimit: options.gasLimit ?? 2_000_000 });
  expect({ ...r2, txHash: null }).toEqual({ ...r, txHash: null });
  return r;
}

function refused(source: string): string {
  const r = chain.deploy(`refused${seq++}`, source);
  expect(r.status).toBe('reverted');
  expect(r.errorCode).toBe('COMPILE_ERROR');
  return r.error;
}

afterAll(() => {
  // After every attack the node still executes ordinary calls.
});

describe('code generation and host reach', () => {
  it('the Function constructors reached through prototypes throw', () => {
    for (const expr of [
      `(function () {}).constructor('return 1')()`,
      `ctx.state.get.constructor('return this')()`,
      `Object.getPrototypeOf(() => 0).constructor('return 1')`,
      `[].map.constructor('return 1')`,
      `Reflect.construct(ctx.emit.constructor, ['return 1'])`,
    ]) {
      const r = attack(`return ${expr};`);
      expect(r.status, expr).toBe('reverted');
      expect(r.error, expr).toMatch(/code generation is not available/);
    }
  });

  it('eval, dynamic import, Proxy, Promise, regular expressions and async code are refused at deploy', () => {
    expect(refused('export const methods = { run() { return eval("1"); } };')).toMatch(/eval/);
    expect(refused('export const methods = { run() { return import("node:fs"); } };')).toMatch(
      /dynamic import/,
    );
    expect(refused('export const methods = { run() { return new Proxy({}, {}); } };')).toMatch(/Proxy/);
    expect(refused('export const methods = { run() { return Promise.resolve(1); } };')).toMatch(/Promise/);
    expect(refused('export const methods = { run() { return /(a+)+$/.test("aaaa!"); } };')).toMatch(
      /regular expression/,
    );
    expect(refused('export const methods = { run() { return new RegExp("(a+)+$"); } };')).toMatch(/RegExp/);
    expect(refused('export const methods = { async run() { return 1; } };')).toMatch(/async/);
    expect(refused('export const methods = { *run() { yield 1; } };')).toMatch(/generator/);
    expect(refused('export const methods = { run() { return Date.now(); } };')).toMatch(/clock/);
    expect(refused('export const methods = { run() { return Math.random(); } };')).toMatch(/ctx\.random/);
    expect(refused('export const methods = { run() { const __G = 1; return __G; } };')).toMatch(/reserved/);
    expect(refused('export const methods = { run() { return new Function("return 1")(); } };')).toMatch(
      /Function/,
    );
  });

  it('the runtime object handed to the module is unreachable (no factory arguments, no shadowed undefined)', () => {
    expect(
      refused('const grab = () => arguments[0]; export const methods = { run() { return grab().G.g; } };'),
    ).toMatch(/arguments` outside a function/);
    // Inside a real function `arguments` is that function's own.
    expect(attack(`function f(a: number) { return arguments.length + a; } return f(41);`).returnValue).toBe(
      42,
    );
    // A module that shadows `undefined` does not change which exports the VM sees.
    const r = attack(`return 'ok';`, { prelude: 'const undefined = { run() { return "views?"; } };' });
    expect(r.returnValue).toBe('ok');
    expect(chain.view(`attack${seq - 1}`, 'run').errorCode).toBe('NO_VIEW');
  });

  it('string methods that would build a regular expression are gone', () => {
    const r = attack(`return ('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!' as any).match('(a+)+$');`);
    expect(r.status).toBe('reverted');
    expect(r.error).toMatch(/not a function/);
  });

  it('the host function, isolated-vm objects and Node globals are unreachable', () => {
    const r = attack(
      `
      const seen: string[] = [];
      const visit = (o: any, path: string, depth: number) => {
        if (depth > 3 || o === null || (typeof o !== 'object' && typeof o !== 'function')) return;
        for (const k of Reflect.ownKeys(o)) {
          const d = Object.getOwnPropertyDescriptor(o, k);
          const name = String(k);
          if (/^(process|require|ivm|_ivm|Buffer|global|hostCall|module)$/.test(name)) seen.push(path + '.' + name);
          if (d && 'value' in d) visit(d.value, path + '.' + name, depth + 1);
        }
      };
      visit(globalThis, 'globalThis', 0);
      visit(ctx, 'ctx', 0);
      return seen;`.replace(
        /\/\^\(.*\)\$\/\.test\(name\)/,
        "['process','require','ivm','_ivm','Buffer','global','hostCall','module'].includes(name)",
      ),
    );
    expect(r.status, r.error).toBe('ok');
    expect(r.returnValue).toEqual([]);
  });

  it('errors thrown by the host API are plain guest errors and revert the call', () => {
    const long = attack(`ctx.state.get('k'.repeat(600)); return 1;`);
    expect(long.status).toBe('reverted');
    expect(long.error).toMatch(/longer than 512 bytes/);
    const notString = attack(`ctx.state.get({ toString() { return 'k'; } }); return 1;`);
    expect(notString.status).toBe('reverted');
    expect(notString.error).toMatch(/must be a string/);
    const badHash = attack(`return ctx.sha256(42);`);
    expect(badHash.status).toBe('reverted');
    expect(badHash.error).toMatch(/string or a Uint8Array/);
    const caught = attack(
      `try { ctx.state.get(1 as any); } catch (e) { return [Object.getPrototypeOf(e) === TypeError.prototype, (e as Error).message]; }`,
    );
    expect(caught.status).toBe('ok');
    expect(caught.returnValue).toEqual([true, 'state key must be a string']);
  });
});

describe('values handed to the host', () => {
  it('getters, toString and toJSON on returned or stored values run metered inside the guest', () => {
    const getterThrows = attack(`return { get x() { throw new Error('boom'); } };`);
    expect(getterThrows.status).toBe('reverted');
    expect(getterThrows.error).toMatch(/boom/);
    const getterLoops = attack(`ctx.state.set('k', { get x() { for (;;) {} } }); return 1;`, {
      gasLimit: 100_000,
    });
    expect(getterLoops.status).toBe('out-of-gas');
    const classInstance = attack(`class A { x = 1 } ctx.emit('E', new A() as any);`);
    expect(classInstance.status).toBe('reverted');
    expect(classInstance.errorCode).toBe('BAD_VALUE');
    const float = attack(`return 0.5;`);
    expect(float.errorCode).toBe('BAD_VALUE');
    const undef = attack(`return { a: undefined };`);
    expect(undef.errorCode).toBe('BAD_VALUE');
    const cyclic = attack(`const a: any[] = []; a.push(a); return a;`);
    expect(cyclic.errorCode).toBe('BAD_VALUE');
    expect(cyclic.error).toMatch(/nested deeper/);
    const proto = attack(`return JSON_LIKE;`, { prelude: `const JSON_LIKE = { ['__proto__']: 1 };` });
    expect(proto.status).toBe('reverted');
  });
});

describe('stack', () => {
  it('unbounded recursion ends with STACK_OVERFLOW, deterministically', () => {
    const r = attack(`const f = (n: number): number => f(n + 1) + 1; return f(0);`);
    expect(r.status).toBe('reverted');
    expect(r.errorCode).toBe('STACK_OVERFLOW');
  });

  it('recursion cannot be caught to carry on', () => {
    const r = attack(
      `const f = (n: number): number => f(n + 1) + 1; try { return f(0); } catch { return 'caught'; } finally { }`,
    );
    expect(r.errorCode).toBe('STACK_OVERFLOW');
  });

  it('functions with huge frames hit the budget before V8 does', () => {
    const locals = Array.from({ length: 3000 }, (_, i) => `let v${i} = n + ${i};`).join(' ');
    const sum = Array.from({ length: 3000 }, (_, i) => `acc ^= v${i};`).join(' ');
    const r = attack(
      `const f = (n: number): number => { ${locals} let acc = 0; ${sum} return f(n + 1) + acc; }; return f(0);`,
      {
        gasLimit: 20_000_000,
      },
    );
    expect(r.errorCode).toBe('STACK_OVERFLOW');
  });

  it('recursion through getters, toString and nested arrays is metered too', () => {
    const viaToString = attack(
      `const o: any = { toString(): string { return 'x' + o; } }; return String(o);`,
    );
    expect(viaToString.errorCode).toBe('STACK_OVERFLOW');
    const viaGetter = attack(
      `const o: any = {}; Object.defineProperty(o, 'x', { get() { return o.x; } }); return o.x;`,
    );
    expect(viaGetter.errorCode).toBe('STACK_OVERFLOW');
    const nested = attack(
      `let a: any[] = []; for (let i = 0; i < 100000; i++) a = [a]; return String(a).length;`,
      {
        gasLimit: 20_000_000,
      },
    );
    expect(nested.errorCode).toBe('STACK_OVERFLOW');
    const flat = attack(
      `let a: any[] = [1]; for (let i = 0; i < 100000; i++) a = [a]; return a.flat(Infinity).length;`,
      {
        gasLimit: 20_000_000,
      },
    );
    expect(flat.status).toBe('reverted');
    expect(flat.errorCode).toBe('VM_LIMIT');
  });

  it('recursion that runs only through built-ins, constructors or field initializers is metered too', () => {
    const cases: Array<[string, string]> = [
      [`class A { x: unknown = new A(); } return new A() !== null;`, 'STACK_OVERFLOW'],
      [
        `let C: any = class {}; for (let i = 0; i < 20000; i++) C = class extends C {}; return new C() !== null;`,
        'STACK_OVERFLOW',
      ],
      [
        `let a: any[] = [() => 1, null, []]; for (let i = 0; i < 100000; i++) a = [Reflect.apply, null, a]; return Reflect.apply(a[0], a[1], a[2]);`,
        'STACK_OVERFLOW',
      ],
      [
        `let f: any = () => 0; for (let i = 0; i < 100000; i++) { f = Map.prototype.forEach.bind(new Map([[1, 1]]), f); } return f();`,
        'STACK_OVERFLOW',
      ],
      [
        `let f: any = () => 0; for (let i = 0; i < 100000; i++) { f = Array.prototype.forEach.bind([1], f); } return f();`,
        'STACK_OVERFLOW',
      ],
      [
        `let it: any = [1].values(); for (let i = 0; i < 100000; i++) it = it.map((x: number) => x); return it.next().value;`,
        'VM_LIMIT',
      ],
    ];
    for (const [body, code] of cases) {
      const r = attack(body, { gasLimit: 20_000_000 });
      expect(r.errorCode, `${body} → ${r.error}`).toBe(code);
    }
  });

  it('the budget fires first even when the host calls in from deep in its own stack', () => {
    const name = `deep${seq++}`;
    chain.deploy(
      name,
      `export const methods = {
        simple() { const f = (n: number): number => f(n + 1) + 1; return f(0); },
        viaSort() { const f = (n: number): number => { let r = 0; [2, 1].sort((a, b) => { r = f(n + 1); return a - b; }); return r; }; return f(0); },
      };`,
    );
    const deep = (n: number, f: () => string): string => (n === 0 ? f() : deep(n - 1, f) + '');
    for (const method of ['simple', 'viaSort']) {
      expect(deep(8000, () => chain.call(name, method).errorCode)).toBe('STACK_OVERFLOW');
    }
  });

  it('many call arguments are capped', () => {
    const spread = attack(`const a = new Array(100000).fill(1); return Math.max(...a);`, {
      gasLimit: 20_000_000,
    });
    expect(spread.errorCode).toBe('VM_LIMIT');
    const apply = attack(`const a = new Array(100000).fill(1); return Math.max.apply(null, a);`, {
      gasLimit: 20_000_000,
    });
    expect(apply.errorCode).toBe('VM_LIMIT');
  });
});

describe('allocation', () => {
  it('huge allocations end in VM_LIMIT or out of gas, never the memory backstop', () => {
    const cases: Array<[string, string]> = [
      [`return new Array(1e9).length;`, 'VM_LIMIT'],
      [
        `const keep = []; for (let i = 0; i < 1e6; i++) keep.push(new Array(99999)); return keep.length;`,
        'OUT_OF_GAS',
      ],
      [`return 'x'.repeat(1e9).length;`, 'VM_LIMIT'],
      [`return 'x'.padStart(1e9).length;`, 'VM_LIMIT'],
      [`let s = 'x'; for (let i = 0; i < 40; i++) s += s; return s.length;`, 'VM_LIMIT'],
      [`let s = 'x'; for (let i = 0; i < 40; i++) s = \`\${s}\${s}\`; return s.length;`, 'VM_LIMIT'],
      [`return new Uint8Array(1e9).length;`, 'VM_LIMIT'],
      [`return new ArrayBuffer(1e9).byteLength;`, 'VM_LIMIT'],
      [`return new ArrayBuffer(8, { maxByteLength: 1e10 }).byteLength;`, 'VM_LIMIT'],
      [`const a: number[] = []; a.length = 2 ** 32 - 1; return a.indexOf(1);`, 'OUT_OF_GAS'],
      [`const a: number[] = []; a.length = 2 ** 32 - 1; return [...a.keys()].length;`, 'OUT_OF_GAS'],
      [`return Array.from({ length: 1e9 }).length;`, 'OUT_OF_GAS'],
      [`return Array.prototype.fill.call({ length: 1e9 }, 0).length;`, 'OUT_OF_GAS'],
      [`const a = [[1, 2, 3]]; const b = new Array(1000).fill(a); return b.flat(2).join('').length;`, 'ok'],
      [`let x = 3n; for (let i = 0; i < 40; i++) x = x * x; return x > 0n;`, 'VM_LIMIT'],
      [`return (7n ** 100000000n) > 0n;`, 'VM_LIMIT'],
      [`return (1n << 100000000n) > 0n;`, 'VM_LIMIT'],
      [`return BigInt('9'.repeat(100000)) > 0n;`, 'VM_LIMIT'],
      [`return BigInt.asUintN(1e9, -1n) > 0n;`, 'VM_LIMIT'],
      [`const m = new Map(new Array(1e6).fill(0).map((_, i) => [i, i])); return m.size;`, 'OUT_OF_GAS'],
      [`return 'ab'.replaceAll('', 'x'.repeat(1e6)).length;`, 'VM_LIMIT'],
      [`const a = new Array(200).fill('x'.repeat(100000)); return a.join('').length;`, 'VM_LIMIT'],
    ];
    for (const [body, expected] of cases) {
      const r = attack(body, { gasLimit: 5_000_000 });
      if (expected === 'ok') expect(r.status, body).toBe('ok');
      else expect(r.errorCode, `${body} → ${r.error}`).toBe(expected);
    }
  });
});

describe('loops and gas', () => {
  it('an infinite loop ends out of gas, even inside try/catch/finally', () => {
    for (const body of [
      `for (;;) {}`,
      `while (true) {}`,
      `do {} while (true);`,
      `for (;;) { try { for (;;) {} } catch { } }`,
      `for (;;) { try { for (;;) {} } finally { continue; } }`,
      `const f = (): number => { try { for (;;) {} } finally { return 1; } }; return f();`,
      `[1].forEach(function loop() { for (;;) {} });`,
      `[3, 1, 2].sort(() => { for (;;) {} });`,
    ]) {
      const r = attack(body, { gasLimit: 300_000 });
      expect(r.status, body).toBe('out-of-gas');
      expect(r.gasUsed, body).toBe(300_000);
    }
  });

  it('a revert cannot be caught', () => {
    const r = attack(`try { ctx.revert('NOPE', 'stop'); } catch { return 'caught'; }`);
    expect(r.status).toBe('reverted');
    expect(r.errorCode).toBe('NOPE');
  });
});

describe('the node afterwards', () => {
  it('still executes ordinary calls', () => {
    const r = chain.call('counter', 'increment', { name: 'after' });
    expect(r.status).toBe('ok');
    expect(r.returnValue).toBe(1);
  });
});

describe('frozen built-ins stay usable', () => {
  it('assigning names that built-in prototypes hold works on ordinary objects (no override mistake)', () => {
    const r = attack(`
      class Problem extends Error { constructor(m: string) { super(m); this.name = 'Problem'; } }
      const o: any = {};
      o.toString = () => 'custom';
      o.constructor = 'c';
      const e = new Problem('bad');
      let refused = '';
      try { (Object.prototype as any).toString = () => 'x'; } catch (err) { refused = (err as Error).name; }
      return [e.name, String(e), \`\${o}\`, o.constructor, refused, Object.prototype.toString.call([])];`);
    expect(r.status, r.error).toBe('ok');
    expect(r.returnValue).toEqual(['Problem', 'Problem: bad', 'custom', 'c', 'TypeError', '[object Array]']);
  });
});

describe('comparing long strings', () => {
  it('is charged by length wherever it happens, so it cannot burn time for little gas', () => {
    const setup = `const a = 'x'.repeat(500000) + 'a'; const b = 'x'.repeat(500000) + 'b';`;
    const cases = [
      `${setup} let n = 0; for (let i = 0; i < 10000; i++) { if (a === b) n++; } return n;`,
      `${setup} let n = 0; for (let i = 0; i < 10000; i++) { switch (a) { case b: n++; break; default: } } return n;`,
      `${setup} const arr = new Array(1000).fill(b); let n = 0; for (let i = 0; i < 100; i++) { if (arr.includes(a)) n++; } return n;`,
      `${setup} const arr = new Array(2000).fill(b); arr.push(a); for (let i = 0; i < 10; i++) arr.sort(); return arr.length;`,
    ];
    for (const body of cases) {
      const r = attack(body, { gasLimit: 5_000_000 });
      expect(r.status, body).toBe('out-of-gas');
    }
  });
});
