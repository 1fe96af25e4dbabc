// Goal: the host reads a batch's result envelope (vm/guestRuntime.js invokeBatch) field by field
// as the guest wrote it, and anything malformed (truncated, out of range, trailing, wrong counts)
// is a local fault of the isolate (VmFault ISOLATE), never a receipt.
import { describe, expect, it } from 'vitest';
import { VmFault } from '../../vm/errors.ts';
import { BatchResults } from '../../vm/sandbox.ts';

/** A short field as the guest writes it (one length char below 240, else \xff digits comma). */
const short = (s: string): string =>
  (s.length < 240 ? String.fromCharCode(s.length) : `\xff${s.length},`) + s;
const gas4 = (g: number): string => String.fromCharCode(g >>> 24, (g >>> 16) & 255, (g >>> 8) & 255, g & 255);
const fld = (s: string): string => `${s.length},${s}`;

const ok = (gasLeft: number, ret: string, events: Array<[string, string]>): string =>
  `0${gas4(gasLeft)}${short(ret)}${short('')}${short('')}${String.fromCharCode(events.length)}${events
    .map(([n, d]) => short(n) + short(d))
    .join('')}`;
const failed = (status: number, gasLeft: number, code: string, message: string): string =>
  `${status}${gas4(gasLeft)}${short('')}${short(code)}${short(message)}\x00`;

const isolateFault = (f: () => void): void => {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(VmFault);
  expect((err as VmFault).code).toBe('ISOLATE');
};

/** Reads every result, event and write of an envelope. */
const readAll = (text: string, max: number) => {
  const r = new BatchResults(text, max);
  const out: unknown[] = [];
  for (let i = 0; i < r.count; i++) {
    r.next();
    const events: string[] = [];
    for (let e = 0; e < r.eventCount; e++) {
      r.nextEvent();
      events.push(`${r.eventName}=${r.eventData}`);
    }
    out.push([r.status, r.gasLeft, r.ret, r.code, r.message, events]);
  }
  const writes = r.writes().map(([k, v]) => [k, v === null ? null : [...v]]);
  return { out, writes };
};

describe('batch results', () => {
  it('reads results, events and writes as the guest formats them', () => {
    const long = 'x'.repeat(300);
    const text =
      '3,' +
      ok(99_000, '\xc0', [
        ['Transfer', '\x81\xa1a\x01'],
        ['Transfer', long],
      ]) +
      failed(1, 12_345_678, 'INSUFFICIENT', `holding 1 is less than 2 ${long}`) +
      ok(0xfffffffe, '\x93\x01\x02\x03', []) +
      `2,${fld('bal:a')}${fld('\x05')}${fld('gone')}${fld('')}`;
    const { out, writes } = readAll(text, 3);
    expect(out).toEqual([
      [0, 99_000, '\xc0', '', '', ['Transfer=\x81\xa1a\x01', `Transfer=${long}`]],
      [1, 12_345_678, '', 'INSUFFICIENT', `holding 1 is less than 2 ${long}`, []],
      [0, 0xfffffffe, '\x93\x01\x02\x03', '', '', []],
    ]);
    expect(writes).toEqual([
      ['bal:a', [5]],
      ['gone', null],
    ]);
  });

  it('refuses malformed envelopes as local faults', () => {
    const one = ok(5, '\xc0', [['E', '\xc0']]);
    const good = `1,${one}0,`;
    expect(() => readAll(good, 1)).not.toThrow();
    const cases = [
      `2,${one}0,`, // more results than transactions sent
      `1,${one}`, // no writes section
      `1,${one}0,x`, // trailing text
      `1,${one.slice(0, 3)}`, // truncated gas
      `1,7${one.slice(1)}0,`, // unknown status
      `1,${one.replace('\x01\xc0', '\x09\xc0')}0,`, // a field longer than the text
      `1,${one}1,${fld('k')}`, // a write without its value
      `1,0${gas4(5)}${short('\xc0')}\x00\x00\x02${short('E')}${short('\xc0')}0,`, // an event missing
      `x,${one}0,`, // no count
    ];
    for (const text of cases) isolateFault(() => readAll(text, 1));
    // Reading past the results, or writes before the last result, is refused too.
    const r = new BatchResults(good, 1);
    isolateFault(() => r.writes());
    r.next();
    isolateFault(() => r.writes()); // its event is unread
    r.nextEvent();
    isolateFault(() => r.next());
    isolateFault(() => r.nextEvent());
    expect(r.writes()).toEqual([]);
  });
});
