import type { DhcpLease, DhcpReservation } from './dhcp/dhcp-hosts.js';
import type {
  SecurityGroupChanges,
  SecurityGroupMembershipChange,
  SecurityGroupModel,
  SecurityGroupNetworkModel,
  SecurityGroupPortModel,
  SecurityGroupState,
  SecurityGroupUpdate,
} from './firewall/index.js';
import type { EipMapsState, ElasticIpChange } from './vpc-ruleset/index.js';
import type { VpcNetworkModel } from './vpc-ruleset/index.js';

/**
 * What the worker asks of a host's network: one interface, implemented on Linux by
 * LinuxNetworkDriver out of small parts (links and taps, a dnsmasq supervisor, VPC bridges, the
 * VPC table with Elastic IPs, the security-group tables). Every operation is "ensure"-style: safe
 * to repeat, after a crash, or on a half-made state; input is validated before the host is
 * touched (NetworkValidationError), host failures are NetworkDriverErrors.
 */
export interface NetworkDriver
  extends GuestPorts, VpcNetworks, VpcRuleset, ElasticIps, SecurityGroupTables, NetworkInventory {}

// ------------------------------------------------------------------ ports

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

/** The guests' taps: persistent, attached to their VPC's bridge, opened by libvirt. */
export interface GuestPorts {
  /**
   * A persistent tap attached to the bridge and up. Idempotent: an existing tap is re-attached
   * or re-addressed only when needed. Concurrent calls are made together (one `ip -batch`).
   */
  ensurePort(port: PortSpec): Promise<EnsurePortResult>;
  /** Delete the tap if it exists. Returns whether it did. Refuses to delete a non-tun link. */
  removePort(tap: string): Promise<boolean>;
}

// ------------------------------------------------------------------ VPC networks

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

export interface EnsureNetworkResult {
  /** What this call changed on the host (empty when everything already was as asked). */
  changed: string[];
  /** Things the operator should know, e.g. "enabled net.ipv4.ip_forward". */
  notes: string[];
}

export interface RemoveNetworkResult {
  removed: string[];
}

export interface SetReservationsResult {
  /** The hosts file got new content. */
  changed: boolean;
  /** Leases dropped because they blocked a reservation (address reused by a new MAC). */
  releasedLeases: { mac: string; ip: string }[];
  /** unchanged | reloaded (SIGHUP) | restarted | started (was not running). */
  dnsmasq: 'unchanged' | 'reloaded' | 'restarted' | 'started';
}

/** One Linux bridge per VPC with a router address per subnet, and its dnsmasq (DHCP, DNS). */
export interface VpcNetworks {
  /**
   * Make the VPC's bridge exist (fixed MAC, IPv6 off, up) with exactly one router address per
   * subnet, ip_forward on, and its dnsmasq running with one range per subnet (restarted when the
   * subnets change or the bridge or an address was re-created). No nft here: see applyVpcRuleset.
   */
  ensureVpcNetwork(spec: VpcNetworkSpec): Promise<EnsureNetworkResult>;
  /** Remove everything ensureVpcNetwork made (and taps still attached to the bridge). */
  removeVpcNetwork(spec: Pick<VpcNetworkSpec, 'bridge' | 'stateDir'>): Promise<RemoveNetworkResult>;
  /**
   * The VPC's DHCP reservations, always the full set (all subnets): the hosts file written
   * atomically and dnsmasq SIGHUPed only when it changed, leases that would block a reservation
   * dropped, dnsmasq started if it is not running. Concurrent calls for one VPC are coalesced:
   * the latest set wins, and a call superseded while it waited returns once the newer set is in.
   */
  setVpcReservations(
    spec: VpcNetworkSpec,
    reservations: readonly DhcpReservation[],
  ): Promise<SetReservationsResult>;
  /** The current lease file of a VPC, parsed (diagnostics, tests). */
  readLeases(spec: Pick<VpcNetworkSpec, 'stateDir'>): Promise<DhcpLease[]>;
}

