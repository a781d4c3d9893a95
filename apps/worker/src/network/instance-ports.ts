import { findVpcWithSubnets } from '@minicloud/db';
import { UnrecoverableError } from '@minicloud/queue';
import type { VpcNetworkSpec } from '@minicloud/network';
import type { WorkerDeps } from '../context.js';
import { applyVpcRulesetNow } from './elastic-ips.js';
import { messageOf } from './util.js';
import { applySecurityGroupsNow } from './security-groups.js';
import { stateOf } from './state.js';
import { vpcNetworkSpec } from './vpc-spec.js';
import { ensureVpc, markAvailable } from './vpcs.js';

/** What the launch's network step needs of the instance: all of it is on its row. */
export interface InstanceNetworkRef {
  vpcId: string;
  subnetId: string | null;
}

/**
 * The instance's VPC network is ready on the host (bridge, its subnet's router address, dnsmasq).
 * The launch path's common case, a VPC and subnet this process already made, costs nothing: no
 * database read, no host command. Else the VPC is read and ensured; a VPC or subnet that is new on
 * the host (the ensure changed something, or its row is still pending) also gets what the rest of
 * the host needs to know about it before its first guest runs: the VPC ruleset, the security-group
 * tables, and its rows marked available. Never a whole-host converge.
 */
export async function ensureInstanceNetwork(
  deps: WorkerDeps,
  ref: InstanceNetworkRef,
): Promise<VpcNetworkSpec> {
  const known = stateOf(deps).ensured.get(ref.vpcId);
  if (known && (ref.subnetId === null || known.subnetIds.has(ref.subnetId))) {
    await known.done;
    return known.spec;
  }
  const row = await findVpcWithSubnets(deps.db, ref.vpcId);
  if (!row) throw new UnrecoverableError(`the instance's VPC ${ref.vpcId} does not exist`);
  const spec = vpcNetworkSpec(deps.settings, row);
  const pending = row.state === 'pending' || row.subnets.some((s) => s.state === 'pending');
  await ensureVpc(deps, ref.vpcId, spec, {
    // Concurrent launches into the new VPC share this (it runs once per spec).
    after: async (r) => {
      if (!r.changed.length && !pending) return;
      try {
        const report = {
          elasticIps: { added: [], removed: [], changed: [] },
          skipped: [],
          notes: [],
        };
        await applyVpcRulesetNow(deps, report);
        await applySecurityGroupsNow(deps);
        await markAvailable(deps, row);
      } catch (e) {
        // The network.apply job of the change (and the reconciler) make up for it.
        deps.log(`network: making ${ref.vpcId} known before its first guest: ${messageOf(e)}`);
      }
    },
  });
  return spec;
}

/**
 * The instance's tap exists on its VPC's bridge. If attaching fails (the bridge vanished behind
 * this process's back), the VPC network is ensured for real and the attach tried once more.
 */
export async function ensureInstancePort(
  deps: WorkerDeps,
  port: { vpcId: string; tap: string; mac: string },
  spec: VpcNetworkSpec,
): Promise<void> {
  const attach = () =>
    deps.network.ensurePort({ bridge: spec.bridge, tap: port.tap, mac: port.mac });
  try {
    await attach();
  } catch (e) {
    deps.log(`network: attaching ${port.tap} failed (${messageOf(e)}); ensuring ${spec.bridge}`);
    await ensureVpc(deps, port.vpcId, spec, { force: true });
    await attach();
  }
}
