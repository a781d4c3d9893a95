import { jobIds } from '@minicloud/queue';
import {
  CloudError,
  diskTargetForDevice,
  errors,
  newId,
  resolveVolumeSpec,
  type VolumeType,
} from '@minicloud/domain';
import {
  findInstance,
  findSnapshot,
  findVolume,
  isUniqueViolation,
  readTags,
  writeTags,
  type TagInput,
} from '@minicloud/db';
import type { Snapshot, Volume } from '@prisma/client';
import type { ServiceContext } from './context.js';
import { submitJob } from './jobs.js';

export function presentVolume(v: Volume, tags: { key: string; value: string }[] = []) {
  return {
    volumeId: v.id,
    size: v.sizeGiB,
    volumeType: v.volumeType,
    iops: v.iops,
    throughput: v.throughput,
    snapshotId: v.snapshotId,
    state: v.state,
    stateReason: v.stateReason,
    createTime: v.createdAt.toISOString(),
    attachments: v.instanceId
      ? [
          {
            volumeId: v.id,
            instanceId: v.instanceId,
            device: v.device,
            state: v.attachState,
            attachTime: v.attachTime?.toISOString() ?? null,
            deleteOnTermination: v.deleteOnTermination,
          },
        ]
      : [],
    tags,
  };
}

export function presentSnapshot(s: Snapshot) {
  return {
    snapshotId: s.id,
    volumeId: s.volumeId,
    volumeSize: s.volumeSize,
    description: s.description,
    state: s.state,
    stateReason: s.stateReason,
    progress: `${s.progress}%`,
    startTime: s.createdAt.toISOString(),
  };
}

const volumeNotFound = (id: string) =>
  errors.notFound('InvalidVolume.NotFound', `The volume '${id}' does not exist.`);
const snapshotNotFound = (id: string) =>
  errors.notFound('InvalidSnapshot.NotFound', `The snapshot '${id}' does not exist.`);

export class VolumeService {
  constructor(private readonly ctx: ServiceContext) {}

  /** Validate size, type and performance (and the source snapshot) of a new volume. */
  async planVolume(input: {
    size?: number | undefined;
    volumeType: VolumeType;
    iops?: number | undefined;
    throughput?: number | undefined;
    snapshotId?: string | undefined;
  }) {
    let size = input.size;
    if (input.snapshotId) {
      const snap = await findSnapshot(this.ctx.db, input.snapshotId);
      if (!snap || snap.deletedAt) throw snapshotNotFound(input.snapshotId);
      if (snap.state !== 'completed') {
        throw new CloudError('IncorrectState', `The snapshot '${snap.id}' is ${snap.state}.`, 409);
      }
      size ??= snap.volumeSize;
      if (size < snap.volumeSize) {
        throw errors.invalidParameter(
          `The volume size must be at least the snapshot's ${snap.volumeSize} GiB.`,
        );
      }
    }
    if (size === undefined)
      throw errors.missingParameter('size is required unless snapshotId is given.');
    const perf = resolveVolumeSpec(
      {
        sizeGiB: size,
        volumeType: input.volumeType,
        iops: input.iops,
        throughput: input.throughput,
      },
      this.ctx.settings.maxVolumeGiB,
    );
    return {
      sizeGiB: size,
      volumeType: input.volumeType,
      snapshotId: input.snapshotId ?? null,
      ...perf,
    };
  }

  async create(input: {
    size?: number;
    volumeType: VolumeType;
    iops?: number;
    throughput?: number;
    snapshotId?: string;
    tags?: TagInput;
  }) {
    const plan = await this.planVolume(input);
    const id = newId('volume');
    const volume = await this.ctx.db.$transaction(async (tx) => {
      const v = await tx.volume.create({ data: { id, ...plan, state: 'creating' } });
      await writeTags(tx, id, input.tags);
      return v;
    });
    await submitJob(this.ctx, 'volume.create', { volumeId: id }, jobIds.volumeCreate(id));
    return presentVolume(volume, tagList(input.tags));
  }

  async describe(volumeId?: string) {
    const volumes = await this.ctx.db.volume.findMany({
      where: { state: { not: 'deleted' }, ...(volumeId ? { id: volumeId } : {}) },
      orderBy: { createdAt: 'asc' },
    });
    const tags = await readTags(
      this.ctx.db,
      volumes.map((v) => v.id),
    );
    return volumes.map((v) => presentVolume(v, tags.get(v.id)));
  }

  async get(volumeId: string) {
    const [v] = await this.describe(volumeId);
    if (!v) throw volumeNotFound(volumeId);
    return v;
  }

