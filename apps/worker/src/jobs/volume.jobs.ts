import { volumeSerial } from '@minicloud/domain';
import { findSnapshot, findVolume, markVolumeDeleted, markVolumeDetached } from '@minicloud/db';
import type { Job } from '@minicloud/queue';
import type { Volume } from '@prisma/client';
import type { WorkerDeps } from '../context.js';
import { instanceLayout } from '../instance-host.js';
import { diskFor, driverFor, ensureVolume } from '../volume-host.js';
import { isLastAttempt, reasonOf } from './failure.js';

const GiB = 1024 ** 3;

/**
 * Volume jobs. Each takes the lock of the volume and, when attached, of its instance first (the
 * same order everywhere, so two jobs never wait on each other), re-reads the row and does
 * nothing when the state says the work is done: every job is safe to run twice.
 */
async function withVolume(
  deps: WorkerDeps,
  volumeId: string,
  fn: (v: Volume) => Promise<void>,
): Promise<void> {
  const peek = await findVolume(deps.db, volumeId);
  if (!peek) return;
  const run = () =>
    deps.locks.run(volumeId, async () => {
      const v = await findVolume(deps.db, volumeId);
      if (v) await fn(v);
    });
  await (peek.instanceId ? deps.locks.run(peek.instanceId, run) : run());
}

async function instanceRunning(deps: WorkerDeps, instanceId: string): Promise<boolean> {
  const state = await deps.hypervisor.getState(instanceLayout(deps, instanceId).domain);
  return state === 'running' || state === 'paused';
}

/**
 * Whether the domain has this volume's disk (known by its serial) at the volume's target, in its
 * persistent config or live. Unknown (the domain cannot be read) counts as no: an undo must
 * never remove a disk it cannot tell is its own.
 */
async function holdsVolume(deps: WorkerDeps, domain: string, v: Volume): Promise<boolean> {
  const serial = volumeSerial(v.id);
  for (const live of [false, true]) {
    const disks = await deps.hypervisor.listDisks(domain, { live }).catch(() => []);
    if (disks.some((d) => d.target === v.target && d.serial === serial)) return true;
  }
  return false;
}

export async function createVolume(deps: WorkerDeps, volumeId: string, job: Job): Promise<void> {
  await withVolume(deps, volumeId, async (v) => {
    if (v.state !== 'creating' || v.instanceId) return; // launch volumes are made by the launch
    try {
      await ensureVolume(deps, v, null);
      await deps.db.volume.updateMany({
        where: { id: v.id, state: 'creating' },
        data: { state: 'available' },
      });
    } catch (error) {
      if (isLastAttempt(job, error)) {
        await deps.volumes.delete(v.id).catch(() => {});
        await deps.db.volume.update({
          where: { id: v.id },
          data: { state: 'error', stateReason: reasonOf(error) },
        });
      }
      throw error;
    }
  });
}

export async function deleteVolume(deps: WorkerDeps, volumeId: string): Promise<void> {
  await withVolume(deps, volumeId, async (v) => {
    if (v.state !== 'deleting') return;
    await driverFor(deps, v).delete(v.id);
    await markVolumeDeleted(deps.db, v.id);
  });
}

/** Hot-plug into a running instance (live + persistent config); a stopped one gets it at start. */
export async function attachVolume(deps: WorkerDeps, volumeId: string, job: Job): Promise<void> {
  await withVolume(deps, volumeId, async (v) => {
    if (v.attachState !== 'attaching' || !v.instanceId) return;
    const domain = instanceLayout(deps, v.instanceId).domain;
    try {
      const defined = (await deps.hypervisor.getState(domain)) !== null;
      if (defined) {
        await deps.hypervisor.attachDisk(domain, await diskFor(deps, v), {
          live: await instanceRunning(deps, v.instanceId),
        });
      }
      await deps.db.volume.update({
        where: { id: v.id },
        data: { state: 'in-use', attachState: 'attached' },
      });
    } catch (error) {
      if (isLastAttempt(job, error)) {
        // Never half attached: back to available, and the domain without THIS volume's disk.
        // The target may hold another volume's disk (the attach failed because it was taken):
        // that one is not ours to undo.
        if (await holdsVolume(deps, domain, v)) {
          await deps.hypervisor
            .detachDisk(domain, v.target!, { live: true, timeoutMs: 10_000 })
            .catch(() => {});
        }
        await markVolumeDetached(deps.db, v.id, `attach failed: ${reasonOf(error)}`);
      }
      throw error;
    }
  });
}

