import type { Bytes } from '../core/bytes.ts';
import { encodeValue, type Value } from '../core/codec.ts';
import { encodeReceipt, type Event, type Receipt } from '../core/types.ts';
import { foldMerkle, hashLeafBuffer, latin1Into, leafBuffer, leafDigest } from './merkleFold.ts';

/**
 * Canonical receipt bytes without re-encoding what the guest already encoded.
 *
 * `encodeReceipt` (core/types.ts) validates and re-encodes the return value and every event's
 * data; for receipts the executor built, those values arrived from the guest as canonical bytes
 * (the guest's encoder is byte-identical to core/codec.ts, see test/vm/codec.test.ts). The
 * executor records those bytes with the event or receipt, and {@link receiptBytes} splices them into the receipt's
 * MessagePack array instead. The result is byte-identical to `encodeReceipt` (tested in
 * test/vm/receiptCodec.test.ts); anything without recorded bytes goes through `encodeReceipt`.
 */

/**
 * An event the executor decoded from the guest, carrying the canonical bytes of its data in a
 * private field: invisible to everything but {@link receiptBytes} (not enumerable, not copied by
 * spread, structured clone or JSON), and cheaper than a WeakMap entry per event (measured:
 * ~0.3-0.5 us per WeakMap set here, plus the collector's work on it). The bytes are kept as the
 * latin1 text they crossed the isolate boundary in (one char per byte): making a Buffer of them
 * per event cost ~0.4 us, and receipt encoding copies them into its own buffer anyway.
 */
class GuestEvent implements Event {
  readonly contract: string;
  readonly name: string;
  readonly data: Value;
  readonly #text: string;
  constructor(contract: string, name: string, data: Value, text: string) {
    this.contract = contract;
    this.name = name;
    this.data = data;
    this.#text = text;
  }
  /** The recorded canonical bytes of `e.data` as latin1 text, if `e` is a GuestEvent. */
  static textOf(e: Event): string | undefined {
    return #text in e ? e.#text : undefined;
  }
}

/**
 * An event whose data has the canonical bytes `bytes` (exactly those bytes, unchecked), given as
 * bytes or as their latin1 text.
 */
export function guestEvent(contract: string, name: string, data: Value, bytes: Bytes | string): Event {
  const text =
    typeof bytes === 'string'
      ? bytes
      : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  return new GuestEvent(contract, name, data, text);
}

/** Canonical return-value bytes of receipts the executor built from a guest result. */
const returnData = new WeakMap<Receipt, Bytes>();

/** Records the canonical bytes of `receipt.returnValue` (exactly those bytes, unchecked). */
export function rememberReturnData(receipt: Receipt, data: Bytes): void {
  returnData.set(receipt, data);
}

const STATUS: Record<string, Bytes> = {};
for (const s of ['ok', 'reverted', 'out-of-gas', 'rejected']) STATUS[s] = encodeValue(s);
const NULL = Uint8Array.of(0xc0);

/** Writes MessagePack as core/codec.ts does, into a buffer with room for what it writes. */
class Writer {
  buf: Buffer;
  pos: number;
  constructor(buf: Buffer, pos: number) {
    this.buf = buf;
    this.pos = pos;
  }
  byte(b: number): void {
    this.buf[this.pos++] = b;
  }
  bytes(b: Bytes): void {
    const n = b.length;
    if (n <= 48) {
      // Short arrays (hashes, small values) copy faster by hand than through TypedArray#set.
      const { buf } = this;
      for (let i = 0; i < n; i++) buf[this.pos++] = b[i]!;
      return;
    }
    this.buf.set(b, this.pos);
    this.pos += n;
  }
  /** Latin1 text, one byte per char (recorded canonical bytes). */
  latin1(t: string): void {
    const n = t.length;
    if (n <= 64) {
      const { buf } = this;
      for (let i = 0; i < n; i++) buf[this.pos++] = t.charCodeAt(i);
      return;
    }
    latin1Into(this.buf, t, this.pos);
    this.pos += n;
  }
  /** Shortest unsigned form of an integer below 2^32. */
  uint(n: number): void {
    const { buf } = this;
    if (n < 128) buf[this.pos++] = n;
    else if (n < 256) {
      buf[this.pos++] = 0xcc;
      buf[this.pos++] = n;
    } else if (n < 65536) {
      buf[this.pos++] = 0xcd;
      buf.writeUInt16BE(n, this.pos);
      this.pos += 2;
    } else {
      buf[this.pos++] = 0xce;
      buf.writeUInt32BE(n, this.pos);
      this.pos += 4;
    }
  }
  /** String with the shortest header for its UTF-8 length. */
  str(s: string, n: number): void {
    const { buf } = this;
    if (n < 32) buf[this.pos++] = 0xa0 | n;
    else if (n < 256) {
      buf[this.pos++] = 0xd9;
      buf[this.pos++] = n;
    } else if (n < 65536) {
      buf[this.pos++] = 0xda;
      buf.writeUInt16BE(n, this.pos);
      this.pos += 2;
    } else {
      buf[this.pos++] = 0xdb;
      buf.writeUInt32BE(n, this.pos);
      this.pos += 4;
    }
    if (n === s.length) {
      // ASCII (UTF-8 length equals UTF-16 length only then): copied by hand.
      for (let i = 0; i < n; i++) buf[this.pos++] = s.charCodeAt(i);
    } else this.pos += buf.write(s, this.pos, 'utf8');
  }
  arrayHead(n: number): void {
    const { buf } = this;
    if (n < 16) buf[this.pos++] = 0x90 | n;
    else if (n < 65536) {
      buf[this.pos++] = 0xdc;
      buf.writeUInt16BE(n, this.pos);
      this.pos += 2;
    } else {
      buf[this.pos++] = 0xdd;
      buf.writeUInt32BE(n, this.pos);
      this.pos += 4;
    }
  }
}

