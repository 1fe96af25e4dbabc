import { TrellisError } from '../core/errors.ts';

/** Reasons a contract source is refused at deploy (and by `trellis contract check`). */
export type CompileErrorCode =
  'TOO_LARGE' | 'TOO_DEEP' | 'TYPESCRIPT' | 'SYNTAX' | 'FORBIDDEN' | 'MODULE_SHAPE' | 'LOAD_FAILED';

/** One problem found in a contract source, with its 1-based line and column. */
export interface Diagnostic {
  readonly code: CompileErrorCode;
  readonly message: string;
  readonly line: number;
  readonly column: number;
}

/**
 * A contract source that cannot be deployed. Carries every diagnostic found; the message is the
 * first one, prefixed with its position, so a deploy receipt names where the problem is.
 */
export class CompileError extends TrellisError<CompileErrorCode> {
  /** All diagnostics, in source order. */
  readonly diagnostics: readonly Diagnostic[];

  constructor(diagnostics: readonly Diagnostic[]) {
    const first = diagnostics[0] ?? { code: 'SYNTAX', message: 'invalid source', line: 0, column: 0 };
    const more = diagnostics.length > 1 ? ` (and ${diagnostics.length - 1} more)` : '';
    super(first.code, `${first.line}:${first.column}: ${first.message}${more}`, {
      count: diagnostics.length,
    });
    this.diagnostics = diagnostics;
  }
}

/** Reasons the VM gives up on a block locally. */
export type VmFaultCode = 'MEMORY_LIMIT' | 'TIMEOUT' | 'NATIVE_STACK' | 'ISOLATE' | 'HOST' | 'STATE';

/**
 * A local fault of this node while executing: the isolate hit its memory limit or wall-clock
 * timeout, V8's own stack overflowed, or the host failed. None of these may decide a receipt,
 * because they depend on this machine rather than on the block. The driver must not vote for the
 * block (and a proposer drops the transaction named in `meta.txHash` from its candidate).
 */
export class VmFault extends TrellisError<VmFaultCode> {}

/** Reasons the executor's own API refuses a call (programming errors of the caller). */
export type ExecutorErrorCode = 'BAD_INPUT' | 'CLOSED';

/** Raised when the executor is used wrongly; never raised for anything a transaction does. */
export class ExecutorError extends TrellisError<ExecutorErrorCode> {}
