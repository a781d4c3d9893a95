/**
 * Helpers for the network integration tests: real kernel objects, all named with a random
 * test prefix ('mtn' + 2 chars) so cleanup (and the "nothing leaked" checks) find exactly ours.
 */
import { cidrsOverlap, intToIp, ipToInt } from '@minicloud/domain';
import { closeSync, openSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { run, startDetached, type RunResult } from '@minicloud/host';
import { LinuxNetworkDriver } from '@minicloud/network';

export const T = 60_000;

export function testPrefix(): string {
  const chars = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const b = randomBytes(2);
  return `mtn${chars[b[0]! % 36]}${chars[b[1]! % 36]}`;
}

/** A fresh state root; mode 0755 because dnsmasq (running as nobody) must reach into it. */
export async function stateRoot(): Promise<string> {
  const dir = await mkdtemp('/tmp/minicloud-test-net-');
  await chmod(dir, 0o755);
  return dir;
}

/** Blocks of the given size that overlap no route or address on this host. */
export async function freeBlocks(
  count: number,
  base: string,
  prefixLength: number,
  step: number,
): Promise<string[]> {
  const r = await run('ip', ['-j', 'route', 'show', 'table', 'all']);
  const used = (JSON.parse(r.stdout) as { dst?: string }[])
    .map((x) => x.dst ?? '')
    .filter((d) => /^[0-9.]+(\/[0-9]+)?$/.test(d))
    .map((d) => (d.includes('/') ? d : `${d}/32`));
  const out: string[] = [];
  let n = ipToInt(base) + (randomBytes(1)[0]! % 32) * step;
  for (let tries = 0; out.length < count && tries < 1000; tries++, n += step) {
    const cidr = `${intToIp(n)}/${prefixLength}`;
    if (!used.some((u) => cidrsOverlap(u, cidr)) && !out.includes(cidr)) out.push(cidr);
  }
  if (out.length < count) throw new Error('no free address blocks for the test');
  return out;
}

export function ip(args: string[], okExitCodes: number[] = []): Promise<RunResult> {
  return run('ip', args, { timeoutMs: 10_000, okExitCodes });
}

/** A network namespace with lo up and a veth pair: host end `hostEnd`, namespace end eth0. */
export async function addNamespaceWithVeth(
  ns: string,
  hostEnd: string,
  mac: string,
): Promise<void> {
  await ip(['netns', 'add', ns]);
  await ip(['link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
  await ip(['-n', ns, 'link', 'set', 'eth0', 'address', mac, 'up']);
}

/** Give the namespace's eth0 another MAC, with no address left over. */
export async function setGuestMac(ns: string, mac: string): Promise<void> {
  await ip(['-n', ns, 'addr', 'flush', 'dev', 'eth0']);
  await ip(['-n', ns, 'link', 'set', 'eth0', 'down']);
  await ip(['-n', ns, 'link', 'set', 'eth0', 'address', mac]);
  await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
}

const UDHCPC_SCRIPT = `#!/bin/sh
# udhcpc event script for the tests: configure the lease and print it on one line.
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "$router" dev "$interface"
    echo "LEASE ip=$ip mask=$mask router=$router dns=$dns hostname=$hostname"
    ;;
esac
exit 0
`;

export async function writeUdhcpcScript(dir: string): Promise<string> {
  const path = join(dir, 'udhcpc.sh');
  await writeFile(path, UDHCPC_SCRIPT, { mode: 0o755 });
  return path;
}

export interface Lease {
  ip: string;
  mask: string;
  router: string;
  dns: string;
  hostname: string;
}

/** Run busybox udhcpc once in the namespace; the lease it got, or null (no offer). */
export async function dhcp(ns: string, script: string, tries = 3): Promise<Lease | null> {
  const r = await run(
    'ip',
    [
      'netns',
      'exec',
      ns,
      'busybox',
      'udhcpc',
      '-i',
      'eth0',
      '-n',
      '-q',
      '-f',
      '-s',
      script,
      '-t',
      String(tries),
      '-T',
      '1',
    ],
    { timeoutMs: 30_000, okExitCodes: [1] },
  );
  const m = /LEASE ip=(\S*) mask=(\S*) router=(\S*) dns=(\S*) hostname=(\S*)/.exec(r.stdout);
  if (r.exitCode !== 0 || !m) return null;
  return { ip: m[1]!, mask: m[2]!, router: m[3]!, dns: m[4]!, hostname: m[5]! };
}

export async function ping(target: string, ns?: string): Promise<boolean> {
  const argv = ['busybox', 'ping', '-c', '1', '-W', '2', target];
  const r = ns
    ? await run('ip', ['netns', 'exec', ns, ...argv], { timeoutMs: 10_000, okExitCodes: [1] })
    : await run(argv[0]!, argv.slice(1), { timeoutMs: 10_000, okExitCodes: [1] });
  return r.exitCode === 0;
}

export async function readIpForward(): Promise<string> {
  return (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim();
}

export async function writeIpForward(value: string): Promise<void> {
  await writeFile('/proc/sys/net/ipv4/ip_forward', `${value}\n`);
}

/**
 * Remove everything with the prefix, whatever state a failed test left: namespaces, our dnsmasq
 * processes (by pid, found through their command line), links, nft tables. Never throws.
 */
export async function sweep(prefix: string, namespaces: string[]): Promise<string[]> {
  const errors: string[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      errors.push(`${what}: ${String(e)}`);
    }
  };
  const driver = new LinuxNetworkDriver();
  for (const ns of namespaces) await attempt(`netns ${ns}`, () => ip(['netns', 'del', ns], [1]));
  await attempt('dnsmasq', async () => {
    for (const d of await driver.listOwnedDnsmasq(prefix)) {
      try {
        process.kill(d.pid, 'SIGKILL');
      } catch {
        /* gone already */
      }
    }
  });
  await attempt('links', async () => {
    const links = await driver.listOwnedLinks(prefix);
    // taps and veths first, bridges last
    links.sort((a, b) => Number(a.kind === 'bridge') - Number(b.kind === 'bridge'));
    for (const l of links) await ip(['link', 'del', 'dev', l.name], [1]);
  });
  await attempt('nft', async () => {
    for (const t of await driver.listOwnedTables(prefix)) {
      await run('nft', ['delete', 'table', ...t.split(' ')], {
        timeoutMs: 10_000,
        okExitCodes: [1],
      });
    }
  });
  return errors;
}

export interface Leftovers {
  links: string[];
  dnsmasq: number[];
  tables: string[];
  netns: string[];
}

/**
 * What is left on the host with this prefix (for "nothing leaked" assertions). Waits up to
 * waitMs for it to become empty: the kernel destroys a deleted namespace's veth pairs
 * asynchronously.
 */
export async function leftovers(prefix: string, waitMs = 5_000): Promise<Leftovers> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const l = await leftoversNow(prefix);
    const empty = !l.links.length && !l.dnsmasq.length && !l.tables.length && !l.netns.length;
    if (empty || Date.now() > deadline) return l;
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function leftoversNow(prefix: string): Promise<Leftovers> {
  const driver = new LinuxNetworkDriver();
  const ns = await ip(['-j', 'netns', 'list']);
  const netns = ns.stdout.trim()
    ? (JSON.parse(ns.stdout) as { name: string }[]).map((n) => n.name)
    : [];
  return {
    links: (await driver.listOwnedLinks(prefix)).map((l) => l.name),
    dnsmasq: (await driver.listOwnedDnsmasq(prefix)).map((d) => d.pid),
    tables: await driver.listOwnedTables(prefix),
    netns: netns.filter((n) => n.startsWith(prefix)),
  };
}

export interface NetworkTestBed {
  /** The test's state root (mode 0755: dnsmasq, running as nobody, reaches into it). */
  readonly root: string;
  /** The udhcpc event script (see dhcp). */
  readonly udhcpc: string;
  /** Lines printed after the suite (latencies worth seeing). */
  readonly timings: string[];
  /** Run argv inside a namespace. */
  inNs(ns: string, argv: string[], okExitCodes?: number[], timeoutMs?: number): Promise<RunResult>;
  /** A detached process in a namespace, its output in the state root; killed at the end. */
  spawnInNs(ns: string, argv: string[]): number;
  /** Kill the detached processes now. */
  killSpawned(): void;
}

/**
 * The set-up every network integration suite shares: a state root and udhcpc script before, and
 * after (also after a failure): the suite's own cleanup, its detached processes killed,
 * everything with the prefix swept (namespaces, dnsmasq, links, nft tables), ip_forward as it
 * was, the state root removed, timings printed. Call at the top of the suite.
 */
export function useNetworkTestBed(
  prefix: string,
  options: { title: string; namespaces: () => string[]; cleanup?: () => Promise<void> },
): NetworkTestBed {
  let ipForwardBefore: string | null = null;
  const pids: number[] = [];
  const bed = {
    root: '',
    udhcpc: '',
    timings: [] as string[],
    inNs(ns: string, argv: string[], okExitCodes: number[] = [], timeoutMs = 10_000) {
      return run('ip', ['netns', 'exec', ns, ...argv], { timeoutMs, okExitCodes });
    },
    spawnInNs(ns: string, argv: string[]): number {
      const fd = openSync(join(bed.root, `${ns}-${pids.length}.log`), 'a');
      const pid = startDetached('ip', ['netns', 'exec', ns, ...argv], fd);
      closeSync(fd);
      pids.push(pid);
      return pid;
    },
    killSpawned() {
      for (const pid of pids.splice(0)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    },
  };
  beforeAll(async () => {
    ipForwardBefore = await readIpForward();
    bed.root = await stateRoot();
    bed.udhcpc = await writeUdhcpcScript(bed.root);
  }, T);
  afterAll(async () => {
    const errors: string[] = [];
    if (options.cleanup) await options.cleanup().catch((e) => errors.push(String(e)));
    bed.killSpawned();
    errors.push(...(await sweep(prefix, options.namespaces())));
    if (ipForwardBefore !== null) await writeIpForward(ipForwardBefore);
    if (bed.root) await rm(bed.root, { recursive: true, force: true });
    if (errors.length) console.warn(`cleanup problems: ${errors.join('; ')}`);
    if (bed.timings.length) console.log(`${options.title}:\n  ${bed.timings.join('\n  ')}`);
  }, T);
  return bed;
}
