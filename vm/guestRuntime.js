// Trellis guest runtime.
//
// vm/sandbox.ts evaluates this file once in every contract context, as the body of a closure:
// `$0` is the host dispatch function (the only route to the host; it takes and returns copied
// strings, numbers and booleans) and `$1` the cost table and limits of vm/gasTable.ts (copied
// data). It hardens the context, then returns { load, invoke } to the host.
//
// Hardening, in order:
//   1. capture the intrinsics this file needs;
//   2. remove every nondeterministic API and code-generation route (Date, Intl, Math.random,
//      WeakRef, FinalizationRegistry, SharedArrayBuffer, Atomics, WebAssembly, eval, the Function
//      constructors, Promise, Proxy, JSON, RegExp, locale methods, console);
//   3. replace the built-ins whose work or allocation grows with their inputs by metered versions
//      that charge gas by size and refuse sizes beyond the limits (one table: vm/gasTable.ts);
//   4. deep-freeze every intrinsic and the global object.
// After load, a contract's module-level values are deep-frozen too, so nothing a call does can
// survive into the next call: warm and fresh contexts give identical results.
//
// Nothing in this closure is reachable from contract code except through the frozen ctx object
// and the metered built-in replacements; the instrumented contract code reaches the gas and stack
// counters through names starting with "__", which contract source may not use.
'use strict';
const hostCall = $0;
const GAS = $1.gas;
const LIM = $1.limits;

// ---------------------------------------------------------------------------------------------
// 1. Captured intrinsics

const ObjectC = Object;
const ObjectProto = Object.prototype;
const {
  freeze,
  getPrototypeOf,
  setPrototypeOf,
  getOwnPropertyDescriptor,
  defineProperty,
  keys: objectKeys,
  hasOwn,
} = Object;
const { apply, construct, ownKeys } = Reflect;
const RealArray = Array;
const ArrayProto = Array.prototype;
const isArray = Array.isArray;
const StringC = String;
const StringProto = String.prototype;
const fromCharCode = String.fromCharCode;
const NumberC = Number;
const isSafeInteger = Number.isSafeInteger;
const RealBigInt = BigInt;
const bigAsUintN = BigInt.asUintN;
const bigAsIntN = BigInt.asIntN;
const ErrorC = Error;
const TypeErrorC = TypeError;
const RangeErrorC = RangeError;
const RealU8 = Uint8Array;
const RealArrayBuffer = ArrayBuffer;
const isView = ArrayBuffer.isView;
const TypedArray = getPrototypeOf(Uint8Array);
const TypedArrayProto = TypedArray.prototype;
const taTag = getOwnPropertyDescriptor(TypedArrayProto, Symbol.toStringTag).get;
const taLength = getOwnPropertyDescriptor(TypedArrayProto, 'length').get;
const RealMap = Map;
// The runtime's own iteration of its Maps: Map.prototype.forEach is replaced by a metered version.
const mapForEach = Map.prototype.forEach;
const RealSet = Set;
const RealWeakMap = WeakMap;
const RealWeakSet = WeakSet;
const FunctionProto = Function.prototype;
const origBind = FunctionProto.bind;
const origSort = ArrayProto.sort;
const origJoin = ArrayProto.join;
const strSliceArray = ArrayProto.slice;
const strIsWellFormed = StringProto.isWellFormed;
const strSlice = StringProto.slice;
const strIndexOf = StringProto.indexOf;
const strStartsWith = StringProto.startsWith;
const SymIterator = Symbol.iterator;
const SymConcatSpreadable = Symbol.isConcatSpreadable;
const SymReplace = Symbol.replace;
const mathFloor = Math.floor;
const mathMin = Math.min;
const mathMax = Math.max;
const mathTrunc = Math.trunc;
// The runtime's own ASCII test (a linear character class). Regular expressions are removed for
// contracts; this one is private to the runtime and the RegExp constructor is unreachable.
const NON_ASCII = /[^\x00-\x7f]/;
const regexTest = RegExp.prototype.test;

// ---------------------------------------------------------------------------------------------
// 2. Per-invocation state and the helpers instrumented code calls

/** Gas left; instrumented code decrements `G.g` directly. */
const G = { g: 0 };
/** Deterministic stack units left; function entries decrement and exits restore `S.s`. */
const S = { s: 0 };
// Why the current call is ending, once decided: 0 running, 1 out of gas, 2 stack budget,
// 3 ctx.revert, 4 a VM limit, 5 a local fault, 6 the call needs the host mid-batch (see
// invokeBatch: it is run again on its own). Sticky: every catch and finally block rethrows.
let abortKind = 0;
let abortCode = '';
let abortMessage = '';
/** The value thrown to unwind an aborted call; contract code never observes it. */
const ABORT = freeze({ __proto__: null });
// The hardening below calls metered built-ins; it runs on an effectively unlimited budget.
G.g = 1e15;
S.s = 1e9;

function abort(kind, code, message) {
  if (abortKind === 0) {
    abortKind = kind;
    abortCode = code;
    abortMessage = message;
  }
  throw ABORT;
}
function oog() {
  if (G.g < 0) abort(1, 'OUT_OF_GAS', 'out of gas');
  if (S.s < 0) abort(2, 'STACK_OVERFLOW', 'call stack deeper than the deterministic limit');
  abort(5, 'FAULT', 'inconsistent meter');
}
function charge(n) {
  if ((G.g -= n) < 0) oog();
}
function limit(what) {
  abort(4, 'VM_LIMIT', what);
}
function isNativeStackOverflow(e) {
  return (
    e instanceof RangeErrorC &&
    getOwnPropertyDescriptor(e, 'message')?.value === 'Maximum call stack size exceeded'
  );
}
/** Entry of every catch and finally block in contract code. */
function ck(n, e) {
  if (abortKind !== 0) throw ABORT;
  if (e !== undefined && isNativeStackOverflow(e)) abort(5, 'NATIVE_STACK', "V8's own stack overflowed");
  if ((G.g -= n) < 0) oog();
}

const MAX_STRING = LIM.maxStringLength;
const FREE_STRING = GAS.freeStringLength;
const CHAR_SHIFT = GAS.charShift;
const MAX_BIG = 1n << RealBigInt(LIM.maxBigIntBits);
const MIN_BIG = -MAX_BIG;
const PER_ELEMENT = GAS.perElement;

function chargeString(n) {
  if (n > FREE_STRING) {
    if (n > MAX_STRING) limit(`string longer than ${MAX_STRING} characters`);
    charge((n - FREE_STRING) >>> CHAR_SHIFT);
  }
}
function checkBig(r) {
  if (r > MAX_BIG || r < MIN_BIG) limit(`BigInt wider than ${LIM.maxBigIntBits} bits`);
  return r;
}
function bitLength(b) {
  return (b < 0n ? -b : b).toString(16).length * 4;
}
function add(a, b) {
  const r = a + b;
  if (typeof r === 'string') {
    if (r.length > FREE_STRING) chargeString(r.length);
  } else if (typeof r === 'bigint') checkBig(r);
  return r;
}
function sub(a, b) {
  const r = a - b;
  if (typeof r === 'bigint') checkBig(r);
  return r;
}
function mul(a, b) {
  const r = a * b;
  if (typeof r === 'bigint') checkBig(r);
  return r;
}
function pow(a, b) {
  if (typeof a === 'bigint' && typeof b === 'bigint' && (a > 1n || a < -1n)) {
    if (
      b > RealBigInt(LIM.maxBigIntBits) ||
      RealBigInt(bitLength(a)) * b > RealBigInt(LIM.maxBigIntBits) + 64n
    ) {
      limit(`BigInt wider than ${LIM.maxBigIntBits} bits`);
    }
  }
  const r = a ** b;
  if (typeof r === 'bigint') checkBig(r);
  return r;
}
function shl(a, b) {
  if (typeof b === 'bigint' && b > RealBigInt(LIM.maxBigIntBits))
    limit(`BigInt wider than ${LIM.maxBigIntBits} bits`);
  const r = a << b;
  if (typeof r === 'bigint') checkBig(r);
  return r;
}
function str(s) {
  if (s.length > FREE_STRING) chargeString(s.length);
  return s;
}
// Comparing two long strings costs time proportional to their length.
function cmpCost(a, b) {
  if (typeof a === 'string' && typeof b === 'string') {
    const n = mathMin(a.length, b.length);
    if (n > FREE_STRING) charge(n >>> CHAR_SHIFT);
  }
}
function eq(a, b) {
  cmpCost(a, b);
  return a === b;
}
function ne(a, b) {
  cmpCost(a, b);
  return a !== b;
}
function leq(a, b) {
  cmpCost(a, b);
  return a == b; // eslint-disable-line eqeqeq
}
function lne(a, b) {
  cmpCost(a, b);
  return a != b; // eslint-disable-line eqeqeq
}
function lt(a, b) {
  cmpCost(a, b);
  return a < b;
}
function le(a, b) {
  cmpCost(a, b);
  return a <= b;
}
function gt(a, b) {
  cmpCost(a, b);
  return a > b;
}
function ge(a, b) {
  cmpCost(a, b);
  return a >= b;
}
// Compound assignment to a member of a computed object: `o[k] op= r` becomes
// `cm2(cm1(o, k), r, op)`, which keeps JavaScript's evaluation order (o, k, read, r, write).
const cmStack = [];
function toPropertyKey(k) {
  return ownKeys({ [k]: 0 })[0];
}
function cm1(o, k) {
  if ((typeof k === 'object' && k !== null) || typeof k === 'function') k = toPropertyKey(k);
  const i = cmStack.length;
  cmStack.push(o, k, o[k]);
  return i;
}
function cm2(i, r, op) {
  const o = cmStack[i];
  const k = cmStack[i + 1];
  const old = cmStack[i + 2];
  cmStack.length = i;
  const v =
    op === 0
      ? add(old, r)
      : op === 1
        ? sub(old, r)
        : op === 2
          ? mul(old, r)
          : op === 3
            ? pow(old, r)
            : shl(old, r);
  o[k] = v;
  return v;
}
function toLength(v) {
  const n = NumberC(v);
  if (!(n > 0)) return 0;
  return n > 9007199254740991 ? 9007199254740991 : mathFloor(n);
}
function isTypedArray(x) {
  return isView(x) && taTag.call(x) !== undefined;
}
/** Charges for something native code will iterate element by element; returns an iterable. */
function iterableCost(x, cap) {
  if (typeof x === 'string') {
    charge(x.length * PER_ELEMENT);
    if (cap && x.length > LIM.maxCallArgs) limit(`more than ${LIM.maxCallArgs} call arguments`);
    return x;
  }
  if (isArray(x)) {
    const n = toLength(x.length);
    charge(n * PER_ELEMENT);
    if (cap && n > LIM.maxCallArgs) limit(`more than ${LIM.maxCallArgs} call arguments`);
    return x;
  }
  if (isTypedArray(x)) {
    const n = taLength.call(x);
    charge(n * PER_ELEMENT);
    if (cap && n > LIM.maxCallArgs) limit(`more than ${LIM.maxCallArgs} call arguments`);
    return x;
  }
  // Any other iterable: iterate here, one charge per element, as the native spread would.
  const out = [];
  for (const v of x) {
    charge(PER_ELEMENT);
    if (cap && out.length >= LIM.maxCallArgs) limit(`more than ${LIM.maxCallArgs} call arguments`);
    out.push(v);
  }
  return out;
}
function spr(x) {
  return iterableCost(x, false);
}
function spa(x) {
  return iterableCost(x, true);
}
/** `switch` compares its value with each case: a long string costs its length per case. */
function sw(x, cases) {
  if (typeof x === 'string' && x.length > FREE_STRING) charge((x.length >>> CHAR_SHIFT) * cases);
  return x;
}
/** Object spread and for-in enumerate every index of a string or typed array. */
function spo(x) {
  if (typeof x === 'string') charge(x.length * PER_ELEMENT);
  else if (isTypedArray(x)) charge(taLength.call(x) * PER_ELEMENT);
  return x;
}
const fin = spo;

