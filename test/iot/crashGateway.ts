/**
 * A gateway process for the crash-safety test (test/iot/e2e.test.ts): runs the real gateway
 * (HTTP ingest only, compaction after every anchor) and, when asked, SIGKILLs itself at the
 * `hit`-th time it reaches fault point `at` (a step of compaction or anchoring), recording the
 * point in DIR/faults.txt first (synchronously, so the record survives the kill).
 *
 *   npx node test/iot/crashGateway.ts '{"dir":..,"gatewayId":..,"rpcUrl":..,"httpPort":..,"at":"compact:renamed","hit":2}'
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { utf8 } from '../../core/bytes.ts';
import { sha256 } from '../../core/hash.ts';
import { keyPairFromSecret } from '../../core/keys.ts';
import { createGateway } from '../../iot/gateway/gateway.ts';

/** Configuration passed as the first argument, JSON. */
export interface CrashGatewayConfig {
  readonly dir: string;
  readonly gatewayId: string;
  /** Name of the test key (test/iot/network.ts testKey). */
  readonly keyName: string;
  readonly rpcUrl: string;
  readonly httpPort: number;
  readonly at: string | null;
  readonly hit: number;
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as CrashGatewayConfig;
let hits = 0;
const gateway = createGateway({
  dir: cfg.dir,
  gatewayId: cfg.gatewayId,
  key: keyPairFromSecret(sha256(utf8(`trellis.iot-test.${cfg.keyName}`))),
  rpcUrl: cfg.rpcUrl,
  mqtt: null,
  httpPort: cfg.httpPort,
  closeDelayMs: 50,
  compactLogBytes: 0,
  faultPoint(name) {
    if (name !== cfg.at || ++hits !== cfg.hit) return;
    appendFileSync(join(cfg.dir, 'faults.txt'), `${name}\n`);
    process.kill(process.pid, 'SIGKILL');
  },
});
await gateway.start();
process.once('SIGTERM', () => void gateway.stop().then(() => process.exit(0)));
