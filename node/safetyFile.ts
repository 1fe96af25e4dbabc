import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { SafetyStore } from '../consensus/safetyRules.ts';

/**
 * The safety record on disk: written to a temporary file, fsynced, renamed over the old one and
 * the directory fsynced, so after a crash at any instant the file holds either the previous
 * record or the new one, never a torn mix. The signature is released only after this returns.
 */
export function createFileSafetyStore(path: string): SafetyStore {
  return {
    load() {
      return existsSync(path) ? new Uint8Array(readFileSync(path)) : undefined;
    },
    save(record) {
      const tmp = `${path}.tmp`;
      const fd = openSync(tmp, 'w');
      try {
        writeSync(fd, record);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
      const dir = openSync(dirname(path), 'r');
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
    },
  };
}
