import {
  assertBridgeName,
  assertForeignLinkName,
  assertIpv4,
  assertNamePrefix,
  assertNftTableName,
  bridgeMacFor,
  cidrContains,
  elasticIpLabel,
  invalid,
  normalizeMac,
  parseCidr,
} from '@minicloud/domain';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { HostCommandError, readFileIfExists, removePath, writeFileAtomic } from '@minicloud/host';
import { assertSafePath, dnsmasqPaths, type DhcpReservation } from './dnsmasq.js';
import { NetworkDriverError } from './errors.js';
import {
  LinuxNetworkDriver,
  type DnsmasqInstance,
  type EnsureNetworkResult,
  type IpAddrInfo,
  type LinuxNetworkDriverOptions,
  type OwnedDnsmasq,
  type OwnedLink,
  type RemoveNetworkResult,
  type SetReservationsResult,
} from './linux-network.js';
import {
  checkVpcSubnets,
  renderVpcDhcpHosts,
  renderVpcDnsmasqArgs,
  type CheckedSubnet,
} from './vpc-dnsmasq.js';
import {
  eipMapsFromPlan,
  parseEipMaps,
  planEipMapUpdate,
  planVpcRuleset,
  renderVpcRulesetPlan,
  renderVpcRulesetRemoval,
  type ElasticIpChange,
  type EipMapsState,
  type VpcNetworkModel,
} from './vpc-ruleset/index.js';

/**
 * The host side of VPCs: one Linux bridge per VPC holding each subnet's router address, one
 * dnsmasq per VPC serving every subnet's reservations, one nft table (see vpc-ruleset.ts) for
 * isolation, outbound NAT and Elastic IPs, and the Elastic IPs themselves as /32 addresses on the
 * uplink (scope host, so the host never picks one as a source address; label <uplink>:<prefix>,
 * so ownership is visible in `ip addr`). Same habits as LinuxNetworkDriver: ensure-style, safe to
 * repeat, one operation per bridge / table at a time.
 *
 * Elastic IP life cycle (each step idempotent; order matters so a held public address is never
 * open to host services):
 *   allocate     allocateElasticIp: into eip_held (input drop), then onto the uplink
 *   associate    associateElasticIp: map elements, then conntrack entries of the address flushed
 *   move         associateElasticIp with another private address (one transaction)
 *   disassociate disassociateElasticIp
 *   release      releaseElasticIp: out of the maps and eip_held, off the uplink, conntrack flushed
 *   announce     announceElasticIp: one gratuitous ARP (iputils arping -U) on the uplink
 * The whole state is also in the model given to applyVpcRuleset (the reconciler's path), and
 * syncElasticIpAddresses makes the uplink's addresses match it.
 */

export interface VpcSubnetSpec {
  /** For messages only. */
  subnetId?: string;
  cidr: string;
  /** The host's (router's) address in the subnet. */
  gatewayIp: string;
}

export interface VpcNetworkSpec {
  /** The VPC's bridge, see vpcBridgeName. */
  bridge: string;
  /** The VPC's CIDR: every subnet must lie inside it. */
  cidr: string;
  /** May be empty (a VPC without subnets: a bridge without addresses, no dnsmasq). */
  subnets: readonly VpcSubnetSpec[];
  /** Directory for the VPC's dnsmasq files (owned by this VPC). */
  stateDir: string;
  /** Serve DNS on the router addresses (default true). */
  dns?: boolean;
  dnsServers?: string[];
  domain?: string;
  leaseTime?: string;
  mtu?: number;
  logDhcp?: boolean;
}

export interface ApplyVpcRulesetOptions {
  /** Delete conntrack entries of Elastic IPs whose association changed (default true). */
  flushConntrack?: boolean;
}