// ---------------------------------------------------------------------------------------------
// 3. Removing, replacing and metering built-ins

const G_ = globalThis;
const hidden = {
  GeneratorFunction: getPrototypeOf(function* () {}),
  AsyncFunction: getPrototypeOf(async function () {}),
  AsyncGeneratorFunction: getPrototypeOf(async function* () {}),
  ArrayIterator: getPrototypeOf([][SymIterator]()),
  MapIterator: getPrototypeOf(new RealMap().entries()),
  SetIterator: getPrototypeOf(new RealSet().values()),
  StringIterator: getPrototypeOf(''[SymIterator]()),
  IteratorHelper: getPrototypeOf([].values().map((x) => x)),
  WrapForValidIterator: getPrototypeOf(Iterator.from({ next: () => ({ done: true, value: undefined }) })),
  ThrowTypeError: getOwnPropertyDescriptor(FunctionProto, 'caller').get,
  TypedArray,
  RegExpProto: RegExp.prototype,
  PromiseProto: Promise.prototype,
};

for (const name of [
  'Date',
  'Intl',
  'WebAssembly',
  'SharedArrayBuffer',
  'Atomics',
  'WeakRef',
  'FinalizationRegistry',
  'eval',
  'Promise',
  'Proxy',
  'JSON',
  'RegExp',
  'console',
  'escape',
  'unescape',
  'AggregateError',
  'SuppressedError',
  'DisposableStack',
  'AsyncDisposableStack',
]) {
  delete G_[name];
}
delete Math.random;
delete Symbol.for;
delete Symbol.keyFor;
delete ErrorC.captureStackTrace;
// Stack traces would carry positions and cost time; errors carry only their message.
ErrorC.stackTraceLimit = 0;
for (const [proto, names] of [
  [
    StringProto,
    [
      'localeCompare',
      'toLocaleLowerCase',
      'toLocaleUpperCase',
      'match',
      'matchAll',
      'search',
      'anchor',
      'big',
      'blink',
      'bold',
      'fixed',
      'fontcolor',
      'fontsize',
      'italics',
      'link',
      'small',
      'strike',
      'sub',
      'sup',
    ],
  ],
  [NumberC.prototype, ['toLocaleString']],
  [RealBigInt.prototype, ['toLocaleString']],
  [ArrayProto, ['toLocaleString']],
  [TypedArrayProto, ['toLocaleString']],
  [RealArray, ['fromAsync']],
]) {
  for (const name of names) delete proto[name];
}

// Code generation: every Function constructor (plain, generator, async, async generator) and the
// global Function become stubs that throw; `x instanceof Function` keeps working.
function noCodegen(name, proto) {
  const stub = {
    [name]: function () {
      throw new TypeErrorC(`${name}: code generation is not available in contracts`);
    },
  }[name];
  defineProperty(stub, 'prototype', { value: proto, writable: false });
  defineProperty(proto, 'constructor', { value: stub, writable: false, configurable: false });
  return stub;
}
G_.Function = noCodegen('Function', FunctionProto);
noCodegen('GeneratorFunction', hidden.GeneratorFunction);
noCodegen('AsyncFunction', hidden.AsyncFunction);
noCodegen('AsyncGeneratorFunction', hidden.AsyncGeneratorFunction);

/** Replaces `obj[name]` (a method) by `make(original)`, keeping the property's attributes. */
function replace(obj, name, make) {
  const d = getOwnPropertyDescriptor(obj, name);
  if (d === undefined || typeof d.value !== 'function') return;
  d.value = make(d.value);
  defineProperty(obj, name, d);
}
/** A non-constructible method named `name`. */
/**
 * A non-constructible method named `name` running `fn`. Every built-in replacement is one of these,
 * and each charges a frame against the deterministic stack budget: a chain of built-ins calling
 * built-ins (Reflect.apply nested in data, forEach of a bound forEach, ...) never reaches an
 * instrumented contract function, so without this it could recurse until V8's own stack ran out.
 */
function method(name, fn) {
  return {
    [name](...args) {
      if ((S.s -= LIM.stackUnitsPerFrame) < 0) oog();
      try {
        return apply(fn, this, args);
      } finally {
        S.s += LIM.stackUnitsPerFrame;
      }
    },
  }[name];
}
function relIndex(v, len, dflt) {
  if (v === undefined) return dflt;
  const n = mathTrunc(NumberC(v)) || 0;
  return n < 0 ? mathMax(len + n, 0) : mathMin(n, len);
}
function thisObject(self, what) {
  if (self === null || self === undefined) throw new TypeErrorC(`${what} called on null or undefined`);
  return ObjectC(self);
}
function requireCallable(fn) {
  if (typeof fn !== 'function') throw new TypeErrorC(`${typeof fn} is not a function`);
}
function newArray(n) {
  if (n > LIM.maxArrayLength) limit(`array longer than ${LIM.maxArrayLength}`);
  return new RealArray(n);
}

// Array.prototype: methods that touch every index are charged by length before they run.
for (const name of [
  'every',
  'find',
  'findIndex',
  'findLast',
  'findLastIndex',
  'forEach',
  'includes',
  'indexOf',
  'lastIndexOf',
  'reduce',
  'reduceRight',
  'reverse',
  'some',
  'toReversed',
  'toSpliced',
  'with',
  'shift',
  'unshift',
  'copyWithin',
]) {
  replace(ArrayProto, name, (orig) =>
    method(name, function (...args) {
      const n = toLength(thisObject(this, `Array.prototype.${name}`).length);
      if ((name === 'toReversed' || name === 'toSpliced' || name === 'with') && n > LIM.maxArrayLength) {
        limit(`array longer than ${LIM.maxArrayLength}`);
      }
      // Searching for a long string compares it with every element.
      const needle = args[0];
      const per =
        (name === 'includes' || name === 'indexOf' || name === 'lastIndexOf') &&
        typeof needle === 'string' &&
        needle.length > FREE_STRING
          ? needle.length >>> CHAR_SHIFT
          : 0;
      charge(n * (PER_ELEMENT + per));
      return apply(orig, this, args);
    }),
  );
}
replace(ArrayProto, 'fill', (orig) =>
  method('fill', function (...args) {
    const len = toLength(thisObject(this, 'Array.prototype.fill').length);
    const start = relIndex(args[1], len, 0);
    const end = relIndex(args[2], len, len);
    charge(mathMax(end - start, 0) * PER_ELEMENT);
    return apply(orig, this, args);
  }),
);
for (const name of ['sort', 'toSorted']) {
  replace(ArrayProto, name, (orig) =>
    method(name, function (...args) {
      const o = thisObject(this, `Array.prototype.${name}`);
      const n = toLength(o.length);
      if (name === 'toSorted' && n > LIM.maxArrayLength) limit(`array longer than ${LIM.maxArrayLength}`);
      // Without a comparator elements are compared as strings: charge for the longest one too.
      let longest = 0;
      if (args[0] === undefined) {
        charge(n * PER_ELEMENT);
        for (let i = 0; i < n; i++) {
          const v = o[i];
          if (typeof v === 'string' && v.length > longest) longest = v.length;
        }
      }
      const per = PER_ELEMENT + (longest > FREE_STRING ? longest >>> CHAR_SHIFT : 0);
      charge(n * (1 + (n > 1 ? 32 - Math.clz32(n) : 0)) * per);
      return apply(orig, this, args);
    }),
  );
}
// join: converts each element once (so its toString runs once), bounds the result, detects
// cycles like V8 does, and charges the stack budget so nested arrays cannot recurse natively.
const joining = [];
const arrayJoin = method('join', function (sep) {
  const o = thisObject(this, 'Array.prototype.join');
  const len = toLength(o.length);
  const s = sep === undefined ? ',' : `${sep}`;
  for (let i = 0; i < joining.length; i++) if (joining[i] === o) return '';
  charge(len * PER_ELEMENT);
  if ((S.s -= LIM.stackUnitsPerFrame) < 0) oog();
  joining.push(o);
  try {
    const parts = newArray(len);
    let total = len > 0 ? (len - 1) * s.length : 0;
    if (total > MAX_STRING) limit(`string longer than ${MAX_STRING} characters`);
    for (let i = 0; i < len; i++) {
      const v = o[i];
      const p = v === undefined || v === null ? '' : `${v}`;
      total += p.length;
      if (total > MAX_STRING) limit(`string longer than ${MAX_STRING} characters`);
      parts[i] = p;
    }
    chargeString(total);
    return apply(origJoin, parts, [s]);
  } finally {
    joining.pop();
    S.s += LIM.stackUnitsPerFrame;
  }
});
defineProperty(ArrayProto, 'join', {
  value: arrayJoin,
  writable: true,
  enumerable: false,
  configurable: true,
});

