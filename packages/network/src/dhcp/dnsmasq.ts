import { assertNamePrefix } from '@minicloud/domain';
import { chmod, mkdir, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { HostCommandError, readFileIfExists, removePath, writeFileAtomic } from '@minicloud/host';
import type { OwnedDnsmasq, SetReservationsResult } from '../driver.js';
import { NetworkDriverError } from '../errors.js';
import { isMissingCommand, sleep, type LinuxHost } from '../host/linux-host.js';
import { sameArgs, type ProcessTable } from '../host/processes.js';
import {
  conflictingLeases,
  parseDhcpLeases,
  removeLeaseLines,
  type DhcpLease,
  type DhcpReservation,
} from './dhcp-hosts.js';
import { dnsmasqPaths, type DnsmasqPaths } from './dnsmasq-args.js';

/** One dnsmasq as the supervisor sees it: its bridge, its files and its argv. */
export interface DnsmasqInstance {
  bridge: string;
  stateDir: string;
  paths: DnsmasqPaths;
  /** dnsmasq's argv without the program name. */
  args: string[];
}

export interface DnsmasqSupervisorOptions {
  /**
   * How to drop a lease that blocks a reservation. 'release' sends a DHCPRELEASE with
   * dhcp_release (package dnsmasq-utils), falling back to 'restart' when it is not installed;
   * 'restart' stops dnsmasq, edits its lease file and starts it again.
   */
  staleLeases?: 'release' | 'restart';
}

const DNSMASQ = 'dnsmasq';

/**
 * Starts, restarts, reloads and stops the dnsmasq of each bridge, and writes its hosts file.
 * Ours are recognised by their command line (--conf-file=/dev/null, --interface=BRIDGE,
 * --pid-file=...), never by name alone. Holds no locks: the caller serialises per bridge.
 */
export class DnsmasqSupervisor {
  private readonly staleLeaseStrategy: 'release' | 'restart';
  private dhcpReleaseMissing = false;

  constructor(
    private readonly host: LinuxHost,
    private readonly processes: ProcessTable,
    options: DnsmasqSupervisorOptions = {},
  ) {
    this.staleLeaseStrategy = options.staleLeases ?? 'release';
  }

  /**
   * dnsmasq runs with exactly these arguments (restarted when they differ, or when forced because
   * its bridge or an address was re-created). What it did, or null when nothing was needed.
   */
  async ensure(v: DnsmasqInstance, forceRestart: boolean): Promise<string | null> {
    const pid = await this.verifiedPid(v.paths.pidFile, v.bridge);
    let what = 'started dnsmasq';
    if (pid !== null) {
      const argv = (await this.processes.cmdline(pid)) ?? [];
      if (!forceRestart && sameArgs(argv.slice(1), v.args)) return null;
      await this.processes.stop(pid);
      what = forceRestart
        ? 'restarted dnsmasq (bridge or address re-created)'
        : 'restarted dnsmasq (configuration changed)';
    }
    await this.start(v);
    return what;
  }

  /** Stop every dnsmasq of the bridge (the one in the pid file and any found by its argv). */
  async stopAll(bridge: string, pidFile: string): Promise<number[]> {
    const pids = new Set<number>();
    const verified = await this.verifiedPid(pidFile, bridge);
    if (verified !== null) pids.add(verified);
    for (const d of await this.list((b) => b === bridge)) pids.add(d.pid);
    for (const pid of pids) await this.processes.stop(pid);
    return [...pids];
  }

  /** Our dnsmasq processes serving bridges whose name starts with the prefix. */
  listOwned(prefix: string): Promise<OwnedDnsmasq[]> {
    assertNamePrefix(prefix);
    return this.list((bridge) => bridge.startsWith(prefix));
  }

  /** dnsmasq processes started by this package (they carry --conf-file=/dev/null). */
  async list(matchBridge: (bridge: string) => boolean): Promise<OwnedDnsmasq[]> {
    const out: OwnedDnsmasq[] = [];
    for (const pid of await this.processes.pids()) {
      const argv = await this.processes.cmdline(pid);
      if (!argv || basename(argv[0] ?? '') !== DNSMASQ || !argv.includes('--conf-file=/dev/null'))
        continue;
      const iface = argv.find((a) => a.startsWith('--interface='))?.slice('--interface='.length);
      if (iface === undefined || !matchBridge(iface)) continue;
      const pidFile =
        argv.find((a) => a.startsWith('--pid-file='))?.slice('--pid-file='.length) ?? null;
      out.push({ pid, bridge: iface, pidFile });
    }
    return out;
  }

  /**
   * The state directory exists, reachable by dnsmasq (it drops root for 'nobody' and re-reads
   * the hosts file as that user on SIGHUP: every directory above must be searchable by others,
   * or dnsmasq silently serves no reservations), with a hosts file.
   */
  async prepareStateDir(stateDir: string): Promise<void> {
    await mkdir(stateDir, { recursive: true, mode: 0o755 });
    await chmod(stateDir, 0o755);
    for (let dir = dirname(stateDir); ; dir = dirname(dir)) {
      const st = await stat(dir);
      if ((st.mode & 0o001) === 0) {
        throw new NetworkDriverError(
          'NetworkHostError',
          `${dir} (mode ${(st.mode & 0o777).toString(8)}) is not searchable by others: dnsmasq, ` +
            `which runs as 'nobody', could not read ${stateDir}; use a state directory whose ` +
            'parents are at least mode 0711',
        );
      }
      if (dir === dirname(dir)) break;
    }
    const { hostsFile } = dnsmasqPaths(stateDir);
    if ((await readFileIfExists(hostsFile)) === null) await writeFileAtomic(hostsFile, '');
  }

  /**
   * The hosts file is `content` (the rendered `reservations`): written atomically and dnsmasq
   * SIGHUPed only when it changed; leases that would keep a reserved address from its MAC are
   * released; dnsmasq is started when it is not running.
   */
  async applyReservations(
    v: DnsmasqInstance,
    reservations: readonly DhcpReservation[],
    content: string,
  ): Promise<SetReservationsResult> {
    const current = await readFileIfExists(v.paths.hostsFile);
    const pid = await this.verifiedPid(v.paths.pidFile, v.bridge);
    const leaseText = await readFileIfExists(v.paths.leaseFile);
    const stale = conflictingLeases(parseDhcpLeases(leaseText), reservations);
    const releasedLeases = stale.map((l) => ({ mac: l.mac, ip: l.ip }));
    const changed = current !== content;
    if (!changed && pid !== null && stale.length === 0) {
      return { changed: false, releasedLeases: [], dnsmasq: 'unchanged' };
    }
    if (changed) await writeFileAtomic(v.paths.hostsFile, content);

    if (pid === null) {
      await this.dropLeaseLines(v, stale);
      await this.start(v);
      return { changed, releasedLeases, dnsmasq: 'started' };
    }
    if (stale.length > 0 && !(await this.releaseLeases(v, stale))) {
      await this.processes.stop(pid);
      await this.dropLeaseLines(v, stale);
      await this.start(v);
      return { changed, releasedLeases, dnsmasq: 'restarted' };
    }
    this.processes.signal(pid, 'SIGHUP');
    return { changed, releasedLeases, dnsmasq: 'reloaded' };
  }

  /** The lease file in the state directory, parsed. */
  async readLeases(stateDir: string): Promise<DhcpLease[]> {
    return parseDhcpLeases(await readFileIfExists(dnsmasqPaths(stateDir).leaseFile));
  }

  private async start(v: DnsmasqInstance): Promise<number> {
    // A dnsmasq still holding the bridge (its pid file lost) would make the new one fail to bind.
    for (const d of await this.list((b) => b === v.bridge)) await this.processes.stop(d.pid);
    await removePath(v.paths.pidFile);
    await this.prepareStateDir(v.stateDir);
    // Without --keep-in-foreground dnsmasq daemonizes; the parent exits 0 once the daemon is set
    // up, or non-zero with the reason on stderr. "Address already in use" right after a dnsmasq
    // of this bridge died (killed, crashed) means its sockets are not closed yet: try again.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.host.exec(DNSMASQ, v.args);
        break;
      } catch (e) {
        const busy = e instanceof HostCommandError && /Address already in use/.test(e.stderr);
        if (busy && attempt < 20) {
          await sleep(50);
          continue;
        }
        throw new NetworkDriverError(
          'NetworkDhcpServerError',
          `dnsmasq for ${v.bridge} did not start: ${String(e)}`,
          e,
        );
      }
    }
    for (let i = 0; i < 200; i++) {
      const pid = await this.verifiedPid(v.paths.pidFile, v.bridge);
      if (pid !== null) return pid;
      await sleep(10);
    }
    throw new NetworkDriverError(
      'NetworkDhcpServerError',
      `dnsmasq for ${v.bridge} exited or wrote no pid file; see ${v.paths.logFile}`,
    );
  }

  /** The pid in the pid file, if that process is alive and is the dnsmasq of this bridge. */
  private async verifiedPid(pidFile: string, bridge: string): Promise<number | null> {
    const text = await readFileIfExists(pidFile);
    const pid = Number(text?.trim());
    if (!text || !Number.isInteger(pid) || pid <= 1) return null;
    const argv = await this.processes.cmdline(pid);
    if (!argv || basename(argv[0] ?? '') !== DNSMASQ) return null;
    if (!argv.includes(`--interface=${bridge}`) || !argv.includes(`--pid-file=${pidFile}`))
      return null;
    return pid;
  }

  /** DHCPRELEASE each lease on dnsmasq's behalf. False when dhcp_release is not available. */
  private async releaseLeases(v: DnsmasqInstance, leases: readonly DhcpLease[]): Promise<boolean> {
    if (this.staleLeaseStrategy !== 'release' || this.dhcpReleaseMissing) return false;
    for (const l of leases) {
      try {
        await this.host.exec('dhcp_release', [v.bridge, l.ip, l.mac]);
      } catch (e) {
        if (isMissingCommand(e)) {
          this.dhcpReleaseMissing = true;
          return false;
        }
        throw e;
      }
    }
    return true;
  }

  private async dropLeaseLines(v: DnsmasqInstance, leases: readonly DhcpLease[]): Promise<void> {
    if (leases.length === 0) return;
    const text = await readFileIfExists(v.paths.leaseFile);
    if (text !== null) await writeFileAtomic(v.paths.leaseFile, removeLeaseLines(text, leases));
  }
}
