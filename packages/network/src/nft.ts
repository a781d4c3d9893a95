import {
  assertBridgeName,
  assertForeignLinkName,
  assertNftTableName,
  invalid,
  parseCidr,
} from '@minicloud/domain';

/**
 * Pure renderers of the nftables scripts (for `nft -f -`) that give each network its outbound
 * NAT and its forwarding policy. One `ip` table (e.g. mc_nat) holds two base chains per network:
 *
 *   postrouting_<bridge>  nat, srcnat:   traffic from the network's CIDR leaving through the
 *                                        uplink is masqueraded to the uplink's address
 *   forward_<bridge>      filter, 0:     within the bridge: not our business (security groups);
 *                                        bridge -> uplink allowed; uplink -> bridge only for
 *                                        replies (ct established,related); everything else routed
 *                                        from or to the bridge is dropped (other networks, the
 *                                        host's LAN, spoofed sources)
 *
 * Without an uplink the chains still exist, but nothing is NATed or forwarded: guests reach the
 * host (the gateway) and each other only. Nothing here touches traffic that neither comes from
 * nor goes to one of our bridges. Note: in nftables an `accept` only ends this chain; other
 * tables (e.g. a host firewall with policy drop) still get their say.
 *
 * Per-network chains let one table be shared by many networks: ensureNetwork replaces only its
 * own chains, atomically (one nft transaction), and renderNatRuleset replaces the whole table.
 */

export interface NatNetwork {
  bridge: string;
  cidr: string;
  /** Interface guests reach the outside through, or null for a host-only network. */
  uplink: string | null;
}

export function natChainNames(bridge: string): { postrouting: string; forward: string } {
  assertBridgeName(bridge);
  // Never name a chain 'fwd': it is an nft keyword.
  return { postrouting: `postrouting_${bridge}`, forward: `forward_${bridge}` };
}

function q(name: string): string {
  return `"${name}"`;
}

function chainBodies(network: NatNetwork, indent: string): string[] {
  const bridge = assertBridgeName(network.bridge);
  const cidr = parseCidr(network.cidr).cidr;
  const uplink = network.uplink === null ? null : assertForeignLinkName(network.uplink, 'uplink');
  if (uplink === bridge)
    throw invalid('InvalidNetworkSpec', `uplink ${uplink} is the bridge itself`);
  const names = natChainNames(bridge);
  const i1 = indent;
  const i2 = `${indent}\t`;
  const post = [
    `${i1}chain ${names.postrouting} {`,
    `${i2}type nat hook postrouting priority srcnat; policy accept;`,
  ];
  if (uplink !== null) post.push(`${i2}oifname ${q(uplink)} ip saddr ${cidr} counter masquerade`);
  post.push(`${i1}}`);
  const fwd = [
    `${i1}chain ${names.forward} {`,
    `${i2}type filter hook forward priority filter; policy accept;`,
    `${i2}iifname ${q(bridge)} oifname ${q(bridge)} accept`,
    `${i2}iifname ${q(bridge)} ip saddr != ${cidr} counter drop`,
  ];
  if (uplink !== null) {
    fwd.push(
      `${i2}iifname ${q(bridge)} oifname ${q(uplink)} accept`,
      `${i2}iifname ${q(uplink)} oifname ${q(bridge)} ct state established,related accept`,
    );
  }
  fwd.push(
    `${i2}iifname ${q(bridge)} counter drop`,
    `${i2}oifname ${q(bridge)} counter drop`,
    `${i1}}`,
  );
  return [...post, ...fwd];
}

/**
 * A script that atomically replaces the whole table with exactly these networks' chains.
 * (The first line makes sure the table exists so the delete cannot fail.)
 */
export function renderNatRuleset(table: string, networks: readonly NatNetwork[]): string {
  assertNftTableName(table);
  const seen = new Set<string>();
  for (const n of networks) {
    if (seen.has(n.bridge)) throw invalid('InvalidNetworkSpec', `bridge ${n.bridge} appears twice`);
    seen.add(n.bridge);
  }
  const sorted = [...networks].sort((a, b) =>
    a.bridge < b.bridge ? -1 : a.bridge > b.bridge ? 1 : 0,
  );
  const body = sorted.map((n) => chainBodies(n, '\t').join('\n')).join('\n');
  return [
    `table ip ${table} {}`,
    `delete table ip ${table}`,
    `table ip ${table} {`,
    ...(body ? [body] : []),
    `}`,
    '',
  ].join('\n');
}

/**
 * Delete-if-present of a chain, in nft 1.0.6 (which has no `destroy`): declare it (a no-op when
 * it exists), empty it, delete it. All inside the caller's transaction.
 */
function dropChainLines(table: string, chain: string): string[] {
  return [
    `add chain ip ${table} ${chain}`,
    `flush chain ip ${table} ${chain}`,
    `delete chain ip ${table} ${chain}`,
  ];
}

/** A script that atomically (re)creates one network's chains, leaving other networks' alone. */
export function renderNatNetworkUpdate(table: string, network: NatNetwork): string {
  assertNftTableName(table);
  const names = natChainNames(network.bridge);
  return [
    `add table ip ${table}`,
    ...dropChainLines(table, names.postrouting),
    ...dropChainLines(table, names.forward),
    `table ip ${table} {`,
    ...chainBodies(network, '\t'),
    `}`,
    '',
  ].join('\n');
}

/** A script that removes one network's chains (the table stays; see LinuxNetworkDriver). */
export function renderNatNetworkRemoval(table: string, bridge: string): string {
  assertNftTableName(table);
  const names = natChainNames(bridge);
  return [
    `add table ip ${table}`,
    ...dropChainLines(table, names.postrouting),
    ...dropChainLines(table, names.forward),
    '',
  ].join('\n');
}