// The species-creating methods are reimplemented without species (they always build plain
// arrays), because the metered Array constructor below disables V8's species fast path.
function defineArrayMethod(name, fn) {
  defineProperty(ArrayProto, name, {
    value: method(name, fn),
    writable: true,
    enumerable: false,
    configurable: true,
  });
}
defineArrayMethod('map', function (fn, thisArg) {
  const o = thisObject(this, 'Array.prototype.map');
  const len = toLength(o.length);
  requireCallable(fn);
  charge(len * PER_ELEMENT);
  const out = newArray(len);
  for (let i = 0; i < len; i++) if (i in o) out[i] = apply(fn, thisArg, [o[i], i, o]);
  return out;
});
defineArrayMethod('filter', function (fn, thisArg) {
  const o = thisObject(this, 'Array.prototype.filter');
  const len = toLength(o.length);
  requireCallable(fn);
  charge(len * PER_ELEMENT);
  const out = [];
  for (let i = 0; i < len; i++) {
    if (i in o) {
      const v = o[i];
      if (apply(fn, thisArg, [v, i, o])) out.push(v);
    }
  }
  return out;
});
defineArrayMethod('slice', function (start, end) {
  const o = thisObject(this, 'Array.prototype.slice');
  const len = toLength(o.length);
  const from = relIndex(start, len, 0);
  const to = relIndex(end, len, len);
  const n = mathMax(to - from, 0);
  charge(n * PER_ELEMENT);
  const out = newArray(n);
  for (let i = 0; i < n; i++) if (from + i in o) out[i] = o[from + i];
  return out;
});
defineArrayMethod('splice', function (start, deleteCount, ...items) {
  const o = thisObject(this, 'Array.prototype.splice');
  const len = toLength(o.length);
  const from = relIndex(start, len, 0);
  const argc = arguments.length;
  const del =
    argc === 0
      ? 0
      : argc === 1
        ? len - from
        : mathMin(mathMax(mathTrunc(NumberC(deleteCount)) || 0, 0), len - from);
  const ins = items.length;
  charge((len - from + ins) * PER_ELEMENT);
  const removed = newArray(del);
  for (let k = 0; k < del; k++) if (from + k in o) removed[k] = o[from + k];
  if (ins < del) {
    for (let k = from; k < len - del; k++) {
      if (k + del in o) o[k + ins] = o[k + del];
      else delete o[k + ins];
    }
    for (let k = len; k > len - del + ins; k--) delete o[k - 1];
  } else if (ins > del) {
    for (let k = len - del; k > from; k--) {
      if (k + del - 1 in o) o[k + ins - 1] = o[k + del - 1];
      else delete o[k + ins - 1];
    }
  }
  for (let k = 0; k < ins; k++) o[from + k] = items[k];
  o.length = len - del + ins;
  return removed;
});
function isConcatSpreadable(x) {
  if ((typeof x !== 'object' && typeof x !== 'function') || x === null) return false;
  const s = x[SymConcatSpreadable];
  return s !== undefined ? !!s : isArray(x);
}
defineArrayMethod('concat', function (...args) {
  const o = thisObject(this, 'Array.prototype.concat');
  const out = [];
  let n = 0;
  const sources = [o, ...args];
  for (let j = 0; j < sources.length; j++) {
    const e = sources[j];
    if (isConcatSpreadable(e)) {
      const len = toLength(e.length);
      charge(len * PER_ELEMENT);
      if (n + len > LIM.maxArrayLength) limit(`array longer than ${LIM.maxArrayLength}`);
      for (let k = 0; k < len; k++, n++) if (k in e) out[n] = e[k];
    } else {
      charge(PER_ELEMENT);
      out[n++] = e;
    }
  }
  out.length = n;
  return out;
});
// flat and flatMap iterate with an explicit stack: nesting cannot recurse natively.
function flattenInto(out, source, depth) {
  const stack = [[source, 0, toLength(source.length), depth]];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [src, , len, d] = top;
    if (top[1] >= len) {
      stack.pop();
      continue;
    }
    const i = top[1]++;
    charge(PER_ELEMENT);
    if (!(i in src)) continue;
    const v = src[i];
    if (d > 0 && isArray(v)) {
      if (stack.length > LIM.maxValueDepth * 4) limit('arrays nested too deeply to flatten');
      stack.push([v, 0, toLength(v.length), d - 1]);
    } else {
      if (out.length >= LIM.maxArrayLength) limit(`array longer than ${LIM.maxArrayLength}`);
      out.push(v);
    }
  }
  return out;
}
defineArrayMethod('flat', function (depth) {
  const o = thisObject(this, 'Array.prototype.flat');
  const d = depth === undefined ? 1 : mathTrunc(NumberC(depth)) || 0;
  return flattenInto([], o, d);
});
defineArrayMethod('flatMap', function (fn, thisArg) {
  const o = thisObject(this, 'Array.prototype.flatMap');
  const len = toLength(o.length);
  requireCallable(fn);
  charge(len * PER_ELEMENT);
  const out = [];
  for (let i = 0; i < len; i++) {
    if (!(i in o)) continue;
    const v = apply(fn, thisArg, [o[i], i, o]);
    if (isArray(v)) flattenInto(out, v, 0);
    else {
      if (out.length >= LIM.maxArrayLength) limit(`array longer than ${LIM.maxArrayLength}`);
      out.push(v);
    }
  }
  return out;
});
function collect(items, mapFn, thisArg) {
  const out = [];
  if (items === null || items === undefined) throw new TypeErrorC('items is null or undefined');
  const iter = items[SymIterator];
  if (iter !== undefined && iter !== null) {
    for (const v of spr(items)) {
      if (out.length >= LIM.maxArrayLength) limit(`array longer than ${LIM.maxArrayLength}`);
      out.push(mapFn === undefined ? v : apply(mapFn, thisArg, [v, out.length]));
    }
    return out;
  }
  const o = ObjectC(items);
  const len = toLength(o.length);
  charge(len * PER_ELEMENT);
  const arr = newArray(len);
  for (let i = 0; i < len; i++) arr[i] = mapFn === undefined ? o[i] : apply(mapFn, thisArg, [o[i], i]);
  return arr;
}
// The Array constructor preallocates up to ~800 KB for `new Array(n)`: it is metered, and the
// real one becomes unreachable (global and Array.prototype.constructor both point here).
const ArrayW = function Array(...args) {
  if (args.length === 1 && typeof args[0] === 'number') {
    const n = args[0];
    if (n > LIM.maxArrayLength) limit(`array longer than ${LIM.maxArrayLength}`);
    if (n > 0) charge(mathFloor(n) * PER_ELEMENT);
  } else charge(args.length * PER_ELEMENT);
  return construct(
    RealArray,
    args,
    new.target === undefined || new.target === ArrayW ? RealArray : new.target,
  );
};
ArrayW.prototype = ArrayProto;
defineProperty(ArrayW, 'prototype', { writable: false });
ArrayW.isArray = isArray;
ArrayW.from = method('from', (items, mapFn, thisArg) => {
  if (mapFn !== undefined) requireCallable(mapFn);
  return collect(items, mapFn, thisArg);
});
ArrayW.of = method('of', (...items) => {
  charge(items.length * PER_ELEMENT);
  return items;
});
defineProperty(ArrayW, Symbol.species, getOwnPropertyDescriptor(RealArray, Symbol.species));
defineProperty(ArrayProto, 'constructor', {
  value: ArrayW,
  writable: true,
  enumerable: false,
  configurable: true,
});
G_.Array = ArrayW;

// Typed arrays and buffers allocate eagerly: sizes are capped and charged.
function bufferCap(bytes) {
  if (!(bytes <= LIM.maxBufferBytes)) limit(`buffer larger than ${LIM.maxBufferBytes} bytes`);
}
for (const name of [
  'Int8Array',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int16Array',
  'Uint16Array',
  'Int32Array',
  'Uint32Array',
  'Float16Array',
  'Float32Array',
  'Float64Array',
  'BigInt64Array',
  'BigUint64Array',
]) {
  const Real = G_[name];
  if (typeof Real !== 'function') continue;
  const per = Real.BYTES_PER_ELEMENT;
  const Wrapped = {
    [name]: function (...args) {
      if (new.target === undefined) throw new TypeErrorC(`Constructor ${name} requires 'new'`);
      const a0 = args[0];
      let count = 0;
      if (typeof a0 !== 'object' || a0 === null) count = a0 === undefined ? 0 : mathTrunc(NumberC(a0)) || 0;
      else if (a0 instanceof RealArrayBuffer) count = 0;
      else if (isTypedArray(a0)) count = taLength.call(a0);
      else if (a0[SymIterator] !== undefined) args[0] = collect(a0);
      else count = toLength(a0.length);
      if (isArray(args[0])) count = args[0].length;
      bufferCap(count * per);
      charge(count * PER_ELEMENT);
      return construct(Real, args, new.target === Wrapped ? Real : new.target);
    },
  }[name];
  setPrototypeOf(Wrapped, TypedArray);
  defineProperty(Wrapped, 'prototype', { value: Real.prototype, writable: false });
  defineProperty(Wrapped, 'BYTES_PER_ELEMENT', { value: per });
  defineProperty(Real.prototype, 'constructor', {
    value: Wrapped,
    writable: true,
    enumerable: false,
    configurable: true,
  });
  G_[name] = Wrapped;
}
replace(TypedArray, 'from', (orig) =>
  method('from', function (items, ...rest) {
    return apply(orig, this, [isTypedArray(items) ? items : collect(items), ...rest]);
  }),
);
replace(TypedArray, 'of', (orig) =>
  method('of', function (...items) {
    charge(items.length * PER_ELEMENT);
    return apply(orig, this, items);
  }),
);
for (const name of [
  'every',
  'fill',
  'filter',
  'find',
  'findIndex',
  'findLast',
  'findLastIndex',
  'forEach',
  'includes',
  'indexOf',
  'join',
  'lastIndexOf',
  'map',
  'reduce',
  'reduceRight',
  'reverse',
  'slice',
  'some',
  'sort',
  'toReversed',
  'toSorted',
  'toString',
  'with',
  'copyWithin',
  'set',
]) {
  replace(TypedArrayProto, name, (orig) =>
    method(name, function (...args) {
      const n = isTypedArray(this) ? taLength.call(this) : 0;
      const extra =
        name === 'set' && args[0] !== null && typeof args[0] === 'object' ? toLength(args[0].length) : 0;
      charge(
        (n + extra) *
          (name === 'sort' || name === 'toSorted' ? 1 + (n > 1 ? 32 - Math.clz32(n) : 0) : 1) *
          PER_ELEMENT,
      );
      const r = apply(orig, this, args);
      if (typeof r === 'string') chargeString(r.length);
      return r;
    }),
  );
}
const ArrayBufferW = function ArrayBuffer(...args) {
  if (new.target === undefined) throw new TypeErrorC("Constructor ArrayBuffer requires 'new'");
  const n = mathTrunc(NumberC(args[0])) || 0;
  bufferCap(n);
  const opts = args[1];
  if (opts !== null && typeof opts === 'object' && opts.maxByteLength !== undefined)
    bufferCap(NumberC(opts.maxByteLength));
  charge(mathMax(n, 0) * PER_ELEMENT);
  return construct(RealArrayBuffer, args, new.target === ArrayBufferW ? RealArrayBuffer : new.target);
};
defineProperty(ArrayBufferW, 'prototype', { value: RealArrayBuffer.prototype, writable: false });
ArrayBufferW.isView = isView;
defineProperty(ArrayBufferW, Symbol.species, getOwnPropertyDescriptor(RealArrayBuffer, Symbol.species));
defineProperty(RealArrayBuffer.prototype, 'constructor', {
  value: ArrayBufferW,
  writable: true,
  enumerable: false,
  configurable: true,
});
G_.ArrayBuffer = ArrayBufferW;
for (const name of ['slice', 'transfer', 'transferToFixedLength', 'resize']) {
  replace(RealArrayBuffer.prototype, name, (orig) =>
    method(name, function (...args) {
      const n =
        name === 'slice'
          ? this.byteLength
          : args[0] === undefined
            ? this.byteLength
            : mathTrunc(NumberC(args[0])) || 0;
      bufferCap(n);
      charge(mathMax(n, 0) * PER_ELEMENT);
      return apply(orig, this, args);
    }),
  );
}

// Keyed collections: the constructors iterate their argument natively; collect it here, metered.
for (const [name, Real] of [
  ['Map', RealMap],
  ['Set', RealSet],
  ['WeakMap', RealWeakMap],
  ['WeakSet', RealWeakSet],
]) {
  const Wrapped = {
    [name]: function (...args) {
      if (new.target === undefined) throw new TypeErrorC(`Constructor ${name} requires 'new'`);
      if (args[0] !== undefined && args[0] !== null) args[0] = spr(args[0]);
      return construct(Real, args, new.target === Wrapped ? Real : new.target);
    },
  }[name];
  defineProperty(Wrapped, 'prototype', { value: Real.prototype, writable: false });
  if (hasOwn(Real, 'groupBy')) Wrapped.groupBy = Real.groupBy;
  const species = getOwnPropertyDescriptor(Real, Symbol.species);
  if (species !== undefined) defineProperty(Wrapped, Symbol.species, species);
  defineProperty(Real.prototype, 'constructor', {
    value: Wrapped,
    writable: true,
    enumerable: false,
    configurable: true,
  });
  G_[name] = Wrapped;
}
for (const name of [
  'union',
  'intersection',
  'difference',
  'symmetricDifference',
  'isSubsetOf',
  'isSupersetOf',
  'isDisjointFrom',
]) {
  replace(RealSet.prototype, name, (orig) =>
    method(name, function (other) {
      const a = this instanceof RealSet ? this.size : 0;
      const b = other !== null && typeof other === 'object' ? toLength(other.size) : 0;
      charge((a + b) * PER_ELEMENT);
      return apply(orig, this, [other]);
    }),
  );
}
// Callbacks of keyed collections: charged per entry and per frame (see method()).
for (const Real of [RealMap, RealSet]) {
  replace(Real.prototype, 'forEach', (orig) =>
    method('forEach', function (...args) {
      charge((this instanceof Real ? this.size : 0) * PER_ELEMENT);
      return apply(orig, this, args);
    }),
  );
}
// Iterator helpers are lazy: a chain of them recurses natively on every next(). Chains are capped.
const helperDepth = new RealWeakMap();
for (const name of ['map', 'filter', 'take', 'drop', 'flatMap']) {
  replace(Iterator.prototype, name, (orig) =>
    method(name, function (...args) {
      const depth = (helperDepth.get(this) ?? 0) + 1;
      if (depth > 64) limit('iterator helpers chained more than 64 deep');
      const it = apply(orig, this, args);
      helperDepth.set(it, depth);
      return it;
    }),
  );
}
for (const name of ['forEach', 'reduce', 'some', 'every', 'find']) {
  replace(Iterator.prototype, name, (orig) =>
    method(name, function (...args) {
      return apply(orig, this, args);
    }),
  );
}
replace(Iterator.prototype, 'toArray', () =>
  method('toArray', function () {
    const out = [];
    const it = this;
    for (;;) {
      const r = it.next();
      if (r.done) return out;
      charge(PER_ELEMENT);
      if (out.length >= LIM.maxArrayLength) limit(`array longer than ${LIM.maxArrayLength}`);
      out.push(r.value);
    }
  }),
);