export async function detachVolume(
  deps: WorkerDeps,
  volumeId: string,
  force: boolean,
): Promise<void> {
  await withVolume(deps, volumeId, async (v) => {
    if (v.attachState !== 'detaching' || !v.instanceId) return;
    const domain = instanceLayout(deps, v.instanceId).domain;
    if ((await deps.hypervisor.getState(domain)) !== null) {
      const result = await deps.hypervisor.detachDisk(domain, v.target!, {
        live: await instanceRunning(deps, v.instanceId),
        timeoutMs: force ? 10_000 : 60_000,
        force,
      });
      // QEMU still holds the disk until the guest lets go: not free yet, the job tries again.
      if (result.live === 'pending')
        throw new Error(`the guest has not released ${v.target} of ${domain} yet`);
    }
    await markVolumeDetached(deps.db, v.id);
  });
}

/** Grow a volume; an attached one of a running instance through QEMU, so the guest sees it. */
export async function resizeVolume(
  deps: WorkerDeps,
  volumeId: string,
  sizeGiB: number,
): Promise<void> {
  await withVolume(deps, volumeId, async (v) => {
    if (v.sizeGiB >= sizeGiB || (v.state !== 'available' && v.state !== 'in-use')) return;
    const running = v.instanceId ? await instanceRunning(deps, v.instanceId) : false;
    if (running && v.instanceId) {
      if (driverFor(deps, v).kind === 'lvm') await driverFor(deps, v).resize(v.id, sizeGiB * GiB);
      await deps.hypervisor.resizeDisk(
        instanceLayout(deps, v.instanceId).domain,
        v.target!,
        sizeGiB * GiB,
      );
    } else {
      await driverFor(deps, v).resize(v.id, sizeGiB * GiB);
    }
    await deps.db.volume.update({ where: { id: v.id }, data: { sizeGiB } });
  });
}

/** A crash-consistent snapshot, also of a volume in use by a running guest (no stop needed). */
export async function createSnapshot(
  deps: WorkerDeps,
  snapshotId: string,
  job: Job,
): Promise<void> {
  const snap = await findSnapshot(deps.db, snapshotId);
  if (!snap || snap.state !== 'pending') return;
  await withVolume(deps, snap.volumeId, async (v) => {
    const driver = driverFor(deps, v);
    try {
      const running =
        v.instanceId && v.attachState === 'attached'
          ? await instanceRunning(deps, v.instanceId)
          : false;
      if (running && driver.liveSnapshots === 'hypervisor-backup') {
        // Only the file driver copies through the hypervisor; its snapshots live beside root volumes.
        const { path: dest } = await deps.rootVolumes.prepareLiveSnapshot(v.id, snapshotId);
        await deps.hypervisor.backupDisk(
          instanceLayout(deps, v.instanceId!).domain,
          v.target!,
          dest,
          {
            timeoutMs: 30 * 60_000,
          },
        );
      } else {
        await driver.snapshotOffline(v.id, snapshotId);
      }
      await deps.db.snapshot.update({
        where: { id: snapshotId },
        data: { state: 'completed', progress: 100 },
      });
    } catch (error) {
      if (isLastAttempt(job, error)) {
        await driver.deleteSnapshot(snapshotId).catch(() => {});
        await deps.db.snapshot.update({
          where: { id: snapshotId },
          data: { state: 'error', stateReason: reasonOf(error) },
        });
      }
      throw error;
    }
  });
}

export async function deleteSnapshot(deps: WorkerDeps, snapshotId: string): Promise<void> {
  await deps.locks.run(snapshotId, async () => {
    const snap = await findSnapshot(deps.db, snapshotId);
    if (!snap?.deletedAt) return;
    await deps.volumes.deleteSnapshot(snapshotId);
    await deps.rootVolumes.deleteSnapshot(snapshotId);
  });
}
