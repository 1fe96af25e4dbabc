import { stripTypeScriptTypes } from 'node:module';
import { parse } from 'acorn';
import { generate } from 'astring';
import { utf8 } from '../core/bytes.ts';
import { pack, readArray, readList, readString, unpackCanonical } from '../core/codec.ts';
import { sha256 } from '../core/hash.ts';
import { NAME_RE } from '../core/types.ts';
import { CompileError, type CompileErrorCode, type Diagnostic } from './errors.ts';
import { Gas, VM_VERSION, VmLimits } from './gasTable.ts';
import { scanSourceShape } from './sourceScan.ts';

/**
 * Deploy-time compilation of a contract: TypeScript source → type stripping (Node's own
 * `module.stripTypeScriptTypes`, pinned with the runtime) → parse (acorn, pinned) → checks →
 * deterministic gas and stack instrumentation → print (astring, pinned) → artifact bytes.
 *
 * Everything here is a pure function of the source text, so identical source gives identical
 * artifact bytes on every node and in every process.
 */

/** Domain tag of artifact bytes. */
export const ARTIFACT_TAG = 'trellis.artifact.v1';

/** The exports a contract module may have. */
export const CONTRACT_EXPORTS = ['methods', 'views', 'init', 'migrate'] as const;

/** The result of compiling a contract source. */
export interface CompiledContract {
  /** SHA-256 of the UTF-8 source: the code's identity. */
  readonly sourceHash: Uint8Array;
  /** Canonical artifact bytes: [tag, vmVersion, code, methods, views, hasInit, hasMigrate]. */
  readonly artifact: Uint8Array;
  /** SHA-256 of the artifact bytes: how the artifact is stored and cached. */
  readonly artifactHash: Uint8Array;
  /** The instrumented JavaScript: a function expression taking the guest runtime. */
  readonly code: string;
  /** Names of exported methods (may write state), sorted. */
  readonly methods: readonly string[];
  /** Names of exported views (read-only), sorted. */
  readonly views: readonly string[];
  readonly hasInit: boolean;
  readonly hasMigrate: boolean;
}

/** Identifiers that name APIs contracts do not get (removed from the sandbox, refused here with a clear message). */
const UNAVAILABLE_GLOBALS: ReadonlyMap<string, string> = new Map([
  ['eval', 'code generation from strings is not available'],
  ['Function', 'the Function constructor (code generation) is not available'],
  ['RegExp', 'regular expressions are not available in contracts (they can backtrack exponentially)'],
  ['Date', 'the clock is not available: use ctx.time (the block time)'],
  ['Intl', 'Intl is locale- and clock-dependent and is not available'],
  ['WeakRef', 'WeakRef observes garbage collection and is not available'],
  ['FinalizationRegistry', 'FinalizationRegistry observes garbage collection and is not available'],
  ['SharedArrayBuffer', 'shared memory is not available'],
  ['Atomics', 'Atomics is not available'],
  ['WebAssembly', 'WebAssembly is not available'],
  ['Promise', 'contract code is synchronous: Promise is not available'],
  ['Proxy', 'Proxy is not available in contracts'],
  ['JSON', 'JSON is not available: arguments, state and return values are already structured values'],
  ['console', 'console is not available: use ctx.emit for observable output'],
  ['escape', 'escape is not available'],
  ['unescape', 'unescape is not available'],
  ['AggregateError', 'AggregateError is not available'],
  ['SuppressedError', 'SuppressedError is not available'],
  ['DisposableStack', 'DisposableStack is not available'],
  ['AsyncDisposableStack', 'AsyncDisposableStack is not available'],
  ['setTimeout', 'timers are not available: use ctx.schedule'],
  ['setInterval', 'timers are not available: use ctx.schedule'],
  ['queueMicrotask', 'contract code is synchronous'],
]);

/** Globals that are plain immutable values or frozen intrinsics, safe to read at load time. */
const PRIMITIVE_GLOBALS = new Set(['undefined', 'NaN', 'Infinity']);

/** Names the instrumentation binds in every artifact; contracts may not use the `__` prefix at all. */
const RUNTIME_NAMES = [
  'G',
  'S',
  'oog',
  'ck',
  'add',
  'sub',
  'mul',
  'pow',
  'shl',
  'str',
  'eq',
  'ne',
  'leq',
  'lne',
  'lt',
  'le',
  'gt',
  'ge',
  'cm1',
  'cm2',
  'spr',
  'spa',
  'spo',
  'fin',
  'sw',
] as const;

// ---------------------------------------------------------------------------------------------
// A loose ESTree shape: acorn's precise types add nothing to a generic walker.

interface Loc {
  readonly line: number;
  readonly column: number;
}

/** An ESTree node as acorn produces it. */
interface N {
  type: string;
  start?: number;
  end?: number;
  loc?: { start: Loc; end: Loc };
  [key: string]: unknown;
}

function isNode(v: unknown): v is N {
  return typeof v === 'object' && v !== null && typeof (v as N).type === 'string';
}

/** Child nodes of `node`, with the key (and index) under which each is held. */
function children(node: N): Array<[N, string, number]> {
  const out: Array<[N, string, number]> = [];
  for (const key of Object.keys(node)) {
    if (key === 'loc' || key === 'type') continue;
    const v = node[key];
    if (Array.isArray(v)) {
      v.forEach((c, i) => {
        if (isNode(c)) out.push([c, key, i]);
      });
    } else if (isNode(v)) out.push([v, key, -1]);
  }
  return out;
}

const FUNCTION_TYPES = new Set(['FunctionDeclaration', 'FunctionExpression', 'ArrowFunctionExpression']);
const LOOP_TYPES = new Set([
  'ForStatement',
  'ForInStatement',
  'ForOfStatement',
  'WhileStatement',
  'DoWhileStatement',
]);

/** Keys of a loop node evaluated on every iteration. */
function isPerIteration(loop: N, key: string): boolean {
  switch (loop.type) {
    case 'ForStatement':
      return key === 'test' || key === 'update' || key === 'body';
    case 'ForInStatement':
    case 'ForOfStatement':
      return key === 'left' || key === 'body';
    default:
      return key === 'test' || key === 'body';
  }
}

