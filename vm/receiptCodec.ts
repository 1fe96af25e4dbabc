import type { Bytes } from '../core/bytes.ts';
import { encodeValue } from '../core/codec.ts';
import { encodeReceipt, type Event, type Receipt } from '../core/types.ts';

/**
 * Canonical receipt bytes without re-encoding what the guest already encoded.
 *
 * `encodeReceipt` (core/types.ts) validates and re-encodes the return value and every event's
 * data; for receipts the executor built, those values arrived from the guest as canonical bytes
 * (the guest's encoder is byte-identical to core/codec.ts, see test/vm/codec.test.ts). The
 * executor records those bytes here, and {@link receiptBytes} splices them into the receipt's
 * MessagePack array instead. The result is byte-identical to `encodeReceipt` (tested in
 * test/vm/receiptCodec.test.ts); anything without recorded bytes goes through `encodeReceipt`.
 */

/** Canonical data bytes of events the executor decoded from the guest. */
const eventData = new WeakMap<Event, Bytes>();
/** Canonical return-value bytes of receipts the executor built from a guest result. */
const returnData = new WeakMap<Receipt, Bytes>();

/** Records the canonical bytes `data` of `event.data` (exactly those bytes, unchecked). */
export function rememberEventData(event: Event, data: Bytes): void {
  eventData.set(event, data);
}

/** Records the canonical bytes of `receipt.returnValue` (exactly those bytes, unchecked). */
export function rememberReturnData(receipt: Receipt, data: Bytes): void {
  returnData.set(receipt, data);
}

const STATUS: Record<string, Bytes> = {};
for (const s of ['ok', 'reverted', 'out-of-gas', 'rejected']) STATUS[s] = encodeValue(s);
const NULL = Uint8Array.of(0xc0);

/** Writes into one buffer sized up front (an upper bound), in MessagePack as core/codec.ts does. */
class Writer {
  readonly buf: Buffer;
  pos = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
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

/** Byte-identical to `encodeReceipt(r)`, reusing recorded canonical bytes where it has them. */
export function receiptBytes(r: Receipt): Bytes {
  const status = STATUS[r.status];
  if (
    status === undefined ||
    r.txHash.length !== 32 ||
    !Number.isSafeInteger(r.gasUsed) ||
    r.gasUsed < 0 ||
    r.gasUsed >= 2 ** 32
  ) {
    return encodeReceipt(r);
  }
  // Lone surrogates: Buffer and msgpackr may differ on them; leave those to encodeReceipt.
  if (!r.error.isWellFormed() || !r.errorCode.isWellFormed()) return encodeReceipt(r);
  let ret = returnData.get(r);
  if (ret === undefined) {
    if (r.returnValue !== null) return encodeReceipt(r);
    ret = NULL;
  }
  const n = r.events.length;
  const data: Bytes[] = new Array<Bytes>(n);
  const lengths: number[] = new Array<number>(2 * n);
  // Headers are at most 5 bytes each: 35 for hash and array, 5 gas, 5 events, 3 x 5 strings.
  let size = 60 + status.length + ret.length;
  for (let i = 0; i < n; i++) {
    const e = r.events[i]!;
    const d = eventData.get(e);
    if (d === undefined || !e.contract.isWellFormed() || !e.name.isWellFormed()) return encodeReceipt(r);
    data[i] = d;
    lengths[2 * i] = utf8Length(e.contract);
    lengths[2 * i + 1] = utf8Length(e.name);
    size += 11 + lengths[2 * i]! + lengths[2 * i + 1]! + d.length;
  }
  const codeLength = utf8Length(r.errorCode);
  const errorLength = utf8Length(r.error);
  size += codeLength + errorLength;
  const w = new Writer(size);
  w.byte(0x97);
  w.byte(0xc4);
  w.byte(32);
  w.bytes(r.txHash);
  w.bytes(status);
  w.uint(r.gasUsed);
  w.bytes(ret);
  w.arrayHead(n);
  for (let i = 0; i < n; i++) {
    const e = r.events[i]!;
    w.byte(0x93);
    w.str(e.contract, lengths[2 * i]!);
    w.str(e.name, lengths[2 * i + 1]!);
    w.bytes(data[i]!);
  }
  w.str(r.errorCode, codeLength);
  w.str(r.error, errorLength);
  return w.buf.subarray(0, w.pos);
}
