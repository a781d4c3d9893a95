import type { WorkerDeps } from '../context.js';
import { instanceLayout } from '../instance-host.js';

/** instance.stop: ACPI shutdown, forced off after the stop timeout (or at once with force). */
export async function stopInstance(
  deps: WorkerDeps,
  instanceId: string,
  force: boolean,
): Promise<void> {
  await deps.locks.run(instanceId, async () => {
    const instance = await deps.db.instance.findUnique({ where: { id: instanceId } });
    if (!instance || instance.state !== 'stopping') return;
    const { domain } = instanceLayout(deps, instanceId);
    let how: string;
    if (force) {
      await deps.hypervisor.destroy(domain);
      how = 'forced';
    } else {
      how = await deps.hypervisor.shutdown(domain, { timeoutMs: deps.settings.stopTimeoutMs });
    }
    await deps.db.instance.updateMany({
      where: { id: instanceId, state: 'stopping', actionSeq: instance.actionSeq },
      data: {
        state: 'stopped',
        stateReason:
          how === 'forced'
            ? 'Client.UserInitiatedShutdown: forced stop'
            : 'Client.UserInitiatedShutdown',
      },
    });
  });
}