// Object reflection over strings and typed arrays lists every index.
for (const [obj, name] of [
  [ObjectC, 'keys'],
  [ObjectC, 'values'],
  [ObjectC, 'entries'],
  [ObjectC, 'getOwnPropertyNames'],
  [ObjectC, 'getOwnPropertyDescriptors'],
  [Reflect, 'ownKeys'],
]) {
  replace(obj, name, (orig) =>
    method(name, function (o) {
      spo(o);
      const r = apply(orig, this, [o]);
      if (isArray(r)) charge(r.length * PER_ELEMENT);
      return r;
    }),
  );
}
replace(ObjectC, 'assign', (orig) =>
  method('assign', function (target, ...sources) {
    for (let i = 0; i < sources.length; i++) spo(sources[i]);
    return apply(orig, this, [target, ...sources]);
  }),
);
replace(ObjectC, 'fromEntries', (orig) => method('fromEntries', (items) => orig(spr(items))));

// Calls with many arguments push them all on the stack: apply, bind and Reflect are capped.
const boundArgs = new RealWeakMap();
replace(FunctionProto, 'apply', () =>
  method('apply', function (thisArg, list) {
    if (list === undefined || list === null) return apply(this, thisArg, []);
    if (toLength(ObjectC(list).length) > LIM.maxCallArgs)
      limit(`more than ${LIM.maxCallArgs} call arguments`);
    return apply(this, thisArg, list);
  }),
);
replace(FunctionProto, 'bind', () =>
  method('bind', function (thisArg, ...args) {
    const prior = boundArgs.get(this) ?? [0, 0];
    const total = prior[0] + args.length;
    if (total > LIM.maxBoundArgs || prior[1] >= 64)
      limit(`more than ${LIM.maxBoundArgs} bound arguments or 64 chained binds`);
    const bound = apply(origBind, this, [thisArg, ...args]);
    boundArgs.set(bound, [total, prior[1] + 1]);
    return bound;
  }),
);
replace(Reflect, 'apply', () =>
  method('apply', (fn, thisArg, list) => {
    if (toLength(ObjectC(list).length) > LIM.maxCallArgs)
      limit(`more than ${LIM.maxCallArgs} call arguments`);
    return apply(fn, thisArg, list);
  }),
);
replace(Reflect, 'construct', () =>
  method('construct', (fn, list, ...rest) => {
    if (toLength(ObjectC(list).length) > LIM.maxCallArgs)
      limit(`more than ${LIM.maxCallArgs} call arguments`);
    return apply(construct, undefined, [fn, list, ...rest]);
  }),
);

// Strings: scans are charged by length; anything that can grow a string is bounded.
for (const name of [
  'endsWith',
  'includes',
  'indexOf',
  'lastIndexOf',
  'startsWith',
  'isWellFormed',
  'toWellFormed',
  'trim',
  'trimStart',
  'trimEnd',
  'normalize',
  'toLowerCase',
  'toUpperCase',
  'split',
  'concat',
]) {
  replace(StringProto, name, (orig) =>
    method(name, function (...args) {
      const s = this;
      let n = typeof s === 'string' ? s.length : 0;
      for (let i = 0; i < args.length; i++) if (typeof args[i] === 'string') n += args[i].length;
      if (n > FREE_STRING) charge(n >>> CHAR_SHIFT);
      const r = apply(orig, s, args);
      if (typeof r === 'string') chargeString(r.length);
      else if (isArray(r)) charge(r.length * PER_ELEMENT);
      return r;
    }),
  );
}
replace(StringProto, 'repeat', (orig) =>
  method('repeat', function (count) {
    const s = `${thisObject(this, 'String.prototype.repeat').valueOf()}`;
    const n = mathTrunc(NumberC(count)) || 0;
    if (n > 0 && s.length * n > MAX_STRING) limit(`string longer than ${MAX_STRING} characters`);
    chargeString(mathMax(n, 0) * s.length);
    return apply(orig, s, [count]);
  }),
);
for (const name of ['padStart', 'padEnd']) {
  replace(StringProto, name, (orig) =>
    method(name, function (maxLength, fill) {
      const n = mathTrunc(NumberC(maxLength)) || 0;
      if (n > MAX_STRING) limit(`string longer than ${MAX_STRING} characters`);
      chargeString(n);
      return apply(orig, this, [maxLength, fill]);
    }),
  );
}
function substitution(matched, s, position, replacement) {
  if (strIndexOf.call(replacement, '$') < 0) return replacement;
  let out = '';
  const m = replacement.length;
  for (let i = 0; i < m; i++) {
    const c = replacement.charCodeAt(i);
    if (c === 36 && i + 1 < m) {
      const d = replacement.charCodeAt(i + 1);
      if (d === 36) {
        out += '$';
        i++;
        continue;
      }
      if (d === 38) {
        out += matched;
        i++;
        continue;
      }
      if (d === 96) {
        out += strSlice.call(s, 0, position);
        i++;
        continue;
      }
      if (d === 39) {
        out += strSlice.call(s, position + matched.length);
        i++;
        continue;
      }
    }
    out += replacement[i];
    if (out.length > MAX_STRING) limit(`string longer than ${MAX_STRING} characters`);
  }
  return out;
}
// replace and replaceAll, for string patterns (regular expressions do not exist in contracts).
function stringReplace(self, search, replacement, all) {
  if (self === null || self === undefined)
    throw new TypeErrorC('String.prototype.replace called on null or undefined');
  if (search !== null && search !== undefined) {
    const custom = search[SymReplace];
    if (custom !== undefined && custom !== null) return apply(custom, search, [self, replacement]);
  }
  const s = `${self}`;
  const pattern = `${search}`;
  const fn = typeof replacement === 'function' ? replacement : null;
  const rep = fn === null ? `${replacement}` : '';
  charge((s.length + pattern.length) >>> CHAR_SHIFT);
  let out = '';
  let last = 0;
  let pos = strIndexOf.call(s, pattern, 0);
  const step = mathMax(pattern.length, 1);
  while (pos >= 0) {
    charge(PER_ELEMENT);
    const piece =
      fn === null ? substitution(pattern, s, pos, rep) : `${apply(fn, undefined, [pattern, pos, s])}`;
    if (out.length + (pos - last) + piece.length > MAX_STRING)
      limit(`string longer than ${MAX_STRING} characters`);
    out += strSlice.call(s, last, pos) + piece;
    last = pos + pattern.length;
    if (!all) break;
    pos = pos + step > s.length ? -1 : strIndexOf.call(s, pattern, pos + step);
  }
  out += strSlice.call(s, last);
  if (out.length > MAX_STRING) limit(`string longer than ${MAX_STRING} characters`);
  chargeString(out.length);
  return out;
}
defineProperty(StringProto, 'replace', {
  value: method('replace', function (search, replacement) {
    return stringReplace(this, search, replacement, false);
  }),
  writable: true,
  enumerable: false,
  configurable: true,
});
defineProperty(StringProto, 'replaceAll', {
  value: method('replaceAll', function (search, replacement) {
    return stringReplace(this, search, replacement, true);
  }),
  writable: true,
  enumerable: false,
  configurable: true,
});
replace(StringC, 'raw', (orig) =>
  method('raw', function (callSite, ...subs) {
    const raw = ObjectC(ObjectC(callSite).raw);
    charge(toLength(raw.length) * PER_ELEMENT);
    const r = apply(orig, this, [callSite, ...subs]);
    chargeString(r.length);
    return r;
  }),
);
for (const name of [
  'encodeURI',
  'encodeURIComponent',
  'decodeURI',
  'decodeURIComponent',
  'parseInt',
  'parseFloat',
]) {
  replace(G_, name, (orig) =>
    method(name, (...args) => {
      if (typeof args[0] === 'string') charge(args[0].length >>> CHAR_SHIFT);
      const r = apply(orig, undefined, args);
      if (typeof r === 'string') chargeString(r.length);
      return r;
    }),
  );
}

// BigInt: parsing long strings and the asIntN/asUintN widths are bounded.
const BigIntW = function BigInt(v) {
  if (new.target !== undefined) throw new TypeErrorC('BigInt is not a constructor');
  if (typeof v === 'string' && v.length > LIM.maxBigIntBits + 8)
    limit(`BigInt wider than ${LIM.maxBigIntBits} bits`);
  return checkBig(RealBigInt(v));
};
defineProperty(BigIntW, 'prototype', { value: RealBigInt.prototype, writable: false });
for (const name of ['asIntN', 'asUintN']) {
  BigIntW[name] = method(name, (bits, v) => {
    if (NumberC(bits) > LIM.maxBigIntBits) limit(`BigInt wider than ${LIM.maxBigIntBits} bits`);
    return (name === 'asIntN' ? bigAsIntN : bigAsUintN)(bits, v);
  });
}
defineProperty(RealBigInt.prototype, 'constructor', {
  value: BigIntW,
  writable: true,
  enumerable: false,
  configurable: true,
});
G_.BigInt = BigIntW;

// ---------------------------------------------------------------------------------------------
// 4. Deep freezing

const hardened = new RealWeakSet();
/** Freezes `roots` and everything reachable from them through properties and prototypes. */
function harden(roots) {
  const stack = [...roots];
  while (stack.length > 0) {
    const o = stack.pop();
    if ((typeof o !== 'object' || o === null) && typeof o !== 'function') continue;
    if (hardened.has(o)) continue;
    hardened.add(o);
    freeze(o);
    const p = getPrototypeOf(o);
    if (p !== null) stack.push(p);
    const ks = ownKeys(o);
    for (let i = 0; i < ks.length; i++) {
      const d = getOwnPropertyDescriptor(o, ks[i]);
      if (d === undefined) continue;
      if (hasOwn(d, 'value')) stack.push(d.value);
      else stack.push(d.get, d.set);
    }
  }
}
// The override mistake: once a prototype is frozen, assigning a property that it holds as a data
// property throws, even on an object that merely inherits it (`this.name = 'MyError'` in an Error
// subclass, `o.toString = f`). For the names people assign, the prototype gets an accessor
// instead, whose setter defines the property on the receiver, as an unfrozen prototype would allow.
function tameOverride(proto, name) {
  const d = getOwnPropertyDescriptor(proto, name);
  if (d === undefined || !hasOwn(d, 'value')) return;
  const value = d.value;
  defineProperty(proto, name, {
    get: {
      [name]() {
        return value;
      },
    }[name],
    set: {
      [name](v) {
        if (this === proto)
          throw new TypeErrorC(`Cannot assign to read only property '${name}' of a built-in prototype`);
        defineProperty(this, name, { value: v, writable: true, enumerable: true, configurable: true });
      },
    }[name],
    enumerable: d.enumerable,
    configurable: false,
  });
}
for (const name of [
  'constructor',
  'toString',
  'valueOf',
  'toLocaleString',
  'hasOwnProperty',
  'isPrototypeOf',
  'propertyIsEnumerable',
]) {
  tameOverride(ObjectProto, name);
}
for (const E of [
  ErrorC,
  TypeErrorC,
  RangeErrorC,
  G_.SyntaxError,
  G_.ReferenceError,
  G_.EvalError,
  G_.URIError,
]) {
  for (const name of ['name', 'message', 'constructor', 'toString']) tameOverride(E.prototype, name);
}
tameOverride(FunctionProto, 'toString');
tameOverride(ArrayProto, 'toString');

