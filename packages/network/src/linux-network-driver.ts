import { DnsmasqSupervisor, type DnsmasqSupervisorOptions } from './dhcp/dnsmasq.js';
import type { DhcpLease, DhcpReservation } from './dhcp/dhcp-hosts.js';
import type {
  AnnounceResult,
  ApplySecurityGroupsResult,
  ApplyVpcRulesetOptions,
  ApplyVpcRulesetResult,
  ElasticIpAddressSpec,
  ElasticIpUpdateResult,
  EnsureNetworkResult,
  EnsurePortResult,
  NetworkDriver,
  OwnedDnsmasq,
  OwnedLink,
  OwnedSecurityGroupTables,
  OwnedVpcObjects,
  PortSpec,
  RemoveNetworkResult,
  SecurityGroupUpdateResult,
  SetReservationsResult,
  VpcNetworkSpec,
} from './driver.js';
import { FirewallTables } from './firewall/apply.js';
import { LinuxHost, type LinuxHostOptions } from './host/linux-host.js';
import { Nft } from './host/nft.js';
import { ProcessTable } from './host/processes.js';
import { Inventory } from './inventory.js';
import { Links } from './links/links.js';
import { Ports } from './links/ports.js';
import type {
  SecurityGroupChanges,
  SecurityGroupMembershipChange,
  SecurityGroupModel,
  SecurityGroupNetworkModel,
  SecurityGroupPortModel,
  SecurityGroupState,
} from './firewall/index.js';
import { Conntrack } from './vpc/conntrack.js';
import type { EipMapsState, ElasticIpChange } from './vpc-ruleset/index.js';
import { ElasticIpLifecycle } from './vpc/elastic-ips.js';
import type { VpcNetworkModel } from './vpc-ruleset/index.js';
import { UplinkAddresses, type UplinkAddressesOptions } from './vpc/uplink-addresses.js';
import { VpcBridges } from './vpc/vpc-bridges.js';
import { VpcTable } from './vpc/vpc-table.js';

export interface LinuxNetworkDriverOptions
  extends LinuxHostOptions, DnsmasqSupervisorOptions, UplinkAddressesOptions {
  /** The signal sender (tests only). */
  kill?: (pid: number, signal: NodeJS.Signals) => void;
}

/**
 * The Linux implementation of NetworkDriver, composed of its parts: guest taps (ports), VPC
 * bridges with their dnsmasq, the VPC table with Elastic IPs on the uplink, the security-group
 * tables, and the inventory of what is ours. Every method hands the call to the part that owns it.
 */
export class LinuxNetworkDriver implements NetworkDriver {
  private readonly ports: Ports;
  private readonly vpcs: VpcBridges;
  private readonly dnsmasq: DnsmasqSupervisor;
  private readonly links: Links;
  private readonly vpcTable: VpcTable;
  private readonly uplink: UplinkAddresses;
  private readonly elasticIps: ElasticIpLifecycle;
  private readonly firewall: FirewallTables;
  private readonly inventory: Inventory;
  private readonly host: LinuxHost;

  constructor(options: LinuxNetworkDriverOptions = {}) {
    const host = new LinuxHost(options);
    const processes = new ProcessTable(host.procRoot, options.kill);
    const nft = new Nft(host);
    this.host = host;
    this.links = new Links(host);
    this.ports = new Ports(host);
    this.dnsmasq = new DnsmasqSupervisor(host, processes, options);
    this.vpcs = new VpcBridges(host, this.links, this.dnsmasq);
    this.vpcTable = new VpcTable(host, nft, new Conntrack(host));
    this.uplink = new UplinkAddresses(host, options);
    this.elasticIps = new ElasticIpLifecycle(this.vpcTable, this.uplink);
    this.firewall = new FirewallTables(host, nft);
    this.inventory = new Inventory(
      host,
      processes,
      nft,
      this.links,
      this.dnsmasq,
      this.vpcTable,
      this.uplink,
    );
  }

  // ------------------------------------------------------------------ ports

  ensurePort(port: PortSpec): Promise<EnsurePortResult> {
    return this.ports.ensurePort(port);
  }

  removePort(tap: string): Promise<boolean> {
    return this.ports.removePort(tap);
  }

  // ------------------------------------------------------------------ VPC networks

  ensureVpcNetwork(spec: VpcNetworkSpec): Promise<EnsureNetworkResult> {
    return this.vpcs.ensureVpcNetwork(spec);
  }

  removeVpcNetwork(
    spec: Pick<VpcNetworkSpec, 'bridge' | 'stateDir'>,
  ): Promise<RemoveNetworkResult> {
    return this.vpcs.removeVpcNetwork(spec);
  }

  setVpcReservations(
    spec: VpcNetworkSpec,
    reservations: readonly DhcpReservation[],
  ): Promise<SetReservationsResult> {
    return this.vpcs.setVpcReservations(spec, reservations);
  }

  readLeases(spec: Pick<VpcNetworkSpec, 'stateDir'>): Promise<DhcpLease[]> {
    return this.vpcs.readLeases(spec);
  }

  // ------------------------------------------------------------------ the VPC table

  applyVpcRuleset(
    model: VpcNetworkModel,
    options?: ApplyVpcRulesetOptions,
  ): Promise<ApplyVpcRulesetResult> {
    return this.vpcTable.applyVpcRuleset(model, options);
  }

