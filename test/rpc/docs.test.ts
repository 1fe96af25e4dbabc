// Goal: docs/rpc.md is exactly what the method table generates, and documents every method and error code.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderRpcReference, RPC_REFERENCE_PATH } from '../../rpc/docs.ts';
import { RPC_ERRORS } from '../../rpc/errors.ts';
import { methods } from '../../rpc/methods.ts';

describe('docs/rpc.md', () => {
  it('is up to date (regenerate with `npm run docs:rpc`)', () => {
    expect(readFileSync(RPC_REFERENCE_PATH, 'utf8')).toBe(renderRpcReference());
  });

  it('has a section for every method and a row for every error code', () => {
    const doc = renderRpcReference();
    for (const name of Object.keys(methods)) expect(doc).toContain(`### \`${name}\``);
    for (const [name, e] of Object.entries(RPC_ERRORS)) expect(doc).toContain(`| ${e.code} | \`${name}\` |`);
  });
});