export interface ApplyVpcRulesetResult {
  /** Validating and rendering the model. */
  renderMs: number;
  /** `nft -f` of the whole table. */
  applyMs: number;
  conntrackMs: number;
  /** Size of the script. */
  bytes: number;
  /** Elastic IPs whose association changed with this apply. */
  changedElasticIps: string[];
  notes: string[];
}

export interface ElasticIpUpdateResult {
  /** Public addresses whose association changed. */
  changed: string[];
  /** `nft -f` of the element updates (0 when nothing changed). */
  applyMs: number;
  /** Deleting stale conntrack entries of the changed addresses. */
  conntrackMs: number;
  /** Conntrack entries deleted. */
  flushedConnections: number;
  notes: string[];
}

export interface ElasticIpAddressSpec {
  uplink: string;
  publicIp: string;
  /** The deployment's name prefix (the address label is <uplink>:<prefix>). */
  prefix: string;
}

export interface OwnedVpcObjects {
  /** Bridges named <prefix>v<9 hex>. */
  bridges: OwnedLink[];
  /** dnsmasq processes serving those bridges. */
  dnsmasq: OwnedDnsmasq[];
  /** ip-family tables named <prefix>_vpc*. */
  tables: string[];
  /** Elastic IPs on the uplink (when asked with an uplink). */
  elasticIpAddresses: string[];
  /** Entries of stateRoot (when asked with one): the VPCs' state directories. */
  stateDirs: string[];
}

export interface LinuxVpcNetworkDriverOptions extends LinuxNetworkDriverOptions {
  /**
   * How to announce an Elastic IP: 'arping' (iputils-arping: `arping -U -c 1 -I UPLINK IP`, takes
   * about 1 s because it waits for replies), 'busybox' (`busybox arping -U -c 1`, about 10 ms), or
   * 'none'. Default 'arping', falling back to busybox when arping is not installed.
   */
  arpAnnounce?: 'arping' | 'busybox' | 'none';
}

interface ValidVpc extends DnsmasqInstance {
  spec: VpcNetworkSpec;
  subnets: CheckedSubnet[];
}

const VPC_BRIDGE_RE = (prefix: string) => new RegExp(`^${prefix}v[0-9a-f]{9}$`);

function ms(t0: number): number {
  return Math.round((performance.now() - t0) * 100) / 100;
}

function validateVpcSpec(spec: VpcNetworkSpec): ValidVpc {
  if (spec === null || typeof spec !== 'object')
    throw invalid('InvalidNetworkSpec', 'VPC network spec must be an object');
  const bridge = assertBridgeName(spec.bridge);
  const vpcNet = parseCidr(spec.cidr);
  const subnets = checkVpcSubnets(spec.subnets);
  for (const s of subnets) {
    if (s.net.networkInt < vpcNet.networkInt || s.net.broadcastInt > vpcNet.broadcastInt)
      throw invalid('InvalidNetworkSpec', `subnet ${s.net.cidr} is not inside ${vpcNet.cidr}`);
  }
  const stateDir = assertSafePath(spec.stateDir, 'stateDir');
  if (stateDir === '/') throw invalid('InvalidPath', 'stateDir must not be /');
  const paths = dnsmasqPaths(stateDir);
  const args =
    subnets.length === 0
      ? []
      : renderVpcDnsmasqArgs({
          bridge,
          subnets: subnets.map((s) => ({ cidr: s.net.cidr, gatewayIp: s.gatewayIp })),
          ...paths,
          dns: spec.dns,
          dnsServers: spec.dnsServers,
          domain: spec.domain,
          leaseTime: spec.leaseTime,
          mtu: spec.mtu,
          logDhcp: spec.logDhcp,
        });
  return { spec, bridge, stateDir, paths, args, subnets };
}

export class LinuxVpcNetworkDriver extends LinuxNetworkDriver {
  private readonly arpAnnounce: 'arping' | 'busybox' | 'none';
  private arpingMissing = false;
  private conntrackMissing = false;
  /** Per table: the Elastic IP sets as last applied by this process (read from nft on a miss). */
  private readonly eipState = new Map<string, EipMapsState>();