// ---------------------------------------------------------------------------------------------
// Node builders for the instrumentation.

const id = (name: string): N => ({ type: 'Identifier', name });
const num = (n: number): N => ({ type: 'Literal', value: n, raw: String(n) });
const strLit = (s: string): N => ({ type: 'Literal', value: s, raw: JSON.stringify(s) });
const call = (callee: string, args: N[]): N => ({
  type: 'CallExpression',
  callee: id(callee),
  arguments: args,
  optional: false,
});
const member = (object: N, prop: string): N => ({
  type: 'MemberExpression',
  object,
  property: id(prop),
  computed: false,
  optional: false,
});
const block = (body: N[]): N => ({ type: 'BlockStatement', body });
const exprStmt = (expression: N): N => ({ type: 'ExpressionStatement', expression });
const constDecl = (name: string, init: N): N => ({
  type: 'VariableDeclaration',
  kind: 'const',
  declarations: [{ type: 'VariableDeclarator', id: id(name), init }],
});

/** `if ((__G.g -= gas) < 0) __oog();` */
function gasCheck(gas: number): N {
  return {
    type: 'IfStatement',
    test: {
      type: 'BinaryExpression',
      operator: '<',
      left: { type: 'AssignmentExpression', operator: '-=', left: member(id('__G'), 'g'), right: num(gas) },
      right: num(0),
    },
    consequent: exprStmt(call('__oog', [])),
    alternate: null,
  };
}

/** `if ((__G.g -= gas) < 0 | (__S.s -= units) < 0) __oog();` (both sides always evaluated). */
function entryCheck(gas: number, units: number): N {
  const dec = (obj: string, prop: string, n: number): N => ({
    type: 'BinaryExpression',
    operator: '<',
    left: { type: 'AssignmentExpression', operator: '-=', left: member(id(obj), prop), right: num(n) },
    right: num(0),
  });
  return {
    type: 'IfStatement',
    test: {
      type: 'BinaryExpression',
      operator: '|',
      left: dec('__G', 'g', gas),
      right: dec('__S', 's', units),
    },
    consequent: exprStmt(call('__oog', [])),
    alternate: null,
  };
}

// ---------------------------------------------------------------------------------------------

/** Collects diagnostics while checking; positions come from acorn's 0-based columns. */
class Reporter {
  readonly list: Diagnostic[] = [];
  add(code: CompileErrorCode, node: N | undefined, message: string): void {
    const loc = node?.loc?.start;
    this.list.push({ code, message, line: loc?.line ?? 1, column: (loc?.column ?? 0) + 1 });
  }
}

/** What the top-level checks learn about the module. */
interface ModuleInfo {
  /** Every top-level binding, in declaration order. */
  readonly bindings: string[];
  /** Initialisers of top-level consts, for the load-time checks. */
  readonly constInits: Map<string, N>;
  /** Exported name → local binding. */
  readonly exports: Map<string, string>;
  readonly methods: string[];
  readonly views: string[];
}

/** True for an expression that evaluates to a primitive without running any contract code. */
function isPrimitiveSafe(node: N, info: ModuleInfo, seen = new Set<string>()): boolean {
  switch (node.type) {
    case 'Literal':
      return (node as { regex?: unknown }).regex === undefined;
    case 'Identifier': {
      const name = node.name as string;
      if (PRIMITIVE_GLOBALS.has(name)) return true;
      const init = info.constInits.get(name);
      if (init === undefined || seen.has(name)) return false;
      seen.add(name);
      return isPrimitiveSafe(init, info, seen);
    }
    case 'TemplateLiteral':
      return (node.expressions as N[]).every((e) => isPrimitiveSafe(e, info, seen));
    case 'UnaryExpression':
      return node.operator !== 'delete' && isPrimitiveSafe(node.argument as N, info, seen);
    case 'BinaryExpression':
    case 'LogicalExpression':
      return (
        node.operator !== 'instanceof' &&
        node.operator !== 'in' &&
        isPrimitiveSafe(node.left as N, info, seen) &&
        isPrimitiveSafe(node.right as N, info, seen)
      );
    case 'ConditionalExpression':
      return (
        isPrimitiveSafe(node.test as N, info, seen) &&
        isPrimitiveSafe(node.consequent as N, info, seen) &&
        isPrimitiveSafe(node.alternate as N, info, seen)
      );
    case 'MemberExpression':
      return isGlobalMember(node, info);
    default:
      return false;
  }
}

/** `Number.MAX_SAFE_INTEGER`, `Symbol.iterator`: a non-computed read of a global intrinsic. */
function isGlobalMember(node: N, info: ModuleInfo): boolean {
  const obj = node.object as N;
  return (
    node.computed === false &&
    node.optional !== true &&
    obj.type === 'Identifier' &&
    !info.constInits.has(obj.name as string) &&
    !info.bindings.includes(obj.name as string) &&
    !UNAVAILABLE_GLOBALS.has(obj.name as string)
  );
}

/**
 * Load-time safety: a top-level initializer may build values (literals, functions, classes,
 * references) but may not run contract code (calls, `new`, getters, implicit toString/valueOf),
 * because code run at load could create closures over mutable state that deep freezing cannot
 * reach, and load happens once per context, not once per call.
 */