// ------------------------------------------------------------------ the VPC table

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

/** The one nft table of all VPCs: isolation, outbound NAT, Elastic IP 1:1 NAT (vpc/ruleset.ts). */
export interface VpcRuleset {
  /**
   * Replace the VPC table with the one rendered from the model, in one nft transaction; then
   * delete the conntrack entries of Elastic IPs whose association changed.
   */
  applyVpcRuleset(
    model: VpcNetworkModel,
    options?: ApplyVpcRulesetOptions,
  ): Promise<ApplyVpcRulesetResult>;
  /** Delete the VPC table. Returns whether it existed. */
  removeVpcRuleset(table: string): Promise<boolean>;
  /** The Elastic IP sets of the table as nft has them (null when the table does not exist). */
  readElasticIpState(table: string): Promise<EipMapsState | null>;
  /**
   * Elastic IP changes as set-element updates in one nft transaction (the table must have been
   * applied before), then the conntrack entries of the changed addresses deleted.
   */
  updateElasticIps(
    table: string,
    changes: readonly ElasticIpChange[],
    options?: ApplyVpcRulesetOptions,
  ): Promise<ElasticIpUpdateResult>;
}

// ------------------------------------------------------------------ Elastic IPs

export interface ElasticIpAddressSpec {
  uplink: string;
  publicIp: string;
  /** The deployment's name prefix (the address label is <uplink>:<prefix>). */
  prefix: string;
}

export interface AnnounceResult {
  announced: boolean;
  tool: string | null;
  ms: number;
  notes: string[];
}

/**
 * Elastic IPs: /32 addresses held on the uplink, and their life cycle over the VPC table.
 * Order matters so a held public address is never open to host services:
 *   allocate     into eip_held (input drop), then onto the uplink
 *   associate    map elements, then conntrack entries of the address flushed
 *   disassociate map elements out
 *   release      out of the maps and eip_held, off the uplink, conntrack flushed
 *   announce     one gratuitous ARP on the uplink
 */
export interface ElasticIps {
  allocateElasticIp(
    spec: ElasticIpAddressSpec & { table: string; announce?: boolean },
  ): Promise<{ addressAdded: boolean; announced: boolean; notes: string[] }>;
  associateElasticIp(spec: {
    table: string;
    publicIp: string;
    privateIp: string;
  }): Promise<ElasticIpUpdateResult>;
  disassociateElasticIp(spec: { table: string; publicIp: string }): Promise<ElasticIpUpdateResult>;
  releaseElasticIp(
    spec: ElasticIpAddressSpec & { table: string },
  ): Promise<{ addressRemoved: boolean; notes: string[] }>;
  /** Hold publicIp on the uplink (/32, scope host, labelled). Returns whether it was added. */
  ensureElasticIpAddress(spec: ElasticIpAddressSpec): Promise<boolean>;
  /** Take publicIp off the uplink. Returns whether it was there. */
  removeElasticIpAddress(spec: Pick<ElasticIpAddressSpec, 'uplink' | 'publicIp'>): Promise<boolean>;
  /** Elastic IPs held on the uplink (our label; without one, scope-host /32s inside `pools`). */
  listElasticIpAddresses(spec: {
    uplink: string;
    prefix: string;
    pools?: readonly string[];
  }): Promise<string[]>;
  /** Make the Elastic IPs on the uplink exactly publicIps. */
  syncElasticIpAddresses(spec: {
    uplink: string;
    prefix: string;
    publicIps: readonly string[];
    pools?: readonly string[];
  }): Promise<{ added: string[]; removed: string[] }>;
  /** One gratuitous ARP for publicIp on the uplink. */
  announceElasticIp(
    spec: Pick<ElasticIpAddressSpec, 'uplink' | 'publicIp'>,
  ): Promise<AnnounceResult>;
}

// ------------------------------------------------------------------ security groups

