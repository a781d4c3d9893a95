import { jobIds } from '@minicloud/queue';
import type { ServiceContext } from './context.js';
import { submitJob } from './jobs.js';

/**
 * Tell the worker to converge the host's networks with the database (safe to repeat). Every
 * network, address and security-group change ends here.
 */
export async function requestNetworkApply(
  ctx: ServiceContext,
  reason: string,
  options: { elasticIpIds?: string[]; scope?: 'all' | 'security-groups' } = {},
): Promise<void> {
  const { elasticIpIds, scope } = options;
  await submitJob(
    ctx,
    'network.apply',
    { reason, ...(elasticIpIds?.length ? { elasticIpIds } : {}), ...(scope ? { scope } : {}) },
    jobIds.networkApply(),
  );
}