  removeVpcRuleset(table: string): Promise<boolean> {
    return this.vpcTable.removeVpcRuleset(table);
  }

  readElasticIpState(table: string): Promise<EipMapsState | null> {
    return this.vpcTable.readElasticIpState(table);
  }

  updateElasticIps(
    table: string,
    changes: readonly ElasticIpChange[],
    options?: ApplyVpcRulesetOptions,
  ): Promise<ElasticIpUpdateResult> {
    return this.vpcTable.updateElasticIps(table, changes, options);
  }

  // ------------------------------------------------------------------ Elastic IPs

  allocateElasticIp(
    spec: ElasticIpAddressSpec & { table: string; announce?: boolean },
  ): Promise<{ addressAdded: boolean; announced: boolean; notes: string[] }> {
    return this.elasticIps.allocate(spec);
  }

  associateElasticIp(spec: {
    table: string;
    publicIp: string;
    privateIp: string;
  }): Promise<ElasticIpUpdateResult> {
    return this.elasticIps.associate(spec);
  }

  disassociateElasticIp(spec: { table: string; publicIp: string }): Promise<ElasticIpUpdateResult> {
    return this.elasticIps.disassociate(spec);
  }

  releaseElasticIp(
    spec: ElasticIpAddressSpec & { table: string },
  ): Promise<{ addressRemoved: boolean; notes: string[] }> {
    return this.elasticIps.release(spec);
  }

  ensureElasticIpAddress(spec: ElasticIpAddressSpec): Promise<boolean> {
    return this.uplink.ensure(spec);
  }

  removeElasticIpAddress(
    spec: Pick<ElasticIpAddressSpec, 'uplink' | 'publicIp'>,
  ): Promise<boolean> {
    return this.uplink.remove(spec);
  }

  listElasticIpAddresses(spec: {
    uplink: string;
    prefix: string;
    pools?: readonly string[];
  }): Promise<string[]> {
    return this.uplink.list(spec);
  }

  syncElasticIpAddresses(spec: {
    uplink: string;
    prefix: string;
    publicIps: readonly string[];
    pools?: readonly string[];
  }): Promise<{ added: string[]; removed: string[] }> {
    return this.uplink.sync(spec);
  }

  announceElasticIp(
    spec: Pick<ElasticIpAddressSpec, 'uplink' | 'publicIp'>,
  ): Promise<AnnounceResult> {
    return this.uplink.announce(spec);
  }

  // ------------------------------------------------------------------ security groups

  applySecurityGroups(model: SecurityGroupNetworkModel): Promise<ApplySecurityGroupsResult> {
    return this.firewall.applySecurityGroups(model);
  }

  updateSecurityGroups(
    prefix: string,
    changes: SecurityGroupChanges,
  ): Promise<SecurityGroupUpdateResult> {
    return this.firewall.updateSecurityGroups(prefix, changes);
  }

  updatePorts(
    prefix: string,
    ports: { upsert?: readonly SecurityGroupPortModel[]; remove?: readonly string[] },
  ): Promise<SecurityGroupUpdateResult> {
    return this.firewall.updatePorts(prefix, ports);
  }

  updateMemberships(
    prefix: string,
    memberships: readonly SecurityGroupMembershipChange[],
  ): Promise<SecurityGroupUpdateResult> {
    return this.firewall.updateMemberships(prefix, memberships);
  }

  replaceGroupRules(
    prefix: string,
    groups: readonly SecurityGroupModel[],
  ): Promise<SecurityGroupUpdateResult> {
    return this.firewall.replaceGroupRules(prefix, groups);
  }

  removeSecurityGroupTables(prefix: string): Promise<string[]> {
    return this.firewall.removeSecurityGroupTables(prefix);
  }

  readSecurityGroupState(prefix: string): Promise<SecurityGroupState | null> {
    return this.firewall.readSecurityGroupState(prefix);
  }

  cachedSecurityGroupState(prefix: string): SecurityGroupState | null {
    return this.firewall.cachedSecurityGroupState(prefix);
  }

  // ------------------------------------------------------------------ inventory

  listOwnedLinks(prefix: string): Promise<OwnedLink[]> {
    return this.links.listOwned(prefix);
  }

  listOwnedDnsmasq(prefix: string): Promise<OwnedDnsmasq[]> {
    return this.dnsmasq.listOwned(prefix);
  }

  listOwnedTables(prefix: string): Promise<string[]> {
    return this.inventory.listOwnedTables(prefix);
  }

  listOwnedVpcObjects(
    prefix: string,
    options?: { uplink?: string | null; pools?: readonly string[]; stateRoot?: string },
  ): Promise<OwnedVpcObjects> {
    return this.inventory.listOwnedVpcObjects(prefix, options);
  }

  listOwnedSecurityGroupTables(prefix: string): Promise<OwnedSecurityGroupTables> {
    return this.firewall.listOwned(prefix);
  }

  hasLink(name: string): Promise<boolean> {
    return this.host.linkExists(name);
  }

  async sweep(prefix: string, options?: { stateRoot?: string }): Promise<string[]> {
    const removed = await this.inventory.sweep(prefix, options);
    // What the parts remember having applied is gone with it.
    this.vpcs.forget();
    this.vpcTable.forget();
    this.firewall.forget();
    return removed;
  }
}
