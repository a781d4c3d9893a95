import type { WorkerDeps } from '../context.js';
import { syncReservations, tearDown } from '../instance-host.js';
import { releaseVolumes } from '../volume-host.js';

/**
 * instance.terminate: domain, tap and seed go; volumes marked deleteOnTermination are deleted,
 * the others become available; the address is released; `terminated`.
 */
export async function terminateInstance(deps: WorkerDeps, instanceId: string): Promise<void> {
  await deps.locks.run(instanceId, async () => {
    const instance = await deps.db.instance.findUnique({ where: { id: instanceId } });
    if (!instance || instance.state !== 'shutting-down') return;
    await tearDown(deps, instanceId);
    await releaseVolumes(deps, instanceId);
    await deps.db.$transaction([
      deps.db.addressLease.deleteMany({ where: { instanceId } }),
      deps.db.instance.update({
        where: { id: instanceId },
        data: {
          state: 'terminated',
          terminatedAt: new Date(),
          stateReason: 'Client.UserInitiatedShutdown',
        },
      }),
    ]);
    await syncReservations(deps);
  });
}
