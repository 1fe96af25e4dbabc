/**
 * A TCP fault proxy between the nodes of a local cluster, for network partitions without root or
 * network namespaces. Every directed link (node `from` dialling node `to`) gets its own listener;
 * node `from` is configured to reach node `to` only at that listener (its genesis copy lists the
 * proxy address as `to`'s p2p address), and the proxy forwards to `to`'s real port.
 *
 * A partition cuts every link between two sides, both directions: the proxied connections on those
 * links are reset (a connection dialled by A also carries B's traffic to A, so cutting it cuts both
 * ways) and new connections on them are reset as soon as they are accepted, until `heal()`.
 *
 * Why nothing can go around it: the nodes' libp2p runs without identify or any discovery, so a
 * peer's addresses come only from configuration (the proxy addresses) and from successful dials
 * (again the proxy address); the real listen port is never learned. test/chaos/faultProxy.test.ts
 * checks this outcome on real p2p services: a cut link stays down through repeated redials.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { TrellisError } from '../../core/errors.ts';

/** Reasons the fault proxy refuses a call. */
export type FaultProxyErrorCode =
  /** A bad node index, side list or port. */
  | 'BAD_INPUT'
  /** A listener could not bind its port. */
  | 'LISTEN_FAILED';

/** Raised by the fault proxy; `meta` says what was wrong. */
export class FaultProxyError extends TrellisError<FaultProxyErrorCode> {}

/** Options of {@link createFaultProxy}. */
export interface FaultProxyOptions {
  /** Real p2p port of each node, by node index (all on 127.0.0.1). */
  readonly targets: readonly number[];
  /** First listener port; link (from, to) listens on `basePort + from * n + to`. Below 32768. */
  readonly basePort: number;
  /**
   * Most proxied connections open at once per link; more are reset. libp2p keeps one connection
   * per peer pair (two while simultaneous dials settle), so this only bounds a misbehaving dialer.
   * Default 16.
   */
  readonly maxConnectionsPerLink?: number;
}

/** Counters since start. */
export interface FaultProxyStats {
  /** Connections forwarded to their target. */
  readonly forwarded: number;
  /** Connections reset on arrival because their link was cut (or over the per-link bound). */
  readonly refused: number;
  /** Open connections reset by a partition. */
  readonly cut: number;
  /** Proxied connections open now. */
  readonly open: number;
}

/** A running fault proxy. */
export interface FaultProxy {
  /** Number of nodes. */
  readonly size: number;
  /** The listener port node `from` dials to reach node `to`. */
  port(from: number, to: number): number;
  /** The same as a libp2p multiaddr, e.g. `/ip4/127.0.0.1/tcp/28001`. */
  addr(from: number, to: number): string;
  /** Binds every listener. */
  start(): Promise<void>;
  /**
   * Cuts every link between nodes on different sides, both directions, until {@link heal}.
   * `sides` must name every node exactly once, in at least two non-empty sides. Replaces any
   * partition in force.
   */
  partition(sides: ReadonlyArray<readonly number[]>): void;
  /** Restores every link. Connections are not restored: the nodes redial. */
  heal(): void;
  /** True while the link from `from` to `to` is cut. */
  isCut(from: number, to: number): boolean;
  stats(): FaultProxyStats;
  /** Closes every listener and connection. Idempotent. */
  stop(): Promise<void>;
}

interface Link {
  readonly from: number;
  readonly to: number;
  readonly server: Server;
  /** Open proxied pairs (downstream, upstream); bounded by maxConnectionsPerLink. */
  readonly pairs: Set<readonly [Socket, Socket]>;
}

