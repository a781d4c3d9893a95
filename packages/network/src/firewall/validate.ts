import {
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
} from '@minicloud/domain';
import { membersOf } from './elements.js';
import { bad, withContext } from './errors.js';
import {
  SG_MAX_GROUPS_PER_PORT,
  SG_MAX_RULES_PER_DIRECTION,
  type SecurityGroupBridgeModel,
  type SecurityGroupHostService,
  type SecurityGroupModel,
  type SecurityGroupNetworkModel,
  type SecurityGroupPlan,
  type SecurityGroupPlanBridge,
  type SecurityGroupPlanGroup,
  type SecurityGroupPlanPort,
  type SecurityGroupPortModel,
  type SecurityGroupRuleModel,
} from './model.js';
import {
  assertSecurityGroupId,
  assertSecurityGroupRuleId,
  sgBridgeTableName,
  sgComboChainName,
  sgGroupSetName,
  sgTableName,
} from './names.js';
import { byText, isObject, sortIps } from './util.js';

/**
 * Validation of the model into a plan. Every name and value is checked before it reaches a
 * script: names, addresses, CIDRs and MACs through @minicloud/domain, ids by pattern, numbers by
 * range. The checks of single objects and the cross-check are shared with incremental updates.
 */

interface CheckedRule {
  ruleId: string;
  /** The rule body without the address match, e.g. 'tcp dport 22' ('' for all traffic). */
  match: string;
  cidr: string | null;
  ref: string | null;
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

export interface CheckedGroup {
  groupId: string;
  vpcId: string;
  ingress: string[];
  egress: string[];
  refs: string[];
  ruleIds: string[];
}

export function checkGroup(g: SecurityGroupModel): CheckedGroup {
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

export function checkPort(p: SecurityGroupPortModel): SecurityGroupPlanPort {
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

export function checkBridge(b: SecurityGroupBridgeModel): SecurityGroupPlanBridge {
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

/** The cross-references of a whole state (both the full model and every incremental update). */
export function crossCheck(
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

export function uniqueBy<T>(
  items: readonly T[],
  key: (x: T) => string,
  what: string,
): Map<string, T> {
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
