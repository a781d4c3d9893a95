import { findInstanceWithImage, transitionInstance } from '@minicloud/db';
import type { WorkerDeps } from '../context.js';
import { bringUp, markVolumesAttached } from '../instance-host.js';
import { Revert } from '../revert.js';

/** instance.start: a stopped instance (now pending) gets its port and domain running again. */
export async function startInstance(deps: WorkerDeps, instanceId: string): Promise<void> {
  await deps.locks.run(instanceId, async () => {
    const instance = await findInstanceWithImage(deps.db, instanceId);
    if (!instance || instance.state !== 'pending') return;
    const revert = new Revert();
    try {
      await bringUp(deps, instance, revert, false);
      const guard = { instanceId, from: 'pending', actionSeq: instance.actionSeq };
      // The disks show attached before the instance shows running.
      await markVolumesAttached(deps, instanceId);
      await transitionInstance(deps.db, guard, { state: 'running', stateReason: null });
      revert.success();
    } catch (error) {
      await revert.undo(deps.log);
      throw error;
    }
  });
}
