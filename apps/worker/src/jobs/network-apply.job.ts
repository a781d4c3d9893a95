import type { WorkerDeps } from '../context.js';
import { convergeNetwork } from '../network/converge.js';
import { applyElasticIpsNow } from '../network/elastic-ips.js';
import { applySecurityGroupsNow } from '../network/security-groups.js';

/**
 * network.apply: make the host's VPC networks, nft tables and Elastic IPs match the database.
 * Enqueued after every change to them; safe to run any number of times (runs coalesce). With
 * elasticIpIds (an association changed), those addresses are updated first as map elements; a
 * security-group change (scope 'security-groups') replaces only the security-group tables.
 */
export async function applyNetwork(
  deps: WorkerDeps,
  payload: { reason: string; elasticIpIds?: string[]; scope?: 'all' | 'security-groups' },
): Promise<void> {
  if (payload.scope === 'security-groups') {
    const r = await applySecurityGroupsNow(deps);
    deps.log(
      `security groups: ${payload.reason}: ${r.counts.groups} groups, ${r.counts.rules} rules, ${r.counts.ports} ports (render ${r.renderMs} ms, apply ${r.applyMs} ms)`,
    );
    return;
  }
  if (payload.elasticIpIds?.length) {
    try {
      await applyElasticIpsNow(deps, payload.elasticIpIds);
    } catch (e) {
      // The full converge below puts everything right anyway.
      deps.log(`network: fast Elastic IP update failed: ${(e as Error).message}`);
    }
  }
  await convergeNetwork(deps);
}