function checkLoadTime(node: N, info: ModuleInfo, r: Reporter): void {
  const bad = (what: string): void =>
    r.add(
      'MODULE_SHAPE',
      node,
      `${what} at module load time is not allowed: top-level code may only declare constants, functions and classes (compute values inside methods)`,
    );
  switch (node.type) {
    case 'Literal':
    case 'Identifier':
    case 'FunctionExpression':
    case 'ArrowFunctionExpression':
      return;
    case 'ClassExpression':
      checkLoadTimeClass(node, info, r);
      return;
    case 'TemplateLiteral':
      if (!isPrimitiveSafe(node, info)) bad('a template literal with non-constant parts');
      return;
    case 'ArrayExpression':
      for (const e of node.elements as Array<N | null>) {
        if (e === null) continue;
        if (e.type === 'SpreadElement') bad('spread');
        else checkLoadTime(e, info, r);
      }
      return;
    case 'ObjectExpression':
      for (const p of node.properties as N[]) {
        if (p.type === 'SpreadElement') {
          bad('spread');
          continue;
        }
        if (p.computed === true && !isPrimitiveSafe(p.key as N, info)) bad('a computed key');
        checkLoadTime(p.value as N, info, r);
      }
      return;
    case 'UnaryExpression':
      if (node.operator === 'delete') bad('delete');
      else if (node.operator === '!' || node.operator === 'typeof' || node.operator === 'void') {
        checkLoadTime(node.argument as N, info, r);
      } else if (!isPrimitiveSafe(node, info)) bad(`unary ${String(node.operator)} on a non-constant`);
      return;
    case 'BinaryExpression':
      if (node.operator === '===' || node.operator === '!==') {
        checkLoadTime(node.left as N, info, r);
        checkLoadTime(node.right as N, info, r);
      } else if (!isPrimitiveSafe(node, info)) bad(`operator ${String(node.operator)} on non-constants`);
      return;
    case 'LogicalExpression':
      checkLoadTime(node.left as N, info, r);
      checkLoadTime(node.right as N, info, r);
      return;
    case 'ConditionalExpression':
      checkLoadTime(node.test as N, info, r);
      checkLoadTime(node.consequent as N, info, r);
      checkLoadTime(node.alternate as N, info, r);
      return;
    case 'SequenceExpression':
      for (const e of node.expressions as N[]) checkLoadTime(e, info, r);
      return;
    case 'MemberExpression':
      if (!isGlobalMember(node, info)) bad('reading a property of a module value');
      return;
    case 'CallExpression':
    case 'NewExpression':
    case 'TaggedTemplateExpression':
      bad('a call');
      return;
    default:
      bad(`${node.type}`);
  }
}

/** Class checks for classes evaluated at load time (static parts run then). */
function checkLoadTimeClass(node: N, info: ModuleInfo, r: Reporter): void {
  const sup = node.superClass as N | null;
  if (
    sup !== null &&
    sup.type !== 'Identifier' &&
    !(sup.type === 'MemberExpression' && isGlobalMember(sup, info))
  ) {
    r.add('MODULE_SHAPE', sup, 'a module-level class may only extend a named class');
  }
  for (const m of (node.body as N).body as N[]) {
    if (m.type === 'StaticBlock') {
      r.add('MODULE_SHAPE', m, 'static blocks run at load time and are not allowed in module-level classes');
      continue;
    }
    const key = m.key as N;
    if (m.computed === true && !isPrimitiveSafe(key, info)) {
      r.add('MODULE_SHAPE', key, 'computed member names of module-level classes must be constants');
    }
    if (m.type === 'PropertyDefinition' && m.static === true) {
      if (key.type === 'PrivateIdentifier') {
        r.add(
          'MODULE_SHAPE',
          m,
          'static private fields of module-level classes would keep state between calls (freezing cannot reach them)',
        );
      }
      if (m.value !== null && m.value !== undefined) checkLoadTime(m.value as N, info, r);
    }
  }
}

function arrayPatternHasRest(p: N): boolean {
  return p.type === 'ArrayPattern' && (p.elements as Array<N | null>).some((e) => e?.type === 'RestElement');
}