  private async load(volumeId: string) {
    const v = await findVolume(this.ctx.db, volumeId);
    if (!v || v.state === 'deleted') throw volumeNotFound(volumeId);
    return v;
  }

  /** Change a volume row only if nobody changed it meanwhile (actionSeq), then enqueue. */
  private async guardedUpdate(v: Volume, data: Partial<Volume>) {
    const { count } = await this.ctx.db.volume.updateMany({
      where: { id: v.id, actionSeq: v.actionSeq },
      data: { ...data, actionSeq: v.actionSeq + 1 },
    });
    if (count === 0)
      throw new CloudError(
        'IncorrectState',
        `The volume '${v.id}' changed concurrently; try again.`,
        409,
      );
    return v.actionSeq + 1;
  }

  async delete(volumeId: string) {
    const v = await this.load(volumeId);
    if (v.instanceId)
      throw new CloudError(
        'VolumeInUse',
        `The volume '${volumeId}' is attached to ${v.instanceId}.`,
        409,
      );
    if (v.state === 'deleting') return presentVolume(v);
    if (v.state !== 'available' && v.state !== 'error') {
      throw new CloudError('IncorrectState', `The volume '${volumeId}' is ${v.state}.`, 409);
    }
    const seq = await this.guardedUpdate(v, { state: 'deleting' });
    await submitJob(
      this.ctx,
      'volume.delete',
      { volumeId },
      jobIds.volumeAction(volumeId, 'delete', seq),
    );
    return presentVolume({ ...v, state: 'deleting' });
  }

  async attach(volumeId: string, instanceId: string, device: string) {
    const v = await this.load(volumeId);
    const target = diskTargetForDevice(device);
    if (v.instanceId) {
      throw new CloudError(
        'VolumeInUse',
        `The volume '${volumeId}' is already attached to ${v.instanceId}.`,
        409,
      );
    }
    if (v.state !== 'available')
      throw new CloudError('IncorrectState', `The volume '${volumeId}' is ${v.state}.`, 409);
    const instance = await findInstance(this.ctx.db, instanceId);
    if (!instance)
      throw errors.notFound(
        'InvalidInstanceID.NotFound',
        `The instance ID '${instanceId}' does not exist.`,
      );
    if (instance.state !== 'running' && instance.state !== 'stopped') {
      throw errors.incorrectState(
        `The instance '${instanceId}' is ${instance.state}; volumes attach to running or stopped instances.`,
      );
    }
    // By disk target, not by name: /dev/sdf and /dev/xvdf are the same disk (vdf) in the guest.
    const holder = await this.ctx.db.volume.findFirst({ where: { instanceId, target } });
    if (holder) throw deviceInUse(device, instanceId, holder);
    let seq: number;
    try {
      seq = await this.guardedUpdate(v, {
        state: 'in-use',
        instanceId,
        device,
        target,
        attachState: 'attaching',
        attachTime: new Date(),
        deleteOnTermination: false,
      });
    } catch (e) {
      // A concurrent attach to the same target (or device) won: the unique keys refuse this one.
      if (isUniqueViolation(e)) throw deviceInUse(device, instanceId);
      // Another attach won the race (PostgreSQL runs them side by side): say so, as EC2 does.
      const now = await this.ctx.db.volume.findUnique({ where: { id: volumeId } });
      if (now?.instanceId) {
        throw new CloudError(
          'VolumeInUse',
          `The volume '${volumeId}' is already attached to ${now.instanceId}.`,
          409,
        );
      }
      throw e;
    }
    await submitJob(
      this.ctx,
      'volume.attach',
      { volumeId },
      jobIds.volumeAction(volumeId, 'attach', seq),
    );
    return { volumeId, instanceId, device, state: 'attaching' };
  }

  async detach(volumeId: string, force: boolean) {
    const v = await this.load(volumeId);
    if (!v.instanceId) {
      throw new CloudError(
        'IncorrectState',
        `The volume '${volumeId}' is not attached (it is ${v.state}).`,
        409,
      );
    }
    if (v.isRoot) {
      throw new CloudError(
        'OperationNotPermitted',
        `The root volume '${volumeId}' cannot be detached.`,
        400,
      );
    }
    if (v.attachState === 'detaching' && !force) {
      return { volumeId, instanceId: v.instanceId, device: v.device, state: 'detaching' };
    }
    if (v.attachState !== 'attached' && v.attachState !== 'detaching') {
      throw new CloudError('IncorrectState', `The volume '${volumeId}' is ${v.attachState}.`, 409);
    }
    const seq = await this.guardedUpdate(v, { attachState: 'detaching' });
    await submitJob(
      this.ctx,
      'volume.detach',
      { volumeId, force },
      jobIds.volumeAction(volumeId, 'detach', seq),
    );
    return { volumeId, instanceId: v.instanceId, device: v.device, state: 'detaching' };
  }

