/**
 * The one cost table of the contract VM, and the limits that keep contract execution bounded and
 * deterministic. Everything that decides a receipt (gas, size limits, depth limits) is here; the
 * guest runtime receives these numbers as data when a context is created, so changing one is a
 * consensus change and must ship as a new VM version (see {@link VM_VERSION}).
 *
 * Units: one gas unit is roughly the cost of evaluating one AST node of contract code.
 */

/** Bumped whenever any rule below or the guest runtime changes observable behaviour. */
export const VM_VERSION = 1;

/** Gas prices. */
export const Gas = {
  /** Per AST node of a straight-line region (function body or loop body), charged on entry. */
  perNode: 1,
  /** Extra per function entry (call overhead). */
  functionEntry: 8,
  /** Extra per loop iteration (back-edge). */
  loopIteration: 2,
  /** Per catch or finally block entered. */
  catchFinally: 4,

  /** Host state read: base, plus per byte of key and value. */
  stateGet: 200,
  stateHas: 150,
  /** Host state write or delete: base, plus per byte of key and value. */
  stateSet: 400,
  stateDelete: 300,
  statePerByte: 1,
  /** Range scan: base, per entry returned, plus per byte. */
  stateRange: 500,
  stateRangePerEntry: 50,
  /** Event: base plus per byte of its encoded data. */
  emit: 200,
  emitPerByte: 1,
  /** Nested contract call: base plus per byte of arguments (the callee's gas is charged too). */
  call: 2000,
  callPerByte: 1,
  /** Recording a scheduled callback. */
  schedule: 2000,
  schedulePerByte: 1,
  /** SHA-256: base plus per byte hashed. */
  hash: 100,
  hashPerByte: 1,
  /** Ed25519 signature verification. */
  verify: 3000,
  /** Encoding or decoding a value at the host boundary: per byte. */
  codecPerByte: 1,

  /** Built-ins that touch every element of an array-like: per element. */
  perElement: 1,
  /** Built-ins that scan or build strings: one gas per 2^charShift characters. */
  charShift: 3,
  /** Strings up to this length are free to build (the node cost covers them). */
  freeStringLength: 1024,

  /** Deploy and upgrade: base plus per byte of TypeScript source. */
  deploy: 50_000,
  deployPerByte: 20,
  /** Freeze and unfreeze. */
  lifecycle: 5_000,
  /** Charged to every transaction before anything runs (nonce, registry lookup). */
  txBase: 500,
} as const;

/** Limits. Each bounds something a contract or a transaction could otherwise grow without end. */
export const VmLimits = {
  /**
   * Largest gas limit a transaction may ask for; more is rejected. Allocation costs at least one
   * gas per 16 bytes (two-byte strings are the cheapest), so one transaction can hold at most
   * ~320 MB: below `memoryLimitMb`, so the memory backstop is never the way a call ends.
   */
  maxTxGas: 20_000_000,
  /** Gas a module's load-time code may use (it is straight-line code, bounded by source size). */
  initGas: 10_000_000,
  /** Default and largest gas of a scheduled callback. */
  defaultScheduleGas: 1_000_000,
  maxScheduleGas: 10_000_000,
  /** Due callbacks run per block; the rest stay due and run in the next blocks, in order. */
  maxScheduledPerBlock: 256,
  /** Pending callbacks one contract may hold. */
  maxPendingSchedules: 10_000,

  /** Nested contract calls: depth of the call stack (the top-level call is depth 1). */
  maxCallDepth: 8,
  /**
   * Deterministic stack budget in units of 8 bytes. Contract code runs on the host thread's own
   * stack, whose free space varies with the caller, so V8's stack overflow can never decide a
   * receipt; every function entry is charged an over-estimate of its frame against this budget
   * instead, and exhausting it ends the call with STACK_OVERFLOW on every node alike.
   */
  stackUnits: 40_000,
  /** Units charged per function frame on top of its AST node count (covers native frames). */
  stackUnitsPerFrame: 160,
  /** Units charged per nested contract call (host frames between the two contexts). */
  stackUnitsPerCall: 4_000,
  /** Arguments of one call built by spread or apply (they live on the stack). */
  maxCallArgs: 256,
  /** Bound arguments accumulated by chained Function.prototype.bind. */
  maxBoundArgs: 256,

  /** Longest string a contract may build (UTF-16 code units). */
  maxStringLength: 1 << 20,
  /** Largest BigInt magnitude, in bits, a contract may compute. */
  maxBigIntBits: 4096,
  /** Largest ArrayBuffer or typed array a contract may allocate, in bytes. */
  maxBufferBytes: 1 << 20,
  /** Arrays built by the metered constructors and from/of helpers. */
  maxArrayLength: 1 << 20,

  /** State key: UTF-8 bytes. */
  maxKeyBytes: 512,
  /** Encoded state value, event data, call arguments and return value: bytes. */
  maxValueBytes: 64 * 1024,
  /** Entries one range scan may return. */
  maxRangeLimit: 1_000,
  /** Encoded bytes of all writes one call may buffer before it ends or calls out. */
  maxWriteBytesPerCall: 4 * 1024 * 1024,
  /** Nesting of canonical values (matches core/codec.ts MAX_VALUE_DEPTH). */
  maxValueDepth: 64,

  /** TypeScript source of a contract: bytes. */
  maxSourceBytes: 200_000,
  /** Source shape limits that bound every recursive parser we run (see vm/sourceScan.ts). */
  maxBracketDepth: 64,
  maxSegmentTokens: 512,
  maxNestedStatements: 256,
  maxAstDepth: 200,
  maxAstNodes: 200_000,
  /** Literal arguments in one call and parameters of one function. */
  maxLiteralArgs: 256,

  /** Backstops (local faults, never receipts). */
  memoryLimitMb: 512,
  /** Wall-clock limit of one top-level call (transaction or scheduled callback). */
  callTimeoutMs: 5_000,
  /** Contract contexts kept warm. */
  maxContexts: 128,
  /** Compiled artifacts kept in memory by source hash. */
  maxCachedArtifacts: 256,
} as const;

/** Everything the guest runtime needs, as plain data copied into each context. */
export interface GuestConfig {
  readonly gas: typeof Gas;
  readonly limits: typeof VmLimits;
}

/** The configuration copied into each contract context. */
export const GUEST_CONFIG: GuestConfig = { gas: Gas, limits: VmLimits };