/** Checks that apply anywhere in the module. Recursive: depth is bounded by the AST depth check. */
function checkEverywhere(root: N, r: Reporter): void {
  /** `inFunction`: inside a function that has its own `arguments` (not an arrow). */
  const visit = (node: N, parent: N | null, key: string, inFunction: boolean): void => {
    switch (node.type) {
      case 'Literal': {
        const lit = node as { regex?: unknown; bigint?: string };
        if (lit.regex !== undefined) {
          r.add(
            'FORBIDDEN',
            node,
            'regular expression literals are not allowed (they can backtrack exponentially); use string methods',
          );
        }
        if (lit.bigint !== undefined) {
          const v = BigInt(lit.bigint);
          const bits = (v < 0n ? -v : v).toString(2).length;
          if (bits > VmLimits.maxBigIntBits) {
            r.add('FORBIDDEN', node, `BigInt literal wider than ${VmLimits.maxBigIntBits} bits`);
          }
        }
        break;
      }
      case 'Identifier': {
        const name = node.name as string;
        const isPropertyName =
          parent !== null &&
          (((parent.type === 'MemberExpression' ||
            parent.type === 'MethodDefinition' ||
            parent.type === 'PropertyDefinition') &&
            key === (parent.type === 'MemberExpression' ? 'property' : 'key') &&
            parent.computed === false) ||
            (parent.type === 'Property' &&
              key === 'key' &&
              parent.computed === false &&
              parent.shorthand !== true) ||
            parent.type === 'LabeledStatement' ||
            parent.type === 'BreakStatement' ||
            parent.type === 'ContinueStatement' ||
            parent.type === 'MetaProperty');
        if (isPropertyName) break;
        if (name === 'arguments' && !inFunction) {
          r.add('FORBIDDEN', node, '`arguments` outside a function is not allowed');
        } else if (name.startsWith('__')) {
          r.add('FORBIDDEN', node, `identifiers starting with "__" are reserved for the VM: "${name}"`);
        } else {
          const why = UNAVAILABLE_GLOBALS.get(name);
          if (why !== undefined) r.add('FORBIDDEN', node, `${name}: ${why}`);
        }
        break;
      }
      case 'MemberExpression': {
        const obj = node.object as N;
        const prop = node.property as N;
        if (
          obj.type === 'Identifier' &&
          obj.name === 'Math' &&
          node.computed === false &&
          prop.type === 'Identifier' &&
          prop.name === 'random'
        ) {
          r.add('FORBIDDEN', node, 'Math.random is not available: use ctx.random(label)');
        }
        break;
      }
      case 'FunctionDeclaration':
      case 'FunctionExpression':
      case 'ArrowFunctionExpression':
        if (node.async === true)
          r.add('FORBIDDEN', node, 'contract code is synchronous: async functions are not allowed');
        if (node.generator === true) r.add('FORBIDDEN', node, 'generator functions are not allowed');
        if ((node.params as N[]).length > VmLimits.maxLiteralArgs) {
          r.add('FORBIDDEN', node, `more than ${VmLimits.maxLiteralArgs} parameters`);
        }
        for (const p of node.params as N[]) {
          const inner = p.type === 'AssignmentPattern' ? (p.left as N) : p;
          if (containsRestArrayPattern(inner)) {
            r.add(
              'FORBIDDEN',
              p,
              'array rest patterns are only allowed in declarations and assignments, not parameters',
            );
          }
        }
        break;
      case 'AwaitExpression':
        r.add('FORBIDDEN', node, 'await is not allowed: contract code is synchronous');
        break;
      case 'YieldExpression':
        r.add('FORBIDDEN', node, 'yield is not allowed');
        break;
      case 'ForOfStatement':
        if (node.await === true) r.add('FORBIDDEN', node, 'for await is not allowed');
        if (containsRestArrayPattern(node.left as N)) {
          r.add('FORBIDDEN', node.left as N, 'array rest patterns are not allowed in loop heads');
        }
        break;
      case 'ImportExpression':
        r.add('FORBIDDEN', node, 'dynamic import is not allowed');
        break;
      case 'MetaProperty':
        if ((node.meta as N).name === 'import') r.add('FORBIDDEN', node, 'import.meta is not available');
        break;
      case 'WithStatement':
        r.add('FORBIDDEN', node, 'with is not allowed');
        break;
      case 'DebuggerStatement':
        r.add('FORBIDDEN', node, 'debugger is not allowed');
        break;
      case 'VariableDeclaration':
        if (node.kind !== 'var' && node.kind !== 'let' && node.kind !== 'const') {
          r.add('FORBIDDEN', node, `${String(node.kind)} declarations are not allowed`);
        }
        for (const d of node.declarations as N[]) {
          const target = d.id as N;
          if (target.type !== 'ArrayPattern' || !arrayPatternHasRest(target)) {
            if (containsRestArrayPattern(target)) {
              r.add('FORBIDDEN', target, 'array rest patterns are only allowed at the top of a declaration');
            }
          } else if (
            (target.elements as Array<N | null>).some((e) => e !== null && containsRestArrayPattern(e))
          ) {
            r.add('FORBIDDEN', target, 'nested array rest patterns are not allowed');
          }
        }
        break;
      case 'AssignmentExpression': {
        const left = node.left as N;
        if (node.operator === '=' && left.type === 'ArrayPattern') {
          if ((left.elements as Array<N | null>).some((e) => e !== null && containsRestArrayPattern(e))) {
            r.add('FORBIDDEN', left, 'nested array rest patterns are not allowed');
          }
        } else if (containsRestArrayPattern(left)) {
          r.add('FORBIDDEN', left, 'array rest patterns are only allowed at the top of an assignment');
        }
        if (
          COMPOUND_OPS.has(node.operator as string) &&
          left.type === 'MemberExpression' &&
          (left.property as N).type === 'PrivateIdentifier' &&
          !isPure(left.object as N)
        ) {
          r.add(
            'FORBIDDEN',
            node,
            'compound assignment to a private field of a computed object: assign it to a local first',
          );
        }
        break;
      }
      case 'CatchClause':
        if (node.param !== null && containsRestArrayPattern(node.param as N)) {
          r.add('FORBIDDEN', node.param as N, 'array rest patterns are not allowed in catch parameters');
        }
        break;
      case 'CallExpression':
      case 'NewExpression':
        if ((node.arguments as N[]).length > VmLimits.maxLiteralArgs) {
          r.add('FORBIDDEN', node, `more than ${VmLimits.maxLiteralArgs} arguments in one call`);
        }
        break;
      default:
        break;
    }
    const own = node.type === 'FunctionDeclaration' || node.type === 'FunctionExpression';
    for (const [child, k] of children(node)) visit(child, node, k, inFunction || own);
  };
  visit(root, null, '', false);
}

function containsRestArrayPattern(p: N): boolean {
  switch (p.type) {
    case 'ArrayPattern':
      return (p.elements as Array<N | null>).some(
        (e) => e !== null && (e.type === 'RestElement' || containsRestArrayPattern(e)),
      );
    case 'ObjectPattern':
      return (p.properties as N[]).some((q) =>
        q.type === 'RestElement'
          ? containsRestArrayPattern(q.argument as N)
          : containsRestArrayPattern(q.value as N),
      );
    case 'AssignmentPattern':
      return containsRestArrayPattern(p.left as N);
    case 'RestElement':
      return containsRestArrayPattern(p.argument as N);
    default:
      return false;
  }
}

const COMPOUND_OPS: ReadonlyMap<string, number> = new Map([
  ['+=', 0],
  ['-=', 1],
  ['*=', 2],
  ['**=', 3],
  ['<<=', 4],
]);
const COMPOUND_HELPER = ['__add', '__sub', '__mul', '__pow', '__shl'];
const BINARY_HELPERS: ReadonlyMap<string, string> = new Map([
  ['+', '__add'],
  ['-', '__sub'],
  ['*', '__mul'],
  ['**', '__pow'],
  ['<<', '__shl'],
]);
const COMPARE_HELPERS: ReadonlyMap<string, string> = new Map([
  ['===', '__eq'],
  ['!==', '__ne'],
  ['==', '__leq'],
  ['!=', '__lne'],
  ['<', '__lt'],
  ['<=', '__le'],
  ['>', '__gt'],
  ['>=', '__ge'],
]);

/** Evaluating it twice has no effect and gives the same value. */
function isPure(n: N): boolean {
  return (
    n.type === 'Identifier' ||
    n.type === 'ThisExpression' ||
    n.type === 'Super' ||
    (n.type === 'Literal' && (n as { regex?: unknown }).regex === undefined)
  );
}

/** An operand whose comparison cannot be long: a literal, a typeof, a constant template. */
function isTrivialOperand(n: N): boolean {
  if (n.type === 'Literal') return true;
  if (n.type === 'TemplateLiteral') return (n.expressions as N[]).length === 0;
  if (n.type === 'UnaryExpression') return n.operator !== '-' || (n.argument as N).type === 'Literal';
  return false;
}

// ---------------------------------------------------------------------------------------------