harden([G_, ...objectKeys(hidden).map((k) => hidden[k])]);

// ---------------------------------------------------------------------------------------------
// 5. Canonical value codec (MessagePack, byte-identical to core/codec.ts), on latin1 strings

function badValue(path, message) {
  abort(3, 'BAD_VALUE', `${path}: ${message}`);
}
function u16(n) {
  return fromCharCode((n >>> 8) & 255, n & 255);
}
function u32(n) {
  return fromCharCode((n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
}
function i64(n) {
  const hi = mathFloor(n / 4294967296);
  const lo = n - hi * 4294967296;
  return u32(hi >>> 0) + u32(lo >>> 0);
}
function encInt(n) {
  if (n >= 0) {
    if (n < 128) return fromCharCode(n);
    if (n < 256) return '\xcc' + fromCharCode(n);
    if (n < 65536) return '\xcd' + u16(n);
    if (n < 4294967296) return '\xce' + u32(n);
    return '\xd3' + i64(n);
  }
  if (n >= -32) return fromCharCode(256 + n);
  if (n >= -128) return '\xd0' + fromCharCode(n & 255);
  if (n >= -32768) return '\xd1' + u16(n & 65535);
  if (n >= -2147483648) return '\xd2' + u32(n >>> 0);
  return '\xd3' + i64(n);
}
function encBig(v) {
  const u = v < 0n ? bigAsUintN(64, v) : v;
  return (
    (v >= 9223372036854775808n ? '\xcf' : '\xd3') + u32(NumberC(u >> 32n)) + u32(NumberC(u & 0xffffffffn))
  );
}
function utf8Encode(s) {
  if (!regexTest.call(NON_ASCII, s)) return s;
  const n = s.length;
  let i = 0;
  while (i < n && s.charCodeAt(i) < 128) i++;
  let out = strSlice.call(s, 0, i);
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 128) out += fromCharCode(c);
    else if (c < 2048) out += fromCharCode(192 | (c >> 6), 128 | (c & 63));
    else if (c >= 0xd800 && c <= 0xdbff) {
      const cp = 0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00);
      out += fromCharCode(240 | (cp >> 18), 128 | ((cp >> 12) & 63), 128 | ((cp >> 6) & 63), 128 | (cp & 63));
    } else out += fromCharCode(224 | (c >> 12), 128 | ((c >> 6) & 63), 128 | (c & 63));
  }
  return out;
}
function encStr(s) {
  if (!strIsWellFormed.call(s)) encFail('string contains a lone surrogate');
  const b = utf8Encode(s);
  const n = b.length;
  if (n < 32) return fromCharCode(160 | n) + b;
  if (n < 256) return '\xd9' + fromCharCode(n) + b;
  if (n < 65536) return '\xda' + u16(n) + b;
  return '\xdb' + u32(n) + b;
}
function bytesToLatin1(v) {
  const n = taLength.call(v);
  let out = '';
  for (let i = 0; i < n; i += 4096) {
    const k = mathMin(4096, n - i);
    const chunk = new RealArray(k);
    for (let j = 0; j < k; j++) chunk[j] = v[i + j];
    out += apply(fromCharCode, undefined, chunk);
  }
  return out;
}
function isBytes(v) {
  return isView(v) && taTag.call(v) === 'Uint8Array';
}
function isIndexKey(k) {
  const n = k.length;
  if (n === 0 || n > 10) return false;
  for (let i = 0; i < n; i++) {
    const c = k.charCodeAt(i);
    if (c < 48 || c > 57 || (i === 0 && c === 48 && n > 1)) return false;
  }
  return NumberC(k) <= 4294967294;
}
// Where the encoder is, for error messages only: array indices and object keys, turned into a
// path string only when something is wrong (building it on every step would cost every encode).
let encRoot = '';
const encPath = [];
function encFail(message) {
  let path = encRoot;
  for (let i = 0; i < encPath.length; i++) {
    const p = encPath[i];
    path += typeof p === 'number' ? `[${p}]` : `.${p}`;
  }
  badValue(path, message);
}
/** Encoded object keys (keys repeat across values; a key's encoding never changes). Bounded. */
const keyCodes = new RealMap();
function encKey(k) {
  let e = keyCodes.get(k);
  if (e === undefined) {
    e = encStr(k);
    if (k.length <= 64) {
      if (keyCodes.size >= 4096) keyCodes.clear();
      keyCodes.set(k, e);
    }
  }
  return e;
}
/** Sorts keys[from..] in place (code unit order), as core/codec.ts orders object keys. */
function sortTail(keys, from) {
  const n = keys.length;
  if (n - from > 16) {
    const tail = apply(origSort, apply(strSliceArray, keys, [from]), []);
    for (let i = from; i < n; i++) keys[i] = tail[i - from];
    return;
  }
  for (let i = from + 1; i < n; i++) {
    const k = keys[i];
    let j = i - 1;
    while (j >= from && keys[j] > k) {
      keys[j + 1] = keys[j];
      j--;
    }
    keys[j + 1] = k;
  }
}
/** Encodes a canonical value; charges one element per node. Aborts with BAD_VALUE otherwise. */
function enc(v, depth) {
  if (depth > LIM.maxValueDepth) encFail(`nested deeper than ${LIM.maxValueDepth}`);
  charge(PER_ELEMENT);
  switch (typeof v) {
    case 'boolean':
      return v ? '\xc3' : '\xc2';
    case 'number':
      // ±2^53 is an integer core/codec.ts accepts (as a bigint); every other unsafe number is not.
      if (v === 9007199254740992 || v === -9007199254740992) return encBig(RealBigInt(v));
      if (!isSafeInteger(v))
        encFail('only safe integers are allowed (use minor units, or bigint beyond 2^53)');
      return encInt(v === 0 ? 0 : v);
    case 'bigint':
      if (v < -9223372036854775808n || v > 18446744073709551615n) encFail('integers must fit in 64 bits');
      return v >= -9007199254740991n && v <= 9007199254740991n ? encInt(NumberC(v)) : encBig(v);
    case 'string':
      return encStr(v);
    case 'object': {
      if (v === null) return '\xc0';
      if (isBytes(v)) {
        const b = bytesToLatin1(v);
        const n = b.length;
        return (n < 256 ? '\xc4' + fromCharCode(n) : n < 65536 ? '\xc5' + u16(n) : '\xc6' + u32(n)) + b;
      }
      if (isArray(v)) {
        const n = toLength(v.length);
        if (n > LIM.maxValueBytes) encFail('array too long');
        let out = n < 16 ? fromCharCode(144 | n) : n < 65536 ? '\xdc' + u16(n) : '\xdd' + u32(n);
        for (let i = 0; i < n; i++) {
          encPath.push(i);
          out += enc(v[i], depth + 1);
          encPath.pop();
        }
        return out;
      }
      const proto = getPrototypeOf(v);
      if (proto !== ObjectProto && proto !== null)
        encFail('expected a plain object, an array, bytes or a primitive');
      const ks = objectKeys(v);
      let j = 0;
      while (j < ks.length && isIndexKey(ks[j])) j++;
      sortTail(ks, j);
      const n = ks.length;
      let out = n < 16 ? fromCharCode(128 | n) : n < 65536 ? '\xde' + u16(n) : '\xdf' + u32(n);
      for (let i = 0; i < n; i++) {
        const k = ks[i];
        encPath.push(k);
        if (k === '__proto__') encFail('the key "__proto__" is not allowed');
        out += encKey(k) + enc(v[k], depth + 1);
        encPath.pop();
      }
      return out;
    }
    default:
      return encFail(`${typeof v} cannot be encoded (use null for nothing)`);
  }
}
function encodeValue(v, path) {
  encRoot = path;
  // Setting an array's length goes through V8's runtime; a finished encode leaves it empty anyway.
  if (encPath.length !== 0) encPath.length = 0;
  const out = enc(v, 0);
  if (out.length > LIM.maxValueBytes) badValue(path, `encoded value larger than ${LIM.maxValueBytes} bytes`);
  return out;
}

let dsrc = '';
let dpos = 0;
function corrupt() {
  abort(5, 'HOST', 'malformed value from the host');
}
function rd(n) {
  if (dpos + n > dsrc.length) corrupt();
  let v = 0;
  for (let i = 0; i < n; i++) v = v * 256 + dsrc.charCodeAt(dpos++);
  return v;
}
function utf8Decode(start, end) {
  const whole = strSlice.call(dsrc, start, end);
  if (!regexTest.call(NON_ASCII, whole)) return whole;
  let i = start;
  while (i < end && dsrc.charCodeAt(i) < 128) i++;
  let out = strSlice.call(dsrc, start, i);
  while (i < end) {
    const c = dsrc.charCodeAt(i++);
    let cp;
    if (c < 128) cp = c;
    else if (c < 224) cp = ((c & 31) << 6) | (dsrc.charCodeAt(i++) & 63);
    else if (c < 240)
      cp = ((c & 15) << 12) | ((dsrc.charCodeAt(i++) & 63) << 6) | (dsrc.charCodeAt(i++) & 63);
    else {
      cp =
        ((c & 7) << 18) |
        ((dsrc.charCodeAt(i++) & 63) << 12) |
        ((dsrc.charCodeAt(i++) & 63) << 6) |
        (dsrc.charCodeAt(i++) & 63);
      cp -= 0x10000;
      out += fromCharCode(0xd800 + (cp >> 10), 0xdc00 + (cp & 1023));
      continue;
    }
    out += fromCharCode(cp);
  }
  return out;
}
function decStr(n) {
  if (dpos + n > dsrc.length) corrupt();
  const s = utf8Decode(dpos, dpos + n);
  dpos += n;
  return s;
}
function decBin(n) {
  if (dpos + n > dsrc.length) corrupt();
  const out = new RealU8(n);
  for (let i = 0; i < n; i++) out[i] = dsrc.charCodeAt(dpos + i);
  dpos += n;
  return out;
}
function decArr(n, depth) {
  const out = new RealArray(n);
  for (let i = 0; i < n; i++) out[i] = dec(depth + 1);
  return out;
}
/**
 * Decoded object keys by their text: the same key string object every time, so V8 finds it
 * already internalized when it becomes a property name (a fresh slice is looked up in the
 * string table on every store). Bounded.
 */
