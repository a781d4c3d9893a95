import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { run } from '@minicloud/host';
import type {
  ConnectResult,
  PingProbeRequest,
  PingProbeResult,
  PingRequest,
  PingResult,
  ProbeRequest,
  ProbeResult,
} from './netns-protocol.js';
import { linkExists, routeDestinations } from './host-probes.js';
import { REPO_ROOT } from './paths.js';

export type { ConnectResult, ProbeResult } from './netns-protocol.js';

const AGENT = fileURLToPath(new URL('./netns-agent.ts', import.meta.url));

/**
 * The e2e tests' "internet": a network namespace joined to the host by a veth pair. The host end
 * is what minicloud is told to use as its uplink (MINICLOUD_UPLINK); the namespace end holds the
 * "outside" address, where a helper process (netns-agent.ts) runs servers and clients. Every
 * address lives on these two devices in one TEST-NET /24 that nothing else on the host uses;
 * no default route is added anywhere, so no traffic can leave the machine through it.
 *
 *   host:       <prefix>up   198.51.100.1/24   (the uplink; Elastic IPs are /32s on it)
 *   namespace:  <prefix>-inet, device <prefix>in  198.51.100.2/24, no default route
 *               (+ 198.51.100.3/24 ... with `extraClientIps`: more "internet clients", as
 *               secondary addresses, so .2 stays the default source)
 *   pool:       198.51.100.16/28               (Elastic IPs: on-link for the namespace)
 *
 * A "spy" (startSpy) records, inside the namespace, the source of every TCP SYN and ICMP echo
 * request that arrives there, whether or not a server answers or a handshake completes: the
 * proof that a packet a guest should not have been able to send never left the host.
 */
export interface FakeInternet {
  /** Network namespace name (carries the prefix). */
  ns: string;
  /** Host end of the veth pair: minicloud's uplink. */
  uplink: string;
  /** The uplink's address: what outbound traffic is masqueraded to. */
  hostIp: string;
  /** The namespace's address: where the "internet" servers listen. */
  nsIp: string;
  /**
   * Addresses clients in the namespace can send from: nsIp first, then the extra ones
   * (createFakeInternet's extraClientIps), e.g. [198.51.100.2, 198.51.100.3].
   */
  clientIps: string[];
  /** /24 of both, e.g. 198.51.100.0/24. */
  cidr: string;
  /** A /28 of that /24 for Elastic IPs (MINICLOUD_ELASTIC_IP_POOL). */
  elasticIpPool: string;
  /** The helper process inside the namespace (started by startAgent). */
  agent: NetnsAgent | null;
  startAgent: () => Promise<NetnsAgent>;
  /** Start recording arriving TCP SYNs and ICMP echo requests (an nft table in the namespace). */
  startSpy: () => Promise<void>;
  /** What the spy recorded since it started or was last cleared (sorted). */
  spied: () => Promise<SpyRecord>;
  /** Forget what the spy recorded. */
  clearSpy: () => Promise<void>;
  /** Kill the agent (by its PID only), delete the veth and the namespace. Safe to repeat. */
  remove: () => Promise<void>;
}

/** What arrived in the namespace while the spy ran. */
export interface SpyRecord {
  /** "source:port" of each distinct (source address, destination port) of a TCP SYN. */
  tcpSyn: string[];
  /** Source address of each distinct sender of an ICMP echo request. */
  icmpEcho: string[];
}

const SPY_TABLE = 'spy';

/** TEST-NET-2 and TEST-NET-3 (RFC 5737): documentation ranges, never routed anywhere. */
const CANDIDATE_NETS = ['198.51.100', '203.0.113'];

async function netnsExists(name: string): Promise<boolean> {
  const r = await run('ip', ['netns', 'list']);
  return r.stdout.split('\n').some((l) => l.split(' ')[0] === name);
}

/**
 * Create the namespace and the veth pair (before minicloud starts: it is given the uplink).
 * Names: `${prefix}-inet`, `${prefix}up` (host) and `${prefix}in` (namespace); prefix at most
 * 5 characters, so every name fits in 15.
 */