/** Iterative depth and size check, run before any recursive walk. */
function checkTreeShape(root: N, r: Reporter): boolean {
  const stack: Array<[N, number]> = [[root, 1]];
  let count = 0;
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    count++;
    if (depth > VmLimits.maxAstDepth) {
      r.add('TOO_DEEP', node, `source nests more than ${VmLimits.maxAstDepth} levels deep`);
      return false;
    }
    if (count > VmLimits.maxAstNodes) {
      r.add('TOO_LARGE', node, `source has more than ${VmLimits.maxAstNodes} syntax nodes`);
      return false;
    }
    for (const [child] of children(node)) stack.push([child, depth + 1]);
  }
  return true;
}

/** Top-level structure: only declarations, no load-time side effects, the four known exports. */
function checkModule(program: N, r: Reporter): ModuleInfo {
  const info: ModuleInfo = {
    bindings: [],
    constInits: new Map(),
    exports: new Map(),
    methods: [],
    views: [],
  };
  const declared = (name: string, node: N): void => {
    if (info.bindings.includes(name)) r.add('MODULE_SHAPE', node, `"${name}" is declared twice`);
    else info.bindings.push(name);
  };
  const exported = (name: string, local: string, node: N): void => {
    if (!(CONTRACT_EXPORTS as readonly string[]).includes(name)) {
      r.add(
        'MODULE_SHAPE',
        node,
        `a contract exports only ${CONTRACT_EXPORTS.join(', ')}; "${name}" is not one of them`,
      );
    } else if (info.exports.has(name)) r.add('MODULE_SHAPE', node, `"${name}" is exported twice`);
    else info.exports.set(name, local);
  };
  const declaration = (decl: N, exporting: boolean): void => {
    switch (decl.type) {
      case 'FunctionDeclaration': {
        const name = (decl.id as N).name as string;
        declared(name, decl);
        if (exporting) exported(name, name, decl);
        return;
      }
      case 'ClassDeclaration': {
        const name = (decl.id as N).name as string;
        declared(name, decl);
        if (exporting) exported(name, name, decl);
        return;
      }
      case 'VariableDeclaration':
        if (decl.kind !== 'const') {
          r.add(
            'MODULE_SHAPE',
            decl,
            `module-level "${String(decl.kind)}" would keep state between calls: declare constants with const (values are frozen after load)`,
          );
          return;
        }
        for (const d of decl.declarations as N[]) {
          const target = d.id as N;
          if (target.type !== 'Identifier') {
            r.add(
              'MODULE_SHAPE',
              target,
              'module-level destructuring is not allowed (it runs code at load time)',
            );
            continue;
          }
          const name = target.name as string;
          declared(name, target);
          info.constInits.set(name, d.init as N);
          if (exporting) exported(name, name, target);
        }
        return;
      default:
        r.add('MODULE_SHAPE', decl, `unexpected ${decl.type}`);
    }
  };
  for (const stmt of program.body as N[]) {
    switch (stmt.type) {
      case 'ImportDeclaration':
        if ((stmt.specifiers as N[]).length > 0) {
          r.add(
            'MODULE_SHAPE',
            stmt,
            'contracts cannot import code at run time; import only types (`import type { ... } from ...`)',
          );
        }
        break;
      case 'ExportNamedDeclaration':
        if (stmt.source !== null && stmt.source !== undefined) {
          r.add('MODULE_SHAPE', stmt, 're-exports from other modules are not allowed');
        } else if (stmt.declaration !== null && stmt.declaration !== undefined) {
          declaration(stmt.declaration as N, true);
        } else {
          for (const s of stmt.specifiers as N[]) {
            const local = (s.local as N).name as string;
            const name = ((s.exported as N).name ?? (s.exported as N).value) as string;
            exported(name, local, s);
          }
        }
        break;
      case 'ExportDefaultDeclaration':
      case 'ExportAllDeclaration':
        r.add('MODULE_SHAPE', stmt, `use named exports (${CONTRACT_EXPORTS.join(', ')})`);
        break;
      case 'FunctionDeclaration':
      case 'ClassDeclaration':
      case 'VariableDeclaration':
        declaration(stmt, false);
        break;
      case 'EmptyStatement':
        break;
      case 'ExpressionStatement':
        if (typeof stmt.directive === 'string') break;
        r.add('MODULE_SHAPE', stmt, 'top-level statements are not allowed: a contract module only declares');
        break;
      default:
        r.add('MODULE_SHAPE', stmt, `top-level ${stmt.type} is not allowed: a contract module only declares`);
    }
  }
  for (const [name, local] of info.exports) {
    if (!info.bindings.includes(local))
      r.add('MODULE_SHAPE', program, `export "${name}" names nothing declared`);
  }
  // Load-time safety of every initializer and module-level class.
  for (const stmt of program.body as N[]) {
    const decl = stmt.type === 'ExportNamedDeclaration' ? (stmt.declaration as N | null) : stmt;
    if (decl === null || decl === undefined) continue;
    if (decl.type === 'ClassDeclaration') checkLoadTimeClass(decl, info, r);
    if (decl.type === 'VariableDeclaration' && decl.kind === 'const') {
      for (const d of decl.declarations as N[]) {
        if (d.init !== null && d.init !== undefined) checkLoadTime(d.init as N, info, r);
      }
    }
  }
  info.methods.push(...exportTable('methods', info, program, r));
  info.views.push(...exportTable('views', info, program, r));
  for (const name of info.methods) {
    if (info.views.includes(name)) r.add('MODULE_SHAPE', program, `"${name}" is both a method and a view`);
  }
  for (const hook of ['init', 'migrate']) {
    const local = info.exports.get(hook);
    if (local === undefined) continue;
    const init = info.constInits.get(local);
    const fnDecl = (program.body as N[]).some((s) => {
      const d = s.type === 'ExportNamedDeclaration' ? (s.declaration as N | null) : s;
      return d?.type === 'FunctionDeclaration' && (d.id as N).name === local;
    });
    if (!fnDecl && !(init !== undefined && FUNCTION_TYPES.has(init.type))) {
      r.add('MODULE_SHAPE', program, `export "${hook}" must be a function`);
    }
  }
  return info;
}