const keyStrings = new RealMap();
function decKey(depth) {
  const t = dsrc.charCodeAt(dpos);
  if (t < 0xa0 || t >= 0xc0) return dec(depth);
  const n = t & 31;
  if (dpos + 1 + n > dsrc.length) corrupt();
  const raw = strSlice.call(dsrc, dpos + 1, dpos + 1 + n);
  let k = keyStrings.get(raw);
  if (k === undefined) {
    k = utf8Decode(dpos + 1, dpos + 1 + n);
    if (keyStrings.size >= 4096) keyStrings.clear();
    keyStrings.set(raw, k);
  }
  dpos += 1 + n;
  return k;
}
function decMap(n, depth) {
  const out = {};
  for (let i = 0; i < n; i++) {
    const k = decKey(depth + 1);
    if (typeof k !== 'string' || k === '__proto__') corrupt();
    const v = dec(depth + 1);
    // Keys that exist on the frozen Object.prototype are defined, not assigned (override mistake).
    if (k in ObjectProto)
      defineProperty(out, k, { value: v, writable: true, enumerable: true, configurable: true });
    else out[k] = v;
  }
  return out;
}
function decInt64(signed) {
  const hi = rd(4);
  const lo = rd(4);
  let b = (RealBigInt(hi) << 32n) | RealBigInt(lo);
  if (signed) b = bigAsIntN(64, b);
  return b >= -9007199254740991n && b <= 9007199254740991n ? NumberC(b) : b;
}
function dec(depth) {
  if (depth > LIM.maxValueDepth + 1 || dpos >= dsrc.length) corrupt();
  const t = dsrc.charCodeAt(dpos++);
  if (t < 0x80) return t;
  if (t < 0x90) return decMap(t & 15, depth);
  if (t < 0xa0) return decArr(t & 15, depth);
  if (t < 0xc0) return decStr(t & 31);
  if (t >= 0xe0) return t - 256;
  switch (t) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xc4:
      return decBin(rd(1));
    case 0xc5:
      return decBin(rd(2));
    case 0xc6:
      return decBin(rd(4));
    case 0xcc:
      return rd(1);
    case 0xcd:
      return rd(2);
    case 0xce:
      return rd(4);
    case 0xcf:
      return decInt64(false);
    case 0xd0:
      return (rd(1) << 24) >> 24;
    case 0xd1:
      return (rd(2) << 16) >> 16;
    case 0xd2:
      return rd(4) | 0;
    case 0xd3:
      return decInt64(true);
    case 0xd9:
      return decStr(rd(1));
    case 0xda:
      return decStr(rd(2));
    case 0xdb:
      return decStr(rd(4));
    case 0xdc:
      return decArr(rd(2), depth);
    case 0xdd:
      return decArr(rd(4), depth);
    case 0xde:
      return decMap(rd(2), depth);
    case 0xdf:
      return decMap(rd(4), depth);
    default:
      return corrupt();
  }
}
/** Decodes host-supplied canonical bytes (a latin1 string); charges one gas per byte. */
function decodeValue(s) {
  charge(s.length * GAS.codecPerByte);
  const saveSrc = dsrc;
  const savePos = dpos;
  dsrc = s;
  dpos = 0;
  try {
    const v = dec(0);
    if (dpos !== s.length) corrupt();
    return v;
  } finally {
    dsrc = saveSrc;
    dpos = savePos;
  }
}
// ---------------------------------------------------------------------------------------------
// 6. The contract API (ctx)

let methodTable = new RealMap();
let viewTable = new RealMap();
let initFn;
let migrateFn;
let loaded = false;

// Per-invocation context.
let curContract = '';
let curWritable = false;
let curTxHash = '';
/**
 * Values known to this context: key → entry { v: encoded value or null (absent), d: the decoded
 * value when it is a primitive, else undefined (objects are decoded afresh: callers may mutate
 * them) }. One Map holds both, and a write updates the key's entry in place: one lookup per read
 * and per write (each Map operation on a new key string costs its hash, ~0.2-0.4 us for a
 * 46-character key measured here). Kept between calls while the host's cache session stays the
 * same (it changes on every revert and every new execution), and bounded; gas is charged per read
 * either way, so hits and misses give identical results.
 */
const known = new RealMap();
let knownBytes = 0;
let cacheSession = -1;
/** Caches `v` under `key`, with its decoded form when given; returns the key's entry. */
function remember(key, v, decoded) {
  if (knownBytes > LIM.maxWriteBytesPerCall || known.size >= 65536) {
    // Emptied at its bound. Mid-batch, the batch's writes live on in `pending`.
    known.clear();
    knownBytes = 0;
  }
  knownBytes += key.length + (v === null ? 0 : v.length);
  let e = known.get(key);
  if (e === undefined) {
    e = { v, d: decoded };
    known.set(key, e);
  } else {
    e.v = v;
    e.d = decoded;
  }
  return e;
}
/**
 * Batch mode (invokeBatch): several transactions run in one entry from the host. Their writes go
 * straight into `pending` (key → encoded value or null for a deletion), the batch's writes so
 * far, which reaches the host when the batch returns and answers the reads the read cache misses
 * meanwhile. `txTouched` and `txOld` list the keys the running transaction wrote and what
 * `pending` held for each before (undefined: nothing), so a failed transaction's writes are
 * undone in `pending` and forgotten from the cache. One Map store per write: keeping every
 * write in lists until the batch ended kept each key string alive past the young generation,
 * which cost more (measured), and a Map of the call's writes per transaction (`dirty`, as
 * invoke uses) cost its allocation and a copy into the batch's.
 */
let batching = false;
const pending = new RealMap();
// Arrays with a count rather than a Set: emptied by resetting the count, without a call into
// V8's runtime per transaction (a key written twice is listed twice, harmlessly).
const txTouched = [];
const txOld = [];
let txTouchedCount = 0;
/** Records a write of the running transaction (batch mode). */
function batchWrite(key, v) {
  txOld[txTouchedCount] = pending.get(key);
  txTouched[txTouchedCount++] = key;
  pending.set(key, v);
}
/** Undoes the running transaction's writes (batch mode): in `pending`, and in the read cache. */
function undoBatchWrites() {
  for (let i = txTouchedCount - 1; i >= 0; i--) {
    const k = txTouched[i];
    const old = txOld[i];
    if (old === undefined) pending.delete(k);
    else pending.set(k, old);
    known.delete(k);
  }
  txTouchedCount = 0;
}
/** Ends the running transaction of a batch: it needs the host's state now (call, range, schedule). */
function needSolo() {
  if (batching) abort(6, 'SOLO', 'needs the host');
}
/** Writes not yet sent to the host: key → encoded value or null (delete). */
// Replaced rather than cleared when emptied: a fresh Map costs less than Map#clear (measured).
let dirty = new RealMap();
let dirtyBytes = 0;
/** Events of the call: name and encoded data, two entries per event. */
let events = [];
let schedules = [];

function checkName(s, what) {
  if (typeof s !== 'string' || s.length === 0 || s.length > 64)
    throw new TypeErrorC(`${what} must be a name of 1 to 64 characters`);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const alpha = (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
    const ok = alpha || (i > 0 && ((c >= 48 && c <= 57) || c === 46 || c === 45));
    if (!ok) throw new TypeErrorC(`${what} "${s}" must match [A-Za-z_][A-Za-z0-9_.-]*`);
  }
}
/** Validates a state key; returns its length in UTF-16 units (what gas is charged by). */
function checkKey(key, what) {
  if (typeof key !== 'string') throw new TypeErrorC(`${what} must be a string`);
  if (!strIsWellFormed.call(key)) throw new TypeErrorC(`${what} contains a lone surrogate`);
  // A UTF-16 unit is at most 3 UTF-8 bytes: short keys need no encoding to be checked.
  if (key.length * 3 > LIM.maxKeyBytes && utf8Encode(key).length > LIM.maxKeyBytes) {
    throw new TypeErrorC(`${what} longer than ${LIM.maxKeyBytes} bytes`);
  }
  return key.length;
}
function requireWritable(what) {
  if (!curWritable) abort(3, 'READ_ONLY', `${what} is not allowed in a view`);
}
function fault(code) {
  abort(5, code, 'the host failed');
}
/** A length-prefixed field of the host envelope: `<UTF-16 length>,<text>`. */
function fld(x) {
  return `${x.length},${x}`;
}
/**
 * The pending writes, events and schedules as one envelope string (see vm/sandbox.ts
 * parseFlush); clears them. Keys travel as JavaScript strings, values as latin1 canonical bytes,
 * and an empty value field means a deletion (no canonical value is empty). Not used in batch
 * mode: a batch sends its writes once, when it returns (see invokeBatch).
 */
function takeFlush() {
  let out = fld(`${dirty.size}`);
  for (const [k, v] of dirty) out += fld(k) + fld(v === null ? '' : v);
  out += fld(`${events.length >> 1}`);
  for (let i = 0; i < events.length; i += 2) out += fld(events[i]) + fld(events[i + 1]);
  out += fld(`${schedules.length}`);
  for (let i = 0; i < schedules.length; i++) out += schedules[i];
  if (dirty.size !== 0) dirty = new RealMap();
  dirtyBytes = 0;
  if (events.length !== 0) events = [];
  if (schedules.length !== 0) schedules = [];
  return out;
}

const stateApi = freeze({
  get(key) {
    const kb = checkKey(key, 'state key');
    charge(GAS.stateGet + kb * GAS.statePerByte);
    let e = known.get(key);
    if (e === undefined) {
      // Missed: the cache may have been emptied (bounded) after this call or an earlier
      // transaction of the batch wrote the key, and the host has neither write yet.
      let r = batching ? pending.get(key) : dirty.get(key);
      if (r === undefined) {
        r = hostCall(1, key);
        if (typeof r === 'number') fault('STATE');
      }
      e = remember(key, r, undefined);
    }
    const v = e.v;
    if (v === null) return undefined;
    charge(v.length * GAS.statePerByte);
    if (e.d !== undefined) {
      charge(v.length * GAS.codecPerByte); // what decodeValue charges
      return e.d;
    }
    const value = decodeValue(v);
    if (typeof value !== 'object' || value === null) e.d = value;
    return value;
  },
  has(key) {
    const kb = checkKey(key, 'state key');
    charge(GAS.stateHas + kb * GAS.statePerByte);
    const e = known.get(key);
    const v = e !== undefined ? e.v : batching ? pending.get(key) : dirty.get(key);
    if (v !== undefined) return v !== null;
    const r = hostCall(2, key);
    if (typeof r !== 'boolean') fault('STATE');
    return r;
  },
  set(key, value) {
    requireWritable('state.set');
    const kb = checkKey(key, 'state key');
    const v = encodeValue(value, 'value');
    charge(GAS.stateSet + (kb + v.length) * GAS.statePerByte);
    dirtyBytes += kb + v.length;
    if (dirtyBytes > LIM.maxWriteBytesPerCall)
      limit(`more than ${LIM.maxWriteBytesPerCall} bytes of writes in one call`);
    // A primitive is what the next get would decode (integers in their canonical JavaScript
    // type): remembered decoded, so reading back what was written skips the decoder.
    const t = typeof value;
    let decoded;
    if (t === 'bigint')
      decoded = value >= -9007199254740991n && value <= 9007199254740991n ? NumberC(value) : value;
    else if (t === 'number') {
      decoded =
        value === 9007199254740992 || value === -9007199254740992
          ? RealBigInt(value)
          : value === 0
            ? 0
            : value;
    } else if (t === 'string' || t === 'boolean' || value === null) decoded = value;
    remember(key, v, decoded);
    if (batching) batchWrite(key, v);
    else dirty.set(key, v);
  },
  delete(key) {
    requireWritable('state.delete');
    const kb = checkKey(key, 'state key');
    charge(GAS.stateDelete + kb * GAS.statePerByte);
    remember(key, null, undefined);
    if (batching) batchWrite(key, null);
    else dirty.set(key, null);
  },
  range(prefix, limitCount, after) {
    needSolo();
    checkKey(prefix, 'range prefix');
    if (after !== undefined) checkKey(after, 'range start');
    if (!isSafeInteger(limitCount) || limitCount < 1 || limitCount > LIM.maxRangeLimit) {
      throw new RangeErrorC(`range limit must be an integer from 1 to ${LIM.maxRangeLimit}`);
    }
    charge(GAS.stateRange);
    const r = hostCall(
      3,
      curWritable ? takeFlush() : '',
      prefix,
      limitCount,
      after === undefined ? null : after,
    );
    if (isArray(r) && r[0] === 'abort') abort(3, r[1], r[2]);
    if (typeof r !== 'string') fault('STATE');
    charge(r.length * GAS.statePerByte);
    dsrc = r;
    dpos = 0;
    // [[key, valueBytes], ...] with values as raw canonical bytes.
    const t = dsrc.charCodeAt(dpos++);
    const n = t >= 0x90 && t < 0xa0 ? t & 15 : t === 0xdc ? rd(2) : t === 0xdd ? rd(4) : corrupt();
    const rows = [];
    for (let i = 0; i < n; i++) {
      if (dsrc.charCodeAt(dpos++) !== 0x92) corrupt();
      const k = dec(1);
      const raw = dec(1);
      rows.push([k, raw]);
    }
    const out = new RealArray(n);
    for (let i = 0; i < n; i++) {
      charge(GAS.stateRangePerEntry);
      const v = bytesToLatin1(rows[i][1]);
      remember(rows[i][0], v, undefined);
      out[i] = [rows[i][0], decodeValue(v)];
    }
    return out;
  },
});

