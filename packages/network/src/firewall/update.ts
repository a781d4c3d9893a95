import { assertBridgeName, assertNamePrefix, assertTapName } from '@minicloud/domain';
import { elementsOf } from './elements.js';
import { bad, withContext } from './errors.js';
import type {
  SecurityGroupBridgeModel,
  SecurityGroupModel,
  SecurityGroupPlanPort,
  SecurityGroupPortModel,
} from './model.js';
import {
  assertSecurityGroupId,
  sgBridgeTableName,
  sgGroupChainName,
  sgGroupSetName,
  sgTableName,
} from './names.js';
import { comboRules } from './render.js';
import type { SecurityGroupState } from './state.js';
import { byText, isObject } from './util.js';
import { checkBridge, checkGroup, checkPort, crossCheck, uniqueBy } from './validate.js';

/**
 * Incremental updates: a launch, a terminate, "change an instance's groups" or a rule change as
 * the small nft transaction between the applied state and that state with the changes applied.
 */

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
