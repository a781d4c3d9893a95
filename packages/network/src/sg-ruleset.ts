import {
  NetworkValidationError,
  assertBridgeName,
  assertIpv4,
  assertNamePrefix,
  assertNftTableName,
  assertOwnLinkName,
  assertTapName,
  assertVpcId,
  ipToInt,
  normalizeMac,
  parseCidr,
  type NetworkValidationReason,
} from '@minicloud/domain';

/**
 * EC2 security groups of one host as ONE nft transaction over two tables, rendered by pure
 * functions from the model:
 *
 *   inet   <prefix>_sg    stateful filtering (conntrack exists only in inet/ip here)
 *   bridge <prefix>_sgb   stateless per-port anti-spoofing (the bridge family has no conntrack)
 *
 * Both are replaced atomically by renderSecurityGroups (one `nft -f`), and changed in small
 * element/chain updates by planSecurityGroupUpdate (a launch, a terminate, "change an instance's
 * groups", a rule change).
 *
 * Why the filter keys on addresses and not on taps: with br_netfilter, bridged IPv4 passes the
 * inet forward hook, but there iifname/oifname are the BRIDGE (the ports are invisible outside
 * the bridge family, and this kernel has no nft bridge meta either). So the bridge table makes
 * sure every IPv4 packet from a port carries that port's address, and the inet table then
 * dispatches on (bridge, address):
 *
 *   inet <prefix>_sg
 *     bridges          ifname                      managed bridges (element comment: the VPC)
 *     router_addrs     ifname . ipv4_addr          the host's addresses on each bridge
 *     router_services  inet_proto . inet_service  what guests may reach on router_addrs
 *                                                 (DNS udp/tcp 53, DHCP udp 67, + configured)
 *     host_services    ipv4_addr . inet_proto . inet_service   other host services (metadata)
 *     sg_<17 hex>      ipv4_addr                   members of a group (comment: its VPC); "from
 *                                                 group X" rules are `ip saddr @sg_X`, so they do
 *                                                 not grow with instances, and a launch is an
 *                                                 element update
 *     egress_ports     ifname . ipv4_addr : verdict   (bridge, port address) -> jump c_<combo>_out
 *     ingress_ports    ifname . ipv4_addr : verdict   (bridge, port address) -> jump c_<combo>_in
 *     chain g_<hex>_in / g_<hex>_out   a group's rules, each `... accept comment "sgr-..."`
 *     chain c_<hex>[_<hex>...]_in/out  one per distinct combination of groups in use: jumps to
 *                                      each group's chain, then drop (the union of the groups)
 *     chain egress   forward, filter + 10: from a managed bridge: established/related accept,
 *                    invalid drop, dispatch on the source port, drop what no port claims
 *     chain ingress  forward, filter + 20: the same towards a managed bridge, on the destination
 *     chain input    input, filter + 10: from a managed bridge to the host only DHCP, DNS and
 *                    the configured services (and replies to the host's own connections)
 *
 *   Two base chains on one hook: an accept ends only its own base chain, so a packet between
 *   two guests must pass the sender's egress AND the receiver's ingress; a drop anywhere (also in
 *   the ip table <prefix>_vpc, which runs first at priority filter) is final.
 *
 *   bridge <prefix>_sgb
 *     ports       ifname                                   every known port (tap)
 *     port_macs   ifname . ether_addr                      (tap, MAC)
 *     port_addrs  ifname . ether_addr . ipv4_addr          (tap, MAC, IP)
 *     port_ips    ifname . ipv4_addr                       (tap, IP)
 *     chain prerouting  filter (-200, before br_netfilter): frames from a port (a known tap, or
 *                       any interface named <tapPrefix>*) must carry the port's MAC; IPv4 its
 *                       address (DHCP 0.0.0.0:68 -> 255.255.255.255:67 excepted); ARP its MAC
 *                       and IP as sender (or 0.0.0.0 in a probe); everything else (IPv6, VLAN
 *                       tags, other ethertypes) drops
 *     chain forward     frames bridged INTO a port must be addressed to the port's IP, so a
 *                       guest cannot reach one guest through another's allowed address
 *
 * Host-originated traffic to guests (health checks, DHCP replies) is not filtered: the host is
 * the control plane. IPv4 only (VPCs are IPv4-only; IPv6 frames from guests are dropped).
 *
 * Every name and value is validated before it reaches a script: names through naming.ts, ids by
 * pattern, addresses through ipam.ts, MACs through mac.ts, numbers by range.
 */

export const SG_MAX_GROUPS_PER_PORT = 5;
/** Per direction, as EC2 (60 inbound and 60 outbound rules per group). */
export const SG_MAX_RULES_PER_DIRECTION = 60;

export type SecurityGroupProtocol = 'tcp' | 'udp' | 'icmp' | '-1';

export interface SecurityGroupRuleModel {
  /** sgr- + 17 hex. */
  ruleId: string;
  ipProtocol: SecurityGroupProtocol;
  /** tcp/udp: first port (0-65535); icmp: type (-1 = any); '-1': absent, null or -1. */
  fromPort?: number | null;
  /** tcp/udp: last port; icmp: code (-1 = any); '-1': absent, null or -1. */
  toPort?: number | null;
  /** Exactly one of cidr (IPv4, e.g. '10.0.0.0/16') and referencedGroupId. */
  cidr?: string | null;
  /** "Any instance in that group" (sg- + 17 hex; must be in the model and in the same VPC). */
  referencedGroupId?: string | null;
}

export interface SecurityGroupModel {
  /** sg- + 17 hex. */
  groupId: string;
  vpcId: string;
  /** Allow rules for inbound traffic (source = cidr or group). */
  ingress: readonly SecurityGroupRuleModel[];
  /** Allow rules for outbound traffic (destination = cidr or group). */
  egress: readonly SecurityGroupRuleModel[];
}

/** One instance NIC (tap) and its groups. */
export interface SecurityGroupPortModel {
  tap: string;
  /** The bridge the tap is attached to (must be in the model's bridges). */
  bridge: string;
  /** The guest's MAC (not the tap's own fe:... MAC). */
  mac: string;
  ip: string;
  /** 1 to 5 groups, all in the bridge's VPC. */
  groupIds: readonly string[];
}

export interface SecurityGroupBridgeModel {
  bridge: string;
  vpcId: string;
  /** The host's addresses on the bridge (each subnet's router): DHCP, DNS, services. */
  routerIps: readonly string[];
}

export interface SecurityGroupHostService {
  protocol: 'tcp' | 'udp';
  port: number;
  /** A specific host address (e.g. a metadata address held on the host); absent: router addresses. */
  address?: string | null;
}

export interface SecurityGroupNetworkModel {
  /** The deployment's name prefix: tables <prefix>_sg (inet) and <prefix>_sgb (bridge). */
  prefix: string;
  /**
   * Interfaces whose name starts with this are guest ports: one that is not in `ports` gets
   * nothing through (launch order: port in the model before the guest starts). Default
   * <prefix>t (the tap naming of tapName); null: only listed ports are checked.
   */
  tapPrefix?: string | null;
  bridges: readonly SecurityGroupBridgeModel[];
  groups: readonly SecurityGroupModel[];
  ports: readonly SecurityGroupPortModel[];
  hostServices?: readonly SecurityGroupHostService[];
  /** Answer ping on router addresses (default false: like EC2, the router is silent). */
  allowRouterPing?: boolean;
}

