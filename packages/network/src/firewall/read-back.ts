import { assertNamePrefix } from '@minicloud/domain';
import type { SecurityGroupPlanPort } from './model.js';
import { COMBO_CHAIN_RE, GROUP_CHAIN_RE, GROUP_SET_RE } from './names.js';
import type { SecurityGroupState } from './state.js';
import { isObject, sortIps } from './util.js';

/** Read-back: the applied state from nft's JSON listing, for a process that did not apply it. */

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
