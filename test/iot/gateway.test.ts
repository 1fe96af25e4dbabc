/** Goal: the gateway's pieces (readings, durable log, envelopes, aggregates) accept what they should and refuse the rest. */
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { utf8 } from '../../core/bytes.ts';
import { keyPairFromSecret } from '../../core/keys.ts';
import { sha256 } from '../../core/hash.ts';
import { openAppendLog, readLog } from '../../iot/gateway/appendLog.ts';
import {
  decodeEnvelope,
  encodeEnvelope,
  generateRecipientKey,
  openEnvelope,
  sealEnvelope,
} from '../../iot/gateway/envelope.ts';
import { aggregate } from '../../iot/gateway/gateway.ts';
import {
  decodeLeaf,
  encodeLeaf,
  readingFromBytes,
  readingFromJson,
  readingToJson,
  signReading,
  verifyReading,
} from '../../iot/gateway/reading.ts';
import { formatTime, reportHash } from '../../iot/report.ts';
import { simulatedValue, PLANT } from '../../iot/simulate.ts';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'trellis-iot-unit-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const device = keyPairFromSecret(sha256(utf8('device')));

describe('readings', () => {
  it('signs, verifies, round-trips through JSON and leaf bytes', () => {
    const r = signReading({ device: 'pm1', n: 7, ts: 1_700_000_000_000, value: 2n ** 40n }, device.secretKey);
    expect(verifyReading(r, device.publicKey)).toBe(true);
    expect(verifyReading({ ...r, value: r.value + 1n }, device.publicKey)).toBe(false);
    expect(verifyReading({ ...r, sig: null }, device.publicKey)).toBe(false);
    const back = readingFromBytes(Buffer.from(JSON.stringify(readingToJson(r))));
    expect(readingToJson(back)).toEqual(readingToJson(r));
    const leaf = { ...r, metric: 'power', receivedAt: 1_700_000_000_123 };
    const decoded = decodeLeaf(encodeLeaf(leaf));
    expect({ ...readingToJson(decoded), metric: decoded.metric, receivedAt: decoded.receivedAt }).toEqual({
      ...readingToJson(r),
      metric: 'power',
      receivedAt: leaf.receivedAt,
    });
  });

  it('refuses malformed readings with a clear error', () => {
    const bad = (v: unknown) => () => readingFromJson(v);
    expect(bad(null)).toThrow(/JSON object/);
    expect(bad({ device: 'a b', n: 1, ts: 1, value: 1 })).toThrow(/device/);
    expect(bad({ device: 'a', n: -1, ts: 1, value: 1 })).toThrow(/n must/);
    expect(bad({ device: 'a', n: 1, ts: 1, value: 1.5 })).toThrow(/value/);
    expect(bad({ device: 'a', n: 1, ts: 1, value: '99999999999999999999' })).toThrow(/value/);
    expect(bad({ device: 'a', n: 1, ts: 1, value: 1, sig: '0x12' })).toThrow(/sig/);
    expect(bad({ device: 'a', n: 1, ts: 1, value: 1, extra: true })).toThrow(/unknown field/);
    expect(() => readingFromBytes(Buffer.from('{'))).toThrow(/JSON/);
    expect(() => readingFromBytes(Buffer.alloc(2000, 32))).toThrow(/at most/);
  });
});

describe('append-only log', () => {
  it('keeps every synced record and cuts a torn tail', async () => {
    const path = join(tmp(), 'log');
    const log = await openAppendLog(path);
    await Promise.all(Array.from({ length: 100 }, (_, i) => log.append(utf8(`record ${i}`))));
    expect(log.synced).toBe(100);
    await log.close();
    const size = statSync(path).size;
    // A crash in the middle of the next write leaves half a frame.
    appendFileSync(path, Buffer.from([0, 0, 0, 50, 1, 2, 3, 4, 5]));
    const { records, truncatedBytes } = readLog(path);
    expect(records.map((r) => Buffer.from(r).toString())).toEqual(
      Array.from({ length: 100 }, (_, i) => `record ${i}`),
    );
    expect(truncatedBytes).toBe(9);
    expect(statSync(path).size).toBe(size);
    // A flipped byte in the last record fails its CRC: that record is dropped, earlier ones kept.
    const buf = readFileSync(path);
    buf[buf.length - 1] = buf[buf.length - 1]! ^ 1;
    writeFileSync(path, buf);
    expect(readLog(path).records.length).toBe(99);
  });
});

