// Goal: a node whose key is neither a validator nor a registered observer refuses to start, saying why, and opens nothing.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../core/keys.ts';
import { writeLocalNetwork } from '../../node/cli/init.ts';
import { loadNodeConfig } from '../../node/config.ts';
import { saveKeyFile } from '../../node/keystore.ts';
import { startNode } from '../../node/node.ts';

const dir = mkdtempSync(join(tmpdir(), 'trellis-start-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('starting a node', () => {
  it('refuses a key the genesis does not name', async () => {
    const net = await writeLocalNetwork({ dir, validators: 1, contracts: [] });
    const config = loadNodeConfig(net.nodes[0]!.home);
    const stranger = join(dir, 'stranger.key.json');
    await saveKeyFile(stranger, generateKeyPair(), { unencrypted: true });
    await expect(
      startNode(
        { ...config, keyFile: stranger, rpc: { host: '127.0.0.1', port: 0 } },
        { log: () => undefined },
      ),
    ).rejects.toMatchObject({
      code: 'NOT_A_MEMBER',
      message: /neither a validator nor a registered observer/,
    });
    expect(existsSync(config.dataDir)).toBe(false);
  });
});
