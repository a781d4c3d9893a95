import type { EipMapsState } from './eip-update.js';

/** Read-back: the Elastic IP state from nft's JSON listing, for a process that did not apply it. */

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