describe('log compaction', () => {
  it('a rewrite keeps the snapshot plus every append made meanwhile, each acknowledged once on disk', async () => {
    const path = join(tmp(), 'log');
    const log = await openAppendLog(path);
    const live = new Set<string>();
    const write = (x: string) => {
      live.add(x);
      return log.append(utf8(x));
    };
    await Promise.all(Array.from({ length: 200 }, (_, i) => write(`old ${i}`)));
    // Half of them are no longer needed; appends keep arriving while the rewrite runs.
    for (let i = 0; i < 100; i++) live.delete(`old ${i}`);
    const during: Array<Promise<void>> = [];
    const steps: string[] = [];
    let snapshot: string[] = [];
    const rewritten = log.rewrite(
      () => {
        snapshot = [...live];
        return snapshot.map((x) => utf8(x));
      },
      (s) => {
        steps.push(s);
        if (s === 'written') for (let i = 0; i < 50; i++) during.push(write(`new ${i}`));
      },
    );
    const { before, after } = await rewritten;
    await Promise.all(during);
    expect(steps).toEqual(['snapshot', 'written', 'synced', 'renamed', 'dirSynced']);
    expect(after).toBeLessThan(before);
    await log.close();
    const records = readLog(path).records.map((r) => Buffer.from(r).toString());
    expect(records).toEqual([...snapshot, ...Array.from({ length: 50 }, (_, i) => `new ${i}`)]);
    expect(statSync(path).size).toBe(after + 50 * (8 + 'new 0'.length) + 40 * 1);
  });

  it('a crash before the rename leaves the old log whole; the stray snapshot is removed', async () => {
    const path = join(tmp(), 'log');
    const log = await openAppendLog(path);
    await log.append(utf8('kept'));
    await log.close();
    writeFileSync(`${path}.compact`, Buffer.from([0, 0, 0, 9, 1, 2]));
    expect(readLog(path).records.map((r) => Buffer.from(r).toString())).toEqual(['kept']);
    expect(existsSync(`${path}.compact`)).toBe(false);
  });
});

describe('envelopes', () => {
  it('opens for each recipient only, and refuses a tampered ciphertext', () => {
    const a = generateRecipientKey();
    const b = generateRecipientKey();
    const outsider = generateRecipientKey();
    const env = sealEnvelope(utf8('raw batch'), 'gw1:1:0xabc', [
      { id: 'bank-a', publicKey: a.publicKey },
      { id: 'bank-b', publicKey: b.publicKey },
    ]);
    const decoded = decodeEnvelope(encodeEnvelope(env));
    expect(Buffer.from(openEnvelope(decoded, a.secretKey)).toString()).toBe('raw batch');
    expect(Buffer.from(openEnvelope(decoded, b.secretKey)).toString()).toBe('raw batch');
    expect(() => openEnvelope(decoded, outsider.secretKey)).toThrow(/not among/);
    const flipped = {
      ...decoded,
      ciphertext: Uint8Array.from(decoded.ciphertext, (x, i) => (i === 0 ? x ^ 1 : x)),
    };
    expect(() => openEnvelope(flipped, a.secretKey)).toThrow(/authentication failed/);
    expect(() => openEnvelope({ ...decoded, context: 'gw1:2:0xabc' }, a.secretKey)).toThrow(
      /authentication failed/,
    );
  });
});

describe('aggregates, simulator values, report hash', () => {
  it('computes per-metric min/max/sum/n in metric order', () => {
    const r = (metric: string, value: bigint) => ({
      device: 'd',
      n: 0,
      ts: 0,
      value,
      sig: null,
      metric,
      receivedAt: 0,
    });
    expect(aggregate([r('water', 5n), r('power', 10n), r('power', 4n), r('power', 7n)])).toEqual([
      { metric: 'power', n: 3, min: 4n, max: 10n, sum: 21n },
      { metric: 'water', n: 1, min: 5n, max: 5n, sum: 5n },
    ]);
    expect(aggregate([])).toEqual([]);
  });

  it('a sudden stop takes the machines to zero and power to idle', () => {
    const rand = () => 0.5;
    const power = PLANT.devices.find((d) => d.id === 'plant-power')!;
    const cnc = PLANT.devices.find((d) => d.id === 'cnc-1')!;
    expect(simulatedValue(power, 'sudden-stop', 1000, 5000, rand)).toBe(5000n);
    expect(simulatedValue(power, 'sudden-stop', 6000, 5000, rand)).toBe(150n);
    expect(simulatedValue(cnc, 'sudden-stop', 6000, 5000, rand)).toBe(0n);
    // Decline: 2 per mille of base per 100 ms after the event (10% after 5 s).
    expect(simulatedValue(power, 'decline', 10_000, 5000, rand)).toBe(4500n);
  });

  it('formats times in UTC and refuses an HTML without a report hash', () => {
    expect(formatTime(0)).toBe('1970-01-01 00:00:00');
    expect(formatTime(1234)).toBe('1970-01-01 00:00:01.234');
    expect(() => reportHash('<html></html>')).toThrow(/not a Trellis IoT report/);
  });
});