// ---------------------------------------------------------------------------- errors

/** What was wrong (stable, for tests and for the API's mapping to EC2 codes). */
export type SecurityGroupProblem =
  | 'InvalidModel'
  | 'InvalidGroupId'
  | 'InvalidRuleId'
  | 'InvalidProtocol'
  | 'InvalidPortRange'
  | 'InvalidIcmpTypeCode'
  | 'InvalidTarget'
  | 'UnknownGroup'
  | 'UnknownBridge'
  | 'UnknownPort'
  | 'GroupVpcMismatch'
  | 'TooManyGroups'
  | 'TooManyRules'
  | 'Duplicate'
  | 'InUse';

/** A NetworkValidationError (EC2 code InvalidParameterValue) that also says what was wrong. */
export class SecurityGroupValidationError extends NetworkValidationError {
  constructor(
    readonly problem: SecurityGroupProblem,
    message: string,
    reason: NetworkValidationReason = 'InvalidNetworkSpec',
  ) {
    super(reason, message);
    this.name = 'SecurityGroupValidationError';
  }
}

function bad(
  problem: SecurityGroupProblem,
  message: string,
  reason?: NetworkValidationReason,
): SecurityGroupValidationError {
  return new SecurityGroupValidationError(problem, message, reason);
}

/** Re-throw a NetworkValidationError from ipam/mac/naming with context, keeping its reason. */
function withContext<T>(context: string, problem: SecurityGroupProblem, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof NetworkValidationError && !(e instanceof SecurityGroupValidationError))
      throw bad(problem, `${context}: ${e.message}`, e.reason);
    throw e;
  }
}

// ---------------------------------------------------------------------------- names

const GROUP_ID_RE = /^sg-[0-9a-f]{17}$/;
const RULE_ID_RE = /^sgr-[0-9a-f]{17}$/;
const GROUP_SET_RE = /^sg_([0-9a-f]{17})$/;
const COMBO_CHAIN_RE = /^c_((?:[0-9a-f]{17})(?:_[0-9a-f]{17}){0,4})_(in|out)$/;
const GROUP_CHAIN_RE = /^g_([0-9a-f]{17})_(in|out)$/;

/** The stateful filter table (family inet). */
export function sgTableName(prefix: string): string {
  return `${assertNamePrefix(prefix)}_sg`;
}

/** The anti-spoofing table (family bridge). */
export function sgBridgeTableName(prefix: string): string {
  return `${assertNamePrefix(prefix)}_sgb`;
}

export function assertSecurityGroupId(groupId: string, what = 'security group id'): string {
  if (typeof groupId !== 'string' || !GROUP_ID_RE.test(groupId))
    throw bad('InvalidGroupId', `invalid ${what} ${JSON.stringify(groupId)} (sg- + 17 hex)`);
  return groupId;
}

export function assertSecurityGroupRuleId(ruleId: string): string {
  if (typeof ruleId !== 'string' || !RULE_ID_RE.test(ruleId))
    throw bad(
      'InvalidRuleId',
      `invalid security group rule id ${JSON.stringify(ruleId)} (sgr- + 17 hex)`,
    );
  return ruleId;
}

/** The member set of a group: sg_<17 hex>. */
export function sgGroupSetName(groupId: string): string {
  return `sg_${assertSecurityGroupId(groupId).slice(3)}`;
}

/** The rule chain of a group in one direction: g_<17 hex>_in / _out. */
export function sgGroupChainName(groupId: string, direction: 'in' | 'out'): string {
  return `g_${assertSecurityGroupId(groupId).slice(3)}_${direction}`;
}

/** The dispatch chain of a combination of groups: c_<hex>_<hex>..._in / _out (ids sorted). */
export function sgComboChainName(groupIds: readonly string[], direction: 'in' | 'out'): string {
  const hexes = [...groupIds].map((g) => assertSecurityGroupId(g).slice(3)).sort();
  return `c_${hexes.join('_')}_${direction}`;
}

// ---------------------------------------------------------------------------- validation

interface CheckedRule {
  ruleId: string;
  /** The rule body without the address match, e.g. 'tcp dport 22' ('' for all traffic). */
  match: string;
  cidr: string | null;
  ref: string | null;
}

export interface SecurityGroupPlanGroup {
  groupId: string;
  vpcId: string;
  /** Rendered rules of g_<hex>_in / g_<hex>_out. */
  ingress: string[];
  egress: string[];
  /** Groups its rules reference (sorted). */
  refs: string[];
  /** Member addresses (sorted), from the ports. */
  members: string[];
}

export interface SecurityGroupPlanPort {
  tap: string;
  bridge: string;
  mac: string;
  ip: string;
  /** Sorted. */
  groupIds: string[];
}

export interface SecurityGroupPlanBridge {
  bridge: string;
  vpcId: string;
  /** Sorted by address. */
  routerIps: string[];
}

/** The model validated, normalised and sorted (what the script is rendered from). */
export interface SecurityGroupPlan {
  prefix: string;
  inetTable: string;
  bridgeTable: string;
  tapPrefix: string | null;
  bridges: SecurityGroupPlanBridge[];
  /** (protocol, port) reachable on router addresses. */
  routerServices: [protocol: string, port: number][];
  /** (address, protocol, port). */
  hostServices: [address: string, protocol: string, port: number][];
  allowRouterPing: boolean;
  groups: SecurityGroupPlanGroup[];
  ports: SecurityGroupPlanPort[];
  /** Distinct group combinations of the ports (each sorted), sorted by chain name. */
  combos: string[][];
  ruleCount: number;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return x !== null && typeof x === 'object';
}

function isInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x);
}

function absentOrMinusOne(x: unknown): boolean {
  return x === undefined || x === null || x === -1;
}

