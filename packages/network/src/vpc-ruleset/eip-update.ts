import { assertIpv4, assertNftTableName, invalid } from '@minicloud/domain';
import type { VpcRulesetPlan } from './model.js';
import { byIp } from './util.js';

/**
 * Incremental Elastic IP updates: allocate, associate, move, disassociate and release as element
 * updates of the table's eip_held set and eip_dnat/eip_snat maps (no rule changes).
 */

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