/** The last event name found valid: a contract emits the same few names over and over. */
let validEventName = '';
function emit(name, data) {
  requireWritable('emit');
  if (name !== validEventName) {
    checkName(name, 'event name');
    validEventName = name;
  }
  const v = encodeValue(data === undefined ? null : data, 'event data');
  charge(GAS.emit + v.length * GAS.emitPerByte);
  if (events.length >= 2048) limit('more than 1024 events in one call');
  events.push(name, v);
}
function callContract(contract, methodName, args, options) {
  needSolo();
  checkName(contract, 'contract');
  checkName(methodName, 'method');
  const a = encodeValue(args === undefined ? null : args, 'call arguments');
  charge(GAS.call + a.length * GAS.callPerByte);
  let gas = G.g;
  if (options !== undefined && options !== null && options.gasLimit !== undefined) {
    const g = options.gasLimit;
    if (!isSafeInteger(g) || g < 0) throw new RangeErrorC('gasLimit must be a non-negative integer');
    gas = mathMin(g, G.g);
  }
  // A callee that ran out of all the gas its caller had leaves the caller out of gas too.
  const everything = gas === G.g;
  const r = hostCall(
    4,
    curWritable ? takeFlush() : '',
    contract,
    methodName,
    a,
    gas,
    S.s - LIM.stackUnitsPerCall,
    !curWritable,
  );
  if (!isArray(r)) fault('CALL');
  const [status, used, ret, code, message] = r;
  if (typeof used !== 'number') fault('CALL');
  charge(used);
  if (status === 'fault') abort(5, code, message);
  if (status === 'out-of-gas' && everything) abort(1, 'OUT_OF_GAS', 'out of gas');
  if (status === 'abort') abort(3, code, message);
  if (status !== 'ok') {
    const err = new ErrorC(`${contract}.${methodName}: ${message}`);
    err.code = code;
    err.status = status;
    throw err;
  }
  return ret === null ? null : decodeValue(ret);
}
function schedule(time, methodName, args, options) {
  requireWritable('schedule');
  needSolo();
  if (!isSafeInteger(time) || time < 0)
    throw new RangeErrorC('schedule time must be a non-negative integer (milliseconds)');
  checkName(methodName, 'method');
  if (!methodTable.has(methodName))
    throw new TypeErrorC(`schedule: "${methodName}" is not a method of this contract`);
  let gas = LIM.defaultScheduleGas;
  if (options !== undefined && options !== null && options.gasLimit !== undefined) {
    gas = options.gasLimit;
    if (!isSafeInteger(gas) || gas < 1 || gas > LIM.maxScheduleGas) {
      throw new RangeErrorC(`schedule gasLimit must be an integer from 1 to ${LIM.maxScheduleGas}`);
    }
  }
  const a = encodeValue(args === undefined ? null : args, 'schedule arguments');
  charge(GAS.schedule + a.length * GAS.schedulePerByte);
  if (schedules.length >= 256) limit('more than 256 schedules in one call');
  schedules.push(fld(`${time}`) + fld(methodName) + fld(a) + fld(`${gas}`));
}
function revert(code, message) {
  let c = 'REVERT';
  if (typeof code === 'string') {
    try {
      checkName(code, 'revert code');
      c = code;
    } catch {
      c = 'REVERT';
    }
  }
  const m = typeof message === 'string' ? strSlice.call(message, 0, 512) : '';
  abort(3, c, m);
}
function toLatin1(data, what) {
  if (typeof data === 'string') {
    if (!strIsWellFormed.call(data)) throw new TypeErrorC(`${what} contains a lone surrogate`);
    return utf8Encode(data);
  }
  if (isBytes(data)) return bytesToLatin1(data);
  throw new TypeErrorC(`${what} must be a string or a Uint8Array`);
}
function fromLatin1(s) {
  const out = new RealU8(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
function sha256(data) {
  const d = toLatin1(data, 'sha256 input');
  charge(GAS.hash + d.length * GAS.hashPerByte);
  const r = hostCall(5, d);
  if (typeof r !== 'string') fault('HOST');
  return fromLatin1(r);
}
function verifyEd25519(signature, message, publicKey) {
  const sig = toLatin1(signature, 'signature');
  const msg = toLatin1(message, 'message');
  const pk = toLatin1(publicKey, 'public key');
  charge(GAS.verify + msg.length * GAS.hashPerByte);
  const r = hostCall(6, sig, msg, pk);
  if (typeof r !== 'boolean') fault('HOST');
  return r;
}
function hexToLatin1(hex) {
  let out = '';
  for (let i = 2; i < hex.length; i += 2) out += fromCharCode(NumberC(`0x${strSlice.call(hex, i, i + 2)}`));
  return out;
}
function random(label) {
  if (typeof label !== 'string') throw new TypeErrorC('random label must be a string');
  const l = toLatin1(label, 'random label');
  charge(GAS.hash + l.length * GAS.hashPerByte);
  const r = hostCall(5, `trellis.random.v1\x00${hexToLatin1(curTxHash)}${utf8Encode(curContract)}\x00${l}`);
  if (typeof r !== 'string') fault('HOST');
  return fromLatin1(r);
}
function gasLeft() {
  return G.g;
}

// ---------------------------------------------------------------------------------------------
// 7. Load and invoke (called by the host)

const RT = freeze({
  G,
  S,
  oog,
  ck,
  add,
  sub,
  mul,
  pow,
  shl,
  str,
  eq,
  ne,
  leq,
  lne,
  lt,
  le,
  gt,
  ge,
  cm1,
  cm2,
  spr,
  spa,
  spo,
  fin,
  sw,
  seal,
});

/** Deep-freezes the module's bindings and records its exports; returns them for the host to check. */
function seal(exp, bindings) {
  harden(bindings);
  const table = (obj, what) => {
    const m = new RealMap();
    if (obj === undefined) return m;
    if (obj === null || typeof obj !== 'object') throw new TypeErrorC(`${what} must be an object`);
    for (const k of objectKeys(obj)) {
      const f = obj[k];
      if (typeof f !== 'function') throw new TypeErrorC(`${what}.${k} must be a function`);
      m.set(k, f);
    }
    return m;
  };
  methodTable = table(exp.methods, 'methods');
  viewTable = table(exp.views, 'views');
  for (const [hook, f] of [
    ['init', exp.init],
    ['migrate', exp.migrate],
  ]) {
    if (f !== undefined && typeof f !== 'function') throw new TypeErrorC(`${hook} must be a function`);
  }
  initFn = exp.init;
  migrateFn = exp.migrate;
  return exp;
}

function describe(e) {
  if (e !== null && typeof e === 'object') {
    let name = '';
    let o = e;
    for (let i = 0; i < 8 && o !== null && name === ''; i++) {
      const d = getOwnPropertyDescriptor(o, 'name');
      if (d !== undefined && typeof d.value === 'string') name = d.value;
      o = getPrototypeOf(o);
    }
    const m = getOwnPropertyDescriptor(e, 'message');
    const msg = m !== undefined && typeof m.value === 'string' ? m.value : '';
    const c = getOwnPropertyDescriptor(e, 'code');
    const code = c !== undefined && typeof c.value === 'string' ? c.value : '';
    return [code, `${strSlice.call(name, 0, 64)}${msg === '' ? '' : ': '}${strSlice.call(msg, 0, 512)}`];
  }
  if (typeof e === 'string') return ['', `thrown string: ${strSlice.call(e, 0, 512)}`];
  if (typeof e === 'number' || typeof e === 'boolean' || e === null || e === undefined)
    return ['', `thrown ${e}`];
  return ['', `thrown ${typeof e}`];
}

/**
 * Evaluates a contract's artifact factory and seals its module. Returns '' on success, or an
 * error message (the deploy fails with it; a local fault is reported by the host).
 */
function load(factory) {
  G.g = LIM.initGas;
  S.s = LIM.stackUnits;
  abortKind = 0;
  curWritable = false;
  try {
    factory(RT);
    if (abortKind !== 0) return `${abortCode}: ${abortMessage}`;
    loaded = true;
    return '';
  } catch (e) {
    if (abortKind !== 0) return `${abortCode}: ${abortMessage}`;
    if (isNativeStackOverflow(e)) return 'NATIVE_STACK';
    return describe(e)[1];
  }
}

// Status codes in the result: 0 ok, 1 reverted, 2 out of gas, 3 local fault.
// The result envelope: status digit, then fields gasLeft, return value (latin1 canonical bytes,
// '' for none), error code, error message, then the flush.
function result(status, code, message, ret, flush) {
  return `${status}${fld(`${G.g < 0 ? 0 : G.g}`)}${fld(ret)}${fld(code)}${fld(message)}${flush === '' ? '1,01,01,0' : flush}`;
}

/** Resets the per-call state and, when the host's cache session changed, the read cache. */
function enter(gas, stack, session) {
  G.g = gas;
  S.s = stack;
  abortKind = 0;
  abortCode = '';
  abortMessage = '';
  // Length stores go through V8's runtime: only when something was left (an aborted call).
  if (cmStack.length !== 0) cmStack.length = 0;
  if (joining.length !== 0) joining.length = 0;
  if (session !== cacheSession) {
    known.clear();
    knownBytes = 0;
    cacheSession = session;
  }
  if (dirty.size > 0) dirty = new RealMap();
  dirtyBytes = 0;
  if (events.length > 0) events = [];
  if (schedules.length > 0) schedules = [];
}

// What the last execCall ended with, besides its status: the error code and message, and the
// return value's canonical bytes ('' for none). Module-level, so a call builds no result object.
let resCode = '';
let resMessage = '';
let resRet = '';
function ended(status, code, message) {
  resCode = code;
  resMessage = message;
  resRet = '';
  return status;
}

/**
 * Runs one call after enter(). `kind`: 0 method, 1 view, 2 init, 3 migrate. Returns the status
 * (0 ok, 1 reverted, 2 out of gas, 3 local fault), with resCode, resMessage and resRet set; a
 * successful call leaves its writes, events and schedules buffered for the caller to take.
 */
function execCall(kind, name, contract, sender, origin, txHash, height, time, scheduled, args) {
  curContract = contract;
  curTxHash = txHash;
  curWritable = kind !== 1;
  if (!loaded) return ended(3, 'NOT_LOADED', 'contract not loaded');
  let fn;
  if (kind === 0) fn = methodTable.get(name);
  else if (kind === 1) fn = viewTable.get(name);
  else if (kind === 2) fn = initFn;
  else fn = migrateFn;
  if (fn === undefined) {
    if (kind >= 2) return ended(0, '', '');
    return ended(1, 'NO_METHOD', `${contract} has no ${kind === 1 ? 'view' : 'method'} "${name}"`);
  }
  let ret = '';
  try {
    const a = args === '' ? null : decodeValue(args);
    // A fresh object per call (so nothing can be left on it); its members are shared and frozen.
    const ctx = {
      contract,
      sender,
      origin,
      txHash,
      height,
      time,
      scheduled,
      state: stateApi,
      emit,
      call: callContract,
      schedule,
      revert,
      sha256,
      verifyEd25519,
      random,
      gasLeft,
    };
    const r = fn(ctx, a);
    if (abortKind === 0 && G.g >= 0) ret = encodeValue(r === undefined ? null : r, 'return value');
  } catch (e) {
    if (abortKind === 0 && G.g >= 0) {
      if (isNativeStackOverflow(e)) return ended(3, 'NATIVE_STACK', "V8's own stack overflowed");
      const [code, message] = describe(e);
      let c = 'ERROR';
      if (code !== '') {
        try {
          checkName(code, 'code');
          c = code;
        } catch {
          c = 'ERROR';
        }
      }
      return ended(1, c, message);
    }
  }
  if (G.g < 0) return ended(2, 'OUT_OF_GAS', 'out of gas');
  if (abortKind !== 0) return ended(abortKind === 5 ? 3 : abortKind === 1 ? 2 : 1, abortCode, abortMessage);
  resCode = '';
  resMessage = '';
  resRet = ret;
  return 0;
}

/**
 * Runs one call. `head` packs the call's fields, separated by \x01: kind (0 method, 1 view,
 * 2 init, 3 migrate), name, contract, sender, origin, txHash, height, time, scheduled (0/1).
 * Returns the encoded result (see result()).
 */
function invoke(head, args, gas, stack, session) {
  const q1 = strIndexOf.call(head, '\x01');
  const q2 = strIndexOf.call(head, '\x01', q1 + 1);
  const q3 = strIndexOf.call(head, '\x01', q2 + 1);
  const q4 = strIndexOf.call(head, '\x01', q3 + 1);
  const q5 = strIndexOf.call(head, '\x01', q4 + 1);
  const q6 = strIndexOf.call(head, '\x01', q5 + 1);
  const q7 = strIndexOf.call(head, '\x01', q6 + 1);
  const q8 = strIndexOf.call(head, '\x01', q7 + 1);
  enter(gas, stack, session);
  const kind = head.charCodeAt(0) - 48;
  const status = execCall(
    kind,
    strSlice.call(head, q1 + 1, q2),
    strSlice.call(head, q2 + 1, q3),
    strSlice.call(head, q3 + 1, q4),
    strSlice.call(head, q4 + 1, q5),
    strSlice.call(head, q5 + 1, q6),
    NumberC(strSlice.call(head, q6 + 1, q7)),
    NumberC(strSlice.call(head, q7 + 1, q8)),
    head.charCodeAt(q8 + 1) === 49,
    args,
  );
  return result(status, resCode, resMessage, resRet, status === 0 && kind !== 1 ? takeFlush() : '');
}

// Batch input reader: length-prefixed fields `<UTF-16 length>,<text>` (host: vm/sandbox.ts).
let bsrc = '';
let bpos = 0;
/** The next field's length; leaves `bpos` at its text. */
function blength() {
  const comma = strIndexOf.call(bsrc, ',', bpos);
  if (comma <= bpos || comma - bpos > 15) corruptBatch();
  // The decimal length read by hand: Number() of a slice goes through V8's runtime.
  let n = 0;
  for (let i = bpos; i < comma; i++) {
    const d = bsrc.charCodeAt(i) - 48;
    if (d < 0 || d > 9) corruptBatch();
    n = n * 10 + d;
  }
  if (comma + 1 + n > bsrc.length) corruptBatch();
  bpos = comma + 1;
  return n;
}
function bfield() {
  const n = blength();
  const start = bpos;
  bpos += n;
  return strSlice.call(bsrc, start, bpos);
}
/** A field holding a non-negative decimal integer, read in place (the batch's header). */
function bnumber() {
  const n = blength();
  if (n === 0 || n > 16) corruptBatch();
  let v = 0;
  for (let i = bpos; i < bpos + n; i++) {
    const d = bsrc.charCodeAt(i) - 48;
    if (d < 0 || d > 9) corruptBatch();
    v = v * 10 + d;
  }
  if (!isSafeInteger(v)) corruptBatch();
  bpos += n;
  return v;
}
// A batch item (see encodeBatchItem in vm/sandbox.ts): kind ('0' or '1'), gas as 4 bytes
// (big-endian, one char each), then method name, sender, txHash and args, each a short field:
// its length as one char below 240 (or \xff, decimal digits and a comma), then its text. Read
// with a char or two per field: parsing decimal lengths cost a third of a no-op transaction.
/** A short field's length as the batch formats write it (see ilength). */
function shortLength(n) {
  return n < 240 ? fromCharCode(n) : `\xff${n},`;
}
/** A short field's length; leaves `bpos` at its text. */
function ilength() {
  const c = bsrc.charCodeAt(bpos++);
  let n = c;
  if (!(c < 240)) {
    if (c !== 255) corruptBatch();
    n = 0;
    for (let d = bsrc.charCodeAt(bpos++) - 48; d !== -4; d = bsrc.charCodeAt(bpos++) - 48) {
      if (!(d >= 0 && d <= 9) || n > 1e15) corruptBatch();
      n = n * 10 + d;
    }
  }
  if (bpos + n > bsrc.length) corruptBatch();
  return n;
}
function ifield() {
  const n = ilength();
  const start = bpos;
  bpos += n;
  return strSlice.call(bsrc, start, bpos);
}
/**
 * A method name field: the previous name's string when it is the same (batches call the same
 * method over and over, and looking up the same string again skips hashing a new one).
 */
let lastName = '';
function iname() {
  const n = ilength();
  const start = bpos;
  bpos += n;
  if (n !== lastName.length || !strStartsWith.call(bsrc, lastName, start))
    lastName = strSlice.call(bsrc, start, bpos);
  return lastName;
}
/** Four chars, each a byte: a big-endian unsigned 32-bit number. */
function iuint32() {
  if (bpos + 4 > bsrc.length) corruptBatch();
  const a = bsrc.charCodeAt(bpos);
  const b = bsrc.charCodeAt(bpos + 1);
  const c = bsrc.charCodeAt(bpos + 2);
  const d = bsrc.charCodeAt(bpos + 3);
  if ((a | b | c | d) > 255) corruptBatch();
  bpos += 4;
  return a * 16777216 + ((b << 16) | (c << 8) | d);
}
function corruptBatch() {
  throw new TypeErrorC('malformed batch from the host');
}

/**
 * Runs consecutive top-level transactions of this contract in one entry from the host: the
 * host's per-entry cost is paid once per batch instead of once per transaction. `input` holds
 * the fields contract, height, time, count, then per transaction an item (see ilength): kind
 * (0 method, 1 view), gas, name, sender (also the origin), txHash and args. Each transaction
 * runs exactly as invoke() would run it, with the full stack budget `stack`: its own gas, and
 * its writes applied only if it succeeds (they are kept in `pending` for the later transactions
 * of the batch). A transaction
 * that needs the host's state mid-call (ctx.call, ctx.state.range, ctx.schedule) is abandoned
 * with everything it did, and the batch stops before it: the host runs it on its own. The batch
 * also stops after a local fault.
 *
 * Returns `<count of results>,`, the results of the transactions run, in order (fewer results
 * than transactions means the next one must run on its own), then the batch's writes. A result
 * is: status digit (0 ok, 1 reverted, 2 out of gas, 3 local fault), gasLeft as four chars of one
 * byte each (big-endian), then short fields (see ilength) return value (latin1 canonical bytes,
 * empty for none), error code and error message, the count of events as a short length, and
 * per event its name and data as short fields. The writes are the net effect of the successful
 * transactions' writes: `<count>,` then per key its key and value fields (`<UTF-16 length>,<text>`,
 * an empty value deletes). Only the state after the batch depends on them (nothing reads the
 * host's state between the batch's transactions: the guest answers their reads), so each key is
 * sent once, with its last value, however many transactions wrote it. Parts are collected in an
 * array and joined once: building the envelope by concatenation cost more than a transaction's
 * own work (measured).
 */
function invokeBatch(input, stack, session) {
  bsrc = input;
  bpos = 0;
  const contract = bfield();
  const height = bnumber();
  const time = bnumber();
  const count = bnumber();
  const out = [''];
  let done = 0;
  if (session !== cacheSession) {
    known.clear();
    knownBytes = 0;
    cacheSession = session;
  }
  if (pending.size !== 0) pending.clear();
  txTouchedCount = 0;
  batching = true;
  try {
    for (; done < count; done++) {
      const kind = bsrc.charCodeAt(bpos++) - 48;
      if (kind !== 0 && kind !== 1) corruptBatch();
      const gas = iuint32();
      const name = iname();
      const sender = ifield();
      const txHash = ifield();
      const args = ifield();
      enter(gas, stack, session);
      const status = execCall(kind, name, contract, sender, sender, txHash, height, time, false, args);
      // Failed or abandoned: its writes are undone and forgotten (the cache must hold only
      // applied values; an earlier transaction's write of the same key is read from `pending`).
      if (status !== 0 || abortKind === 6) undoBatchWrites();
      txTouchedCount = 0;
      if (abortKind === 6) break;
      const g = G.g < 0 ? 0 : G.g;
      const gas4 = fromCharCode(g >>> 24, (g >>> 16) & 255, (g >>> 8) & 255, g & 255);
      if (status === 0) {
        const n = events.length;
        out.push(
          resRet === '\xc0'
            ? `0${gas4}\x01\xc0\x00\x00${shortLength(n >> 1)}`
            : `0${gas4}${shortLength(resRet.length)}${resRet}\x00\x00${shortLength(n >> 1)}`,
        );
        for (let i = 0; i < n; i += 2) {
          const name = events[i];
          const v = events[i + 1];
          out.push(`${shortLength(name.length)}${name}${shortLength(v.length)}${v}`);
        }
      } else {
        out.push(
          `${status}${gas4}\x00${shortLength(resCode.length)}${resCode}${shortLength(resMessage.length)}${resMessage}\x00`,
        );
      }
      if (status === 3) {
        done++;
        break;
      }
    }
    out[0] = `${done},`;
    // The batch's writes: `pending` holds each key's last value.
    out.push(`${pending.size},`);
    apply(mapForEach, pending, [sendWrite]);
    for (let i = 0; i < sendCount; i++) out.push(sendParts[i]);
  } finally {
    batching = false;
    // Not kept until the next batch: they may hold megabytes of values.
    if (pending.size !== 0) pending.clear();
    if (sendCount > 0) {
      sendParts.length = 0;
      sendCount = 0;
    }
    txTouched.length = 0;
    txOld.length = 0;
    txTouchedCount = 0;
    bsrc = '';
  }
  return apply(origJoin, out, ['']);
}
const sendParts = [];
let sendCount = 0;
function sendWrite(v, k) {
  sendParts[sendCount++] = v === null ? `${k.length},${k}0,` : `${k.length},${k}${v.length},${v}`;
}

return freeze({ load, invoke, invokeBatch });
