import { assertIpv4, assertNftTableName, invalid, ipToInt } from '@minicloud/domain';
import type { VpcRulesetPlan } from './ruleset.js';

/**
 * The Elastic IP sets and maps of the VPC table (eip_held, eip_dnat, eip_snat; see ruleset.ts):
 * their state, the element updates that change it without touching a rule (allocate, associate,
 * move, disassociate, release), and the state read back from nft. Pure.
 */

function byIp(a: string, b: string): number {
  return ipToInt(a) - ipToInt(b);
}

/** What the Elastic IP sets and maps of the table hold. */
export interface EipMapsState {
  held: ReadonlySet<string>;
  /** public -> private */
  dnat: ReadonlyMap<string, string>;
}

export interface ElasticIpChange {
  publicIp: string;
  /**
   * The new private address, null to disassociate, undefined to keep the association as it is
   * (allocation: only make sure the address is in eip_held).
   */
  privateIp?: string | null;
  /** Released: the address leaves eip_held and eip_dnat (it is no longer on the uplink). */
  released?: boolean;
}

export interface EipMapUpdate {
  /** '' when nothing changes. */
  script: string;
  next: EipMapsState;
  /** Public addresses whose association changed (their conntrack entries are stale). */
  changed: string[];
}

export function emptyEipMaps(): EipMapsState {
  return { held: new Set(), dnat: new Map() };
}

export function eipMapsFromPlan(plan: VpcRulesetPlan): EipMapsState {
  return { held: new Set(plan.eipHeld), dnat: new Map(plan.eipDnat) };
}

/**
 * The element updates that take the table's Elastic IP sets from `current` to `current` with
 * `changes` applied, in one transaction: deletes first (nft refuses to delete a missing element
 * and to add an existing key with another value, so they are computed from `current`), then
 * adds. Moving an address from one instance to another is one change.
 */
export function planEipMapUpdate(
  table: string,
  current: EipMapsState,
  changes: readonly ElasticIpChange[],
): EipMapUpdate {
  assertNftTableName(table);
  const held = new Set(current.held);
  const dnat = new Map(current.dnat);
  const seen = new Set<string>();
  for (const c of changes) {
    const pub = assertIpv4(c?.publicIp, 'Elastic IP');
    if (seen.has(pub)) throw invalid('InvalidNetworkSpec', `Elastic IP ${pub} changed twice`);
    seen.add(pub);
    const priv =
      c.privateIp === null || c.privateIp === undefined
        ? c.privateIp
        : assertIpv4(c.privateIp, 'private address');
    if (c.released && typeof priv === 'string')
      throw invalid('InvalidNetworkSpec', `Elastic IP ${pub} cannot be released and associated`);
    if (priv !== undefined || c.released) dnat.delete(pub);
    if (typeof priv === 'string') dnat.set(pub, priv);
    if (c.released) held.delete(pub);
    else held.add(pub);
  }
  const owner = new Map<string, string>();
  for (const [pub, priv] of dnat) {
    const other = owner.get(priv);
    if (other !== undefined) {
      throw invalid(
        'InvalidNetworkSpec',
        `private address ${priv} would have two Elastic IPs (${other}, ${pub})`,
      );
    }
    owner.set(priv, pub);
  }

  const oldSnat = new Map([...current.dnat].map(([pub, priv]) => [priv, pub]));
  const newSnat = new Map([...dnat].map(([pub, priv]) => [priv, pub]));
  const diff = <K, V>(a: ReadonlyMap<K, V>, b: ReadonlyMap<K, V>) =>
    [...a].filter(([k, v]) => b.get(k) !== v);
  const dnatDel = diff(current.dnat, dnat).map(([k]) => k);
  const dnatAdd = diff(dnat, current.dnat);
  const snatDel = diff(oldSnat, newSnat).map(([k]) => k);
  const snatAdd = diff(newSnat, oldSnat);
  const heldDel = [...current.held].filter((a) => !held.has(a));
  const heldAdd = [...held].filter((a) => !current.held.has(a));
  const sortKeys = (xs: string[]) => [...xs].sort(byIp);
  const sortPairs = (xs: [string, string][]) => [...xs].sort((a, b) => byIp(a[0], b[0]));

  const lines: string[] = [];
  const del = (set: string, keys: string[]) => {
    if (keys.length)
      lines.push(`delete element ip ${table} ${set} { ${sortKeys(keys).join(', ')} }`);
  };
  const add = (set: string, elems: string[]) => {
    if (elems.length) lines.push(`add element ip ${table} ${set} { ${elems.join(', ')} }`);
  };
  del('eip_dnat', dnatDel);
  del('eip_snat', snatDel);
  del('eip_held', heldDel);
  add('eip_held', sortKeys(heldAdd));
  add(
    'eip_dnat',
    sortPairs(dnatAdd).map(([k, v]) => `${k} : ${v}`),
  );
  add(
    'eip_snat',
    sortPairs(snatAdd).map(([k, v]) => `${k} : ${v}`),
  );

  const changed = new Set<string>(dnatDel);
  for (const [pub] of dnatAdd) changed.add(pub);
  return {
    script: lines.length ? `${lines.join('\n')}\n` : '',
    next: { held, dnat },
    changed: [...changed].sort(byIp),
  };
}

/** The script of planEipMapUpdate (see there). */
export function renderEipMapUpdate(
  table: string,
  current: EipMapsState,
  changes: readonly ElasticIpChange[],
): string {
  return planEipMapUpdate(table, current, changes).script;
}

type NftElem = string | { elem?: { val?: unknown } } | unknown[];

function elemValue(e: unknown): string | null {
  if (typeof e === 'string') return e;
  if (e && typeof e === 'object' && 'elem' in e) {
    const v = (e as { elem?: { val?: unknown } }).elem?.val;
    return typeof v === 'string' ? v : null;
  }
  return null;
}

/**
 * The Elastic IP state of a table from `nft -j list table ip T` output. null when the table has
 * no eip_held set or no eip_dnat map (not a VPC table, or not applied yet).
 */
export function parseEipMaps(json: string): EipMapsState | null {
  const items = (
    JSON.parse(json) as {
      nftables?: {
        set?: { name?: string; elem?: NftElem[] };
        map?: { name?: string; elem?: NftElem[] };
      }[];
    }
  ).nftables;
  let held: Set<string> | null = null;
  let dnat: Map<string, string> | null = null;
  for (const i of items ?? []) {
    if (i.set?.name === 'eip_held') {
      held = new Set((i.set.elem ?? []).map(elemValue).filter((x): x is string => x !== null));
    }
    if (i.map?.name === 'eip_dnat') {
      dnat = new Map();
      for (const e of i.map.elem ?? []) {
        if (Array.isArray(e) && e.length === 2) {
          const k = elemValue(e[0]);
          const v = elemValue(e[1]);
          if (k !== null && v !== null) dnat.set(k, v);
        }
      }
    }
  }
  return held && dnat ? { held, dnat } : null;
}