/** The names of an exported `methods` or `views` table, read from its object literal. */
function exportTable(which: 'methods' | 'views', info: ModuleInfo, program: N, r: Reporter): string[] {
  const local = info.exports.get(which);
  if (local === undefined) return [];
  const init = info.constInits.get(local);
  if (init === undefined || init.type !== 'ObjectExpression') {
    r.add(
      'MODULE_SHAPE',
      init ?? program,
      `"${which}" must be a const object literal ({ name(ctx, args) { ... }, ... })`,
    );
    return [];
  }
  const names: string[] = [];
  for (const p of init.properties as N[]) {
    if (p.type !== 'Property' || p.computed === true || p.kind !== 'init') {
      r.add(
        'MODULE_SHAPE',
        p,
        `entries of "${which}" must be plain named functions (no spread, computed names or accessors)`,
      );
      continue;
    }
    const key = p.key as N;
    const name = key.type === 'Identifier' ? key.name : key.value;
    if (typeof name !== 'string' || !NAME_RE.test(name)) {
      r.add(
        'MODULE_SHAPE',
        key,
        `"${String(name)}" is not a valid ${which === 'methods' ? 'method' : 'view'} name (${NAME_RE.source})`,
      );
      continue;
    }
    const value = p.value as N;
    if (!FUNCTION_TYPES.has(value.type) && value.type !== 'Identifier') {
      r.add('MODULE_SHAPE', value, `"${which}.${name}" must be a function`);
      continue;
    }
    if (names.includes(name)) r.add('MODULE_SHAPE', key, `"${which}.${name}" is defined twice`);
    else names.push(name);
  }
  return names.sort();
}

// ---------------------------------------------------------------------------------------------
// Instrumentation.

interface Costs {
  /** Function or loop node → AST nodes in its charged region. */
  readonly region: Map<N, number>;
  /** Function node → AST nodes in its whole body (its frame estimate). */
  readonly frame: Map<N, number>;
}

function measure(program: N): Costs {
  const region = new Map<N, number>();
  const frame = new Map<N, number>();
  const walk = (node: N, reg: { n: number }, fr: { n: number }): void => {
    reg.n++;
    fr.n++;
    if (FUNCTION_TYPES.has(node.type)) {
      const r = { n: 0 };
      const f = { n: 0 };
      for (const [child] of children(node)) walk(child, r, f);
      region.set(node, r.n);
      frame.set(node, f.n);
      return;
    }
    if (LOOP_TYPES.has(node.type)) {
      const r = { n: 0 };
      for (const [child, key] of children(node)) walk(child, isPerIteration(node, key) ? r : reg, fr);
      region.set(node, r.n);
      return;
    }
    for (const [child] of children(node)) walk(child, reg, fr);
  };
  walk(program, { n: 0 }, { n: 0 });
  return { region, frame };
}

/** Parses a class member written as source (a default constructor). */
function parseMember(text: string): N {
  const program = parse(`(class extends Object { ${text} })`, { ecmaVersion: 2025 }) as unknown as N;
  const cls = ((program.body as N[])[0]!.expression as N).body as N;
  return (cls.body as N[])[0]!;
}

/**
 * Rewrites classes so that constructing one always passes an instrumented function entry:
 * a class without a constructor gets an explicit one, and a field initializer that can run code
 * becomes an arrow function called in place (`x = new A()` → `x = (() => new A())()`). Otherwise
 * implicit constructors and field initializers (which run before the constructor body) could
 * recurse natively, out of reach of the gas and stack meters. Runs before costs are measured.
 */
function desugarClasses(root: N): void {
  const visit = (node: N, parent: N | null): void => {
    for (const [child] of children(node)) visit(child, node);
    if (node.type !== 'ClassBody' || parent === null) return;
    const members = node.body as N[];
    for (const m of members) {
      const value = m.value as N | null | undefined;
      if (m.type !== 'PropertyDefinition' || value === null || value === undefined) continue;
      if (value.type === 'Literal' || value.type === 'Identifier' || FUNCTION_TYPES.has(value.type)) continue;
      m.value = {
        type: 'CallExpression',
        callee: {
          type: 'ArrowFunctionExpression',
          id: null,
          params: [],
          body: value,
          expression: true,
          async: false,
          generator: false,
        },
        arguments: [],
        optional: false,
      };
    }
    if (!members.some((m) => m.type === 'MethodDefinition' && m.kind === 'constructor')) {
      const derived = parent.superClass !== null && parent.superClass !== undefined;
      members.unshift(parseMember(derived ? 'constructor(...args) { super(...args); }' : 'constructor() {}'));
    }
  };
  visit(root, null);
}

