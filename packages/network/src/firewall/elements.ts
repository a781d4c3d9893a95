import { sgComboChainName, sgGroupSetName } from './names.js';
import type { SecurityGroupPlanPort } from './model.js';
import { byText, sortIps } from './util.js';

/**
 * The contents of the tables that grow with the model: the elements of every set and map, keyed
 * so that the full render writes them and an incremental update diffs them.
 */

export function q(name: string): string {
  return `"${name}"`;
}

/** Set name -> (element key -> element text as written in `elements = { ... }`). */
export type ElementMap = Map<string, Map<string, string>>;

export interface StateLike {
  bridges: ReadonlyMap<string, { vpcId: string; routerIps: readonly string[] }>;
  ports: ReadonlyMap<string, SecurityGroupPlanPort>;
}

/** Elements of every set and map of the inet table (group sets included) and the bridge table. */
export function elementsOf(
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

/** Group id -> member addresses (in port order). */
export function membersOf(ports: Iterable<SecurityGroupPlanPort>): Map<string, string[]> {
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
