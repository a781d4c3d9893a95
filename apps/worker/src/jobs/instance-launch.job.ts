import { findInstanceWithImage, transitionInstance } from '@minicloud/db';
import { UnrecoverableError, type Job } from '@minicloud/queue';
import type { WorkerDeps } from '../context.js';
import { bringUp, markVolumesAttached } from '../instance-host.js';
import { finishTermination } from './instance-terminate.job.js';
import { Revert } from '../revert.js';
import { isLastAttempt, reasonOf } from './failure.js';

/**
 * instance.launch: disk, seed, port, DHCP reservation, domain; then `running`. A duplicate or
 * repeated job finds the instance no longer pending and does nothing. If the last attempt fails,
 * everything is undone and the instance ends `terminated` with the reason, as EC2 does.
 */
export async function launchInstance(
  deps: WorkerDeps,
  instanceId: string,
  job: Job,
): Promise<void> {
  await deps.locks.run(instanceId, async () => {
    const instance = await findInstanceWithImage(deps.db, instanceId);
    if (!instance || instance.state !== 'pending') return;
    const revert = new Revert();
    try {
      // No retry can bring a deregistered image (or its file) back: fail for good, at once.
      if (instance.image.state !== 'available' || !instance.image.path) {
        throw new LaunchRefused(
          `Client.InvalidAMIID.NotFound: the image ${instance.image.id} is ${instance.image.state === 'available' ? 'without a file' : instance.image.state}`,
        );
      }
      await bringUp(deps, instance, revert, true);
      const guard = { instanceId, from: 'pending', actionSeq: instance.actionSeq };
      // The domain has its disks: they show attached before the instance shows running. If a
      // terminate arrived meanwhile, its job (after this one) releases them and cleans up.
      await markVolumesAttached(deps, instanceId);
      if (await transitionInstance(deps.db, guard, { state: 'running', stateReason: null })) {
        deps.log(`launched ${instanceId}`);
      }
      revert.success();
    } catch (error) {
      await revert.undo(deps.log);
      if (isLastAttempt(job, error)) await failLaunch(deps, instanceId, error);
      throw error;
    }
  });
}

/** A launch that can never succeed; its message is the instance's stateReason. */
class LaunchRefused extends UnrecoverableError {}

async function failLaunch(deps: WorkerDeps, instanceId: string, error: unknown): Promise<void> {
  deps.log(`launch of ${instanceId} failed for good: ${reasonOf(error)}`);
  const reason =
    error instanceof LaunchRefused ? error.message : `Server.InternalError: ${reasonOf(error)}`;
  await finishTermination(deps, instanceId, reason);
}
