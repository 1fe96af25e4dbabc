import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { compileContract } from './compile.ts';
import { CompileError } from './errors.ts';

/**
 * `trellis contract check`: what a contract author runs before deploying. It type-checks the file
 * against the authoring API (contracts/api.ts) with the pinned TypeScript, checks that its exports
 * have the shape of a contract module, and runs every deploy-time check of the VM, reporting each
 * problem as file:line:column. The node itself never type-checks: a deploy runs only the VM checks.
 */

/** Where the authoring API lives; contracts import it as `@trellis/contract` or by relative path. */
export const API_PATH = fileURLToPath(new URL('../contracts/api.ts', import.meta.url));

/** The module specifier contracts may use for the API wherever they live. */
export const API_SPECIFIER = '@trellis/contract';

/** One problem in a contract file. */
export interface CheckDiagnostic {
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based. */
  readonly column: number;
  /** 'typescript' for type errors (TSnnnn code), 'deploy' for the VM's own checks. */
  readonly source: 'typescript' | 'deploy';
  readonly code: string;
  readonly message: string;
}

/** The outcome of checking a contract file. */
export interface CheckResult {
  readonly file: string;
  readonly diagnostics: readonly CheckDiagnostic[];
  /** Exported method and view names (empty when the deploy checks failed). */
  readonly methods: readonly string[];
  readonly views: readonly string[];
  /** Hex SHA-256 of the source: the code identity a deploy would record. */
  readonly sourceHash: string;
}

const COMPILER_OPTIONS: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2024,
  lib: ['lib.es2024.d.ts'],
  // A contract is always an ES module, wherever its file lives (no package.json "type" lookup).
  module: ts.ModuleKind.Preserve,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  strict: true,
  noUncheckedIndexedAccess: true,
  exactOptionalPropertyTypes: true,
  noImplicitOverride: true,
  noFallthroughCasesInSwitch: true,
  verbatimModuleSyntax: true,
  erasableSyntaxOnly: true,
  allowImportingTsExtensions: true,
  noEmit: true,
  skipLibCheck: true,
  types: [],
};

const SHAPE_FILE = '__trellis_contract_shape__.ts';

/** Type-checks `file` and the shape of its exports; returns TypeScript's diagnostics for it. */
function typeCheck(file: string): CheckDiagnostic[] {
  const shapePath = resolve(dirname(file), SHAPE_FILE);
  const shapeSource = [
    `import type { ContractModule } from ${JSON.stringify(API_PATH)};`,
    `import * as contract from ${JSON.stringify(`./${file.split(/[\\/]/).pop()!}`)};`,
    'const shape: ContractModule = contract;',
    'export { shape };',
  ].join('\n');
  const host = ts.createCompilerHost(COMPILER_OPTIONS, true);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => (resolve(name) === shapePath ? shapeSource : readFile(name));
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => resolve(name) === shapePath || fileExists(name);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, language, onError, create) =>
    resolve(name) === shapePath
      ? ts.createSourceFile(name, shapeSource, language, true)
      : getSourceFile(name, language, onError, create);
  // `@trellis/contract` and any import ending in contracts/api.ts resolve to this repository's API.
  host.resolveModuleNameLiterals = (literals, containing, redirected, options) =>
    literals.map((lit) => {
      const text = lit.text;
      if (text === API_SPECIFIER || /(^|\/)api(\.ts)?$/.test(text)) {
        return {
          resolvedModule: {
            resolvedFileName: API_PATH,
            extension: ts.Extension.Ts,
            isExternalLibraryImport: false,
          },
        };
      }
      return ts.resolveModuleName(text, containing, options, host, undefined, redirected);
    });
  const program = ts.createProgram([file, shapePath], COMPILER_OPTIONS, host);
  const out: CheckDiagnostic[] = [];
  for (const d of ts.getPreEmitDiagnostics(program)) {
    if (d.category !== ts.DiagnosticCategory.Error) continue;
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    const code = `TS${d.code}`;
    if (d.file === undefined || d.start === undefined) {
      out.push({ file, line: 1, column: 1, source: 'typescript', code, message });
      continue;
    }
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
    if (resolve(d.file.fileName) === shapePath) {
      out.push({
        file,
        line: 1,
        column: 1,
        source: 'typescript',
        code,
        message: `the module's exports do not have the shape of a contract (ContractModule in contracts/api.ts): ${message}`,
      });
    } else if (resolve(d.file.fileName) === resolve(file)) {
      out.push({ file, line: line + 1, column: character + 1, source: 'typescript', code, message });
    }
  }
  return out;
}

/** Checks a contract file: types, module shape and every deploy-time check. Never throws for a bad contract. */
export function checkContractFile(path: string): CheckResult {
  const file = resolve(path);
  const source = readFileSync(file, 'utf8');
  const diagnostics: CheckDiagnostic[] = [];
  let methods: readonly string[] = [];
  let views: readonly string[] = [];
  let sourceHash = '';
  try {
    const c = compileContract(source);
    methods = c.methods;
    views = c.views;
    sourceHash = Buffer.from(c.sourceHash).toString('hex');
  } catch (err) {
    if (!(err instanceof CompileError)) throw err;
    for (const d of err.diagnostics) {
      diagnostics.push({
        file,
        line: d.line,
        column: d.column,
        source: 'deploy',
        code: d.code,
        message: d.message,
      });
    }
  }
  diagnostics.push(...typeCheck(file));
  diagnostics.sort((a, b) => a.line - b.line || a.column - b.column);
  return { file, diagnostics, methods, views, sourceHash };
}

/** `file:line:column: error CODE: message`, the format editors and CI parse. */
export function formatDiagnostic(d: CheckDiagnostic, cwd = process.cwd()): string {
  const shown = d.file.startsWith(`${cwd}/`) ? d.file.slice(cwd.length + 1) : d.file;
  return `${shown}:${d.line}:${d.column}: error ${d.code}: ${d.message}`;
}