  constructor(options: LinuxVpcNetworkDriverOptions = {}) {
    super(options);
    this.arpAnnounce = options.arpAnnounce ?? 'arping';
  }

  // ------------------------------------------------------------------ VPCs

  /**
   * Make the VPC's bridge exist (fixed MAC, IPv6 off, up) with exactly one router address per
   * subnet (addresses of deleted subnets are removed), ip_forward on (the host routes between
   * subnets and to the uplink), and its dnsmasq running with one range per subnet (restarted
   * when the subnets change or the bridge or an address was re-created). No nft here: see
   * applyVpcRuleset.
   */
  async ensureVpcNetwork(spec: VpcNetworkSpec): Promise<EnsureNetworkResult> {
    const v = validateVpcSpec(spec);
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
      const fwd = await this.enableIpForward(`VPC bridge ${v.bridge}`);
      if (fwd) {
        changed.push(fwd);
        notes.push(fwd);
      }
      await this.writeBridgeSysctls(v.bridge);

      const want = new Map(v.subnets.map((s) => [`${s.gatewayIp}/${s.net.prefixLength}`, s]));
      const have = (link?.addr_info ?? [])
        .filter((a) => a.family === 'inet')
        .map((a) => `${a.local}/${a.prefixlen}`);
      const batch: string[] = [];
      let added = false;
      for (const a of have) {
        if (!want.has(a)) {
          batch.push(`address del ${a} dev ${v.bridge}`);
          changed.push(`removed ${a} from ${v.bridge}`);
        }
      }
      for (const a of want.keys()) {
        if (!have.includes(a)) {
          batch.push(`address replace ${a} dev ${v.bridge}`);
          changed.push(`added ${a} to ${v.bridge}`);
          added = true;
        }
      }
      if (!(link?.flags ?? []).includes('UP')) {
        batch.push(`link set dev ${v.bridge} up`);
        if (!bridgeCreated) changed.push(`set ${v.bridge} up`);
      }
      if (batch.length) await this.exec('ip', ['-batch', '-'], `${batch.join('\n')}\n`);

      await this.prepareStateDir(v.stateDir);
      if ((await readFileIfExists(v.paths.hostsFile)) === null)
        await writeFileAtomic(v.paths.hostsFile, '');

      if (v.subnets.length === 0) {
        for (const d of await this.listDnsmasq((b) => b === v.bridge)) {
          await this.stopProcess(d.pid);
          changed.push('stopped dnsmasq (no subnets)');
        }
      } else {
        // A hosts file with reservations of a deleted subnet would make dnsmasq log errors; the
        // caller resends the reservations after changing subnets.
        const what = await this.ensureDnsmasq(v, bridgeCreated || added);
        if (what) changed.push(what);
      }
      return { changed, notes };
    });
  }

  /** Remove everything ensureVpcNetwork made (and taps still attached to the bridge). */
  async removeVpcNetwork(
    spec: Pick<VpcNetworkSpec, 'bridge' | 'stateDir'>,
  ): Promise<RemoveNetworkResult> {
    const bridge = assertBridgeName(spec.bridge);
    const stateDir = assertSafePath(spec.stateDir, 'stateDir');
    if (stateDir === '/') throw invalid('InvalidPath', 'stateDir must not be /');
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
        for (const p of await this.ipJson(['-d', 'link', 'show', 'master', bridge])) {
          if (p.linkinfo?.info_kind === 'tun') {
            await this.deleteLink(p.ifname);
            removed.push(`deleted tap ${p.ifname}`);
          }
        }
        await this.deleteLink(bridge);
        removed.push(`deleted bridge ${bridge}`);
      }
      if (await this.exists(stateDir)) {
        await removePath(stateDir);
        removed.push(`removed ${stateDir}`);
      }
      this.reservationStates.delete(bridge);
      return { removed };
    });
  }

  /**
   * The VPC's DHCP reservations, always the full set (all subnets). Same semantics as
   * setReservations: atomic hosts file, SIGHUP only on change, stale leases dropped, coalesced.
   */
  setVpcReservations(
    spec: VpcNetworkSpec,
    reservations: readonly DhcpReservation[],
  ): Promise<SetReservationsResult> {
    let v: ValidVpc;
    let normalized: DhcpReservation[];
    let content: string;
    try {
      v = this.dhcpVpc(spec);
      normalized = reservations.map((r) => ({ ...r, mac: normalizeMac(r.mac) }));
      content = renderVpcDhcpHosts(normalized, spec.subnets);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.setReservationsOf(v, normalized, content);
  }

  /** syncReservations for a VPC: `load` reads the full set inside the VPC's lock. */
  syncVpcReservations(
    spec: VpcNetworkSpec,
    load: () => Promise<readonly DhcpReservation[]>,
  ): Promise<SetReservationsResult> {
    let v: ValidVpc;
    try {
      v = this.dhcpVpc(spec);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.syncReservationsOf(v, load, (normalized) =>
      renderVpcDhcpHosts(normalized, spec.subnets),
    );
  }

  private dhcpVpc(spec: VpcNetworkSpec): ValidVpc {
    const v = validateVpcSpec(spec);
    if (v.subnets.length === 0)
      throw invalid('InvalidNetworkSpec', `VPC bridge ${v.bridge} has no subnets to serve`);
    return v;
  }

  // ------------------------------------------------------------- ruleset

  /**
   * Replace the VPC table with the one rendered from the model, in one nft transaction; then
   * delete the conntrack entries of Elastic IPs whose association changed (so a moved address
   * takes its existing flows along at once).
   */
  async applyVpcRuleset(
    model: VpcNetworkModel,
    options: ApplyVpcRulesetOptions = {},
  ): Promise<ApplyVpcRulesetResult> {
    const t0 = performance.now();
    const plan = planVpcRuleset(model);
    const script = renderVpcRulesetPlan(plan);
    const renderMs = ms(t0);
    const notes = [...plan.notes];
    if (plan.uplink !== null && !(await this.exists(join(this.sysRoot, 'class/net', plan.uplink))))
      notes.push(`uplink ${plan.uplink} does not exist (yet): no outside traffic until it does`);
    return this.locks.run(`nft:${plan.table}`, async () => {
      const flush = options.flushConntrack ?? true;
      const before = flush
        ? (this.eipState.get(plan.table) ?? (await this.readEipState(plan.table)))
        : null;
      const t1 = performance.now();
      try {
        await this.exec('nft', ['-f', '-'], script);
      } catch (e) {
        this.eipState.delete(plan.table);
        throw new NetworkDriverError(
          'NetworkHostError',
          `nft refused the VPC ruleset of ${plan.table}: ${String(e)}`,
          e,
        );
      }
      const applyMs = ms(t1);
      const next = eipMapsFromPlan(plan);
      this.eipState.set(plan.table, next);
      let changedElasticIps: string[] = [];
      let conntrackMs = 0;
      if (before) {
        changedElasticIps = [...new Set([...before.dnat.keys(), ...next.dnat.keys()])]
          .filter((pub) => before.dnat.get(pub) !== next.dnat.get(pub))
          .sort();
        const t2 = performance.now();
        const f = await this.flushConntrack(changedElasticIps);
        conntrackMs = ms(t2);
        notes.push(...f.notes);
      }
      return {
        renderMs,
        applyMs,
        conntrackMs,
        bytes: Buffer.byteLength(script),
        changedElasticIps,
        notes,
      };
    });
  }

  /** Delete the VPC table. Returns whether it existed. */
  async removeVpcRuleset(table: string): Promise<boolean> {
    assertNftTableName(table);
    return this.locks.run(`nft:${table}`, async () => {
      this.eipState.delete(table);
      const existed = (await this.listTable(table)) !== null;
      if (existed) await this.exec('nft', ['-f', '-'], renderVpcRulesetRemoval(table));
      return existed;
    });
  }

  /** The Elastic IP sets of the table as nft has them (null when the table does not exist). */
  async readElasticIpState(table: string): Promise<EipMapsState | null> {
    assertNftTableName(table);
    const json = await this.listTable(table);
    return json === null ? null : parseEipMaps(json);
  }

  // ---------------------------------------------------------- Elastic IPs

  /**
   * Apply Elastic IP changes as set-element updates (no rule changes), in one nft transaction,
   * then delete the conntrack entries of the addresses whose association changed. The table must
   * have been applied (applyVpcRuleset) before. Note: the incremental path does not look at the
   * VPC's internet gateway; the forward chain still refuses traffic into a VPC without one.
   */
  async updateElasticIps(
    table: string,
    changes: readonly ElasticIpChange[],
    options: ApplyVpcRulesetOptions = {},
  ): Promise<ElasticIpUpdateResult> {
    assertNftTableName(table);
    // Validate before taking the lock (throws on bad input).
    planEipMapUpdate(table, { held: new Set(), dnat: new Map() }, changes);
    return this.locks.run(`nft:${table}`, async () => {
      let applyMs = 0;
      let plan: ReturnType<typeof planEipMapUpdate> | null = null;
      for (let attempt = 1; ; attempt++) {
        let current = this.eipState.get(table);
        if (!current) {
          const read = await this.readEipState(table);
          if (!read) {
            throw new NetworkDriverError(
              'NetworkHostError',
              `nft table ${table} has no Elastic IP maps: apply the whole VPC ruleset first`,
            );
          }
          current = read;
        }
        plan = planEipMapUpdate(table, current, changes);
        if (!plan.script) break;
        const t = performance.now();
        try {
          await this.exec('nft', ['-f', '-'], plan.script);
          applyMs = ms(t);
          break;
        } catch (e) {
          // Our picture of the table was stale (another process, a manual change): re-read once.
          this.eipState.delete(table);
          if (attempt >= 2 || !(e instanceof HostCommandError)) {
            throw new NetworkDriverError(
              'NetworkHostError',
              `nft refused the Elastic IP update of ${table}: ${String(e)}`,
              e,
            );
          }
        }
      }
      this.eipState.set(table, plan.next);
      const t2 = performance.now();
      const f =
        (options.flushConntrack ?? true)
          ? await this.flushConntrack(plan.changed)
          : { deleted: 0, notes: [] };
      return {
        changed: plan.changed,
        applyMs,
        conntrackMs: plan.changed.length ? ms(t2) : 0,
        flushedConnections: f.deleted,
        notes: f.notes,
      };
    });
  }

  /**
   * Allocation: the address goes into eip_held first (traffic to it is dropped, so host services
   * never answer on it), then onto the uplink; an existing association is kept (a retry).
   */
  async allocateElasticIp(
    spec: ElasticIpAddressSpec & { table: string; announce?: boolean },
  ): Promise<{ addressAdded: boolean; announced: boolean; notes: string[] }> {
    const r = await this.updateElasticIps(spec.table, [{ publicIp: spec.publicIp }]);
    const addressAdded = await this.ensureElasticIpAddress(spec);
    const notes = [...r.notes];
    let announced = false;
    if (spec.announce ?? true) {
      const a = await this.announceElasticIp(spec);
      announced = a.announced;
      notes.push(...a.notes);
    }
    return { addressAdded, announced, notes };
  }

  /** Associate (or move) the address to a private address: map elements + conntrack flush. */
  async associateElasticIp(spec: {
    table: string;
    publicIp: string;
    privateIp: string;
  }): Promise<ElasticIpUpdateResult> {
    return this.updateElasticIps(spec.table, [
      { publicIp: spec.publicIp, privateIp: assertIpv4(spec.privateIp, 'private address') },
    ]);
  }

  async disassociateElasticIp(spec: {
    table: string;
    publicIp: string;
  }): Promise<ElasticIpUpdateResult> {
    return this.updateElasticIps(spec.table, [{ publicIp: spec.publicIp, privateIp: null }]);
  }

  /**
   * Out of the maps and eip_held (conntrack entries of an association flushed), then off the
   * uplink. Safe to repeat.
   */
  async releaseElasticIp(
    spec: ElasticIpAddressSpec & { table: string },
  ): Promise<{ addressRemoved: boolean; notes: string[] }> {
    const r = await this.updateElasticIps(spec.table, [
      { publicIp: spec.publicIp, released: true },
    ]);
    const addressRemoved = await this.removeElasticIpAddress(spec);
    return { addressRemoved, notes: r.notes };
  }

  /**
   * Hold publicIp on the uplink: `ip addr add IP/32 dev UPLINK scope host label UPLINK:PREFIX`
   * (scope host: never chosen as a source address; still answered by ARP). Returns whether it
   * was added. Refuses an address some other interface holds.
   */
  async ensureElasticIpAddress(spec: ElasticIpAddressSpec): Promise<boolean> {
    const uplink = assertForeignLinkName(spec.uplink, 'uplink');
    const ip = assertIpv4(spec.publicIp, 'Elastic IP');
    const label = elasticIpLabel(uplink, spec.prefix);
    const all = await this.ipJson(['-4', 'addr', 'show']);
    if (!all.some((l) => l.ifname === uplink))
      throw new NetworkDriverError('NetworkHostError', `uplink ${uplink} does not exist`);
    for (const l of all) {
      const a = (l.addr_info ?? []).find((x) => x.local === ip);
      if (!a) continue;
      if (l.ifname === uplink && a.prefixlen === 32) return false;
      throw new NetworkDriverError(
        'NetworkLinkConflict',
        `Elastic IP ${ip} is already an address of ${l.ifname} (${a.local}/${a.prefixlen})`,
      );
    }
    await this.exec('ip', [
      'addr',
      'add',
      `${ip}/32`,
      'dev',
      uplink,
      'scope',
      'host',
      ...(label ? ['label', label] : []),
    ]);
    return true;
  }

  /** Take publicIp (a /32) off the uplink. Returns whether it was there. */
  async removeElasticIpAddress(
    spec: Pick<ElasticIpAddressSpec, 'uplink' | 'publicIp'>,
  ): Promise<boolean> {
    const uplink = assertForeignLinkName(spec.uplink, 'uplink');
    const ip = assertIpv4(spec.publicIp, 'Elastic IP');
    const link = await this.showLink(uplink, 'addr');
    if (!link?.addr_info?.some((a) => a.local === ip && a.prefixlen === 32)) return false;
    await this.exec('ip', ['addr', 'del', `${ip}/32`, 'dev', uplink]);
    return true;
  }

  /**
   * Elastic IPs held on the uplink: /32 addresses with our label; when the label does not fit
   * (long uplink name), scope-host /32 addresses inside one of `pools`.
   */
  async listElasticIpAddresses(spec: {
    uplink: string;
    prefix: string;
    pools?: readonly string[];
  }): Promise<string[]> {
    const uplink = assertForeignLinkName(spec.uplink, 'uplink');
    const label = elasticIpLabel(uplink, spec.prefix);
    const link = await this.showLink(uplink, 'addr');
    const mine = (a: IpAddrInfo) =>
      a.family === 'inet' &&
      a.prefixlen === 32 &&
      (label !== null
        ? a.label === label
        : a.scope === 'host' && (spec.pools ?? []).some((p) => cidrContains(p, a.local ?? '')));
    return (link?.addr_info ?? [])
      .filter(mine)
      .map((a) => a.local!)
      .sort();
  }

  /** Make the Elastic IPs on the uplink exactly publicIps (for the reconciler). */
  async syncElasticIpAddresses(spec: {
    uplink: string;
    prefix: string;
    publicIps: readonly string[];
    pools?: readonly string[];
  }): Promise<{ added: string[]; removed: string[] }> {
    const want = new Set(spec.publicIps.map((ip) => assertIpv4(ip, 'Elastic IP')));
    const have = await this.listElasticIpAddresses(spec);
    const removed: string[] = [];
    const added: string[] = [];
    for (const ip of have) {
      if (!want.has(ip)) {
        await this.removeElasticIpAddress({ uplink: spec.uplink, publicIp: ip });
        removed.push(ip);
      }
    }
    for (const ip of want) {
      if (await this.ensureElasticIpAddress({ ...spec, publicIp: ip })) added.push(ip);
    }
    return { added, removed };
  }

  /**
   * One gratuitous ARP for publicIp on the uplink, so neighbours (the upstream router) update
   * their caches: `arping -U -c 1 -I UPLINK IP` (Debian package iputils-arping; about 1 s, it
   * waits for replies), else `busybox arping`. On a single host the MAC behind an Elastic IP never
   * changes; this matters when an address moves between hosts, or after an uplink change.
   */
  async announceElasticIp(
    spec: Pick<ElasticIpAddressSpec, 'uplink' | 'publicIp'>,
  ): Promise<{ announced: boolean; tool: string | null; ms: number; notes: string[] }> {
    const uplink = assertForeignLinkName(spec.uplink, 'uplink');
    const ip = assertIpv4(spec.publicIp, 'Elastic IP');
    const t0 = performance.now();
    if (this.arpAnnounce === 'none') return { announced: false, tool: null, ms: 0, notes: [] };
    const notes: string[] = [];
    if (this.arpAnnounce === 'arping' && !this.arpingMissing) {
      try {
        await this.exec('arping', ['-U', '-c', '1', '-I', uplink, ip]);
        return { announced: true, tool: 'arping', ms: ms(t0), notes };
      } catch (e) {
        if (!isMissingCommand(e)) throw this.hostError(`arping for ${ip} on ${uplink} failed`, e);
        this.arpingMissing = true;
        notes.push('arping (Debian package iputils-arping) is not installed: used busybox arping');
      }
    }
    try {
      await this.exec('busybox', ['arping', '-U', '-c', '1', '-I', uplink, ip]);
      return { announced: true, tool: 'busybox arping', ms: ms(t0), notes };
    } catch (e) {
      if (!isMissingCommand(e)) throw this.hostError(`busybox arping for ${ip} failed`, e);
      notes.push(`no ARP announcement for ${ip}: neither arping nor busybox is installed`);
      return { announced: false, tool: null, ms: ms(t0), notes };
    }
  }

  // ------------------------------------------------------------ inventory

  /** What the reconciler compares with the database: our VPC bridges, dnsmasq, tables, EIPs. */
  async listOwnedVpcObjects(
    prefix: string,
    options: { uplink?: string | null; pools?: readonly string[]; stateRoot?: string } = {},
  ): Promise<OwnedVpcObjects> {
    assertNamePrefix(prefix);
    const re = VPC_BRIDGE_RE(prefix);
    const bridges = (await this.listOwnedLinks(prefix)).filter(
      (l) => l.kind === 'bridge' && re.test(l.name),
    );
    const dnsmasq = await this.listDnsmasq((b) => re.test(b));
    const r = await this.exec('nft', ['-j', 'list', 'tables', 'ip']);
    const items =
      (JSON.parse(r.stdout) as { nftables?: { table?: { name?: string } }[] }).nftables ?? [];
    const tables = items.flatMap((i) =>
      i.table?.name?.startsWith(`${prefix}_vpc`) ? [i.table.name] : [],
    );
    const elasticIpAddresses =
      options.uplink && (await this.exists(join(this.sysRoot, 'class/net', options.uplink)))
        ? await this.listElasticIpAddresses({
            uplink: options.uplink,
            prefix,
            ...(options.pools ? { pools: options.pools } : {}),
          })
        : [];
    let stateDirs: string[] = [];
    if (options.stateRoot) {
      const root = assertSafePath(options.stateRoot, 'stateRoot');
      try {
        stateDirs = (await readdir(root)).sort().map((d) => join(root, d));
      } catch {
        stateDirs = [];
      }
    }
    return { bridges, dnsmasq, tables, elasticIpAddresses, stateDirs };
  }

  // ------------------------------------------------------------ internals

  private async listTable(table: string): Promise<string | null> {
    const r = await this.run('nft', ['-j', 'list', 'table', 'ip', table], {
      timeoutMs: this.timeoutMs,
      okExitCodes: [1],
    });
    if (r.exitCode === 0) return r.stdout;
    if (/No such file or directory/i.test(r.stderr)) return null;
    throw new NetworkDriverError(
      'NetworkHostError',
      `nft list table ip ${table} failed: ${r.stderr.trim()}`,
    );
  }

  private async readEipState(table: string): Promise<EipMapsState | null> {
    const json = await this.listTable(table);
    return json === null ? null : parseEipMaps(json);
  }

  /**
   * Delete conntrack entries to or NATed to these public addresses (their DNAT/SNAT binding is
   * fixed at a flow's first packet, so without this a moved address keeps feeding the old
   * instance until the flow expires). Needs `conntrack` (Debian package conntrack).
   */
  private async flushConntrack(
    publicIps: readonly string[],
  ): Promise<{ deleted: number; notes: string[] }> {
    if (publicIps.length === 0) return { deleted: 0, notes: [] };
    if (this.conntrackMissing) return { deleted: 0, notes: [CONNTRACK_MISSING] };
    // Both directions of every address, a few conntrack processes at a time (each walks the
    // whole conntrack table).
    const jobs = publicIps.flatMap((ip) => [
      ['--orig-dst', ip],
      ['--reply-dst', ip],
    ]);
    let deleted = 0;
    for (let i = 0; i < jobs.length; i += 8) {
      const results = await Promise.allSettled(
        jobs.slice(i, i + 8).map(async ([selector, ip]) => {
          const args = ['-D', selector!, ip!];
          const r = await this.run('conntrack', args, {
            timeoutMs: this.timeoutMs,
            okExitCodes: [1],
          });
          const m = /([0-9]+) flow entries have been deleted/.exec(r.stderr);
          if (m) return Number(m[1]);
          // An entry that went away between conntrack's dump and its delete (expired, or
          // deleted by the other direction's run) is what we wanted anyway.
          if (r.exitCode === 0 || /such conntrack doesn't exist/.test(r.stderr)) return 0;
          throw new HostCommandError('conntrack', args, r.exitCode, r.stderr, false);
        }),
      );
      for (const r of results) {
        if (r.status === 'fulfilled') {
          deleted += r.value;
        } else if (isMissingCommand(r.reason)) {
          this.conntrackMissing = true;
          return { deleted, notes: [CONNTRACK_MISSING] };
        } else {
          throw this.hostError('conntrack -D failed', r.reason);
        }
      }
    }
    return { deleted, notes: [] };
  }

  private hostError(message: string, e: unknown): NetworkDriverError {
    return new NetworkDriverError('NetworkHostError', `${message}: ${String(e)}`, e);
  }
}

const CONNTRACK_MISSING =
  'conntrack (Debian package conntrack) is not installed: existing connections to a moved ' +
  'Elastic IP keep their old target until they expire';

function isMissingCommand(e: unknown): boolean {
  return e instanceof HostCommandError && e.exitCode === null && /\bENOENT\b/.test(e.stderr);
}
