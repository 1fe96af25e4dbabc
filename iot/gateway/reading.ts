/**
 * Readings: what a device reports, how it signs them, and the canonical leaf bytes the gateway
 * puts in a window's Merkle tree (the bytes a proof later shows).
 */
import { fromHex, toHex, utf8, type Bytes } from '../../core/bytes.ts';
import { encodeValue, readArray, unpackCanonical } from '../../core/codec.ts';
import { sign, verify } from '../../core/keys.ts';
import { IotError } from './errors.ts';

/** One reading of one device. Values are integers in the metric's unit (Wh, litres, count, grams, per mille). */
export interface Reading {
  readonly device: string;
  /** The device's own counter: (device, n) identifies a reading, so a retried publish is not counted twice. */
  readonly n: number;
  /** Device time of the measurement, ms since the epoch. */
  readonly ts: number;
  readonly value: bigint;
  /** Ed25519 signature of {@link readingMessage}, or null for a device that does not sign. */
  readonly sig: Bytes | null;
}

/** A reading as the gateway accepted it: with the metric from the registry and its receive time. */
export interface AcceptedReading extends Reading {
  readonly metric: string;
  /** Gateway time of receipt, ms: picks the window. */
  readonly receivedAt: number;
}

/** Most bytes of a reading message on MQTT or HTTP. */
export const MAX_READING_JSON_BYTES = 1024;
const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_VALUE = 2n ** 62n;

/** The bytes a device signs: domain tag, device, n, ts, value. */
export function readingMessage(r: { device: string; n: number; ts: number; value: bigint }): Bytes {
  return encodeValue(['trellis.iot.reading.v1', r.device, r.n, r.ts, r.value]);
}

/** Signs a reading with a device key. */
export function signReading(
  r: { device: string; n: number; ts: number; value: bigint },
  secretKey: Bytes,
): Reading {
  return { ...r, sig: sign(readingMessage(r), secretKey) };
}

/** Whether the reading's signature verifies against the device key. */
export function verifyReading(r: Reading, publicKey: Bytes): boolean {
  return r.sig !== null && verify(r.sig, readingMessage(r), publicKey);
}

/** JSON form on the wire: `{ device, n, ts, value: "decimal", sig: "0x.." | null }`. */
export function readingToJson(r: Reading): Record<string, unknown> {
  return {
    device: r.device,
    n: r.n,
    ts: r.ts,
    value: r.value.toString(),
    sig: r.sig === null ? null : toHex(r.sig),
  };
}

function bad(message: string): never {
  throw new IotError('BAD_READING', message, {});
}

/** Parses and checks a wire reading (object already JSON-decoded). */
export function readingFromJson(v: unknown): Reading {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad('a reading must be a JSON object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!['device', 'n', 'ts', 'value', 'sig'].includes(k)) bad(`unknown field "${k}"`);
  const device = o['device'];
  if (typeof device !== 'string' || !NAME_RE.test(device))
    bad('device must be a name of 1..64 letters, digits, - _ .');
  const n = o['n'];
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) bad('n must be a non-negative integer');
  const ts = o['ts'];
  if (typeof ts !== 'number' || !Number.isSafeInteger(ts) || ts < 0) bad('ts must be a time in ms');
  const raw = o['value'];
  let value: bigint;
  if (typeof raw === 'number' && Number.isSafeInteger(raw)) value = BigInt(raw);
  else if (typeof raw === 'string' && /^-?[0-9]{1,19}$/.test(raw)) value = BigInt(raw);
  else bad('value must be an integer (a JSON number or a decimal string)');
  if (value >= MAX_VALUE || value <= -MAX_VALUE) bad('value out of range (|value| < 2^62)');
  const s = o['sig'];
  let sig: Bytes | null = null;
  if (s !== undefined && s !== null) {
    if (typeof s !== 'string') bad('sig must be 0x-hex or null');
    try {
      sig = fromHex(s, 'sig', 64);
    } catch {
      bad('sig must be 64 bytes of 0x-hex');
    }
  }
  return { device, n, ts, value, sig };
}

/** Parses a wire reading from bytes (MQTT payload). */
export function readingFromBytes(payload: Uint8Array): Reading {
  if (payload.length > MAX_READING_JSON_BYTES) bad(`a reading is at most ${MAX_READING_JSON_BYTES} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    bad('a reading must be JSON');
  }
  return readingFromJson(v);
}

/** Canonical leaf bytes of an accepted reading: what its Merkle proof commits to. */
export function encodeLeaf(r: AcceptedReading): Bytes {
  return encodeValue(['trellis.iot.leaf.v1', r.device, r.metric, r.n, r.ts, r.value, r.sig, r.receivedAt]);
}

/** Decodes leaf bytes back to the reading (for a verifier showing what was proven). */
export function decodeLeaf(bytes: Bytes): AcceptedReading {
  const a = readArray(unpackCanonical(bytes, 'leaf'), 8, 'leaf');
  if (a[0] !== 'trellis.iot.leaf.v1') bad('not a reading leaf');
  return {
    device: a[1] as string,
    metric: a[2] as string,
    n: Number(a[3]),
    ts: Number(a[4]),
    value: BigInt(a[5] as number | bigint),
    sig: (a[6] ?? null) as Bytes | null,
    receivedAt: Number(a[7]),
  };
}

/** Identity of a reading for duplicate detection. */
export function readingId(r: { device: string; n: number }): string {
  return `${r.device}:${r.n}`;
}

/** UTF-8 helper re-exported for the CLI. */
export const text = utf8;
