import { findInstance } from '@minicloud/db';
import type { WorkerDeps } from '../context.js';
import { instanceLayout } from '../instance-host.js';

/** instance.reboot: an ACPI reboot of a running instance; it stays `running`. */
export async function rebootInstance(deps: WorkerDeps, instanceId: string): Promise<void> {
  await deps.locks.run(instanceId, async () => {
    const instance = await findInstance(deps.db, instanceId);
    if (!instance || instance.state !== 'running') return;
    await deps.hypervisor.reboot(instanceLayout(deps, instanceId).domain);
  });
}