function checkRule(
  groupId: string,
  direction: 'ingress' | 'egress',
  rule: SecurityGroupRuleModel,
): CheckedRule {
  if (!isObject(rule)) throw bad('InvalidModel', `${groupId} ${direction}: rule must be an object`);
  const ruleId = assertSecurityGroupRuleId(rule.ruleId);
  const where = `${groupId} ${direction} rule ${ruleId}`;
  const { ipProtocol: proto, fromPort: from, toPort: to } = rule;
  let match: string;
  if (proto === 'tcp' || proto === 'udp') {
    if (!isInt(from) || !isInt(to) || from < 0 || to > 65535 || from > 65535 || to < 0)
      throw bad(
        'InvalidPortRange',
        `${where}: ports must be integers 0-65535, got ${JSON.stringify(from)}-${JSON.stringify(to)}`,
      );
    if (from > to)
      throw bad('InvalidPortRange', `${where}: fromPort ${from} is greater than toPort ${to}`);
    if (from === 0 && to === 65535) match = `meta l4proto ${proto}`;
    else if (from === to) match = `${proto} dport ${from}`;
    else match = `${proto} dport ${from}-${to}`;
  } else if (proto === 'icmp') {
    const type = from ?? -1;
    const code = to ?? -1;
    if (!isInt(type) || !isInt(code) || type < -1 || type > 255 || code < -1 || code > 255)
      throw bad(
        'InvalidIcmpTypeCode',
        `${where}: icmp type and code must be integers -1..255, got ${JSON.stringify(from)}/${JSON.stringify(to)}`,
      );
    if (type === -1 && code !== -1)
      throw bad('InvalidIcmpTypeCode', `${where}: an icmp code needs an icmp type`);
    if (type === -1) match = 'ip protocol icmp';
    else if (code === -1) match = `icmp type ${type}`;
    else match = `icmp type ${type} icmp code ${code}`;
  } else if (proto === '-1') {
    if (!absentOrMinusOne(from) || !absentOrMinusOne(to))
      throw bad('InvalidPortRange', `${where}: protocol -1 (all) takes no ports`);
    match = '';
  } else {
    throw bad(
      'InvalidProtocol',
      `${where}: unknown protocol ${JSON.stringify(proto)} (tcp, udp, icmp or -1)`,
    );
  }
  const hasCidr = rule.cidr !== undefined && rule.cidr !== null;
  const hasRef = rule.referencedGroupId !== undefined && rule.referencedGroupId !== null;
  if (hasCidr === hasRef)
    throw bad('InvalidTarget', `${where}: needs exactly one of cidr and referencedGroupId`);
  const cidr = hasCidr
    ? withContext(where, 'InvalidTarget', () => parseCidr(rule.cidr as string).cidr)
    : null;
  const ref = hasRef
    ? assertSecurityGroupId(rule.referencedGroupId as string, `${where}: referenced group`)
    : null;
  return { ruleId, match, cidr, ref };
}

function renderRule(direction: 'in' | 'out', r: CheckedRule): string {
  const field = direction === 'in' ? 'ip saddr' : 'ip daddr';
  const target = r.cidr !== null ? `${field} ${r.cidr}` : `${field} @${sgGroupSetName(r.ref!)}`;
  return `${target}${r.match ? ` ${r.match}` : ''} accept comment "${r.ruleId}"`;
}

interface CheckedGroup {
  groupId: string;
  vpcId: string;
  ingress: string[];
  egress: string[];
  refs: string[];
  ruleIds: string[];
}

function checkGroup(g: SecurityGroupModel): CheckedGroup {
  if (!isObject(g)) throw bad('InvalidModel', 'security group must be an object');
  const groupId = assertSecurityGroupId(g.groupId);
  const vpcId = withContext(groupId, 'InvalidModel', () => assertVpcId(g.vpcId));
  const refs = new Set<string>();
  const ruleIds: string[] = [];
  const render = (direction: 'ingress' | 'egress', rules: unknown) => {
    if (!Array.isArray(rules))
      throw bad('InvalidModel', `${groupId}: ${direction} must be an array of rules`);
    if (rules.length > SG_MAX_RULES_PER_DIRECTION)
      throw bad(
        'TooManyRules',
        `${groupId} has ${rules.length} ${direction} rules (at most ${SG_MAX_RULES_PER_DIRECTION})`,
      );
    return (rules as SecurityGroupRuleModel[]).map((rule) => {
      const r = checkRule(groupId, direction, rule);
      ruleIds.push(r.ruleId);
      if (r.ref) refs.add(r.ref);
      return renderRule(direction === 'ingress' ? 'in' : 'out', r);
    });
  };
  const ingress = render('ingress', g.ingress);
  const egress = render('egress', g.egress);
  const seen = new Set<string>();
  for (const id of ruleIds) {
    if (seen.has(id)) throw bad('Duplicate', `${groupId}: rule ${id} appears twice`);
    seen.add(id);
  }
  return { groupId, vpcId, ingress, egress, refs: [...refs].sort(), ruleIds };
}

function checkPort(p: SecurityGroupPortModel): SecurityGroupPlanPort {
  if (!isObject(p)) throw bad('InvalidModel', 'port must be an object');
  const tap = withContext('port', 'InvalidModel', () => assertTapName(p.tap));
  const bridge = withContext(`port ${tap}`, 'InvalidModel', () => assertBridgeName(p.bridge));
  if (bridge === tap) throw bad('InvalidModel', `port ${tap} is its own bridge`);
  const mac = withContext(`port ${tap}`, 'InvalidModel', () => normalizeMac(p.mac));
  const ip = withContext(`port ${tap}`, 'InvalidModel', () => assertIpv4(p.ip, 'port address'));
  if (!Array.isArray(p.groupIds))
    throw bad('InvalidModel', `port ${tap}: groupIds must be an array`);
  const groupIds = p.groupIds.map((g) => assertSecurityGroupId(g, `port ${tap}: group id`));
  if (groupIds.length === 0) throw bad('TooManyGroups', `port ${tap} has no security group`);
  if (groupIds.length > SG_MAX_GROUPS_PER_PORT)
    throw bad(
      'TooManyGroups',
      `port ${tap} has ${groupIds.length} security groups (at most ${SG_MAX_GROUPS_PER_PORT})`,
    );
  if (new Set(groupIds).size !== groupIds.length)
    throw bad('Duplicate', `port ${tap} lists a security group twice`);
  return { tap, bridge, mac, ip, groupIds: [...groupIds].sort() };
}

function checkBridge(b: SecurityGroupBridgeModel): SecurityGroupPlanBridge {
  if (!isObject(b)) throw bad('InvalidModel', 'bridge must be an object');
  const bridge = withContext('bridge', 'InvalidModel', () => assertBridgeName(b.bridge));
  const vpcId = withContext(`bridge ${bridge}`, 'InvalidModel', () => assertVpcId(b.vpcId));
  if (!Array.isArray(b.routerIps))
    throw bad('InvalidModel', `bridge ${bridge}: routerIps must be an array`);
  const ips = b.routerIps.map((ip) =>
    withContext(`bridge ${bridge}`, 'InvalidModel', () => assertIpv4(ip, 'router address')),
  );
  if (new Set(ips).size !== ips.length)
    throw bad('Duplicate', `bridge ${bridge} lists a router address twice`);
  return { bridge, vpcId, routerIps: sortIps(ips) };
}

function sortIps(ips: readonly string[]): string[] {
  return ips
    .map((ip) => ({ ip, n: ipToInt(ip) }))
    .sort((a, b) => a.n - b.n)
    .map((x) => x.ip);
}

