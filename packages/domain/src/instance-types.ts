/** The built-in instance-type catalog: EC2 names and sizes across the families. */
export type InstanceFamily =
  | 'general-purpose'
  | 'compute-optimized'
  | 'memory-optimized'
  | 'storage-optimized'
  | 'accelerated-computing';

export interface InstanceTypeProfile {
  instanceType: string;
  family: InstanceFamily;
  vcpus: number;
  memoryMiB: number;
  /** Local instance-store (scratch) disk, GiB; 0 for EBS-only types. */
  instanceStorageGiB: number;
  /** GPUs the type needs; launching it needs a configured host GPU. */
  gpus: number;
  builtIn: boolean;
}

const t = (
  instanceType: string,
  family: InstanceFamily,
  vcpus: number,
  memoryGiB: number,
  instanceStorageGiB = 0,
  gpus = 0,
): InstanceTypeProfile => ({
  instanceType,
  family,
  vcpus,
  memoryMiB: Math.round(memoryGiB * 1024),
  instanceStorageGiB,
  gpus,
  builtIn: true,
});

export const BUILT_IN_INSTANCE_TYPES: readonly InstanceTypeProfile[] = [
  t('t3.nano', 'general-purpose', 2, 0.5),
  t('t3.micro', 'general-purpose', 2, 1),
  t('t3.small', 'general-purpose', 2, 2),
  t('t3.medium', 'general-purpose', 2, 4),
  t('t3.large', 'general-purpose', 2, 8),
  t('m5.large', 'general-purpose', 2, 8),
  t('m5.xlarge', 'general-purpose', 4, 16),
  t('m5.2xlarge', 'general-purpose', 8, 32),
  t('c5.large', 'compute-optimized', 2, 4),
  t('c5.xlarge', 'compute-optimized', 4, 8),
  t('c5.2xlarge', 'compute-optimized', 8, 16),
  t('r5.large', 'memory-optimized', 2, 16),
  t('r5.xlarge', 'memory-optimized', 4, 32),
  t('r5.2xlarge', 'memory-optimized', 8, 64),
  t('i3.large', 'storage-optimized', 2, 15.25, 475),
  t('i3.xlarge', 'storage-optimized', 4, 30.5, 950),
  t('g4dn.xlarge', 'accelerated-computing', 4, 16, 125, 1),
  t('g4dn.2xlarge', 'accelerated-computing', 8, 32, 225, 1),
];

export const INSTANCE_TYPE_NAME = /^[a-z][a-z0-9-]{0,15}\.[a-z0-9]{1,16}$/;

export function findBuiltInType(name: string): InstanceTypeProfile | undefined {
  return BUILT_IN_INSTANCE_TYPES.find((p) => p.instanceType === name);
}
