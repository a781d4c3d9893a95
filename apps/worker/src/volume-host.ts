import { ioLimitsFor, volumeSerial } from '@minicloud/domain';
import {
  attachedVolumes as attachedVolumeRows,
  markVolumeDeleted,
  markVolumeDetached,
  volumesOfInstances,
} from '@minicloud/db';
import { ensureOverlay, type VolumeDriver } from '@minicloud/storage';
import type { Image, Volume } from '@prisma/client';
import type { WorkerDeps } from './context.js';

const GiB = 1024 ** 3;

/** Root volumes are always qcow2 overlays on their image; data volumes use the configured driver. */
export function driverFor(deps: WorkerDeps, volume: Pick<Volume, 'isRoot'>): VolumeDriver {
  return volume.isRoot ? deps.rootVolumes : deps.volumes;
}

export function rootVolumePath(deps: WorkerDeps, volumeId: string): string {
  return deps.rootVolumes.volumePath(volumeId);
}

/** Make a volume exist on the host (idempotent): the root overlay, or a data volume. */
export async function ensureVolume(
  deps: WorkerDeps,
  volume: Volume,
  image: Image | null,
): Promise<void> {
  if (volume.isRoot) {
    if (!image?.path || !image.format) throw new Error(`image ${volume.imageId} has no file`);
    await ensureOverlay({
      path: rootVolumePath(deps, volume.id),
      backingPath: image.path,
      backingFormat: image.format as 'qcow2' | 'raw',
      sizeBytes: Math.max(volume.sizeGiB * GiB, Number(image.virtualSize ?? 0)),
      // Validated (backing file, data file, format) when the image was imported.
      ...(image.virtualSize !== null
        ? { validatedBaseVirtualSize: Number(image.virtualSize) }
        : {}),
    });
    return;
  }
  await deps.volumes.create(
    volume.id,
    volume.sizeGiB * GiB,
    volume.snapshotId ? { fromSnapshotId: volume.snapshotId } : {},
  );
}

/** The disk a volume becomes in the domain: source, serial the guest can see, and I/O limits. */
export async function diskFor(deps: WorkerDeps, volume: Volume) {
  // Root volumes are our own qcow2 overlays: no need to probe them on every start.
  const location = volume.isRoot
    ? { path: rootVolumePath(deps, volume.id), format: 'qcow2' as const, diskType: 'file' as const }
    : await driverFor(deps, volume).prepareForAttach(volume.id);
  return {
    path: location.path,
    format: location.format,
    diskType: location.diskType,
    target: volume.target!,
    serial: volumeSerial(volume.id),
    iotune: ioLimitsFor({ iops: volume.iops, throughput: volume.throughput }),
  };
}

/** Volumes that belong in an instance's domain, root first. */
export function attachedVolumes(deps: WorkerDeps, instanceId: string): Promise<Volume[]> {
  return attachedVolumeRows(deps.db, instanceId);
}

/**
 * What terminating an instance does to its volumes: those marked deleteOnTermination are
 * deleted, the others are detached and become available.
 */
export async function releaseVolumes(deps: WorkerDeps, instanceId: string): Promise<void> {
  const volumes = (await volumesOfInstances(deps.db, [instanceId])).get(instanceId) ?? [];
  for (const v of volumes) {
    if (v.deleteOnTermination) {
      await driverFor(deps, v).delete(v.id);
      await markVolumeDeleted(deps.db, v.id);
    } else {
      await markVolumeDetached(deps.db, v.id);
    }
  }
}
