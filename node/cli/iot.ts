/**
 * `trellis iot simulate` (devices of a plant or a warehouse publishing over MQTT under a scenario,
 * optionally provisioning them on chain first) and `trellis iot report` (the lender's HTML
 * operations assessment for an enterprise and a time range).
 */
import { writeFileSync } from 'node:fs';
import { fromHex } from '../../core/bytes.ts';
import { createClient, createWallet } from '../../rpc/sdk/index.ts';
import { buildReport } from '../../iot/report.ts';
import { createSimulator, provisionSite, SCENARIOS, SITES, type Scenario } from '../../iot/simulate.ts';
import { loadKeyFile, resolvePassphrase } from '../keystore.ts';
import type { Command } from './commands.ts';
import { CliError, flag, integerOption, parseCommand, stringOption, type ParsedValues } from './parse.ts';

const SIMULATE_USAGE = `Usage: trellis iot simulate --gateway ID --site plant|warehouse [options]

Devices of a machining plant (power and water meters, two CNC machines, line output, people
counter) or a warehouse (power meter, vehicle gate, weight sensor, people counter) publish signed
readings to the gateway's MQTT topic trellis/ID/readings with QoS 1.

Scenarios: normal, decline (values fall by 2 per mille of base per 100 ms after the event,
to at most 90% down), sudden-stop
(machines and output to zero, power to idle), tampered (every 5th signed reading altered after
signing: the gateway rejects it), gateway-offline (the devices cannot reach the gateway for
--offline-ms: they buffer and deliver late).

Options:
  --gateway ID           gateway id (topic trellis/ID/readings)
  --site NAME            plant or warehouse
  --scenario NAME        ${SCENARIOS.join(' | ')} (default normal)
  --mqtt URL             broker (default mqtt://127.0.0.1:1883)
  --interval-ms N        ms between two readings of a device (default 250)
  --event-after-ms N     when the scenario's event starts (default 5000)
  --offline-ms N         link-down time of gateway-offline (default 5000)
  --duration-ms N        stop after N ms (default: run until Ctrl-C)
  --seed TEXT            seed of device keys and noise (default demo)
  --provision            first register gateway, devices and indicators (needs the options below)
  --rpc URL              node (default http://127.0.0.1:8545)
  --key FILE             key file of an admin of the enterprise (for --provision)
  --passphrase-file FILE passphrase of an encrypted key file
  --enterprise ORG       owner enterprise (for --provision)
  --gateway-public-key HEX  the gateway's Ed25519 public key (for --provision)
  --window-ms N          gateway window (default 1000)
  --heartbeat-ms N       heartbeat before OFFLINE (default 10000)
  -h, --help             show this help`;

const REPORT_USAGE = `Usage: trellis iot report --enterprise ORG --from T1 --to T2 [--at-height H] [--out FILE] [--rpc URL]

Writes the HTML operations assessment of ORG for windows in [T1, T2] (ISO 8601 times or ms since
the epoch): a chart per indicator, the alerts, the score, the anchor range and the report's hash.

Options:
  --enterprise ORG       the enterprise (membership organisation id)
  --from T1 --to T2      the range
  --out FILE             write here (default: report-ORG.html)
  --rpc URL              node (default http://127.0.0.1:8545)
  --contract NAME        iot contract name (default iot)
  --at-height H          read the chain as of block H (default: one below the head); the same H
                         gives the same report, byte for byte
  -h, --help             show this help`;

const USAGE = `Usage: trellis iot simulate|report ...

  simulate   devices publishing readings over MQTT under a scenario
  report     the lender's HTML operations assessment

Run trellis iot <command> --help for the options.`;

function timeOption(values: ParsedValues, name: string, usage: string): number {
  const s = stringOption(values, name);
  if (s === undefined) throw new CliError('USAGE', `--${name} is required`, { usage });
  if (/^\d+$/.test(s)) return Number(s);
  const t = Date.parse(s);
  if (Number.isNaN(t))
    throw new CliError('USAGE', `--${name}: expected an ISO 8601 time or ms since the epoch, got "${s}"`, {
      usage,
    });
  return t;
}