export async function createFakeInternet(
  prefix: string,
  options: {
    /** More client addresses in the namespace after nsIp (.3, .4, ...; at most 8). */
    extraClientIps?: number;
  } = {},
): Promise<FakeInternet> {
  if (!/^[a-z][a-z0-9]{1,4}$/.test(prefix)) throw new Error(`bad prefix ${prefix}`);
  const extra = options.extraClientIps ?? 0;
  if (!Number.isInteger(extra) || extra < 0 || extra > 8)
    throw new Error(`extraClientIps must be 0-8, got ${extra}`);
  const ns = `${prefix}-inet`;
  const uplink = `${prefix}up`;
  const inner = `${prefix}in`;
  // A /24 no interface or route of the host uses yet (another run may hold the first one).
  const taken = await routeDestinations();
  const net = CANDIDATE_NETS.find((n) => !taken.some((d) => d.startsWith(`${n}.`)));
  if (!net) {
    throw new Error(
      `both TEST-NET /24s (${CANDIDATE_NETS.join(', ')}) are in use on this host; another run holds them`,
    );
  }
  const fi: FakeInternet = {
    ns,
    uplink,
    hostIp: `${net}.1`,
    nsIp: `${net}.2`,
    clientIps: Array.from({ length: extra + 1 }, (_, i) => `${net}.${2 + i}`),
    cidr: `${net}.0/24`,
    elasticIpPool: `${net}.16/28`,
    agent: null,
    startAgent: async () => {
      fi.agent ??= await NetnsAgent.start(ns);
      return fi.agent;
    },
    startSpy: async () => {
      await run('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], {
        input: [
          `table ip ${SPY_TABLE} {`,
          `  set tcp_syn { type ipv4_addr . inet_service; flags dynamic; }`,
          `  set icmp_echo { type ipv4_addr; flags dynamic; }`,
          `  chain pre {`,
          `    type filter hook prerouting priority -300; policy accept;`,
          `    tcp flags & (syn | ack) == syn add @tcp_syn { ip saddr . tcp dport }`,
          `    icmp type echo-request add @icmp_echo { ip saddr }`,
          `  }`,
          `}`,
          '',
        ].join('\n'),
      });
    },
    spied: async () => {
      const elems = async (set: string) => {
        const out = (
          await run('ip', ['netns', 'exec', ns, 'nft', '-j', 'list', 'set', 'ip', SPY_TABLE, set])
        ).stdout;
        const items = (JSON.parse(out) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables;
        return items.flatMap((i) => i.set?.elem ?? []);
      };
      const tcpSyn = (await elems('tcp_syn')).map((e) => {
        const c = (e as { concat?: [string, number] }).concat;
        return c ? `${c[0]}:${c[1]}` : JSON.stringify(e);
      });
      const icmpEcho = (await elems('icmp_echo')).map((e) =>
        typeof e === 'string' ? e : JSON.stringify(e),
      );
      return { tcpSyn: tcpSyn.sort(), icmpEcho: icmpEcho.sort() };
    },
    clearSpy: async () => {
      await run('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], {
        input: `flush set ip ${SPY_TABLE} tcp_syn\nflush set ip ${SPY_TABLE} icmp_echo\n`,
      });
    },
    remove: async () => {
      const problems: string[] = [];
      if (fi.agent) {
        await fi.agent.stop().catch((e) => problems.push(`agent: ${String(e)}`));
      }
      // Deleting one end deletes both, wherever the other end is.
      if (await linkExists(uplink)) {
        await run('ip', ['link', 'del', 'dev', uplink]).catch((e) =>
          problems.push(`ip link del ${uplink}: ${String(e)}`),
        );
      }
      if (await netnsExists(ns)) {
        const pids = (await run('ip', ['netns', 'pids', ns])).stdout.trim();
        if (pids) problems.push(`processes still in ${ns}: ${pids.replace(/\n/g, ' ')}`);
        await run('ip', ['netns', 'delete', ns]).catch((e) =>
          problems.push(`ip netns delete ${ns}: ${String(e)}`),
        );
      }
      if (problems.length) throw new Error(`removing the fake internet: ${problems.join('; ')}`);
    },
  };
  try {
    await run('ip', ['netns', 'add', ns]);
    await run('ip', ['link', 'add', uplink, 'type', 'veth', 'peer', 'name', inner, 'netns', ns]);
    await run('ip', ['-batch', '-'], {
      input:
        [
          `addr add ${fi.hostIp}/24 dev ${uplink}`,
          `link set dev ${uplink} up`,
          // No IPv6 on the test link: nothing but what the test sends.
        ].join('\n') + '\n',
    });
    await run('sysctl', ['-q', '-w', `net.ipv6.conf.${uplink}.disable_ipv6=1`]);
    await run('ip', [
      'netns',
      'exec',
      ns,
      'sh',
      '-ec',
      [
        `sysctl -q -w net.ipv6.conf.all.disable_ipv6=1`,
        `ip link set dev lo up`,
        `ip addr add ${fi.nsIp}/24 dev ${inner}`,
        // Secondary addresses (same /24): nsIp stays every client's default source.
        ...fi.clientIps.slice(1).map((ip) => `ip addr add ${ip}/24 dev ${inner}`),
        `ip link set dev ${inner} up`,
      ].join('; '),
    ]);
  } catch (e) {
    await fi.remove().catch(() => {});
    throw e;
  }
  return fi;
}

