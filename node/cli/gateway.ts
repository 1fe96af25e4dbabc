/**
 * `trellis gateway`: runs an IoT edge gateway (iot/gateway/gateway.ts) until SIGINT or SIGTERM.
 */
import { resolve } from 'node:path';
import { createGateway } from '../../iot/gateway/gateway.ts';
import { loadKeyFile, resolvePassphrase } from '../keystore.ts';
import type { Command } from './commands.ts';
import { CliError, flag, integerOption, parseCommand, stringOption } from './parse.ts';

const USAGE = `Usage: trellis gateway --id GATEWAY --key FILE --dir DIR [options]

Runs an IoT edge gateway: devices publish readings to MQTT topic trellis/GATEWAY/readings (QoS 1)
or POST them to http://HOST:PORT/readings; each reading is acknowledged once it is on disk. Every
window (the gateway's windowMs in the iot contract) is put under a Merkle root, encrypted for the
enterprise's authorised lenders, kept in DIR/batches and anchored on chain with the gateway's key.
GET /proof?device=ID&n=N serves the inclusion proof of one reading; GET /status the counters.

Options:
  --id GATEWAY           gateway id registered in the iot contract
  --key FILE             the gateway's key file (its address must be the registered one)
  --passphrase-file FILE passphrase of an encrypted key file (or TRELLIS_PASSPHRASE)
  --dir DIR              data directory (readings log, batches)
  --rpc URL              node JSON-RPC URL (default http://127.0.0.1:8545)
  --contract NAME        iot contract name (default iot)
  --mqtt-port N          port of the embedded MQTT broker (default 1883)
  --mqtt-host HOST       address the embedded broker binds (default 127.0.0.1)
  --mqtt-url URL         use an external broker instead (e.g. mqtt://broker:1883)
  --no-mqtt              no MQTT ingest (HTTP only)
  --http-port N          HTTP port for ingest, proofs and status (default 8090; 0 = any)
  --http-host HOST       address HTTP binds (default 127.0.0.1)
  --close-delay-ms N     wait after a window's end before closing it (default 200)
  --compact-log-bytes N  compact the readings log after it grew N bytes (default 8 MiB)
  --proof-retention-ms N anchored windows older than N ms leave the proof index (default 1 day;
                         their proofs stay available with &seqNo=)
  --max-indexed-readings N  bound of the proof index (default 5,000,000; oldest anchored windows
                         leave first; readings are refused with OVERLOADED if windows waiting for
                         their anchor fill it)
  -h, --help             show this help`;

/** The `trellis gateway` command. */
export const gatewayCommand: Command = {
  name: 'gateway',
  summary: 'Run an IoT edge gateway (MQTT/HTTP ingest, durable log, Merkle anchoring, proofs)',
  async run(argv) {
    const parsed = parseCommand(
      argv,
      {
        id: { type: 'string' },
        key: { type: 'string' },
        'passphrase-file': { type: 'string' },
        dir: { type: 'string' },
        rpc: { type: 'string' },
        contract: { type: 'string' },
        'mqtt-port': { type: 'string' },
        'mqtt-host': { type: 'string' },
        'mqtt-url': { type: 'string' },
        'no-mqtt': { type: 'boolean' },
        'http-port': { type: 'string' },
        'http-host': { type: 'string' },
        'close-delay-ms': { type: 'string' },
        'compact-log-bytes': { type: 'string' },
        'proof-retention-ms': { type: 'string' },
        'max-indexed-readings': { type: 'string' },
      },
      USAGE,
    );
    if (parsed.help) {
      console.log(USAGE);
      return 0;
    }
    const v = parsed.values;
    const need = (name: string): string => {
      const s = stringOption(v, name);
      if (s === undefined) throw new CliError('USAGE', `--${name} is required`, { usage: USAGE });
      return s;
    };
    const gatewayId = need('id');
    const keyFile = need('key');
    const dir = resolve(need('dir'));
    const passphraseFile = stringOption(v, 'passphrase-file');
    const passphrase = resolvePassphrase(passphraseFile === undefined ? {} : { passphraseFile });
    const key = await loadKeyFile(keyFile, {
      ...(passphrase === undefined ? {} : { passphrase }),
      allowUnencrypted: true,
    });
    const mqttUrl = stringOption(v, 'mqtt-url');
    const mqttPort = stringOption(v, 'mqtt-port');
    if (mqttUrl !== undefined && mqttPort !== undefined) {
      throw new CliError('USAGE', '--mqtt-url and --mqtt-port exclude each other', { usage: USAGE });
    }
    const mqtt = flag(v, 'no-mqtt')
      ? null
      : mqttUrl !== undefined
        ? { url: mqttUrl }
        : {
            port: mqttPort === undefined ? 1883 : integerOption(mqttPort, 'mqtt-port', 0, 65535, USAGE),
            host: stringOption(v, 'mqtt-host') ?? '127.0.0.1',
          };
    const httpPort = stringOption(v, 'http-port');
    const closeDelay = stringOption(v, 'close-delay-ms');
    const compactBytes = stringOption(v, 'compact-log-bytes');
    const retention = stringOption(v, 'proof-retention-ms');
    const maxIndexed = stringOption(v, 'max-indexed-readings');
    const gateway = createGateway({
      dir,
      gatewayId,
      key,
      rpcUrl: stringOption(v, 'rpc') ?? 'http://127.0.0.1:8545',
      contract: stringOption(v, 'contract') ?? 'iot',
      mqtt,
      httpPort: httpPort === undefined ? 8090 : integerOption(httpPort, 'http-port', 0, 65535, USAGE),
      httpHost: stringOption(v, 'http-host') ?? '127.0.0.1',
      ...(closeDelay === undefined
        ? {}
        : { closeDelayMs: integerOption(closeDelay, 'close-delay-ms', 0, 600_000, USAGE) }),
      ...(compactBytes === undefined
        ? {}
        : { compactLogBytes: integerOption(compactBytes, 'compact-log-bytes', 0, 2 ** 40, USAGE) }),
      ...(retention === undefined
        ? {}
        : { proofRetentionMs: integerOption(retention, 'proof-retention-ms', 0, 2 ** 45, USAGE) }),
      ...(maxIndexed === undefined
        ? {}
        : { maxIndexedReadings: integerOption(maxIndexed, 'max-indexed-readings', 1, 1e9, USAGE) }),
    });
    await gateway.start();
    console.log(
      `trellis gateway ${gatewayId}: mqtt ${gateway.ports.mqtt ?? mqttUrl ?? 'off'}, http ${gateway.ports.http ?? 'off'}, data in ${dir}`,
    );
    await new Promise<void>((done) => {
      process.once('SIGINT', () => done());
      process.once('SIGTERM', () => done());
    });
    await gateway.stop();
    console.log(`trellis gateway ${gatewayId}: stopped (${JSON.stringify(gateway.stats)})`);
    return 0;
  },
};
