import { basename, join } from 'node:path';
import { vpcBridgeName } from '@minicloud/domain';
import { listVpcIds, markVpcAvailable, type VpcWithSubnets } from '@minicloud/db';
import type { EnsureNetworkResult, VpcNetworkSpec } from '@minicloud/network';
import type { WorkerDeps } from '../context.js';
import { stateOf } from './state.js';
import { VPC_ID_RE } from './vpc-spec.js';

/**
 * VPC networks on the host (bridge, router addresses, dnsmasq): made once per spec by this
 * process, and removed when no row references them.
 */

/**
 * Make the VPC's network exist as `spec` says, then `after` (once per spec). Concurrent callers
 * with the same spec share the one ensure; unless forced, a spec this process already ensured
 * costs nothing.
 */
export function ensureVpc(
  deps: WorkerDeps,
  vpcId: string,
  spec: VpcNetworkSpec,
  options: { force?: boolean; after?: (r: EnsureNetworkResult) => Promise<void> } = {},
): Promise<EnsureNetworkResult> {
  const { ensured } = stateOf(deps);
  const key = JSON.stringify(spec);
  const known = ensured.get(vpcId);
  if (!options.force && known?.key === key) return known.done;
  const done = deps.network.ensureVpcNetwork(spec).then(async (r) => {
    await options.after?.(r);
    return r;
  });
  const entry = {
    key,
    spec,
    subnetIds: new Set(spec.subnets.flatMap((s) => (s.subnetId ? [s.subnetId] : []))),
    done,
  };
  ensured.set(vpcId, entry);
  done.catch(() => {
    if (ensured.get(vpcId) === entry) ensured.delete(vpcId);
  });
  return done;
}

/** Bridges, dnsmasq and state directories of VPCs that no row references (all of them: none). */
export async function removeUnusedVpcNetworks(deps: WorkerDeps, removed: string[]): Promise<void> {
  const { prefix, networksDir } = deps.settings;
  // Host objects first, rows after: a VPC's row is committed before anything of it is made on
  // the host, so whatever this listing finds of a VPC that exists has its row in the read below
  // (a snapshot read earlier would miss a VPC made since, and its bridge and taps would go).
  const owned = await deps.network.listOwnedVpcObjects(prefix, { stateRoot: networksDir });
  const wanted = new Set([...(await listVpcIds(deps.db))].filter((id) => VPC_ID_RE.test(id)));
  const wantedBridges = new Set([...wanted].map((id) => vpcBridgeName(prefix, id)));
  const unused = new Map<string, { stateDir: string; vpcId: string | null }>();
  for (const dir of owned.stateDirs) {
    const id = basename(dir);
    if (!VPC_ID_RE.test(id) || wanted.has(id)) continue;
    unused.set(vpcBridgeName(prefix, id), { stateDir: dir, vpcId: id });
  }
  for (const bridge of [
    ...owned.bridges.map((b) => b.name),
    ...owned.dnsmasq.map((d) => d.bridge),
  ]) {
    // No state directory to go with it: a path that does not exist (the driver skips it).
    if (!wantedBridges.has(bridge) && !unused.has(bridge))
      unused.set(bridge, { stateDir: join(networksDir, `.none-${bridge}`), vpcId: null });
  }
  const { ensured } = stateOf(deps);
  for (const [bridge, u] of unused) {
    const r = await deps.network.removeVpcNetwork({ bridge, stateDir: u.stateDir });
    if (u.vpcId) ensured.delete(u.vpcId);
    if (r.removed.length) removed.push(`${u.vpcId ?? bridge}: ${r.removed.join(', ')}`);
  }
}

/** A pending VPC and its pending subnets become available (they are made on the host). */
export async function markAvailable(deps: WorkerDeps, row: VpcWithSubnets): Promise<void> {
  const pending = row.subnets.filter((s) => s.state === 'pending').map((s) => s.id);
  if (row.state === 'pending' || pending.length) await markVpcAvailable(deps.db, row.id, pending);
}
