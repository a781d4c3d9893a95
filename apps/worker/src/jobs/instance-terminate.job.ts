import { jobIds } from '@minicloud/queue';
import type { WorkerDeps } from '../context.js';
import { tearDown } from '../instance-host.js';
import { convergeNetwork } from '../network/converge.js';
import { syncVpcReservations } from '../network/reservations.js';
import { removeSecurityPort } from '../network/security-groups.js';
import { releaseVolumes } from '../volume-host.js';

/**
 * Everything terminating means, for a user's terminate and for a launch that failed for good:
 * domain, tap and seed go; volumes marked deleteOnTermination are deleted, the others become
 * available; the address is released, with the Elastic IP given at launch (others of the
 * instance are disassociated and stay allocated, as in EC2); the instance is `terminated` with
 * the reason.
 */
export async function finishTermination(
  deps: WorkerDeps,
  instanceId: string,
  stateReason: string,
): Promise<void> {
  await tearDown(deps, instanceId);
  await releaseVolumes(deps, instanceId);
  const [released, disassociated, , instance] = await deps.db.$transaction([
    deps.db.elasticIp.deleteMany({ where: { instanceId, autoAssigned: true } }),
    deps.db.elasticIp.updateMany({
      where: { instanceId },
      data: { associationId: null, instanceId: null, privateIp: null, vpcId: null },
    }),
    deps.db.addressLease.deleteMany({ where: { instanceId } }),
    deps.db.instance.update({
      where: { id: instanceId },
      data: { state: 'terminated', terminatedAt: new Date(), stateReason },
    }),
  ]);
  await syncVpcReservations(deps, instance.vpcId);
  await removeSecurityPort(deps, instanceId);
  if (released.count + disassociated.count > 0) {
    // The address must stop reaching this instance's old private IP before it is reused. If the
    // host cannot be converged now, a network.apply job retries it (and the reconciler would).
    try {
      await convergeNetwork(deps);
    } catch (e) {
      deps.log(`network after terminating ${instanceId}: ${(e as Error).message}`);
      await deps.queue
        .enqueue('network.apply', { reason: `terminate ${instanceId}` }, jobIds.networkApply())
        .catch((err: unknown) => deps.log(`enqueue network.apply: ${String(err)}`));
    }
  }
}

/** instance.terminate: a no-op unless the instance is shutting down. */
export async function terminateInstance(deps: WorkerDeps, instanceId: string): Promise<void> {
  await deps.locks.run(instanceId, async () => {
    const instance = await deps.db.instance.findUnique({ where: { id: instanceId } });
    if (!instance || instance.state !== 'shutting-down') return;
    await finishTermination(deps, instanceId, 'Client.UserInitiatedShutdown');
  });
}