function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The cross-references of a whole state (both the full model and every incremental update). */
function crossCheck(
  bridges: ReadonlyMap<string, { vpcId: string; routerIps: readonly string[] }>,
  groups: ReadonlyMap<string, { vpcId: string; refs: readonly string[] }>,
  ports: ReadonlyMap<string, SecurityGroupPlanPort>,
): void {
  const routerOwner = new Map<string, string>();
  for (const [name, b] of bridges) {
    if (ports.has(name)) throw bad('InvalidModel', `${name} is both a bridge and a port`);
    for (const ip of b.routerIps) {
      const other = routerOwner.get(ip);
      if (other !== undefined)
        throw bad('Duplicate', `router address ${ip} is on two bridges (${other}, ${name})`);
      routerOwner.set(ip, name);
    }
  }
  for (const [groupId, g] of groups) {
    for (const ref of g.refs) {
      const target = groups.get(ref);
      if (!target)
        throw bad('UnknownGroup', `${groupId} has a rule referencing unknown group ${ref}`);
      if (target.vpcId !== g.vpcId)
        throw bad(
          'GroupVpcMismatch',
          `${groupId} (${g.vpcId}) references ${ref} of another VPC (${target.vpcId})`,
        );
    }
  }
  const ipOwner = new Map<string, string>();
  const macOwner = new Map<string, string>();
  for (const [tap, p] of ports) {
    const b = bridges.get(p.bridge);
    if (!b) throw bad('UnknownBridge', `port ${tap} is on unknown bridge ${p.bridge}`);
    for (const groupId of p.groupIds) {
      const g = groups.get(groupId);
      if (!g) throw bad('UnknownGroup', `port ${tap} is in unknown group ${groupId}`);
      if (g.vpcId !== b.vpcId)
        throw bad(
          'GroupVpcMismatch',
          `port ${tap} on ${p.bridge} (${b.vpcId}) cannot use ${groupId} of ${g.vpcId}`,
        );
    }
    const ipTaken = ipOwner.get(p.ip) ?? routerOwner.get(p.ip);
    if (ipTaken !== undefined)
      throw bad('Duplicate', `address ${p.ip} of port ${tap} is also used by ${ipTaken}`);
    ipOwner.set(p.ip, tap);
    const macKey = `${p.bridge}/${p.mac}`;
    const macTaken = macOwner.get(macKey);
    if (macTaken !== undefined)
      throw bad('Duplicate', `MAC ${p.mac} of port ${tap} is also used by ${macTaken}`);
    macOwner.set(macKey, tap);
  }
}

function checkTapPrefix(prefix: string, tapPrefix: string | null | undefined): string | null {
  if (tapPrefix === null) return null;
  const value = tapPrefix ?? `${prefix}t`;
  return withContext('tapPrefix', 'InvalidModel', () =>
    assertOwnLinkName(value, 'tap name prefix'),
  );
}

function checkServices(
  services: readonly SecurityGroupHostService[] | undefined,
): Pick<SecurityGroupPlan, 'routerServices' | 'hostServices'> {
  const router = new Map<string, [string, number]>();
  for (const s of [
    ['udp', 53],
    ['tcp', 53],
    ['udp', 67],
  ] as const)
    router.set(`${s[0]} ${s[1]}`, [s[0], s[1]]);
  const host = new Map<string, [string, string, number]>();
  if (services !== undefined && !Array.isArray(services))
    throw bad('InvalidModel', 'hostServices must be an array');
  for (const s of services ?? []) {
    if (!isObject(s)) throw bad('InvalidModel', 'host service must be an object');
    if (s.protocol !== 'tcp' && s.protocol !== 'udp')
      throw bad(
        'InvalidProtocol',
        `host service protocol must be tcp or udp, got ${JSON.stringify(s.protocol)}`,
      );
    if (!isInt(s.port) || s.port < 1 || s.port > 65535)
      throw bad(
        'InvalidPortRange',
        `host service port must be 1-65535, got ${JSON.stringify(s.port)}`,
      );
    if (s.address === undefined || s.address === null) {
      router.set(`${s.protocol} ${s.port}`, [s.protocol, s.port]);
    } else {
      const a = withContext('host service', 'InvalidModel', () =>
        assertIpv4(s.address as string, 'host service address'),
      );
      host.set(`${a} ${s.protocol} ${s.port}`, [a, s.protocol, s.port]);
    }
  }
  return {
    routerServices: [...router.values()].sort((a, b) => byText(a[0], b[0]) || a[1] - b[1]),
    hostServices: [...host.values()].sort(
      (a, b) => ipToInt(a[0]) - ipToInt(b[0]) || byText(a[1], b[1]) || a[2] - b[2],
    ),
  };
}

function uniqueBy<T>(items: readonly T[], key: (x: T) => string, what: string): Map<string, T> {
  const out = new Map<string, T>();
  for (const x of items) {
    const k = key(x);
    if (out.has(k)) throw bad('Duplicate', `${what} ${k} appears twice`);
    out.set(k, x);
  }
  return out;
}

function arrayOf<T>(x: readonly T[] | undefined, what: string): readonly T[] {
  if (x === undefined) return [];
  if (!Array.isArray(x)) throw bad('InvalidModel', `${what} must be an array`);
  return x;
}

function combosOf(ports: Iterable<SecurityGroupPlanPort>): string[][] {
  const combos = new Map<string, string[]>();
  for (const p of ports) combos.set(sgComboChainName(p.groupIds, 'in'), p.groupIds);
  return [...combos.entries()].sort((a, b) => byText(a[0], b[0])).map((e) => e[1]);
}

function membersOf(ports: Iterable<SecurityGroupPlanPort>): Map<string, string[]> {
  const members = new Map<string, string[]>();
  for (const p of ports) {
    for (const g of p.groupIds) {
      const list = members.get(g);
      if (list) list.push(p.ip);
      else members.set(g, [p.ip]);
    }
  }
  return members;
}

/** Validate the model and reduce it to sorted contents. Throws SecurityGroupValidationError. */
export function planSecurityGroups(model: SecurityGroupNetworkModel): SecurityGroupPlan {
  if (!isObject(model)) throw bad('InvalidModel', 'security group model must be an object');
  const prefix = assertNamePrefix(model.prefix);
  const tapPrefix = checkTapPrefix(prefix, model.tapPrefix);
  const bridges = uniqueBy(
    arrayOf(model.bridges, 'bridges').map(checkBridge),
    (b) => b.bridge,
    'bridge',
  );
  const checkedGroups = uniqueBy(
    arrayOf(model.groups, 'groups').map(checkGroup),
    (g) => g.groupId,
    'security group',
  );
  const ruleIds = new Set<string>();
  for (const g of checkedGroups.values()) {
    for (const id of g.ruleIds) {
      if (ruleIds.has(id)) throw bad('Duplicate', `rule ${id} appears in two groups`);
      ruleIds.add(id);
    }
  }
  const ports = uniqueBy(arrayOf(model.ports, 'ports').map(checkPort), (p) => p.tap, 'port');
  crossCheck(bridges, checkedGroups, ports);
  const services = checkServices(model.hostServices);
  if (model.allowRouterPing !== undefined && typeof model.allowRouterPing !== 'boolean')
    throw bad('InvalidModel', 'allowRouterPing must be a boolean');

  const members = membersOf(ports.values());
  const groups = [...checkedGroups.values()]
    .sort((a, b) => byText(a.groupId, b.groupId))
    .map((g): SecurityGroupPlanGroup => ({
      groupId: g.groupId,
      vpcId: g.vpcId,
      ingress: g.ingress,
      egress: g.egress,
      refs: g.refs,
      members: sortIps(members.get(g.groupId) ?? []),
    }));
  const sortedPorts = [...ports.values()].sort((a, b) => byText(a.tap, b.tap));
  return {
    prefix,
    inetTable: assertNftTableName(sgTableName(prefix)),
    bridgeTable: assertNftTableName(sgBridgeTableName(prefix)),
    tapPrefix,
    bridges: [...bridges.values()].sort((a, b) => byText(a.bridge, b.bridge)),
    ...services,
    allowRouterPing: model.allowRouterPing ?? false,
    groups,
    ports: sortedPorts,
    combos: combosOf(sortedPorts),
    ruleCount: ruleIds.size,
  };
}

