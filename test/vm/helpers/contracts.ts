import { readFileSync } from 'node:fs';

/** Source of an example contract in contracts/examples. */
export function example(name: string): string {
  return readFileSync(new URL(`../../../contracts/examples/${name}.ts`, import.meta.url), 'utf8');
}

/** A contract whose methods each try to keep a counter between calls by some route. */
export const PERSISTENCE_ATTEMPTS = `
const box: { n?: number } = {};
const list: number[] = [];
class Holder { static n = 0; }
function fn() { return 0; }
const counters = { box, list, Holder, fn };

function bump(read: () => unknown, write: (n: number) => void): number {
  const n = Number(read() ?? 0) + 1;
  write(n);
  return n;
}

export const methods = {
  moduleObject: () => bump(() => box.n, (n) => { box.n = n; }),
  moduleArray: () => { list.push(1); return list.length; },
  staticField: () => bump(() => Holder.n, (n) => { Holder.n = n; }),
  functionProperty: () => bump(() => (fn as unknown as { n?: number }).n, (n) => { (fn as unknown as { n: number }).n = n; }),
  arrayPrototype: () => bump(() => (Array.prototype as unknown as { n?: number }).n, (n) => { (Array.prototype as unknown as { n: number }).n = n; }),
  objectPrototype: () => bump(() => (Object.prototype as unknown as { n?: number }).n, (n) => { (Object.prototype as unknown as { n: number }).n = n; }),
  hiddenPrototype: () => {
    const p = Object.getPrototypeOf([].values()) as { n?: number };
    return bump(() => p.n, (n) => { p.n = n; });
  },
  globalObject: () => bump(() => (globalThis as unknown as { n?: number }).n, (n) => { (globalThis as unknown as { n: number }).n = n; }),
  globalDefine: () => { Object.defineProperty(globalThis, 'n2', { value: 1 }); return 1; },
  replaceBuiltin: () => { (Math as unknown as { max: () => number }).max = () => 42; return Math.max(1, 2); },
  errorLimit: () => { (Error as unknown as { stackTraceLimit: number }).stackTraceLimit = 50; return 1; },
  counters: () => Object.keys(counters).length,
  ctxObject: (ctx: { state: object }) => { (ctx.state as { n?: number }).n = 1; return 1; },
};
`;

/** A contract probing which nondeterministic and dangerous APIs exist in the sandbox. */
export const API_PROBE = `
export const views = {
  probe() {
    const g = globalThis as unknown as Record<string, unknown>;
    const names = ['Date', 'Intl', 'WebAssembly', 'SharedArrayBuffer', 'Atomics', 'WeakRef', 'FinalizationRegistry',
      'eval', 'Promise', 'Proxy', 'JSON', 'RegExp', 'console', 'setTimeout', 'setInterval', 'queueMicrotask',
      'process', 'require', 'module', 'Buffer', 'fetch', 'performance', 'crypto', 'structuredClone', 'ivm', '_ivm'];
    const present = names.filter((n) => n in g);
    return {
      present,
      mathRandom: typeof (Math as unknown as Record<string, unknown>)['random'],
      symbolFor: typeof (Symbol as unknown as Record<string, unknown>)['for'],
      localeCompare: typeof ('' as unknown as Record<string, unknown>)['localeCompare'],
      frozenGlobal: Object.isFrozen(globalThis),
      frozenArrayProto: Object.isFrozen(Array.prototype),
      frozenIteratorProto: Object.isFrozen(Object.getPrototypeOf([].values())),
      globals: Object.getOwnPropertyNames(globalThis).sort(),
    };
  },
};
`;
