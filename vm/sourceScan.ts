import type { Diagnostic } from './errors.ts';
import { VmLimits } from './gasTable.ts';

/**
 * A linear, non-recursive pre-scan of contract source that bounds how deeply any parser we run
 * (Node's TypeScript stripper, acorn, V8's own) can recurse on it.
 *
 * Why: those parsers are recursive and run on the host thread's stack, whose free space differs
 * between nodes and call paths. A source that nests deeply enough to overflow one node's stack
 * but not another's would get different deploy receipts on different nodes. The limits below are
 * a pure function of the text, far below anything that can overflow, so every node reaches the
 * same verdict:
 *
 * - brackets `( [ {` and template substitutions nest at most `maxBracketDepth` deep;
 * - a segment between separators (`, ; ( ) [ ] { }`) holds at most `maxSegmentTokens` tokens,
 *   which bounds operator chains (`a+b+c...`, `!!!x`, `a?b:c?d:...`, `a=>b=>...`, type unions);
 * - statements nested without braces (`if (a) if (b) ...`, `else if` chains, `do do`, label
 *   chains) count at most `maxNestedStatements` per bracket level.
 *
 * Each token is counted per character for punctuators, so the limits are conservative.
 */

const CH_NL = 10;

const NESTING_KEYWORDS = new Set(['if', 'for', 'while', 'with', 'do']);
/** Keywords after which a `/` starts a regular expression rather than a division. */
const EXPRESSION_KEYWORDS = new Set([
  'return',
  'typeof',
  'instanceof',
  'in',
  'of',
  'new',
  'delete',
  'void',
  'throw',
  'case',
  'do',
  'else',
  'yield',
  'await',
]);

interface Level {
  /** The opening bracket: '(', '[', '{' or '${'. */
  readonly open: string;
  segmentTokens: number;
  nested: number;
}

function isIdentChar(c: number): boolean {
  return (
    (c >= 48 && c <= 57) ||
    (c >= 65 && c <= 90) ||
    (c >= 97 && c <= 122) ||
    c === 95 ||
    c === 36 ||
    c === 35 ||
    c >= 128
  );
}

/**
 * Scans `source` and returns the first shape violation, or null when the source is within every
 * limit. Never throws and never recurses; O(length).
 */
