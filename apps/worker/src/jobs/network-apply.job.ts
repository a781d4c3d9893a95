import type { WorkerDeps } from '../context.js';
import { applyElasticIpsNow, convergeNetwork } from '../network-host.js';

/**
 * network.apply: make the host's VPC networks, nft table and Elastic IPs match the database.
 * Enqueued after every change to them; safe to run any number of times (runs coalesce). With
 * elasticIpIds (an association changed), those addresses are updated first as map elements.
 */
export async function applyNetwork(
  deps: WorkerDeps,
  payload: { reason: string; elasticIpIds?: string[] },
): Promise<void> {
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