function instrument(program: N, info: ModuleInfo, costs: Costs): N {
  const fnGas = (node: N): number => Gas.functionEntry + Gas.perNode * (costs.region.get(node) ?? 0);
  const fnUnits = (node: N): number => VmLimits.stackUnitsPerFrame + (costs.frame.get(node) ?? 0);
  const loopGas = (node: N): number => Gas.loopIteration + Gas.perNode * (costs.region.get(node) ?? 0);

  const visit = (node: N, parent: N | null, key: string): N => {
    for (const [child, k, i] of children(node)) {
      const out = visit(child, node, k);
      if (out !== child) {
        if (i >= 0) (node[k] as N[])[i] = out;
        else node[k] = out;
      }
    }
    return rewrite(node, parent, key);
  };

  const rewrite = (node: N, parent: N | null, key: string): N => {
    switch (node.type) {
      case 'FunctionDeclaration':
      case 'FunctionExpression':
      case 'ArrowFunctionExpression': {
        const units = fnUnits(node);
        const body = node.body as N;
        const inner =
          body.type === 'BlockStatement' ? (body.body as N[]) : [{ type: 'ReturnStatement', argument: body }];
        node.body = block([
          entryCheck(fnGas(node), units),
          {
            type: 'TryStatement',
            block: block(inner),
            handler: null,
            finalizer: block([
              exprStmt({
                type: 'AssignmentExpression',
                operator: '+=',
                left: member(id('__S'), 's'),
                right: num(units),
              }),
            ]),
          },
        ]);
        node.expression = false;
        return node;
      }
      case 'ForStatement':
      case 'ForInStatement':
      case 'ForOfStatement':
      case 'WhileStatement':
      case 'DoWhileStatement': {
        const body = node.body as N;
        node.body = block([
          gasCheck(loopGas(node)),
          ...(body.type === 'BlockStatement' ? (body.body as N[]) : [body]),
        ]);
        if (node.type === 'ForInStatement') node.right = call('__fin', [node.right as N]);
        return node;
      }
      case 'CatchClause': {
        const param = node.param as N | null;
        const stmts: N[] = [exprStmt(call('__ck', [num(Gas.catchFinally), id('__e')]))];
        if (param !== null) {
          stmts.push({
            type: 'VariableDeclaration',
            kind: 'let',
            declarations: [{ type: 'VariableDeclarator', id: param, init: id('__e') }],
          });
        }
        node.param = id('__e');
        node.body = block([...stmts, ...((node.body as N).body as N[])]);
        return node;
      }
      case 'TryStatement': {
        const fin = node.finalizer as N | null;
        if (fin !== null)
          node.finalizer = block([exprStmt(call('__ck', [num(Gas.catchFinally)])), ...(fin.body as N[])]);
        return node;
      }
      case 'BinaryExpression': {
        const op = node.operator as string;
        const helper = BINARY_HELPERS.get(op);
        if (helper !== undefined) return call(helper, [node.left as N, node.right as N]);
        const cmp = COMPARE_HELPERS.get(op);
        if (cmp !== undefined && !isTrivialOperand(node.left as N) && !isTrivialOperand(node.right as N)) {
          return call(cmp, [node.left as N, node.right as N]);
        }
        return node;
      }
      case 'AssignmentExpression': {
        const opIndex = COMPOUND_OPS.get(node.operator as string);
        const left = node.left as N;
        if (opIndex === undefined) {
          if (node.operator === '=' && arrayPatternHasRest(left))
            node.right = call('__spr', [node.right as N]);
          return node;
        }
        const helper = COMPOUND_HELPER[opIndex]!;
        if (left.type === 'Identifier') {
          return {
            type: 'AssignmentExpression',
            operator: '=',
            left,
            right: call(helper, [{ ...left }, node.right as N]),
          };
        }
        // left is a member expression (compound assignment admits nothing else)
        const obj = left.object as N;
        const prop = left.property as N;
        const keyPure = left.computed !== true || isPure(prop);
        if (isPure(obj) && keyPure) {
          return {
            type: 'AssignmentExpression',
            operator: '=',
            left,
            right: call(helper, [{ ...left }, node.right as N]),
          };
        }
        const keyExpr = left.computed === true ? prop : strLit(prop.name as string);
        return call('__cm2', [call('__cm1', [obj, keyExpr]), node.right as N, num(opIndex)]);
      }
      case 'TemplateLiteral':
        if (
          (node.expressions as N[]).length > 0 &&
          !(parent?.type === 'TaggedTemplateExpression' && key === 'quasi')
        ) {
          return call('__str', [node]);
        }
        return node;
      case 'SpreadElement': {
        const helper =
          parent?.type === 'ObjectExpression'
            ? '__spo'
            : parent?.type === 'CallExpression' || parent?.type === 'NewExpression'
              ? '__spa'
              : '__spr';
        node.argument = call(helper, [node.argument as N]);
        return node;
      }
      case 'SwitchStatement':
        node.discriminant = call('__sw', [node.discriminant as N, num((node.cases as N[]).length)]);
        return node;
      case 'VariableDeclarator':
        if (arrayPatternHasRest(node.id as N) && node.init !== null && node.init !== undefined) {
          node.init = call('__spr', [node.init as N]);
        }
        return node;
      default:
        return node;
    }
  };

  const body = (program.body as N[]).map((s) => visit(s, program, 'body'));

  // Module-level functions become hoisted constants and classes become constants, so every
  // module-level binding is immutable; the values behind them are deep-frozen by __rt.seal.
  const hoisted: N[] = [];
  const rest: N[] = [];
  for (const stmt of body) {
    const decl = stmt.type === 'ExportNamedDeclaration' ? (stmt.declaration as N | null) : stmt;
    if (
      decl === null ||
      decl === undefined ||
      stmt.type === 'ImportDeclaration' ||
      stmt.type === 'EmptyStatement'
    )
      continue;
    if (decl.type === 'ExpressionStatement') continue; // directives
    if (decl.type === 'FunctionDeclaration') {
      hoisted.push(constDecl((decl.id as N).name as string, { ...decl, type: 'FunctionExpression' }));
    } else if (decl.type === 'ClassDeclaration') {
      rest.push(constDecl((decl.id as N).name as string, { ...decl, type: 'ClassExpression' }));
    } else rest.push(decl);
  }
  const exportsObject: N = {
    type: 'ObjectExpression',
    properties: CONTRACT_EXPORTS.map((name) => {
      const local = info.exports.get(name);
      return {
        type: 'Property',
        key: id(name),
        // `void 0`, not `undefined`: a module may declare its own `undefined`.
        value:
          local === undefined
            ? { type: 'UnaryExpression', operator: 'void', prefix: true, argument: num(0) }
            : id(local),
        kind: 'init',
        computed: false,
        method: false,
        shorthand: false,
      };
    }),
  };
  const prologue: N = {
    type: 'VariableDeclaration',
    kind: 'const',
    declarations: RUNTIME_NAMES.map((name) => ({
      type: 'VariableDeclarator',
      id: id(`__${name}`),
      init: member(id('__rt'), name),
    })),
  };
  const seal: N = {
    type: 'ReturnStatement',
    argument: call('__seal', [exportsObject, { type: 'ArrayExpression', elements: info.bindings.map(id) }]),
  };
  // An arrow function: it has no `arguments` of its own, so module-level arrow functions (which
  // would otherwise see the factory's arguments, i.e. the runtime object) cannot reach it.
  const fn: N = {
    type: 'ArrowFunctionExpression',
    id: null,
    params: [id('__rt')],
    body: block([
      exprStmt({ ...strLit('use strict'), directive: 'use strict' }),
      prologue,
      constDecl('__seal', member(id('__rt'), 'seal')),
      ...hoisted,
      ...rest,
      seal,
    ]),
    generator: false,
    async: false,
    expression: false,
  };
  return { type: 'Program', sourceType: 'script', body: [exprStmt(fn)] };
}