export function scanSourceShape(source: string, limits = VmLimits): Diagnostic | null {
  const n = source.length;
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const stack: Level[] = [{ open: '', segmentTokens: 0, nested: 0 }];
  // The last significant token and the one before it, for the regex and nesting heuristics.
  let prev = ';';
  let prev2 = ';';

  const fail = (message: string, at: number): Diagnostic => ({
    code: 'TOO_DEEP',
    message,
    line,
    column: at - lineStart + 1,
  });
  const top = (): Level => stack[stack.length - 1]!;
  const token = (t: string, at: number): Diagnostic | null => {
    const level = top();
    level.segmentTokens++;
    if (level.segmentTokens > limits.maxSegmentTokens) {
      return fail(
        `an expression or statement has more than ${limits.maxSegmentTokens} tokens without a separator; split it`,
        at,
      );
    }
    const chained =
      (NESTING_KEYWORDS.has(t) && (prev === ')' || prev === 'else' || prev === 'do')) ||
      (t === ':' && /^[A-Za-z_$][\w$]*$/.test(prev) && prev2 === ':');
    if (chained) {
      level.nested++;
      if (level.nested > limits.maxNestedStatements) {
        return fail(
          `more than ${limits.maxNestedStatements} statements nested without braces at one level; use blocks`,
          at,
        );
      }
    }
    prev2 = prev;
    prev = t;
    return null;
  };
  const open = (b: string, at: number): Diagnostic | null => {
    const d = token(b, at);
    if (d !== null) return d;
    top().segmentTokens = 0;
    if (stack.length > limits.maxBracketDepth) {
      return fail(`brackets nest more than ${limits.maxBracketDepth} deep`, at);
    }
    stack.push({ open: b, segmentTokens: 0, nested: 0 });
    return null;
  };
  // Returns true when the closing brace ended a template substitution.
  const close = (b: string): boolean => {
    const level = top();
    if (stack.length > 1) stack.pop();
    top().segmentTokens = 0;
    prev2 = prev;
    prev = b;
    return level.open === '${' && b === '}';
  };

  // Scans template characters from i (just after '`' or a substitution's '}'); stops after the
  // closing '`' or after '${' (having opened a level). Returns a diagnostic or null.
  const scanTemplate = (): Diagnostic | null => {
    while (i < n) {
      const c = source.charCodeAt(i);
      if (c === 92) {
        i += 2;
        continue;
      }
      if (c === CH_NL) {
        line++;
        lineStart = i + 1;
      }
      if (c === 96) {
        i++;
        prev2 = prev;
        prev = '`';
        return null;
      }
      if (c === 36 && source.charCodeAt(i + 1) === 123) {
        const at = i;
        i += 2;
        return open('${', at);
      }
      i++;
    }
    return null;
  };

  while (i < n) {
    const c = source.charCodeAt(i);
    if (c === CH_NL) {
      line++;
      lineStart = ++i;
      continue;
    }
    if (c === 32 || c === 9 || c === 13 || c === 11 || c === 12 || c === 0xfeff || c === 0xa0) {
      i++;
      continue;
    }
    const at = i;
    if (c === 47 && source.charCodeAt(i + 1) === 47) {
      while (i < n && source.charCodeAt(i) !== CH_NL) i++;
      continue;
    }
    if (c === 47 && source.charCodeAt(i + 1) === 42) {
      i += 2;
      while (i < n && !(source.charCodeAt(i) === 42 && source.charCodeAt(i + 1) === 47)) {
        if (source.charCodeAt(i) === CH_NL) {
          line++;
          lineStart = i + 1;
        }
        i++;
      }
      i += 2;
      continue;
    }
    if (c === 39 || c === 34) {
      i++;
      while (i < n) {
        const d = source.charCodeAt(i);
        if (d === 92) i += 2;
        else if (d === c || d === CH_NL) {
          i++;
          break;
        } else i++;
      }
      const e = token('"', at);
      if (e !== null) return e;
      continue;
    }
    if (c === 96) {
      i++;
      const e = token('`', at) ?? scanTemplate();
      if (e !== null) return e;
      continue;
    }
    if (isIdentChar(c)) {
      while (i < n && isIdentChar(source.charCodeAt(i))) i++;
      const e = token(source.slice(at, i), at);
      if (e !== null) return e;
      continue;
    }
    if (c === 47) {
      // A '/' where an expression may start begins a regular expression literal: skip its body so
      // brackets inside it are not counted (regular expressions are refused later anyway).
      const expressionExpected =
        !/^[\w$)\]}"`]/.test(prev) || EXPRESSION_KEYWORDS.has(prev) || prev === '' || prev === ';';
      i++;
      if (expressionExpected) {
        let inClass = false;
        while (i < n) {
          const d = source.charCodeAt(i);
          if (d === 92) i += 2;
          else if (d === CH_NL) break;
          else {
            i++;
            if (d === 91) inClass = true;
            else if (d === 93) inClass = false;
            else if (d === 47 && !inClass) break;
          }
        }
        while (i < n && isIdentChar(source.charCodeAt(i))) i++;
        const e = token('"', at);
        if (e !== null) return e;
        continue;
      }
      const e = token('/', at);
      if (e !== null) return e;
      continue;
    }
    i++;
    const ch = source[at]!;
    let e: Diagnostic | null = null;
    if (ch === '(' || ch === '[' || ch === '{') e = open(ch, at);
    else if (ch === ')' || ch === ']') close(ch);
    else if (ch === '}') {
      if (close('}')) e = scanTemplate();
    } else if (ch === ',' || ch === ';') {
      top().segmentTokens = 0;
      prev2 = prev;
      prev = ch;
    } else e = token(ch, at);
    if (e !== null) return e;
  }
  return null;
}