// ---------------------------------------------------------------------------- elements

function q(name: string): string {
  return `"${name}"`;
}

/** Set name -> (element key -> element text as written in `elements = { ... }`). */
type ElementMap = Map<string, Map<string, string>>;

interface StateLike {
  bridges: ReadonlyMap<string, { vpcId: string; routerIps: readonly string[] }>;
  ports: ReadonlyMap<string, SecurityGroupPlanPort>;
}

/** Elements of every set and map of the inet table (group sets included) and the bridge table. */
function elementsOf(
  s: StateLike,
  groupIds: Iterable<string> = [],
): { inet: ElementMap; bridge: ElementMap } {
  const inet: ElementMap = new Map();
  const bridge: ElementMap = new Map();
  const add = (m: ElementMap, set: string, key: string, text = key) => {
    let e = m.get(set);
    if (!e) m.set(set, (e = new Map()));
    e.set(key, text);
  };
  for (const set of ['bridges', 'router_addrs', 'egress_ports', 'ingress_ports'])
    inet.set(set, new Map());
  for (const g of groupIds) inet.set(sgGroupSetName(g), new Map());
  for (const set of ['ports', 'port_macs', 'port_addrs', 'port_ips']) bridge.set(set, new Map());
  const bridges = [...s.bridges.entries()].sort((a, b) => byText(a[0], b[0]));
  for (const [name, b] of bridges) {
    add(inet, 'bridges', q(name), `${q(name)} comment "${b.vpcId}"`);
    for (const ip of sortIps(b.routerIps)) add(inet, 'router_addrs', `${q(name)} . ${ip}`);
  }
  const ports = [...s.ports.values()].sort((a, b) => byText(a.tap, b.tap));
  for (const p of ports) {
    const key = `${q(p.bridge)} . ${p.ip}`;
    add(inet, 'egress_ports', key, `${key} : jump ${sgComboChainName(p.groupIds, 'out')}`);
    add(inet, 'ingress_ports', key, `${key} : jump ${sgComboChainName(p.groupIds, 'in')}`);
    add(bridge, 'ports', q(p.tap));
    add(bridge, 'port_macs', `${q(p.tap)} . ${p.mac}`);
    add(bridge, 'port_addrs', `${q(p.tap)} . ${p.mac} . ${p.ip}`);
    add(bridge, 'port_ips', `${q(p.tap)} . ${p.ip}`);
  }
  const members = membersOf(ports);
  for (const [g, ips] of members) {
    for (const ip of sortIps(ips)) add(inet, sgGroupSetName(g), ip);
  }
  return { inet, bridge };
}

// ---------------------------------------------------------------------------- full render

const INET_SETS: [name: string, type: string, comment: string][] = [
  ['bridges', 'ifname', 'managed bridges (comment: the VPC)'],
  ['router_addrs', 'ifname . ipv4_addr', "the host's addresses on each bridge"],
  ['router_services', 'inet_proto . inet_service', 'what guests may reach on router addresses'],
  ['host_services', 'ipv4_addr . inet_proto . inet_service', 'other host services for guests'],
];

const BRIDGE_SETS: [name: string, type: string, comment: string][] = [
  ['ports', 'ifname', 'known guest ports'],
  ['port_macs', 'ifname . ether_addr', 'the MAC each port may send from'],
  ['port_addrs', 'ifname . ether_addr . ipv4_addr', 'the MAC and IPv4 address of each port'],
  ['port_ips', 'ifname . ipv4_addr', 'the address frames into a port must be for'],
];

function elementsLine(elements: Iterable<string>, indent: string): string[] {
  const xs = [...elements];
  return xs.length ? [`${indent}elements = { ${xs.join(', ')} }`] : [];
}

function comboRules(groupIds: readonly string[], direction: 'in' | 'out'): string[] {
  return [...groupIds.map((g) => `jump ${sgGroupChainName(g, direction)}`), 'counter drop'];
}

function baseChains(plan: SecurityGroupPlan): string[] {
  const lines = [
    "\t# from a guest: the source port's egress rules",
    '\tchain egress {',
    '\t\ttype filter hook forward priority filter + 10; policy accept;',
    '\t\tiifname != @bridges accept',
    '\t\tct state established,related accept',
    '\t\tct state invalid counter drop',
    '\t\tiifname . ip saddr vmap @egress_ports',
    '\t\tcounter drop',
    '\t}',
    "\t# to a guest: the destination port's ingress rules",
    '\tchain ingress {',
    '\t\ttype filter hook forward priority filter + 20; policy accept;',
    '\t\toifname != @bridges accept',
    '\t\tct state established,related accept',
    '\t\tct state invalid counter drop',
    '\t\toifname . ip daddr vmap @ingress_ports',
    '\t\tcounter drop',
    '\t}',
    '\t# from a guest to the host: DHCP, DNS and the configured services only',
    '\tchain input {',
    '\t\ttype filter hook input priority filter + 10; policy accept;',
    '\t\tiifname != @bridges accept',
    '\t\tct state established,related accept',
    '\t\tct state invalid counter drop',
    '\t\tip daddr 255.255.255.255 udp sport 68 udp dport 67 accept',
    '\t\tiifname . ip daddr @router_addrs meta l4proto . th dport @router_services accept',
    '\t\tip daddr . meta l4proto . th dport @host_services accept',
  ];
  if (plan.allowRouterPing)
    lines.push('\t\ticmp type echo-request iifname . ip daddr @router_addrs accept');
  lines.push('\t\tcounter drop', '\t}');
  return lines;
}

function bridgeTableBody(plan: SecurityGroupPlan, elements: ElementMap): string[] {
  const lines: string[] = [];
  for (const [name, type, comment] of BRIDGE_SETS) {
    lines.push(
      `\t# ${comment}`,
      `\tset ${name} {`,
      `\t\ttype ${type}`,
      ...elementsLine(elements.get(name)!.values(), '\t\t'),
      '\t}',
    );
  }
  const notPort = (dir: 'iifname' | 'oifname') =>
    plan.tapPrefix === null
      ? `\t\t${dir} != @ports accept`
      : `\t\t${dir} != @ports ${dir} != "${plan.tapPrefix}*" accept`;
  lines.push(
    '\tchain prerouting {',
    '\t\ttype filter hook prerouting priority filter; policy accept;',
    notPort('iifname'),
    '\t\tiifname . ether saddr != @port_macs counter drop',
    '\t\tether type vmap { ip : jump from_port_ip, arp : jump from_port_arp }',
    '\t\tcounter drop',
    '\t}',
    '\tchain from_port_ip {',
    '\t\tiifname . ether saddr . ip saddr @port_addrs accept',
    '\t\tip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept',
    '\t\tcounter drop',
    '\t}',
    '\tchain from_port_arp {',
    '\t\tarp htype 1 arp ptype ip arp hlen 6 arp plen 4 iifname . arp saddr ether . arp saddr ip @port_addrs accept',
    '\t\tarp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp operation request arp saddr ip 0.0.0.0 iifname . arp saddr ether @port_macs accept',
    '\t\tcounter drop',
    '\t}',
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy accept;',
    notPort('oifname'),
    '\t\tether type ip oifname . ip daddr != @port_ips counter drop',
    '\t}',
  );
  return lines;
}

