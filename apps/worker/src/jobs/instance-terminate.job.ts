import type { WorkerDeps } from '../context.js';
import { syncReservations, tearDown } from '../instance-host.js';
import { releaseVolumes } from '../volume-host.js';

/**
 * Everything terminating means, for a user's terminate and for a launch that failed for good:
 * domain, tap and seed go; volumes marked deleteOnTermination are deleted, the others become
 * available; the address is released; the instance is `terminated` with the reason.
 */
export async function finishTermination(
  deps: WorkerDeps,
  instanceId: string,
  stateReason: string,
): Promise<void> {
  await tearDown(deps, instanceId);
  await releaseVolumes(deps, instanceId);
  await deps.db.$transaction([
    deps.db.addressLease.deleteMany({ where: { instanceId } }),
    deps.db.instance.update({
      where: { id: instanceId },
      data: { state: 'terminated', terminatedAt: new Date(), stateReason },
    }),
  ]);
  await syncReservations(deps);
}

/** instance.terminate: a no-op unless the instance is shutting down. */
export async function terminateInstance(deps: WorkerDeps, instanceId: string): Promise<void> {
  await deps.locks.run(instanceId, async () => {
    const instance = await deps.db.instance.findUnique({ where: { id: instanceId } });
    if (!instance || instance.state !== 'shutting-down') return;
    await finishTermination(deps, instanceId, 'Client.UserInitiatedShutdown');
  });
}