  async modify(volumeId: string, size: number) {
    const v = await this.load(volumeId);
    if (v.state !== 'available' && v.state !== 'in-use') {
      throw new CloudError('IncorrectState', `The volume '${volumeId}' is ${v.state}.`, 409);
    }
    if (v.attachState && v.attachState !== 'attached') {
      throw new CloudError('IncorrectState', `The volume '${volumeId}' is ${v.attachState}.`, 409);
    }
    if (size < v.sizeGiB) {
      throw errors.invalidParameter(
        `Volumes can only grow: '${volumeId}' is ${v.sizeGiB} GiB, ${size} requested.`,
      );
    }
    if (size === v.sizeGiB) return presentVolume(v);
    resolveVolumeSpec(
      {
        sizeGiB: size,
        volumeType: v.volumeType as VolumeType,
        iops: v.volumeType === 'gp2' ? undefined : (v.iops ?? undefined),
        throughput: v.throughput !== null && v.volumeType === 'gp3' ? v.throughput : undefined,
      },
      this.ctx.settings.maxVolumeGiB,
    );
    const seq = await this.guardedUpdate(v, {});
    await submitJob(
      this.ctx,
      'volume.resize',
      { volumeId, sizeGiB: size },
      jobIds.volumeAction(volumeId, 'resize', seq),
    );
    return { ...presentVolume(v), modificationState: 'modifying', targetSize: size };
  }

  async createSnapshot(volumeId: string, description: string | undefined, tags: TagInput) {
    const v = await findVolume(this.ctx.db, volumeId);
    if (!v || v.state === 'deleted' || v.state === 'deleting') throw volumeNotFound(volumeId);
    if (v.state !== 'available' && v.state !== 'in-use') {
      throw new CloudError('IncorrectState', `The volume '${volumeId}' is ${v.state}.`, 409);
    }
    const id = newId('snapshot');
    const snap = await this.ctx.db.$transaction(async (tx) => {
      const s = await tx.snapshot.create({
        data: {
          id,
          volumeId,
          volumeSize: v.sizeGiB,
          description: description ?? null,
          state: 'pending',
        },
      });
      await writeTags(tx, id, tags);
      return s;
    });
    await submitJob(this.ctx, 'snapshot.create', { snapshotId: id }, jobIds.snapshotCreate(id));
    return presentSnapshot(snap);
  }

  async describeSnapshots(snapshotId?: string) {
    const snaps = await this.ctx.db.snapshot.findMany({
      where: { deletedAt: null, ...(snapshotId ? { id: snapshotId } : {}) },
      orderBy: { createdAt: 'asc' },
    });
    return snaps.map(presentSnapshot);
  }

  async getSnapshot(snapshotId: string) {
    const [s] = await this.describeSnapshots(snapshotId);
    if (!s) throw snapshotNotFound(snapshotId);
    return s;
  }

  async deleteSnapshot(snapshotId: string) {
    const s = await findSnapshot(this.ctx.db, snapshotId);
    if (!s || s.deletedAt) throw snapshotNotFound(snapshotId);
    if (s.state === 'pending')
      throw new CloudError('IncorrectState', `The snapshot '${snapshotId}' is pending.`, 409);
    await this.ctx.db.snapshot.update({
      where: { id: snapshotId },
      data: { deletedAt: new Date() },
    });
    await submitJob(this.ctx, 'snapshot.delete', { snapshotId }, jobIds.snapshotDelete(snapshotId));
    return { snapshotId, deleted: true };
  }
}

function tagList(tags: TagInput) {
  return Object.entries(tags ?? {}).map(([key, value]) => ({ key, value }));
}

/** EC2's answer: InvalidParameterValue "Attachment point /dev/sdf is already in use". */
function deviceInUse(device: string, instanceId: string, holder?: Pick<Volume, 'id' | 'device'>) {
  const as = holder && holder.device !== device ? ` (as ${holder.device})` : '';
  const by = holder ? ` by ${holder.id}${as}` : '';
  return errors.invalidParameter(
    `Invalid value '${device}' for device. Attachment point ${device} is already in use on ${instanceId}${by}.`,
  );
}