async function simulate(argv: string[]): Promise<number> {
  const parsed = parseCommand(
    argv,
    {
      gateway: { type: 'string' },
      site: { type: 'string' },
      scenario: { type: 'string' },
      mqtt: { type: 'string' },
      'interval-ms': { type: 'string' },
      'event-after-ms': { type: 'string' },
      'offline-ms': { type: 'string' },
      'duration-ms': { type: 'string' },
      seed: { type: 'string' },
      provision: { type: 'boolean' },
      rpc: { type: 'string' },
      key: { type: 'string' },
      'passphrase-file': { type: 'string' },
      enterprise: { type: 'string' },
      'gateway-public-key': { type: 'string' },
      'window-ms': { type: 'string' },
      'heartbeat-ms': { type: 'string' },
    },
    SIMULATE_USAGE,
  );
  if (parsed.help) {
    console.log(SIMULATE_USAGE);
    return 0;
  }
  const v = parsed.values;
  const int = (name: string, def: number, max = 86_400_000) => {
    const s = stringOption(v, name);
    return s === undefined ? def : integerOption(s, name, 1, max, SIMULATE_USAGE);
  };
  const gatewayId = stringOption(v, 'gateway');
  if (gatewayId === undefined)
    throw new CliError('USAGE', '--gateway is required', { usage: SIMULATE_USAGE });
  const siteName = stringOption(v, 'site') ?? '';
  const site = SITES[siteName];
  if (site === undefined)
    throw new CliError('USAGE', `--site: expected plant or warehouse, got "${siteName}"`, {
      usage: SIMULATE_USAGE,
    });
  const scenario = (stringOption(v, 'scenario') ?? 'normal') as Scenario;
  if (!SCENARIOS.includes(scenario)) {
    throw new CliError('USAGE', `--scenario: expected one of ${SCENARIOS.join(', ')}, got "${scenario}"`, {
      usage: SIMULATE_USAGE,
    });
  }
  const seed = stringOption(v, 'seed') ?? 'demo';
  if (flag(v, 'provision')) {
    const keyFile = stringOption(v, 'key');
    const enterprise = stringOption(v, 'enterprise');
    const gwKey = stringOption(v, 'gateway-public-key');
    if (keyFile === undefined || enterprise === undefined || gwKey === undefined) {
      throw new CliError('USAGE', '--provision needs --key, --enterprise and --gateway-public-key', {
        usage: SIMULATE_USAGE,
      });
    }
    const passphraseFile = stringOption(v, 'passphrase-file');
    const passphrase = resolvePassphrase(passphraseFile === undefined ? {} : { passphraseFile });
    const key = await loadKeyFile(keyFile, {
      ...(passphrase === undefined ? {} : { passphrase }),
      allowUnencrypted: true,
    });
    const client = createClient({ url: stringOption(v, 'rpc') ?? 'http://127.0.0.1:8545' });
    try {
      await provisionSite(client, createWallet(client, key), {
        enterprise,
        gatewayId,
        gatewayPublicKey: fromHex(gwKey, 'gateway-public-key', 32),
        site,
        windowMs: int('window-ms', 1000),
        heartbeatMs: int('heartbeat-ms', 10_000),
        seed,
      });
    } finally {
      client.close();
    }
    console.log(
      `trellis iot simulate: provisioned gateway ${gatewayId}, ${site.devices.length} devices, ${site.indicators.length} indicators`,
    );
  }
  const sim = createSimulator({
    mqttUrl: stringOption(v, 'mqtt') ?? 'mqtt://127.0.0.1:1883',
    gatewayId,
    site,
    scenario,
    intervalMs: int('interval-ms', 250),
    eventAfterMs: int('event-after-ms', 5_000),
    offlineForMs: int('offline-ms', 5_000),
    seed,
  });
  await sim.start();
  console.log(
    `trellis iot simulate: ${site.devices.length} ${site.site} devices publishing to ${gatewayId}, scenario ${scenario}`,
  );
  const duration = stringOption(v, 'duration-ms');
  await new Promise<void>((done) => {
    if (duration !== undefined)
      setTimeout(done, integerOption(duration, 'duration-ms', 1, 86_400_000 * 30, SIMULATE_USAGE));
    process.once('SIGINT', () => done());
    process.once('SIGTERM', () => done());
  });
  await sim.stop();
  console.log(
    `trellis iot simulate: published ${sim.published}, acknowledged ${sim.acked.size}, unacknowledged ${sim.unacked.size}, tampered ${sim.tampered.length}`,
  );
  return 0;
}

async function report(argv: string[]): Promise<number> {
  const parsed = parseCommand(
    argv,
    {
      enterprise: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      out: { type: 'string' },
      rpc: { type: 'string' },
      contract: { type: 'string' },
      'at-height': { type: 'string' },
    },
    REPORT_USAGE,
  );
  if (parsed.help) {
    console.log(REPORT_USAGE);
    return 0;
  }
  const v = parsed.values;
  const enterprise = stringOption(v, 'enterprise');
  if (enterprise === undefined)
    throw new CliError('USAGE', '--enterprise is required', { usage: REPORT_USAGE });
  const from = timeOption(v, 'from', REPORT_USAGE);
  const to = timeOption(v, 'to', REPORT_USAGE);
  if (to <= from) throw new CliError('USAGE', '--to must be after --from', { usage: REPORT_USAGE });
  const client = createClient({ url: stringOption(v, 'rpc') ?? 'http://127.0.0.1:8545' });
  try {
    const at = stringOption(v, 'at-height');
    const r = await buildReport(client, {
      enterprise,
      from,
      to,
      contract: stringOption(v, 'contract') ?? 'iot',
      ...(at === undefined
        ? {}
        : { atHeight: integerOption(at, 'at-height', 0, Number.MAX_SAFE_INTEGER, REPORT_USAGE) }),
    });
    const out = stringOption(v, 'out') ?? `report-${enterprise}.html`;
    writeFileSync(out, r.html);
    const alerts = r.states.filter((s) => s.to === 'ALERT').length;
    console.log(
      `trellis iot report: ${out}: ${r.anchors.length} anchored windows, ${alerts} alerts, score ${r.score.score}, as of block ${r.atHeight}, hash ${r.hash}`,
    );
  } finally {
    client.close();
  }
  return 0;
}

/** The `trellis iot` command. */
export const iotCommand: Command = {
  name: 'iot',
  summary: 'IoT supervision: simulate devices over MQTT, build the lender report',
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === 'simulate') return simulate(rest);
    if (sub === 'report') return report(rest);
    if (sub === undefined || sub === '--help' || sub === '-h') {
      console.log(USAGE);
      return sub === undefined ? 2 : 0;
    }
    throw new CliError('USAGE', `unknown iot command "${sub}"`, { usage: USAGE });
  },
};