/** Creates a fault proxy for `targets.length` nodes; nothing listens until `start()`. */
export function createFaultProxy(options: FaultProxyOptions): FaultProxy {
  const n = options.targets.length;
  const maxPerLink = options.maxConnectionsPerLink ?? 16;
  if (n < 2) throw new FaultProxyError('BAD_INPUT', 'targets: at least two nodes', { n });
  for (const [i, p] of options.targets.entries()) {
    if (!Number.isInteger(p) || p < 1 || p > 65_535) {
      throw new FaultProxyError('BAD_INPUT', `targets[${i}]: expected a TCP port, got ${p}`, { index: i });
    }
  }
  if (!Number.isInteger(options.basePort) || options.basePort < 1024 || options.basePort + n * n > 32_768) {
    throw new FaultProxyError('BAD_INPUT', 'basePort: the listeners must fit between 1024 and 32767', {
      basePort: options.basePort,
      listeners: n * n,
    });
  }
  /** side[i]: node i's side in the partition in force, or null when healed. */
  let side: number[] | null = null;
  let forwarded = 0;
  let refused = 0;
  let cutCount = 0;
  const links: Link[] = [];

  const index = (i: number, what: string): number => {
    if (!Number.isInteger(i) || i < 0 || i >= n) {
      throw new FaultProxyError('BAD_INPUT', `${what}: expected a node index 0..${n - 1}, got ${i}`, {
        [what]: i,
      });
    }
    return i;
  };
  const port = (from: number, to: number): number => {
    index(from, 'from');
    index(to, 'to');
    if (from === to) throw new FaultProxyError('BAD_INPUT', 'from and to: a node does not dial itself');
    return options.basePort + from * n + to;
  };
  const isCut = (from: number, to: number): boolean => side !== null && side[from] !== side[to];

  function reset(pair: readonly [Socket, Socket]): void {
    for (const s of pair) s.resetAndDestroy();
  }

  function onConnection(link: Link, down: Socket): void {
    if (isCut(link.from, link.to) || link.pairs.size >= maxPerLink) {
      refused++;
      down.resetAndDestroy();
      return;
    }
    const up = connect({ host: '127.0.0.1', port: options.targets[link.to]! });
    const pair = [down, up] as const;
    link.pairs.add(pair);
    forwarded++;
    down.setNoDelay(true);
    up.setNoDelay(true);
    // Piped both ways; an end on one side ends the other, an error or close anywhere closes both.
    down.pipe(up);
    up.pipe(down);
    const close = (): void => {
      if (!link.pairs.delete(pair)) return;
      down.destroy();
      up.destroy();
    };
    for (const s of pair) {
      s.on('error', close);
      s.on('close', close);
    }
  }

  const proxy: FaultProxy = {
    size: n,
    port,
    addr: (from, to) => `/ip4/127.0.0.1/tcp/${port(from, to)}`,
    async start() {
      if (links.length > 0) return;
      for (let from = 0; from < n; from++) {
        for (let to = 0; to < n; to++) {
          if (from === to) continue;
          const pairs = new Set<readonly [Socket, Socket]>();
          const server = createServer({ noDelay: true });
          const link: Link = { from, to, server, pairs };
          server.on('connection', (s) => onConnection(link, s));
          links.push(link);
          const p = port(from, to);
          await new Promise<void>((resolve, reject) => {
            server.once('error', (err) =>
              reject(new FaultProxyError('LISTEN_FAILED', `listen on ${p}: ${err.message}`, { port: p })),
            );
            server.listen(p, '127.0.0.1', () => resolve());
          }).catch(async (err: unknown) => {
            await proxy.stop();
            throw err;
          });
        }
      }
    },
    partition(sides) {
      if (
        !Array.isArray(sides) ||
        sides.length < 2 ||
        sides.some((s) => !Array.isArray(s) || s.length === 0)
      ) {
        throw new FaultProxyError('BAD_INPUT', 'sides: expected at least two non-empty lists of nodes');
      }
      const next = new Array<number>(n).fill(-1);
      (sides as ReadonlyArray<readonly number[]>).forEach((nodes, k) => {
        for (const i of nodes) {
          if (next[index(i, 'node')] !== -1) {
            throw new FaultProxyError('BAD_INPUT', `sides: node ${i} named twice`, { node: i });
          }
          next[i] = k;
        }
      });
      const missing = next.findIndex((k) => k === -1);
      if (missing >= 0)
        throw new FaultProxyError('BAD_INPUT', `sides: node ${missing} on no side`, { node: missing });
      side = next;
      for (const link of links) {
        if (!isCut(link.from, link.to)) continue;
        for (const pair of link.pairs) {
          link.pairs.delete(pair);
          cutCount++;
          reset(pair);
        }
      }
    },
    heal() {
      side = null;
    },
    isCut: (from, to) => isCut(index(from, 'from'), index(to, 'to')),
    stats: () => ({
      forwarded,
      refused,
      cut: cutCount,
      open: links.reduce((a, l) => a + l.pairs.size, 0),
    }),
    async stop() {
      const all = links.splice(0);
      await Promise.all(
        all.map(async (link) => {
          for (const pair of link.pairs) reset(pair);
          link.pairs.clear();
          if (!link.server.listening) return;
          await new Promise<void>((done) => link.server.close(() => done()));
        }),
      );
    },
  };
  return proxy;
}
