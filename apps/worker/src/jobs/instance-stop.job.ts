import { findInstance, transitionInstance } from '@minicloud/db';
import type { WorkerDeps } from '../context.js';
import { instanceLayout } from '../instance-host.js';

/** instance.stop: ACPI shutdown, forced off after the stop timeout (or at once with force). */
export async function stopInstance(
  deps: WorkerDeps,
  instanceId: string,
  force: boolean,
): Promise<void> {
  await deps.locks.run(instanceId, async () => {
    const instance = await findInstance(deps.db, instanceId);
    if (!instance || instance.state !== 'stopping') return;
    const { domain } = instanceLayout(deps, instanceId);
    let how: string;
    if (force) {
      await deps.hypervisor.destroy(domain);
      how = 'forced';
    } else {
      how = await deps.hypervisor.shutdown(domain, { timeoutMs: deps.settings.stopTimeoutMs });
    }
    await transitionInstance(
      deps.db,
      { instanceId, from: 'stopping', actionSeq: instance.actionSeq },
      {
        state: 'stopped',
        stateReason:
          how === 'forced'
            ? 'Client.UserInitiatedShutdown: forced stop'
            : 'Client.UserInitiatedShutdown',
      },
    );
  });
}
