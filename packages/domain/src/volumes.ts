import { CloudError } from './errors.js';

/** EBS volume types and their limits (EC2's, scaled to what a single host can enforce). */
export const VOLUME_TYPES = ['gp3', 'gp2', 'io1', 'io2', 'st1', 'sc1', 'standard'] as const;
export type VolumeType = (typeof VOLUME_TYPES)[number];

export const VOLUME_STATES = [
  'creating',
  'available',
  'in-use',
  'deleting',
  'deleted',
  'error',
] as const;
export type VolumeState = (typeof VOLUME_STATES)[number];

export const SNAPSHOT_STATES = ['pending', 'completed', 'error'] as const;

interface TypeRule {
  minSizeGiB: number;
  iops?: { min: number; max: number; perGiB: number; default?: number };
  throughput?: { min: number; max: number; default: number };
}

const RULES: Record<VolumeType, TypeRule> = {
  gp3: {
    minSizeGiB: 1,
    iops: { min: 3000, max: 16000, perGiB: 500, default: 3000 },
    throughput: { min: 125, max: 1000, default: 125 },
  },
  gp2: { minSizeGiB: 1 },
  io1: { minSizeGiB: 4, iops: { min: 100, max: 64000, perGiB: 50 } },
  io2: { minSizeGiB: 4, iops: { min: 100, max: 256000, perGiB: 1000 } },
  st1: { minSizeGiB: 125 },
  sc1: { minSizeGiB: 125 },
  standard: { minSizeGiB: 1 },
};

export interface VolumeSpecInput {
  sizeGiB: number;
  volumeType: VolumeType;
  iops?: number | undefined;
  throughput?: number | undefined;
}

export interface VolumePerformance {
  iops: number | null;
  /** MiB/s. */
  throughput: number | null;
}

/** The I/O limits a volume gets on the guest's disk (libvirt <iotune>). */
export interface DiskIoLimits {
  totalIopsSec?: number;
  totalBytesSec?: number;
}

const MiB = 1024 * 1024;

/**
 * Validate a volume's type, size, iops and throughput as EC2 does, and work out its
 * performance. Throws InvalidParameterValue / InvalidParameterCombination on bad input.
 */
export function resolveVolumeSpec(input: VolumeSpecInput, maxSizeGiB: number): VolumePerformance {
  const rule = RULES[input.volumeType];
  const { sizeGiB } = input;
  if (!Number.isInteger(sizeGiB) || sizeGiB < rule.minSizeGiB || sizeGiB > maxSizeGiB) {
    throw new CloudError(
      'InvalidParameterValue',
      `Volume size must be an integer from ${rule.minSizeGiB} to ${maxSizeGiB} GiB for ${input.volumeType}.`,
    );
  }
  if (input.iops !== undefined && !rule.iops) {
    throw new CloudError(
      'InvalidParameterCombination',
      `iops cannot be set for ${input.volumeType} volumes.`,
    );
  }
  if (input.throughput !== undefined && !rule.throughput) {
    throw new CloudError(
      'InvalidParameterCombination',
      `throughput can only be set for gp3 volumes.`,
    );
  }
  let iops: number | null = null;
  if (rule.iops) {
    const wanted = input.iops ?? rule.iops.default;
    if (wanted === undefined) {
      throw new CloudError('MissingParameter', `iops is required for ${input.volumeType} volumes.`);
    }
    const max = Math.min(rule.iops.max, Math.max(rule.iops.min, sizeGiB * rule.iops.perGiB));
    if (!Number.isInteger(wanted) || wanted < rule.iops.min || wanted > max) {
      throw new CloudError(
        'InvalidParameterValue',
        `iops for a ${sizeGiB} GiB ${input.volumeType} volume must be from ${rule.iops.min} to ${max}.`,
      );
    }
    iops = wanted;
  } else if (input.volumeType === 'gp2') {
    iops = Math.min(16000, Math.max(100, 3 * sizeGiB));
  }
  let throughput: number | null = null;
  if (rule.throughput) {
    const wanted = input.throughput ?? rule.throughput.default;
    if (!Number.isInteger(wanted) || wanted < rule.throughput.min || wanted > rule.throughput.max) {
      throw new CloudError(
        'InvalidParameterValue',
        `throughput must be from ${rule.throughput.min} to ${rule.throughput.max} MiB/s.`,
      );
    }
    throughput = wanted;
  } else if (input.volumeType === 'st1' || input.volumeType === 'sc1') {
    // Burst throughput per TiB, capped, as EC2's throughput-optimised HDD types.
    const [perTiB, cap] = input.volumeType === 'st1' ? [250, 500] : [80, 250];
    throughput = Math.max(1, Math.min(cap, Math.round((perTiB * sizeGiB) / 1024)));
  }
  return { iops, throughput };
}

export function ioLimitsFor(p: VolumePerformance): DiskIoLimits {
  return {
    ...(p.iops !== null ? { totalIopsSec: p.iops } : {}),
    ...(p.throughput !== null ? { totalBytesSec: p.throughput * MiB } : {}),
  };
}

/** EC2 device names accepted for data volumes; the root is /dev/xvda. */
const DEVICE = /^\/dev\/(sd|xvd)([b-y])$/;
export const ROOT_DEVICE_NAME = '/dev/xvda';

/** The libvirt target for an EC2 device name: /dev/sdf and /dev/xvdf -> vdf. (vdz is the seed.) */
export function diskTargetForDevice(device: string): string {
  const m = DEVICE.exec(device);
  if (!m) {
    throw new CloudError(
      'InvalidParameterValue',
      `Device name '${device}' is not valid: use /dev/sdb to /dev/sdy (or /dev/xvdb to /dev/xvdy).`,
    );
  }
  return `vd${m[2]}`;
}

/** The serial the guest sees for a volume (/sys/block/vdX/serial), like EC2's NVMe serials. */
export function volumeSerial(volumeId: string): string {
  return volumeId.replace('-', '');
}