// ---------------------------------------------------------------------------------------------

/**
 * Node's type stripper announces itself as experimental on first use; that warning is noise for a
 * deploy or `trellis contract check`, so only it is dropped, only during this synchronous call.
 */
function stripQuietly(source: string): string {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- put back as is, never called unbound
  const original = process.emitWarning;
  const emit = original.bind(process);
  process.emitWarning = (warning: string | Error, ...rest: unknown[]) => {
    const text = typeof warning === 'string' ? warning : warning.message;
    if (text.includes('stripTypeScriptTypes')) return;
    (emit as (w: string | Error, ...r: unknown[]) => void)(warning, ...rest);
  };
  try {
    return stripTypeScriptTypes(source, { mode: 'strip' });
  } finally {
    process.emitWarning = original;
  }
}

function strip(source: string, r: Reporter): string | null {
  try {
    return stripQuietly(source);
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e instanceof RangeError) {
      r.list.push({ code: 'TOO_DEEP', message: 'source nests too deeply to process', line: 1, column: 1 });
      return null;
    }
    // The stack of Node's TypeScript errors starts with ":<line>", the source line and a caret.
    const lines = (e.stack ?? '').split('\n');
    const lineNo = /^:(\d+)$/.exec(lines[0] ?? '');
    const caret = (lines[2] ?? '').indexOf('^');
    r.list.push({
      code: 'TYPESCRIPT',
      message: e.message,
      line: lineNo === null ? 1 : Number(lineNo[1]),
      column: caret < 0 ? 1 : caret + 1,
    });
    return null;
  }
}

/** Parses, checks and instruments a contract; returns the instrumented code and its exports. */
function compileToCode(source: string): { code: string; info: ModuleInfo } {
  const r = new Reporter();
  const fail = (): never => {
    throw new CompileError(r.list);
  };
  if (typeof source !== 'string') {
    r.list.push({ code: 'TOO_LARGE', message: 'source must be a string', line: 1, column: 1 });
    fail();
  }
  const bytes = Buffer.byteLength(source, 'utf8');
  if (bytes > VmLimits.maxSourceBytes) {
    r.list.push({
      code: 'TOO_LARGE',
      message: `source is ${bytes} bytes; at most ${VmLimits.maxSourceBytes}`,
      line: 1,
      column: 1,
    });
    fail();
  }
  const shape = scanSourceShape(source);
  if (shape !== null) {
    r.list.push(shape);
    fail();
  }
  const js = strip(source, r);
  if (js === null) return fail();
  let program: N;
  try {
    program = parse(js, {
      ecmaVersion: 2025,
      sourceType: 'module',
      locations: true,
      allowHashBang: false,
    }) as unknown as N;
  } catch (err) {
    if (err instanceof RangeError) {
      r.list.push({
        code: 'TOO_DEEP',
        message: `source nests more than ${VmLimits.maxAstDepth} levels deep`,
        line: 1,
        column: 1,
      });
    } else {
      const e = err as SyntaxError & { loc?: Loc };
      r.list.push({
        code: 'SYNTAX',
        message: e.message.replace(/ \(\d+:\d+\)$/, ''),
        line: e.loc?.line ?? 1,
        column: (e.loc?.column ?? 0) + 1,
      });
    }
    return fail();
  }
  if (!checkTreeShape(program, r)) fail();
  checkEverywhere(program, r);
  const info = checkModule(program, r);
  if (r.list.length > 0) {
    r.list.sort((a, b) => a.line - b.line || a.column - b.column);
    fail();
  }
  desugarClasses(program);
  const costs = measure(program);
  const out = instrument(program, info, costs);
  return { code: generate(out), info };
}

/**
 * Compiles a contract's TypeScript source into its artifact. Throws {@link CompileError} with
 * file:line diagnostics when the source is not a valid contract. Deterministic.
 */
export function compileContract(source: string): CompiledContract {
  const { code, info } = compileToCode(source);
  const methods = [...info.methods];
  const views = [...info.views];
  const hasInit = info.exports.has('init');
  const hasMigrate = info.exports.has('migrate');
  const artifact = pack([ARTIFACT_TAG, VM_VERSION, code, methods, views, hasInit, hasMigrate]);
  return {
    sourceHash: sha256(utf8(source)),
    artifact,
    artifactHash: sha256(artifact),
    code,
    methods,
    views,
    hasInit,
    hasMigrate,
  };
}

/** Runs every deploy-time check and returns the diagnostics (empty when the source would deploy). */
export function checkContractSource(source: string): Diagnostic[] {
  try {
    compileToCode(source);
    return [];
  } catch (err) {
    if (err instanceof CompileError) return [...err.diagnostics];
    throw err;
  }
}

/** The parts of stored artifact bytes the VM needs to load them. */
export interface Artifact {
  readonly code: string;
  readonly methods: readonly string[];
  readonly views: readonly string[];
  readonly hasInit: boolean;
  readonly hasMigrate: boolean;
}

/** Decodes artifact bytes written by {@link compileContract}; throws CodecError on anything else. */
export function decodeArtifact(bytes: Uint8Array): Artifact {
  const f = readArray(unpackCanonical(bytes, 'artifact'), 7, 'artifact');
  if (f[0] !== ARTIFACT_TAG || f[1] !== VM_VERSION) {
    throw new CompileError([
      {
        code: 'LOAD_FAILED',
        message: `artifact is not a ${ARTIFACT_TAG} for VM version ${VM_VERSION}`,
        line: 0,
        column: 0,
      },
    ]);
  }
  const names = (v: unknown, what: string): string[] =>
    readList(v, 10_000, what).map((n, i) => readString(n, `${what}[${i}]`, 64));
  return {
    code: readString(f[2], 'artifact.code', 64 * 1024 * 1024),
    methods: names(f[3], 'artifact.methods'),
    views: names(f[4], 'artifact.views'),
    hasInit: f[5] === true,
    hasMigrate: f[6] === true,
  };
}