export interface ApplySecurityGroupsResult {
  /** Validating and rendering the model. */
  renderMs: number;
  /** `nft -f` of both tables. */
  applyMs: number;
  /** Size of the script. */
  bytes: number;
  tables: { inet: string; bridge: string };
  counts: { bridges: number; groups: number; rules: number; ports: number; combos: number };
  /** Things the operator should know (e.g. bridge netfilter turned on). */
  notes: string[];
}

export interface SecurityGroupUpdateResult {
  renderMs: number;
  /** `nft -f` of the update (0 when nothing changed). */
  applyMs: number;
  bytes: number;
  changed: boolean;
  /** The state was read back from nft first (fresh process, or a refused update). */
  readBack: boolean;
  summary: SecurityGroupUpdate['summary'];
}

/** EC2 security groups as the <prefix>_sg (inet) and <prefix>_sgb (bridge) tables. */
export interface SecurityGroupTables {
  /** Replace both tables with the model's, in one transaction (established flows survive). */
  applySecurityGroups(model: SecurityGroupNetworkModel): Promise<ApplySecurityGroupsResult>;
  /** Changes as one small transaction; the tables must exist (applySecurityGroups first). */
  updateSecurityGroups(
    prefix: string,
    changes: SecurityGroupChanges,
  ): Promise<SecurityGroupUpdateResult>;
  /** Launch / move (upsert) and terminate (remove) ports: element updates only. */
  updatePorts(
    prefix: string,
    ports: { upsert?: readonly SecurityGroupPortModel[]; remove?: readonly string[] },
  ): Promise<SecurityGroupUpdateResult>;
  /** "Change an instance's groups": each port's map elements and the group sets. */
  updateMemberships(
    prefix: string,
    memberships: readonly SecurityGroupMembershipChange[],
  ): Promise<SecurityGroupUpdateResult>;
  /** Create groups, or replace all rules of existing ones. */
  replaceGroupRules(
    prefix: string,
    groups: readonly SecurityGroupModel[],
  ): Promise<SecurityGroupUpdateResult>;
  /** Delete both tables. Returns the tables that existed. */
  removeSecurityGroupTables(prefix: string): Promise<string[]>;
  /** The state as nft has it (null when the tables do not exist or are not ours). */
  readSecurityGroupState(prefix: string): Promise<SecurityGroupState | null>;
  /** The state this process last applied (null when it has none). */
  cachedSecurityGroupState(prefix: string): SecurityGroupState | null;
}

// ------------------------------------------------------------------ inventory

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

export interface OwnedSecurityGroupTables {
  /** inet tables named <prefix>_sg*. */
  inet: string[];
  /** bridge tables named <prefix>_sg*. */
  bridge: string[];
}

/** What the reconciler and teardown compare with the database, and the sweep of everything. */
export interface NetworkInventory {
  /** Links (bridges, taps, ...) whose name starts with the prefix. */
  listOwnedLinks(prefix: string): Promise<OwnedLink[]>;
  /** Our dnsmasq processes (found through /proc) serving bridges whose name starts with prefix. */
  listOwnedDnsmasq(prefix: string): Promise<OwnedDnsmasq[]>;
  /** nft tables of every family whose name starts with `<prefix>_`, as 'family name'. */
  listOwnedTables(prefix: string): Promise<string[]>;
  /** Our VPC bridges, their dnsmasq, the VPC tables, Elastic IPs on the uplink, state dirs. */
  listOwnedVpcObjects(
    prefix: string,
    options?: { uplink?: string | null; pools?: readonly string[]; stateRoot?: string },
  ): Promise<OwnedVpcObjects>;
  listOwnedSecurityGroupTables(prefix: string): Promise<OwnedSecurityGroupTables>;
  /** The link exists on the host (e.g. the uplink). */
  hasLink(name: string): Promise<boolean>;
  /**
   * Remove everything that carries the prefix, whatever made it (this version or an older one):
   * our dnsmasq processes, bridges and taps, nft tables of every family, and the entries of
   * stateRoot. Returns what it removed.
   */
  sweep(prefix: string, options?: { stateRoot?: string }): Promise<string[]>;
}