/** UTF-8 length of a well-formed string; short ASCII strings are measured by hand. */
function utf8Length(s: string): number {
  const n = s.length;
  if (n <= 64) {
    let i = 0;
    while (i < n && s.charCodeAt(i) < 0x80) i++;
    if (i === n) return n;
  }
  return Buffer.byteLength(s, 'utf8');
}

/**
 * What {@link measure} found for the receipt {@link write} writes next: module-level and reused
 * (encoding is synchronous), so measuring allocates nothing.
 */
let plannedReturn: Bytes = new Uint8Array(0);
let plannedData: string[] = [];
let plannedLengths: number[] = [];
let plannedCode = 0;
let plannedError = 0;

/**
 * Plans the fast encoding of `r`: an upper bound of its size, or -1 when `encodeReceipt` must
 * encode it (no recorded bytes for a value, lone surrogates, out-of-range fields).
 */
function measure(r: Receipt): number {
  const status = STATUS[r.status];
  if (
    status === undefined ||
    r.txHash.length !== 32 ||
    !Number.isSafeInteger(r.gasUsed) ||
    r.gasUsed < 0 ||
    r.gasUsed >= 2 ** 32
  ) {
    return -1;
  }
  // Lone surrogates: Buffer and msgpackr may differ on them; leave those to encodeReceipt.
  if (!r.error.isWellFormed() || !r.errorCode.isWellFormed()) return -1;
  // Most calls return nothing: no record is looked up for canonical null (none is made for it).
  const ret = r.returnValue === null ? NULL : returnData.get(r);
  if (ret === undefined) return -1;
  plannedReturn = ret;
  const n = r.events.length;
  if (plannedData.length < n) {
    plannedData = new Array<string>(n);
    plannedLengths = new Array<number>(2 * n);
  }
  // Headers are at most 5 bytes each: 35 for hash and array, 5 gas, 5 events, 3 x 5 strings.
  let size = 60 + status.length + ret.length;
  for (let i = 0; i < n; i++) {
    const e = r.events[i]!;
    const d = GuestEvent.textOf(e);
    if (d === undefined || !e.contract.isWellFormed() || !e.name.isWellFormed()) return -1;
    plannedData[i] = d;
    const c = utf8Length(e.contract);
    const m = utf8Length(e.name);
    plannedLengths[2 * i] = c;
    plannedLengths[2 * i + 1] = m;
    size += 11 + c + m + d.length;
  }
  plannedCode = utf8Length(r.errorCode);
  plannedError = utf8Length(r.error);
  return size + plannedCode + plannedError;
}

/** Writes the receipt {@link measure} just planned at `w`'s position. */
function write(r: Receipt, w: Writer): void {
  w.byte(0x97);
  w.byte(0xc4);
  w.byte(32);
  w.bytes(r.txHash);
  w.bytes(STATUS[r.status]!);
  w.uint(r.gasUsed);
  w.bytes(plannedReturn);
  const n = r.events.length;
  w.arrayHead(n);
  for (let i = 0; i < n; i++) {
    const e = r.events[i]!;
    w.byte(0x93);
    w.str(e.contract, plannedLengths[2 * i]!);
    w.str(e.name, plannedLengths[2 * i + 1]!);
    w.latin1(plannedData[i]!);
  }
  w.str(r.errorCode, plannedCode);
  w.str(r.error, plannedError);
  plannedReturn = NULL;
  plannedData.fill('', 0, n);
}

/** Byte-identical to `encodeReceipt(r)`, reusing recorded canonical bytes where it has them. */
export function receiptBytes(r: Receipt): Bytes {
  const size = measure(r);
  if (size < 0) return encodeReceipt(r);
  const w = new Writer(Buffer.allocUnsafe(size), 0);
  write(r, w);
  return w.buf.subarray(0, w.pos);
}

/**
 * `merkleRoot(receipts.map(encodeReceipt))` (core/merkle.ts), each receipt encoded straight
 * after the leaf prefix in one reused buffer (see vm/merkleFold.ts).
 */
export function receiptsRoot(receipts: readonly Receipt[]): Bytes {
  const n = receipts.length;
  const hashes = new Array<string>(n);
  for (let i = 0; i < n; i++) {
    const r = receipts[i]!;
    const size = measure(r);
    if (size < 0) {
      hashes[i] = leafDigest(encodeReceipt(r));
      continue;
    }
    const w = new Writer(leafBuffer(size), 1);
    write(r, w);
    hashes[i] = hashLeafBuffer(w.pos);
  }
  return foldMerkle(hashes);
}