/**
 * Both tables as one `nft -f` script: create-if-missing, delete, re-create (one transaction, so
 * there is no moment without rules; conntrack entries live on, so established flows survive).
 */
export function renderSecurityGroupPlan(plan: SecurityGroupPlan): string {
  const t = plan.inetTable;
  const tb = plan.bridgeTable;
  const elements = elementsOf(
    {
      bridges: new Map(plan.bridges.map((b) => [b.bridge, b])),
      ports: new Map(plan.ports.map((p) => [p.tap, p])),
    },
    plan.groups.map((g) => g.groupId),
  );
  const lines: string[] = [
    `table inet ${t} {}`,
    `delete table inet ${t}`,
    `table bridge ${tb} {}`,
    `delete table bridge ${tb}`,
    `table inet ${t} {`,
  ];
  const fixed = new Map<string, string[]>([
    ['bridges', [...elements.inet.get('bridges')!.values()]],
    ['router_addrs', [...elements.inet.get('router_addrs')!.values()]],
    ['router_services', plan.routerServices.map(([p, n]) => `${p} . ${n}`)],
    ['host_services', plan.hostServices.map(([a, p, n]) => `${a} . ${p} . ${n}`)],
  ]);
  for (const [name, type, comment] of INET_SETS) {
    lines.push(
      `\t# ${comment}`,
      `\tset ${name} {`,
      `\t\ttype ${type}`,
      ...elementsLine(fixed.get(name)!, '\t\t'),
      '\t}',
    );
  }
  for (const g of plan.groups) {
    const set = sgGroupSetName(g.groupId);
    lines.push(
      `\tset ${set} {`,
      '\t\ttype ipv4_addr',
      `\t\tcomment "${g.vpcId}"`,
      ...elementsLine(elements.inet.get(set)!.values(), '\t\t'),
      '\t}',
    );
  }
  for (const g of plan.groups) {
    for (const [dir, rules] of [
      ['in', g.ingress],
      ['out', g.egress],
    ] as const) {
      lines.push(
        `\tchain ${sgGroupChainName(g.groupId, dir)} {`,
        ...rules.map((r) => `\t\t${r}`),
        '\t}',
      );
    }
  }
  for (const combo of plan.combos) {
    for (const dir of ['in', 'out'] as const) {
      lines.push(
        `\tchain ${sgComboChainName(combo, dir)} {`,
        ...comboRules(combo, dir).map((r) => `\t\t${r}`),
        '\t}',
      );
    }
  }
  for (const [name, comment] of [
    ['egress_ports', '(bridge, port address) -> its groups, outbound'],
    ['ingress_ports', '(bridge, port address) -> its groups, inbound'],
  ] as const) {
    lines.push(
      `\t# ${comment}`,
      `\tmap ${name} {`,
      '\t\ttype ifname . ipv4_addr : verdict',
      ...elementsLine(elements.inet.get(name)!.values(), '\t\t'),
      '\t}',
    );
  }
  lines.push(...baseChains(plan), '}', `table bridge ${tb} {`);
  lines.push(...bridgeTableBody(plan, elements.bridge), '}', '');
  return lines.join('\n');
}

/** Validate the model and render both tables (see the module comment). */
export function renderSecurityGroups(model: SecurityGroupNetworkModel): string {
  return renderSecurityGroupPlan(planSecurityGroups(model));
}

/** A script that removes both tables if they exist (nft 1.0.6 has no `destroy`). */
export function renderSecurityGroupRemoval(prefix: string): string {
  const t = sgTableName(prefix);
  const tb = sgBridgeTableName(prefix);
  return `table inet ${t} {}\ndelete table inet ${t}\ntable bridge ${tb} {}\ndelete table bridge ${tb}\n`;
}

// ---------------------------------------------------------------------------- state

/**
 * What incremental updates need to know of the applied tables: bridges, groups (VPC and the
 * groups their rules reference, not the rules themselves) and ports. Kept by the driver after
 * each apply, and readable back from nft (parseSecurityGroupState).
 */
export interface SecurityGroupState {
  prefix: string;
  bridges: ReadonlyMap<string, { vpcId: string; routerIps: readonly string[] }>;
  groups: ReadonlyMap<string, { vpcId: string; refs: readonly string[] }>;
  ports: ReadonlyMap<string, SecurityGroupPlanPort>;
}

export function securityGroupStateFromPlan(plan: SecurityGroupPlan): SecurityGroupState {
  return {
    prefix: plan.prefix,
    bridges: new Map(
      plan.bridges.map((b) => [b.bridge, { vpcId: b.vpcId, routerIps: b.routerIps }]),
    ),
    groups: new Map(plan.groups.map((g) => [g.groupId, { vpcId: g.vpcId, refs: g.refs }])),
    ports: new Map(plan.ports.map((p) => [p.tap, p])),
  };
}

// ---------------------------------------------------------------------------- incremental

/** A change of one port's groups only (bridge, MAC and address stay). */
export interface SecurityGroupMembershipChange {
  tap: string;
  groupIds: readonly string[];
}

/**
 * Changes applied in one transaction. Upserts replace the whole object: a group's rules are
 * replaced (its chains flushed and refilled), a port is (re)placed with its groups. An id may
 * not be both upserted and removed. Removing something that is not there is not an error.
 */
export interface SecurityGroupChanges {
  bridges?: readonly SecurityGroupBridgeModel[];
  removeBridges?: readonly string[];
  groups?: readonly SecurityGroupModel[];
  removeGroups?: readonly string[];
  /** Launch, move, or any port change. */
  ports?: readonly SecurityGroupPortModel[];
  /** Terminate / detach: tap names. */
  removePorts?: readonly string[];
  /** "Change an instance's groups" (the port must exist). */
  memberships?: readonly SecurityGroupMembershipChange[];
}

export interface SecurityGroupUpdate {
  /** '' when nothing changes. */
  script: string;
  next: SecurityGroupState;
  /** What changed, for logs. */
  summary: {
    elementsDeleted: number;
    elementsAdded: number;
    groupsAdded: string[];
    groupsRemoved: string[];
    groupsRulesReplaced: string[];
    chainsAdded: number;
    chainsRemoved: number;
  };
}

function diffElements(
  cur: Map<string, string> | undefined,
  next: Map<string, string> | undefined,
): { del: string[]; add: string[] } {
  const del: string[] = [];
  const add: string[] = [];
  for (const [k, v] of cur ?? []) if (next?.get(k) !== v) del.push(k);
  for (const [k, v] of next ?? []) if (cur?.get(k) !== v) add.push(v);
  return { del, add };
}

