import {
  assertBridgeName,
  assertForeignLinkName,
  assertIpv4,
  assertNamePrefix,
  assertNftTableName,
  assertTapName,
  bridgeMacFor,
  invalid,
  normalizeMac,
  parseCidr,
  tapMacFor,
  type ParsedCidr,
} from '@minicloud/domain';
import { access, chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import {
  HostCommandError,
  readFileIfExists,
  removePath,
  run as hostRun,
  writeFileAtomic,
  type CommandRunner,
} from '@minicloud/host';
import {
  assertGatewayInside,
  assertSafePath,
  conflictingLeases,
  dnsmasqPaths,
  parseDhcpLeases,
  removeLeaseLines,
  renderDhcpHosts,
  renderDnsmasqArgs,
  type DhcpLease,
  type DhcpReservation,
  type DnsmasqPaths,
} from './dnsmasq.js';
import { NetworkDriverError } from './errors.js';
import { KeyedMutex } from './mutex.js';
import {
  natChainNames,
  renderNatNetworkRemoval,
  renderNatNetworkUpdate,
  renderNatRuleset,
  type NatNetwork,
} from './nft.js';

/**
 * The Linux implementation of minicloud networks: one Linux bridge per network with the gateway
 * address on it, one dnsmasq per network serving DHCP reservations only (and DNS), one nft table
 * for outbound NAT and forwarding policy, and one persistent tap per guest NIC that libvirt opens
 * with <interface type='ethernet'><target dev='TAP' managed='no'/>.
 *
 * Every method is "ensure"-style: safe to call twice, after a crash, or on a half-made state.
 * Operations on one network are serialised in-process (one worker process per host is assumed).
 */

export interface BridgeNetworkSpec {
  /** Linux bridge name, 1-15 chars [a-z0-9] (see bridgeNameFor). */
  bridge: string;
  /** The network's block, e.g. '10.11.0.0/24' (at most /30). */
  cidr: string;
  /** Address of the host on the bridge: the guests' router, DHCP and DNS server. */
  gatewayIp: string;
  /** Directory for dnsmasq's pid, hosts, lease and log files (owned by this network). */
  stateDir: string;
  /** Interface to NAT guests' traffic out of, or null for a host-only network. */
  uplink: string | null;
  /** nft table (family ip) holding this network's chains; may be shared by networks. */
  natTable: string;
  /** Serve DNS on the gateway (default true). */
  dns?: boolean;
  /** With dns: false, DNS servers handed to guests. */
  dnsServers?: string[];
  /** Search domain for guests (and, with dns, names <hostname>.<domain>). */
  domain?: string;
  /** DHCP lease time (default '12h'). */
  leaseTime?: string;
  /** MTU handed to guests by DHCP. */
  mtu?: number;
  /** Detailed DHCP logging in the network's dnsmasq.log. */
  logDhcp?: boolean;
}

export interface EnsureNetworkResult {
  /** What this call changed on the host (empty when everything already was as asked). */
  changed: string[];
  /** Things the operator should know, e.g. "enabled net.ipv4.ip_forward". */
  notes: string[];
}

export interface RemoveNetworkResult {
  removed: string[];
}

export interface PortSpec {
  bridge: string;
  tap: string;
  /** The guest's MAC; the tap gets the same MAC with first octet 0xfe (as libvirt does). */
  mac?: string;
  /** Create the tap with IFF_MULTI_QUEUE: needed when the domain uses <driver queues='N'/> N>1. */
  multiQueue?: boolean;
}

export interface EnsurePortResult {
  created: boolean;
  changed: boolean;
}

export interface SetReservationsResult {
  /** The hosts file got new content. */
  changed: boolean;
  /** Leases dropped because they blocked a reservation (address reused by a new MAC). */
  releasedLeases: { mac: string; ip: string }[];
  /** unchanged | reloaded (SIGHUP) | restarted | started (was not running). */
  dnsmasq: 'unchanged' | 'reloaded' | 'restarted' | 'started';
}

export type OwnedLinkKind = 'bridge' | 'tun' | 'veth' | 'other';

export interface OwnedLink {
  name: string;
  kind: OwnedLinkKind;
  /** 'tap' or 'tun' for kind tun, else null. */
  tunType: string | null;
  master: string | null;
  up: boolean;
  mac: string | null;
}

export interface OwnedDnsmasq {
  pid: number;
  bridge: string;
  pidFile: string | null;
}

export interface LinuxNetworkDriverOptions {
  /** Host command runner (default: run from @minicloud/host). */
  run?: CommandRunner;
  /**
   * How to drop a lease that blocks a reservation. 'release' sends a DHCPRELEASE with
   * dhcp_release (package dnsmasq-utils), falling back to 'restart' when it is not installed;
   * 'restart' stops dnsmasq, edits its lease file and starts it again.
   */
  staleLeases?: 'release' | 'restart';
  /** Timeout of each host command (default 15 s). */
  commandTimeoutMs?: number;
  /** Roots of procfs and sysfs, and the signal sender (tests only). */
  procRoot?: string;
  sysRoot?: string;
  kill?: (pid: number, signal: NodeJS.Signals) => void;
}

/** What the dnsmasq helpers need of a network: a bridge network or a VPC. */
export interface DnsmasqInstance {
  bridge: string;
  stateDir: string;
  paths: DnsmasqPaths;
  /** dnsmasq's argv without the program name. */
  args: string[];
}

/** One address of a link, as `ip -j addr` reports it. */
export interface IpAddrInfo {
  family?: string;
  local?: string;
  prefixlen?: number;
  scope?: string;
  label?: string;
}

/** One link, as `ip -j -d link/addr` reports it. */
export interface IpLink {
  ifname: string;
  flags?: string[];
  master?: string;
  address?: string;
  linkinfo?: {
    info_kind?: string;
    info_data?: { type?: string; multi_queue?: boolean; persist?: boolean };
  };
  addr_info?: IpAddrInfo[];
}

interface ValidNetwork {
  spec: BridgeNetworkSpec;
  bridge: string;
  net: ParsedCidr;
  gatewayIp: string;
  stateDir: string;
  uplink: string | null;
  natTable: string;
  paths: DnsmasqPaths;
  args: string[];
}

interface ReservationState {
  requested: number;
  applied: number;
  pending: { network: DnsmasqInstance; reservations: DhcpReservation[]; content: string } | null;
  lastResult: SetReservationsResult | null;
}

const DNSMASQ = 'dnsmasq';

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function sameArgs(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function isMissingDevice(e: unknown): boolean {
  return (
    e instanceof HostCommandError &&
    /does not exist|Cannot find device|No such device/i.test(e.stderr)
  );
}

function isMissingCommand(e: unknown): boolean {
  return e instanceof HostCommandError && e.exitCode === null && /\bENOENT\b/.test(e.stderr);
}

function validateNetworkSpec(spec: BridgeNetworkSpec): ValidNetwork {
  if (spec === null || typeof spec !== 'object')
    throw invalid('InvalidNetworkSpec', 'network spec must be an object');
  const bridge = assertBridgeName(spec.bridge);
  const net = parseCidr(spec.cidr);
  const gatewayIp = assertIpv4(spec.gatewayIp, 'gateway address');
  assertGatewayInside(net, gatewayIp);
  const stateDir = assertSafePath(spec.stateDir, 'stateDir');
  if (stateDir === '/') throw invalid('InvalidPath', 'stateDir must not be /');
  const uplink = spec.uplink === null ? null : assertForeignLinkName(spec.uplink, 'uplink');
  if (uplink === bridge)
    throw invalid('InvalidNetworkSpec', 'the uplink cannot be the bridge itself');
  const natTable = assertNftTableName(spec.natTable);
  const paths = dnsmasqPaths(stateDir);
  const args = renderDnsmasqArgs({
    bridge,
    cidr: net.cidr,
    gatewayIp,
    ...paths,
    dns: spec.dns,
    dnsServers: spec.dnsServers,
    domain: spec.domain,
    leaseTime: spec.leaseTime,
    mtu: spec.mtu,
    logDhcp: spec.logDhcp,
  });
  return { spec, bridge, net, gatewayIp, stateDir, uplink, natTable, paths, args };
}

export class LinuxNetworkDriver {
  protected readonly run: CommandRunner;
  private readonly staleLeaseStrategy: 'release' | 'restart';
  protected readonly timeoutMs: number;
  protected readonly procRoot: string;
  protected readonly sysRoot: string;
  private readonly kill: (pid: number, signal: NodeJS.Signals) => void;
  protected readonly locks = new KeyedMutex();
  protected readonly reservationStates = new Map<string, ReservationState>();
  /** Per bridge: the syncReservations run that has not started yet (callers join it). */
  private readonly queuedSyncs = new Map<string, Promise<SetReservationsResult>>();
  private dhcpReleaseMissing = false;

  constructor(options: LinuxNetworkDriverOptions = {}) {
    this.run = options.run ?? hostRun;
    this.staleLeaseStrategy = options.staleLeases ?? 'release';
    this.timeoutMs = options.commandTimeoutMs ?? 15_000;
    this.procRoot = options.procRoot ?? '/proc';
    this.sysRoot = options.sysRoot ?? '/sys';
    this.kill = options.kill ?? ((pid, signal) => process.kill(pid, signal));
  }

  // ---------------------------------------------------------------- networks

  /**
   * Make the network exist as specified: bridge (fixed MAC, IPv6 off, gateway address, up),
   * its sysctls, ip_forward when it has an uplink, its dnsmasq (restarted when its arguments
   * changed or the bridge was re-created), and its nft chains.
   */
  async ensureNetwork(spec: BridgeNetworkSpec): Promise<EnsureNetworkResult> {
    const v = validateNetworkSpec(spec);
    return this.locks.run(`bridge:${v.bridge}`, async () => {
      const changed: string[] = [];
      const notes: string[] = [];

      const link = await this.showLink(v.bridge, 'addr');
      let bridgeCreated = false;
      if (link === null) {
        await this.exec('ip', [
          'link',
          'add',
          'dev',
          v.bridge,
          'address',
          bridgeMacFor(v.bridge),
          'type',
          'bridge',
        ]);
        bridgeCreated = true;
        changed.push(`created bridge ${v.bridge}`);
      } else if (link.linkinfo?.info_kind !== 'bridge') {
        throw new NetworkDriverError(
          'NetworkLinkConflict',
          `${v.bridge} exists but is a ${link.linkinfo?.info_kind ?? 'plain'} link, not a bridge`,
        );
      }

      if (v.uplink !== null) {
        const note = await this.ensureIpForward(v.bridge, v.uplink);
        if (note) {
          changed.push(note);
          notes.push(note);
        }
        if (!(await this.exists(join(this.sysRoot, 'class/net', v.uplink)))) {
          notes.push(
            `uplink ${v.uplink} of ${v.bridge} does not exist (yet): no outbound traffic until it does`,
          );
        }
      }

      // Before the link goes up, so the host never configures IPv6 (or accepts router
      // advertisements from guests) on the bridge.
      await this.writeBridgeSysctls(v.bridge);

      const inet = (link?.addr_info ?? []).filter((a) => a.family === 'inet');
      const hasGateway = inet.some(
        (a) => a.local === v.gatewayIp && a.prefixlen === v.net.prefixLength,
      );
      for (const a of inet) {
        if (!(a.local === v.gatewayIp && a.prefixlen === v.net.prefixLength)) {
          notes.push(`bridge ${v.bridge} also has address ${a.local}/${a.prefixlen} (left alone)`);
        }
      }
      const batch: string[] = [];
      if (!hasGateway) {
        batch.push(`address replace ${v.gatewayIp}/${v.net.prefixLength} dev ${v.bridge}`);
        changed.push(`added ${v.gatewayIp}/${v.net.prefixLength} to ${v.bridge}`);
      }
      if (!(link?.flags ?? []).includes('UP')) {
        batch.push(`link set dev ${v.bridge} up`);
        if (!bridgeCreated) changed.push(`set ${v.bridge} up`);
      }
      if (batch.length) await this.exec('ip', ['-batch', '-'], batch.join('\n') + '\n');

      await this.prepareStateDir(v.stateDir);
      if ((await readFileIfExists(v.paths.hostsFile)) === null)
        await writeFileAtomic(v.paths.hostsFile, '');

      const dnsmasq = await this.ensureDnsmasq(v, bridgeCreated || !hasGateway);
      if (dnsmasq) changed.push(dnsmasq);

      await this.locks.run(`nft:${v.natTable}`, () =>
        this.exec('nft', ['-f', '-'], renderNatNetworkUpdate(v.natTable, this.natNetwork(v))),
      );
      return { changed, notes };
    });
  }

  /** Remove everything ensureNetwork made (and the taps still attached to the bridge). */
  async removeNetwork(
    spec: Pick<BridgeNetworkSpec, 'bridge' | 'stateDir' | 'natTable'>,
  ): Promise<RemoveNetworkResult> {
    const bridge = assertBridgeName(spec.bridge);
    const stateDir = assertSafePath(spec.stateDir, 'stateDir');
    if (stateDir === '/') throw invalid('InvalidPath', 'stateDir must not be /');
    const natTable = assertNftTableName(spec.natTable);
    const paths = dnsmasqPaths(stateDir);
    return this.locks.run(`bridge:${bridge}`, async () => {
      const removed: string[] = [];

      const pids = new Set<number>();
      const verified = await this.verifiedDnsmasqPid(paths.pidFile, bridge);
      if (verified !== null) pids.add(verified);
      for (const d of await this.listDnsmasq((b) => b === bridge)) pids.add(d.pid);
      for (const pid of pids) {
        await this.stopProcess(pid);
        removed.push(`stopped dnsmasq ${pid}`);
      }

      const link = await this.showLink(bridge, 'link');
      if (link !== null) {
        if (link.linkinfo?.info_kind !== 'bridge') {
          throw new NetworkDriverError(
            'NetworkLinkConflict',
            `${bridge} exists but is not a bridge; not deleting it`,
          );
        }
        const ports = await this.ipJson(['-d', 'link', 'show', 'master', bridge]);
        for (const p of ports) {
          if (p.linkinfo?.info_kind === 'tun') {
            await this.deleteLink(p.ifname);
            removed.push(`deleted tap ${p.ifname}`);
          }
        }
        await this.deleteLink(bridge);
        removed.push(`deleted bridge ${bridge}`);
      }

      await this.locks.run(`nft:${natTable}`, async () => {
        let chains = await this.natTableChains(natTable);
        if (chains === null) return;
        const mine = Object.values(natChainNames(bridge));
        if (chains.some((c) => mine.includes(c))) {
          await this.exec('nft', ['-f', '-'], renderNatNetworkRemoval(natTable, bridge));
          removed.push(`deleted nft chains of ${bridge} from ${natTable}`);
          chains = chains.filter((c) => !mine.includes(c));
        }
        if (chains.length === 0) {
          await this.exec('nft', ['delete', 'table', 'ip', natTable]);
          removed.push(`deleted nft table ${natTable}`);
        }
      });

      if (await this.exists(stateDir)) {
        await removePath(stateDir);
        removed.push(`removed ${stateDir}`);
      }
      this.reservationStates.delete(bridge);
      return { removed };
    });
  }

  /** Replace a whole nft table with exactly these networks' chains (for the reconciler). */
  async applyNatRuleset(table: string, networks: readonly NatNetwork[]): Promise<void> {
    const script = renderNatRuleset(table, networks);
    await this.locks.run(`nft:${table}`, () => this.exec('nft', ['-f', '-'], script));
  }

  // ------------------------------------------------------------------- ports

  /**
   * A persistent tap attached to the bridge and up. Idempotent: an existing tap is re-attached
   * or re-addressed only when needed. Fast path (new tap): one `ip -batch` process.
   */
  async ensurePort(port: PortSpec): Promise<EnsurePortResult> {
    const bridge = assertBridgeName(port.bridge);
    const tap = assertTapName(port.tap);
    const address = port.mac === undefined ? undefined : tapMacFor(normalizeMac(port.mac));
    const multiQueue = port.multiQueue ?? false;
    const setArgs = [
      'link',
      'set',
      'dev',
      tap,
      ...(address ? ['address', address] : []),
      'master',
      bridge,
      'up',
    ];

    // One `ip` process for the common case (a new tap): create, then address/attach/up. `ip -batch`
    // stops at the first failing line and names it ("Command failed -:N").
    const batch = [
      `tuntap add dev ${tap} mode tap${multiQueue ? ' multi_queue' : ''}`,
      setArgs.join(' '),
    ];
    let addError: HostCommandError;
    try {
      await this.exec('ip', ['-batch', '-'], `${batch.join('\n')}\n`);
      return { created: true, changed: true };
    } catch (e) {
      if (!(e instanceof HostCommandError)) throw e;
      if (/Command failed -:2\b/.test(e.stderr)) {
        // We created the tap but could not attach it (e.g. no such bridge): leave nothing behind.
        await this.deleteLink(tap).catch(() => undefined);
        throw new NetworkDriverError(
          'NetworkHostError',
          `cannot attach tap ${tap} to ${bridge}: ${e.stderr.trim()}`,
          e,
        );
      }
      addError = e; // most likely it exists already (TUNSETIFF: EBUSY); look at it
    }

    const link = await this.showLink(tap, 'link');
    if (link === null) {
      throw new NetworkDriverError(
        'NetworkHostError',
        `could not create tap ${tap}: ${String(addError)}`,
        addError,
      );
    }
    const info = link.linkinfo;
    if (info?.info_kind !== 'tun' || info.info_data?.type !== 'tap') {
      throw new NetworkDriverError('NetworkLinkConflict', `${tap} exists but is not a tap device`);
    }
    if ((info.info_data.multi_queue ?? false) !== multiQueue) {
      throw new NetworkDriverError(
        'NetworkLinkConflict',
        `tap ${tap} exists with multi_queue ${!multiQueue ? 'on' : 'off'}; remove it first`,
      );
    }
    const ok =
      link.master === bridge &&
      (link.flags ?? []).includes('UP') &&
      (address === undefined || link.address === address);
    if (ok) return { created: false, changed: false };
    await this.exec('ip', setArgs);
    return { created: false, changed: true };
  }

  /** Delete the tap if it exists. Returns whether it did. Refuses to delete a non-tun link. */
  async removePort(tap: string): Promise<boolean> {
    assertTapName(tap);
    const link = await this.showLink(tap, 'link');
    if (link === null) return false;
    if (link.linkinfo?.info_kind !== 'tun') {
      throw new NetworkDriverError(
        'NetworkLinkConflict',
        `${tap} is not a tun/tap device; not deleting it`,
      );
    }
    return this.deleteLink(tap);
  }

  // ------------------------------------------------------------ reservations

  /**
   * Make the network's DHCP reservations exactly `reservations` (always the full set). Writes
   * the hosts file atomically and SIGHUPs dnsmasq only when the content changed; drops leases
   * that would keep a reserved address from its new MAC; starts dnsmasq if it is not running.
   * Concurrent calls for one network are serialised and coalesced: the latest set wins, and a
   * call whose set was superseded while it waited returns once the newer set is applied.
   */
  async setReservations(
    spec: BridgeNetworkSpec,
    reservations: readonly DhcpReservation[],
  ): Promise<SetReservationsResult> {
    const v = validateNetworkSpec(spec);
    const normalized = reservations.map((r) => ({ ...r, mac: normalizeMac(r.mac) }));
    const content = renderDhcpHosts(normalized, { cidr: v.net, gatewayIp: v.gatewayIp });
    return this.setReservationsOf(v, normalized, content);
  }

  /** setReservations for any dnsmasq instance, with `content` already rendered from the set. */
  protected setReservationsOf(
    v: DnsmasqInstance,
    normalized: DhcpReservation[],
    content: string,
  ): Promise<SetReservationsResult> {
    let state = this.reservationStates.get(v.bridge);
    if (!state) {
      state = { requested: 0, applied: 0, pending: null, lastResult: null };
      this.reservationStates.set(v.bridge, state);
    }
    const st = state;
    const generation = ++st.requested;
    st.pending = { network: v, reservations: normalized, content };
    return this.locks.run(`bridge:${v.bridge}`, async () => {
      if (st.applied >= generation && st.lastResult) return st.lastResult;
      const target = st.requested;
      const p = st.pending!;
      const result = await this.applyReservations(p.network, p.reservations, p.content);
      st.applied = target;
      st.lastResult = result;
      return result;
    });
  }

  /**
   * Like setReservations, but the set is read by `load` (e.g. from the database) inside the
   * network's lock. Use this when concurrent launches each commit their row and then sync:
   * every call returns only after a load that started after the call was applied, so no
   * launch's reservation can be overwritten by an older snapshot. Concurrent calls share runs:
   * a call made while a run is queued (not yet loading) joins it.
   */
  syncReservations(
    spec: BridgeNetworkSpec,
    load: () => Promise<readonly DhcpReservation[]>,
  ): Promise<SetReservationsResult> {
    let v: ValidNetwork;
    try {
      v = validateNetworkSpec(spec);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.syncReservationsOf(v, load, (normalized) =>
      renderDhcpHosts(normalized, { cidr: v.net, gatewayIp: v.gatewayIp }),
    );
  }

  /** syncReservations for any dnsmasq instance; `render` validates and renders the hosts file. */
  protected syncReservationsOf(
    v: DnsmasqInstance,
    load: () => Promise<readonly DhcpReservation[]>,
    render: (normalized: DhcpReservation[]) => string,
  ): Promise<SetReservationsResult> {
    const queued = this.queuedSyncs.get(v.bridge);
    if (queued) return queued;
    const runPromise = this.locks.run(`bridge:${v.bridge}`, async () => {
      // From here on, new callers need a fresh load: let them queue the next run.
      if (this.queuedSyncs.get(v.bridge) === runPromise) this.queuedSyncs.delete(v.bridge);
      const normalized = (await load()).map((r) => ({ ...r, mac: normalizeMac(r.mac) }));
      const content = render(normalized);
      return this.applyReservations(v, normalized, content);
    });
    this.queuedSyncs.set(v.bridge, runPromise);
    return runPromise;
  }

  protected async applyReservations(
    v: DnsmasqInstance,
    reservations: readonly DhcpReservation[],
    content: string,
  ): Promise<SetReservationsResult> {
    const current = await readFileIfExists(v.paths.hostsFile);
    const pid = await this.verifiedDnsmasqPid(v.paths.pidFile, v.bridge);
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
      await this.startDnsmasq(v);
      return { changed, releasedLeases, dnsmasq: 'started' };
    }
    if (stale.length > 0 && !(await this.releaseLeases(v, stale))) {
      await this.stopProcess(pid);
      await this.dropLeaseLines(v, stale);
      await this.startDnsmasq(v);
      return { changed, releasedLeases, dnsmasq: 'restarted' };
    }
    this.signal(pid, 'SIGHUP');
    return { changed, releasedLeases, dnsmasq: 'reloaded' };
  }

  /** DHCPRELEASE each lease on dnsmasq's behalf. False when dhcp_release is not available. */
  private async releaseLeases(v: DnsmasqInstance, leases: readonly DhcpLease[]): Promise<boolean> {
    if (this.staleLeaseStrategy !== 'release' || this.dhcpReleaseMissing) return false;
    for (const l of leases) {
      try {
        await this.exec('dhcp_release', [v.bridge, l.ip, l.mac]);
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

  /** The current lease file of a network, parsed (diagnostics, tests). */
  async readLeases(spec: Pick<BridgeNetworkSpec, 'stateDir'>): Promise<DhcpLease[]> {
    const paths = dnsmasqPaths(assertSafePath(spec.stateDir, 'stateDir'));
    return parseDhcpLeases(await readFileIfExists(paths.leaseFile));
  }

  // --------------------------------------------------------------- inventory

  /** Links (bridges, taps, ...) whose name starts with the prefix: what the reconciler sweeps. */
  async listOwnedLinks(prefix: string): Promise<OwnedLink[]> {
    assertNamePrefix(prefix);
    const links = await this.ipJson(['-d', 'link', 'show']);
    return links
      .filter((l) => typeof l.ifname === 'string' && l.ifname.startsWith(prefix))
      .map((l) => {
        const k = l.linkinfo?.info_kind;
        const kind: OwnedLinkKind = k === 'bridge' || k === 'tun' || k === 'veth' ? k : 'other';
        return {
          name: l.ifname,
          kind,
          tunType: kind === 'tun' ? (l.linkinfo?.info_data?.type ?? null) : null,
          master: l.master ?? null,
          up: (l.flags ?? []).includes('UP'),
          mac: l.address ?? null,
        };
      });
  }

  /** Our dnsmasq processes (found through /proc) serving bridges whose name starts with prefix. */
  async listOwnedDnsmasq(prefix: string): Promise<OwnedDnsmasq[]> {
    assertNamePrefix(prefix);
    return this.listDnsmasq((bridge) => bridge.startsWith(prefix));
  }

  /** nft tables (family ip) whose name starts with the prefix. */
  async listOwnedNatTables(prefix: string): Promise<string[]> {
    assertNamePrefix(prefix);
    const r = await this.exec('nft', ['-j', 'list', 'tables', 'ip']);
    const items =
      (JSON.parse(r.stdout) as { nftables?: { table?: { name?: string } }[] }).nftables ?? [];
    return items.flatMap((i) => (i.table?.name?.startsWith(prefix) ? [i.table.name] : []));
  }

  /** Bridges that have chains in the table (null when the table does not exist). */
  async listNatNetworks(table: string): Promise<string[] | null> {
    assertNftTableName(table);
    const chains = await this.natTableChains(table);
    if (chains === null) return null;
    const bridges = new Set<string>();
    for (const c of chains) {
      const m = /^(?:postrouting|forward)_([a-z0-9]{1,15})$/.exec(c);
      if (m?.[1]) bridges.add(m[1]);
    }
    return [...bridges].sort();
  }

  // --------------------------------------------------------------- dnsmasq

  /** Returns a description of what it did, or null when dnsmasq was already running as asked. */
  protected async ensureDnsmasq(v: DnsmasqInstance, forceRestart: boolean): Promise<string | null> {
    const pid = await this.verifiedDnsmasqPid(v.paths.pidFile, v.bridge);
    let what = 'started dnsmasq';
    if (pid !== null) {
      const argv = (await this.readCmdline(pid)) ?? [];
      if (!forceRestart && sameArgs(argv.slice(1), v.args)) return null;
      await this.stopProcess(pid);
      what = forceRestart
        ? 'restarted dnsmasq (bridge or address re-created)'
        : 'restarted dnsmasq (configuration changed)';
    }
    await this.startDnsmasq(v);
    return what;
  }

  protected async startDnsmasq(v: DnsmasqInstance): Promise<number> {
    // A dnsmasq still holding the bridge (its pid file lost) would make the new one fail to bind.
    for (const d of await this.listDnsmasq((b) => b === v.bridge)) await this.stopProcess(d.pid);
    await removePath(v.paths.pidFile);
    await this.prepareStateDir(v.stateDir);
    if ((await readFileIfExists(v.paths.hostsFile)) === null)
      await writeFileAtomic(v.paths.hostsFile, '');
    // Without --keep-in-foreground dnsmasq daemonizes; the parent exits 0 once the daemon is set
    // up, or non-zero with the reason on stderr. "Address already in use" right after a dnsmasq
    // of this bridge died (killed, crashed) means its sockets are not closed yet: try again.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.exec(DNSMASQ, v.args);
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
      const pid = await this.verifiedDnsmasqPid(v.paths.pidFile, v.bridge);
      if (pid !== null) return pid;
      await sleep(10);
    }
    throw new NetworkDriverError(
      'NetworkDhcpServerError',
      `dnsmasq for ${v.bridge} exited or wrote no pid file; see ${v.paths.logFile}`,
    );
  }

  /** The pid in the pid file, if that process is alive and is the dnsmasq of this bridge. */
  protected async verifiedDnsmasqPid(pidFile: string, bridge: string): Promise<number | null> {
    const text = await readFileIfExists(pidFile);
    const pid = Number(text?.trim());
    if (!text || !Number.isInteger(pid) || pid <= 1) return null;
    const argv = await this.readCmdline(pid);
    if (!argv || basename(argv[0] ?? '') !== DNSMASQ) return null;
    if (!argv.includes(`--interface=${bridge}`) || !argv.includes(`--pid-file=${pidFile}`))
      return null;
    return pid;
  }

  /** dnsmasq processes started by this package (they carry --conf-file=/dev/null). */
  protected async listDnsmasq(matchBridge: (bridge: string) => boolean): Promise<OwnedDnsmasq[]> {
    let entries: string[];
    try {
      entries = await readdir(this.procRoot);
    } catch {
      return [];
    }
    const out: OwnedDnsmasq[] = [];
    for (const e of entries) {
      if (!/^[0-9]+$/.test(e)) continue;
      const argv = await this.readCmdline(Number(e));
      if (!argv || basename(argv[0] ?? '') !== DNSMASQ || !argv.includes('--conf-file=/dev/null'))
        continue;
      const iface = argv.find((a) => a.startsWith('--interface='))?.slice('--interface='.length);
      if (iface === undefined || !matchBridge(iface)) continue;
      const pidFile =
        argv.find((a) => a.startsWith('--pid-file='))?.slice('--pid-file='.length) ?? null;
      out.push({ pid: Number(e), bridge: iface, pidFile });
    }
    return out;
  }

  /** argv of a live process; null when it is gone or a zombie (empty cmdline). */
  protected async readCmdline(pid: number): Promise<string[] | null> {
    try {
      const raw = await readFile(join(this.procRoot, String(pid), 'cmdline'), 'utf8');
      if (raw.length === 0) return null;
      return raw.replace(/\0$/, '').split('\0');
    } catch {
      return null;
    }
  }

  private signal(pid: number, signal: NodeJS.Signals): boolean {
    try {
      this.kill(pid, signal);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
      throw e;
    }
  }

  /**
   * SIGTERM, wait up to 2 s, then SIGKILL. Only call with a pid verified to be ours. (A killed
   * daemon whose parent is gone may linger as a zombie when PID 1 does not reap; its cmdline is
   * empty, which counts as gone.)
   */
  protected async stopProcess(pid: number): Promise<void> {
    const before = await this.readCmdline(pid);
    if (!before) return;
    // Gone means: no such process, or a zombie (its sockets are closed only by then; an exiting
    // process already has an empty cmdline while it still holds its listening sockets), or the
    // pid now belongs to another program.
    const gone = async () => {
      if (await this.exited(pid)) return true;
      const now = await this.readCmdline(pid);
      return now !== null && !sameArgs(now, before);
    };
    if (!this.signal(pid, 'SIGTERM')) return;
    for (let i = 0; i < 200; i++) {
      if (await gone()) return;
      await sleep(10);
    }
    this.signal(pid, 'SIGKILL');
    for (let i = 0; i < 100; i++) {
      if (await gone()) return;
      await sleep(10);
    }
    throw new NetworkDriverError(
      'NetworkDhcpServerError',
      `process ${pid} did not exit after SIGKILL`,
    );
  }

  /** True when the process no longer exists or is a zombie (state Z/X in /proc/PID/stat). */
  private async exited(pid: number): Promise<boolean> {
    let stat: string;
    try {
      stat = await readFile(join(this.procRoot, String(pid), 'stat'), 'utf8');
    } catch {
      return true;
    }
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X' || state === 'x';
  }

  // ------------------------------------------------------------- host bits

  private natNetwork(v: ValidNetwork): NatNetwork {
    return { bridge: v.bridge, cidr: v.net.cidr, uplink: v.uplink };
  }

  private async natTableChains(table: string): Promise<string[] | null> {
    const r = await this.run('nft', ['-j', 'list', 'table', 'ip', table], {
      timeoutMs: this.timeoutMs,
      okExitCodes: [1],
    });
    if (r.exitCode !== 0) {
      if (/No such file or directory/i.test(r.stderr)) return null;
      throw new NetworkDriverError(
        'NetworkHostError',
        `nft list table ip ${table} failed: ${r.stderr.trim()}`,
      );
    }
    const items =
      (JSON.parse(r.stdout) as { nftables?: { chain?: { name?: string } }[] }).nftables ?? [];
    return items.flatMap((i) => (i.chain?.name ? [i.chain.name] : []));
  }

  protected ensureIpForward(bridge: string, uplink: string): Promise<string | null> {
    return this.enableIpForward(`network ${bridge} with uplink ${uplink}`);
  }

  /** Turn net.ipv4.ip_forward on; a note saying so (with `why`), or null when it already was. */
  protected async enableIpForward(why: string): Promise<string | null> {
    const path = join(this.procRoot, 'sys/net/ipv4/ip_forward');
    const current = (await readFile(path, 'utf8')).trim();
    if (current === '1') return null;
    await writeFile(path, '1\n');
    return `enabled net.ipv4.ip_forward (was ${current}) for ${why}`;
  }

  protected async writeBridgeSysctls(bridge: string): Promise<void> {
    const v4 = join(this.procRoot, 'sys/net/ipv4/conf', bridge);
    const settings: [string, string][] = [
      // Drop packets whose source does not route back through the bridge (anti-spoofing).
      [join(v4, 'rp_filter'), '1'],
      [join(v4, 'accept_redirects'), '0'],
      [join(v4, 'accept_source_route'), '0'],
      [join(v4, 'send_redirects'), '0'],
      // Answer ARP only for addresses on the bridge itself, not for the host's other addresses.
      [join(v4, 'arp_ignore'), '1'],
      [join(v4, 'arp_announce'), '2'],
      // No IPv6 on the host side: no link-local address, no SLAAC from guests' router adverts.
      [join(this.procRoot, 'sys/net/ipv6/conf', bridge, 'disable_ipv6'), '1'],
    ];
    for (const [path, value] of settings) {
      try {
        await writeFile(path, `${value}\n`);
      } catch (e) {
        // IPv6 may be compiled out or disabled at boot: then there is nothing to turn off.
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' && path.includes('/ipv6/')) continue;
        throw new NetworkDriverError('NetworkHostError', `cannot write ${path}: ${String(e)}`, e);
      }
    }
  }

  /**
   * dnsmasq drops root for 'nobody' after start and re-reads the hosts file as that user on
   * SIGHUP: the state directory and every directory above it must be searchable by others, or
   * dnsmasq silently serves no reservations ("cannot read ...: Permission denied" in its log).
   */
  protected async prepareStateDir(stateDir: string): Promise<void> {
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
  }

  protected async exists(path: string): Promise<boolean> {
    try {
      await access(path);
      return true;
    } catch {
      return false;
    }
  }

  protected exec(command: string, args: string[], input?: string) {
    return this.run(command, args, {
      timeoutMs: this.timeoutMs,
      ...(input === undefined ? {} : { input }),
    });
  }

  protected async ipJson(args: string[]): Promise<IpLink[]> {
    const r = await this.exec('ip', ['-j', ...args]);
    const text = r.stdout.trim();
    return text ? (JSON.parse(text) as IpLink[]) : [];
  }

  /** One link (with its addresses for 'addr'), or null when it does not exist. */
  protected async showLink(name: string, what: 'link' | 'addr'): Promise<IpLink | null> {
    try {
      const links = await this.ipJson(['-d', what, 'show', 'dev', name]);
      return links[0] ?? null;
    } catch (e) {
      if (isMissingDevice(e)) return null;
      throw e;
    }
  }

  protected async deleteLink(name: string): Promise<boolean> {
    try {
      await this.exec('ip', ['link', 'del', 'dev', name]);
      return true;
    } catch (e) {
      if (isMissingDevice(e)) return false;
      throw e;
    }
  }
}