/** An SSH connection held open by the agent. */
export interface NetnsSshSession {
  session: number;
  /** One command on this same connection; its stdout (rejects on a non-zero exit). */
  run: (command: string, timeoutMs?: number) => Promise<string>;
  close: () => Promise<void>;
}

/** The test's handle on netns-agent.ts running inside the namespace. */
export class NetnsAgent {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: any) => void; reject: (e: Error) => void }
  >();
  private stderr = '';

  private constructor(
    readonly ns: string,
    private readonly child: ChildProcess,
    /** PID of the agent (`ip netns exec` execs node in place, so it is the child's PID). */
    readonly pid: number,
  ) {}

  static start(ns: string): Promise<NetnsAgent> {
    return new Promise((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', AGENT], {
        cwd: REPO_ROOT,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let agent: NetnsAgent | null = null;
      let early = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`netns agent in ${ns} did not start in 30 s: ${early}`));
      }, 30_000);
      child.stderr!.on('data', (d: Buffer) => {
        early += d.toString();
        if (agent) agent.stderr += d.toString();
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        if (!agent) reject(new Error(`netns agent exited (${code ?? signal}): ${early}`));
        for (const p of agent?.pending.values() ?? []) {
          p.reject(new Error(`netns agent exited (${code ?? signal}): ${agent?.stderr}`));
        }
        agent?.pending.clear();
      });
      createInterface({ input: child.stdout! }).on('line', (line) => {
        let msg: any;
        try {
          msg = JSON.parse(line);
        } catch {
          return;
        }
        if (msg.ready) {
          clearTimeout(timer);
          agent = new NetnsAgent(ns, child, child.pid!);
          resolve(agent);
          return;
        }
        const p = agent?.pending.get(msg.id);
        if (!p) return;
        agent!.pending.delete(msg.id);
        if (msg.ok) p.resolve(msg.result);
        else p.reject(new Error(msg.error));
      });
    });
  }

  private call<T>(op: string, args: object = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        reject(new Error(`netns agent is not running: ${this.stderr}`));
        return;
      }
      this.pending.set(id, { resolve, reject });
      this.child.stdin!.write(`${JSON.stringify({ id, op, ...args })}\n`);
    });
  }

  /** A TCP server in the namespace answering each connection with the caller's address. */
  listen(port: number): Promise<{ port: number }> {
    return this.call('listen', { port });
  }

  /** Peer addresses the listen() servers (or the one on `port`) have seen, in order. */
  peers(port?: number): Promise<string[]> {
    return this.call('peers', port === undefined ? {} : { port });
  }

  /** One TCP connection; `localAddress` picks the source (one of the namespace's addresses). */
  connect(
    host: string,
    port: number,
    timeoutMs = 3000,
    localAddress?: string,
  ): Promise<ConnectResult> {
    return this.call('connect', {
      host,
      port,
      timeoutMs,
      ...(localAddress ? { localAddress } : {}),
    });
  }

  probe(args: ProbeRequest): Promise<ProbeResult> {
    return this.call('probe', args);
  }

  ssh(
    host: string,
    privateKey: string,
    command: string,
    timeoutMs = 20_000,
    localAddress?: string,
  ): Promise<string> {
    return this.call('ssh', {
      host,
      privateKey,
      command,
      timeoutMs,
      ...(localAddress ? { localAddress } : {}),
    });
  }

  /** busybox ping from the namespace; no reply is a result (received: 0), not an error. */
  ping(args: PingRequest): Promise<PingResult> {
    return this.call('ping', args);
  }

  /**
   * One ping process sending every intervalMs until the first reply; rejects at the deadline.
   * firstReplyAt is the wall-clock time (epoch ms) that reply arrived.
   */
  pingProbe(args: PingProbeRequest): Promise<PingProbeResult> {
    return this.call('pingProbe', args);
  }

  /** An SSH connection (as root) that stays open for several commands (sshRun). */
  async sshOpen(
    host: string,
    privateKey: string,
    options: { timeoutMs?: number; localAddress?: string } = {},
  ): Promise<NetnsSshSession> {
    const { session } = await this.call<{ session: number }>('sshOpen', {
      host,
      privateKey,
      ...options,
    });
    return {
      session,
      run: (command, timeoutMs = 20_000) =>
        this.call<string>('sshRun', { session, command, timeoutMs }),
      close: async () => void (await this.call('sshClose', { session })),
    };
  }

  /** End the agent: close its stdin, then SIGKILL this PID if it lingers. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.stdin!.end();
    const timer = setTimeout(() => process.kill(this.pid, 'SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}