function assertArrayOrAbsent(x: unknown, what: string): void {
  if (x !== undefined && !Array.isArray(x)) throw bad('InvalidModel', `${what} must be an array`);
}

/**
 * The smallest transaction that takes the tables from `current` to `current` with `changes`
 * applied: element deletes, chains that go away, group chains flushed and refilled, new sets and
 * chains, element adds, in an order nft accepts (nothing is deleted while referenced, nothing is
 * referenced before it exists). The next state is validated as a whole (same rules as the full
 * model). Pure.
 */
export function planSecurityGroupUpdate(
  current: SecurityGroupState,
  changes: SecurityGroupChanges,
): SecurityGroupUpdate {
  if (!isObject(current as unknown) || !isObject(changes as unknown))
    throw bad('InvalidModel', 'state and changes must be objects');
  const prefix = assertNamePrefix(current.prefix);
  const t = sgTableName(prefix);
  const tb = sgBridgeTableName(prefix);
  for (const k of [
    'bridges',
    'removeBridges',
    'groups',
    'removeGroups',
    'ports',
    'removePorts',
    'memberships',
  ] as const)
    assertArrayOrAbsent(changes[k], k);

  const bridges = new Map(current.bridges);
  const groups = new Map(current.groups);
  const ports = new Map(current.ports);

  const removedBridges = new Set(
    (changes.removeBridges ?? []).map((b) =>
      withContext('removeBridges', 'InvalidModel', () => assertBridgeName(b)),
    ),
  );
  const upBridges = uniqueBy((changes.bridges ?? []).map(checkBridge), (b) => b.bridge, 'bridge');
  const removedGroups = new Set((changes.removeGroups ?? []).map((g) => assertSecurityGroupId(g)));
  const upGroups = uniqueBy(
    (changes.groups ?? []).map(checkGroup),
    (g) => g.groupId,
    'security group',
  );
  const removedPorts = new Set(
    (changes.removePorts ?? []).map((p) =>
      withContext('removePorts', 'InvalidModel', () => assertTapName(p)),
    ),
  );
  const upPorts = uniqueBy((changes.ports ?? []).map(checkPort), (p) => p.tap, 'port');

  for (const b of removedBridges) {
    if (upBridges.has(b)) throw bad('InvalidModel', `bridge ${b} is both changed and removed`);
    bridges.delete(b);
  }
  for (const [name, b] of upBridges) bridges.set(name, { vpcId: b.vpcId, routerIps: b.routerIps });
  const rulesReplaced: string[] = [];
  const groupsAdded: string[] = [];
  for (const g of removedGroups) {
    if (upGroups.has(g)) throw bad('InvalidModel', `group ${g} is both changed and removed`);
    groups.delete(g);
  }
  for (const [id, g] of upGroups) {
    const before = current.groups.get(id);
    if (before && before.vpcId !== g.vpcId)
      throw bad('GroupVpcMismatch', `group ${id} belongs to ${before.vpcId}, not ${g.vpcId}`);
    if (before) rulesReplaced.push(id);
    else groupsAdded.push(id);
    groups.set(id, { vpcId: g.vpcId, refs: g.refs });
  }
  for (const p of removedPorts) {
    if (upPorts.has(p)) throw bad('InvalidModel', `port ${p} is both changed and removed`);
    ports.delete(p);
  }
  for (const [tap, p] of upPorts) ports.set(tap, p);
  const seenMembership = new Set<string>();
  for (const m of changes.memberships ?? []) {
    if (!isObject(m)) throw bad('InvalidModel', 'membership change must be an object');
    const tap = withContext('membership', 'InvalidModel', () => assertTapName(m.tap));
    if (seenMembership.has(tap) || upPorts.has(tap) || removedPorts.has(tap))
      throw bad('InvalidModel', `port ${tap} is changed twice`);
    seenMembership.add(tap);
    const p = ports.get(tap);
    if (!p) throw bad('UnknownPort', `port ${tap} is not in the security group tables`);
    ports.set(tap, checkPort({ ...p, groupIds: m.groupIds }));
  }
  crossCheck(bridges, groups, ports);
  const groupsRemoved = [...current.groups.keys()].filter((g) => !groups.has(g)).sort();
  // (crossCheck saw that no port and no remaining rule uses a removed group.)

  const next: SecurityGroupState = { prefix, bridges, groups, ports };
  // Only what the changes touch is diffed, so the cost follows the change, not the host's size.
  const touchedTaps = new Set([...upPorts.keys(), ...removedPorts, ...seenMembership]);
  const touchedBridges = new Set([...upBridges.keys(), ...removedBridges]);
  const pick = <V>(m: ReadonlyMap<string, V>, keys: ReadonlySet<string>) =>
    new Map([...keys].flatMap((k) => (m.has(k) ? [[k, m.get(k)!] as const] : [])));
  const curElems = elementsOf({
    bridges: pick(current.bridges, touchedBridges),
    ports: pick(current.ports, touchedTaps),
  });
  const nextElems = elementsOf({
    bridges: pick(bridges, touchedBridges),
    ports: pick(ports, touchedTaps),
  });
  const lines: string[] = [];
  let deleted = 0;
  let added = 0;
  const adds: string[] = [];

  // 1. element deletes (not in sets that go away as a whole)
  const removedSets = new Set(groupsRemoved.map(sgGroupSetName));
  for (const [family, table, cur, nxt] of [
    ['inet', t, curElems.inet, nextElems.inet],
    ['bridge', tb, curElems.bridge, nextElems.bridge],
  ] as const) {
    const names = [...new Set([...cur.keys(), ...nxt.keys()])].sort();
    for (const set of names) {
      const d = diffElements(cur.get(set), nxt.get(set));
      if (d.del.length && !removedSets.has(set)) {
        lines.push(`delete element ${family} ${table} ${set} { ${d.del.join(', ')} }`);
        deleted += d.del.length;
      }
      if (d.add.length) {
        adds.push(`add element ${family} ${table} ${set} { ${d.add.join(', ')} }`);
        added += d.add.length;
      }
    }
  }

  // 2. combination chains no longer used
  // (state ports are validated and their groupIds sorted: a plain join names the chain)
  const comboNames = (ps: Iterable<SecurityGroupPlanPort>) => {
    const m = new Map<string, readonly string[]>();
    for (const p of ps) {
      const name = `c_${p.groupIds.map((g) => g.slice(3)).join('_')}`;
      if (!m.has(name)) m.set(name, p.groupIds);
    }
    return new Map([...m].sort((a, b) => byText(a[0], b[0])));
  };
  const curCombos = comboNames(current.ports.values());
  const nextCombos = comboNames(ports.values());
  let chainsRemoved = 0;
  let chainsAdded = 0;
  for (const [name] of curCombos) {
    if (nextCombos.has(name)) continue;
    for (const dir of ['in', 'out']) {
      lines.push(`flush chain inet ${t} ${name}_${dir}`, `delete chain inet ${t} ${name}_${dir}`);
      chainsRemoved++;
    }
  }
  // 3. group chains flushed (rules replaced or group removed), 4. removed groups deleted
  for (const g of [...rulesReplaced.sort(), ...groupsRemoved]) {
    for (const dir of ['in', 'out'] as const)
      lines.push(`flush chain inet ${t} ${sgGroupChainName(g, dir)}`);
  }
  for (const g of groupsRemoved) {
    for (const dir of ['in', 'out'] as const) {
      lines.push(`delete chain inet ${t} ${sgGroupChainName(g, dir)}`);
      chainsRemoved++;
    }
    lines.push(`delete set inet ${t} ${sgGroupSetName(g)}`);
  }
  // 5. new groups: set and chains; 6. rules of new and changed groups
  groupsAdded.sort();
  for (const g of groupsAdded) {
    lines.push(
      `add set inet ${t} ${sgGroupSetName(g)} { type ipv4_addr; comment "${upGroups.get(g)!.vpcId}"; }`,
    );
    for (const dir of ['in', 'out'] as const) {
      lines.push(`add chain inet ${t} ${sgGroupChainName(g, dir)}`);
      chainsAdded++;
    }
  }
  for (const g of [...groupsAdded, ...rulesReplaced.sort()]) {
    const c = upGroups.get(g)!;
    for (const [dir, rules] of [
      ['in', c.ingress],
      ['out', c.egress],
    ] as const) {
      for (const r of rules) lines.push(`add rule inet ${t} ${sgGroupChainName(g, dir)} ${r}`);
    }
  }
  // 7. new combination chains
  for (const [name, combo] of nextCombos) {
    if (curCombos.has(name)) continue;
    for (const dir of ['in', 'out'] as const) {
      lines.push(`add chain inet ${t} ${name}_${dir}`);
      for (const r of comboRules(combo, dir)) lines.push(`add rule inet ${t} ${name}_${dir} ${r}`);
      chainsAdded++;
    }
  }
  // 8. element adds
  lines.push(...adds);

  return {
    script: lines.length ? `${lines.join('\n')}\n` : '',
    next,
    summary: {
      elementsDeleted: deleted,
      elementsAdded: added,
      groupsAdded,
      groupsRemoved,
      groupsRulesReplaced: rulesReplaced,
      chainsAdded,
      chainsRemoved,
    },
  };
}

