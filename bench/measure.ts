/** Shared helpers for the bench/ scripts: timing loops and table printing. */

/** One measured row. */
export interface Row {
  readonly name: string;
  readonly opsPerSec: number;
  readonly usPerOp: number;
  readonly note?: string;
}

/**
 * Runs `fn` repeatedly for about `ms` milliseconds (after a short warm-up) and returns the rate.
 * `fn` does `batch` operations per call.
 */
export async function measure(
  name: string,
  fn: () => unknown,
  options: { ms?: number; batch?: number; note?: string } = {},
): Promise<Row> {
  const ms = options.ms ?? 1000;
  const batch = options.batch ?? 1;
  const warmEnd = performance.now() + Math.min(200, ms / 5);
  while (performance.now() < warmEnd) await fn();
  let calls = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    await fn();
    calls++;
    now = performance.now();
  }
  const ops = calls * batch;
  const seconds = (now - start) / 1000;
  return {
    name,
    opsPerSec: ops / seconds,
    usPerOp: (seconds * 1e6) / ops,
    ...(options.note === undefined ? {} : { note: options.note }),
  };
}

/** Formats rows as a markdown table. */
export function table(rows: readonly Row[]): string {
  const fmt = (n: number): string => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2));
  const lines = ['| operation | ops/s | µs/op | note |', '|---|---:|---:|---|'];
  for (const r of rows)
    lines.push(`| ${r.name} | ${fmt(r.opsPerSec)} | ${fmt(r.usPerOp)} | ${r.note ?? ''} |`);
  return lines.join('\n');
}
