import {
  BUILT_IN_INSTANCE_TYPES,
  errors,
  findBuiltInType,
  type InstanceTypeProfile,
} from '@minicloud/domain';
import { isUniqueViolation } from '@minicloud/db';
import type { InstanceType } from '@prisma/client';
import type { ServiceContext } from './context.js';

function fromRow(r: InstanceType): InstanceTypeProfile {
  return {
    instanceType: r.name,
    family: r.family as InstanceTypeProfile['family'],
    vcpus: r.vcpus,
    memoryMiB: r.memoryMiB,
    instanceStorageGiB: r.instanceStorageGiB,
    gpus: r.gpus,
    builtIn: false,
  };
}

export class InstanceTypeService {
  constructor(private readonly ctx: ServiceContext) {}

  private present(p: InstanceTypeProfile) {
    const gpuAvailable = p.gpus === 0 || this.ctx.settings.gpuDevices.length >= p.gpus;
    return {
      ...p,
      memoryGiB: Math.round((p.memoryMiB / 1024) * 100) / 100,
      supported: gpuAvailable,
      unsupportedReason: gpuAvailable
        ? null
        : `needs ${p.gpus} GPU(s); this host has none configured (set MINICLOUD_GPU_DEVICES)`,
    };
  }

  async list() {
    const custom = await this.ctx.db.instanceType.findMany({ orderBy: { name: 'asc' } });
    return [...BUILT_IN_INSTANCE_TYPES, ...custom.map(fromRow)].map((p) => this.present(p));
  }

  async find(name: string): Promise<InstanceTypeProfile | null> {
    const builtIn = findBuiltInType(name);
    if (builtIn) return builtIn;
    const row = await this.ctx.db.instanceType.findUnique({ where: { name } });
    return row ? fromRow(row) : null;
  }

  async create(input: Omit<InstanceTypeProfile, 'builtIn'>) {
    const duplicate = () =>
      errors.duplicate(
        'InvalidInstanceType.Duplicate',
        `The instance type '${input.instanceType}' already exists.`,
      );
    if (await this.find(input.instanceType)) throw duplicate();
    try {
      const row = await this.ctx.db.instanceType.create({
        data: {
          name: input.instanceType,
          family: input.family,
          vcpus: input.vcpus,
          memoryMiB: input.memoryMiB,
          instanceStorageGiB: input.instanceStorageGiB,
          gpus: input.gpus,
        },
      });
      return this.present(fromRow(row));
    } catch (e) {
      // A concurrent create of the same name won the race between the look-up and the insert.
      if (isUniqueViolation(e)) throw duplicate();
      throw e;
    }
  }
}