/** The script of planSecurityGroupUpdate (see there). */
export function renderSecurityGroupUpdate(
  current: SecurityGroupState,
  changes: SecurityGroupChanges,
): string {
  return planSecurityGroupUpdate(current, changes).script;
}

// ---------------------------------------------------------------------------- read back

interface NftJsonItem {
  set?: { name?: string; comment?: string; elem?: unknown[] };
  map?: { name?: string; elem?: unknown[] };
  chain?: { name?: string };
  rule?: { chain?: string; expr?: unknown[] };
}

function elemVal(e: unknown): { val: unknown; comment?: string } {
  if (isObject(e) && 'elem' in e && isObject(e.elem)) {
    const c = e.elem.comment;
    return { val: e.elem.val, ...(typeof c === 'string' ? { comment: c } : {}) };
  }
  return { val: e };
}

function concatOf(v: unknown): unknown[] | null {
  return isObject(v) && Array.isArray(v.concat) ? v.concat : null;
}

/**
 * The state of the tables from `nft -j list table inet <prefix>_sg` and `nft -j list table bridge
 * <prefix>_sgb` output; null when either is missing the sets and maps (not applied yet).
 * Inconsistent leftovers (an address in a dispatch map without a port in the bridge table) are
 * left out: the caller then replaces the whole tables.
 */
export function parseSecurityGroupState(
  prefix: string,
  inetJson: string,
  bridgeJson: string,
): SecurityGroupState | null {
  assertNamePrefix(prefix);
  const items = (json: string) =>
    ((JSON.parse(json) as { nftables?: NftJsonItem[] }).nftables ?? []).filter(
      (i): i is NftJsonItem => isObject(i as unknown),
    );
  const inet = items(inetJson);
  const br = items(bridgeJson);
  const set = (xs: NftJsonItem[], name: string) => xs.find((i) => i.set?.name === name)?.set;
  const map = (name: string) => inet.find((i) => i.map?.name === name)?.map;
  const bridgesSet = set(inet, 'bridges');
  const routerSet = set(inet, 'router_addrs');
  const egress = map('egress_ports');
  const addrs = set(br, 'port_addrs');
  if (!bridgesSet || !routerSet || !egress || !addrs) return null;

  const bridges = new Map<string, { vpcId: string; routerIps: string[] }>();
  for (const e of bridgesSet.elem ?? []) {
    const { val, comment } = elemVal(e);
    if (typeof val === 'string' && typeof comment === 'string')
      bridges.set(val, { vpcId: comment, routerIps: [] });
  }
  for (const e of routerSet.elem ?? []) {
    const c = concatOf(elemVal(e).val);
    const b = c && typeof c[0] === 'string' ? bridges.get(c[0]) : undefined;
    if (b && typeof c?.[1] === 'string') b.routerIps.push(c[1]);
  }
  for (const b of bridges.values()) b.routerIps = sortIps(b.routerIps);

  const groups = new Map<string, { vpcId: string; refs: string[] }>();
  for (const i of inet) {
    const m = i.set?.name ? GROUP_SET_RE.exec(i.set.name) : null;
    if (m && typeof i.set?.comment === 'string')
      groups.set(`sg-${m[1]}`, { vpcId: i.set.comment, refs: [] });
  }
  for (const i of inet) {
    const m = i.rule?.chain ? GROUP_CHAIN_RE.exec(i.rule.chain) : null;
    const g = m ? groups.get(`sg-${m[1]}`) : undefined;
    if (!g) continue;
    for (const r of JSON.stringify(i.rule?.expr ?? []).matchAll(/"@sg_([0-9a-f]{17})"/g)) {
      const ref = `sg-${r[1]}`;
      if (!g.refs.includes(ref)) g.refs.push(ref);
    }
  }
  for (const g of groups.values()) g.refs.sort();

  const byIp = new Map<string, { tap: string; mac: string }>();
  for (const e of addrs.elem ?? []) {
    const c = concatOf(elemVal(e).val);
    if (c && c.length === 3 && c.every((x) => typeof x === 'string'))
      byIp.set(c[2] as string, { tap: c[0] as string, mac: c[1] as string });
  }
  const ports = new Map<string, SecurityGroupPlanPort>();
  for (const e of egress.elem ?? []) {
    if (!Array.isArray(e) || e.length !== 2) continue;
    const key = concatOf(elemVal(e[0]).val);
    const target = isObject(e[1]) && isObject(e[1].jump) ? e[1].jump.target : undefined;
    const m = typeof target === 'string' ? COMBO_CHAIN_RE.exec(target) : null;
    if (!key || typeof key[0] !== 'string' || typeof key[1] !== 'string' || !m) continue;
    const port = byIp.get(key[1]);
    if (!port) continue;
    ports.set(port.tap, {
      tap: port.tap,
      bridge: key[0],
      mac: port.mac,
      ip: key[1],
      groupIds: m[1]!.split('_').map((h) => `sg-${h}`),
    });
  }
  return { prefix, bridges, groups, ports };
}
