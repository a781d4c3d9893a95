import { z } from 'zod';

/** Request schemas shared by the API (validation), the client, the CLI and the OpenAPI document. */

const idOf = (prefix: string) =>
  z.string().regex(new RegExp(`^${prefix}-[0-9a-f]{17}$`), `expected a ${prefix}-... id`);

export const ImageId = idOf('ami');
export const InstanceId = idOf('i');

/** Names reach paths and commands only after this check: no slash, dot-dot, shell or control chars. */
export const SafeName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9 ._()+-]*$/, 'letters, digits, spaces and ._()+- only')
  .refine((s) => !s.includes('..'), 'must not contain ".."');

const hasControlChars = (s: string) => [...s].some((c) => c.charCodeAt(0) < 0x20);

export const Tags = z
  .record(
    z
      .string()
      .min(1)
      .max(128)
      .refine((k) => !hasControlChars(k), 'no control characters')
      .refine((k) => !k.startsWith('aws:'), 'the aws: prefix is reserved'),
    z
      .string()
      .max(256)
      .refine((v) => !hasControlChars(v), 'no control characters'),
  )
  .refine((t) => Object.keys(t).length <= 50, 'at most 50 tags');

export const CreateImageRequest = z.strictObject({
  name: SafeName,
  description: z.string().max(255).optional(),
  source: z
    .string()
    .min(1)
    .max(2048)
    .refine(
      (s) => s.startsWith('/') || /^https?:\/\/[^\s]+$/.test(s),
      'source must be an absolute local path or an http(s) URL',
    )
    .refine((s) => !/[\0\n\r]/.test(s), 'source must not contain control characters'),
});

export const InstanceTypeName = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,15}\.[a-z0-9]{1,16}$/, 'like t3.micro');

export const CreateInstanceTypeRequest = z.strictObject({
  instanceType: InstanceTypeName,
  family: z.enum([
    'general-purpose',
    'compute-optimized',
    'memory-optimized',
    'storage-optimized',
    'accelerated-computing',
  ]),
  vcpus: z.number().int().min(1).max(256),
  memoryMiB: z
    .number()
    .int()
    .min(64)
    .max(4 * 1024 * 1024),
  instanceStorageGiB: z.number().int().min(0).max(65536).default(0),
  gpus: z.number().int().min(0).max(16).default(0),
});

export const KeyName = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits and ._- only');

export const CreateKeyPairRequest = z.strictObject({
  keyName: KeyName,
  keyType: z.enum(['ed25519', 'rsa']).default('ed25519'),
});

export const ImportKeyPairRequest = z.strictObject({
  keyName: KeyName,
  publicKeyMaterial: z.string().min(1).max(16384),
});

export const Base64 = z
  .string()
  .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64')
  .refine((s) => s.length % 4 === 0, 'must be base64 (length a multiple of 4)');

export const RunInstancesRequest = z.strictObject({
  imageId: ImageId,
  instanceType: InstanceTypeName,
  keyName: KeyName.optional(),
  minCount: z.number().int().min(1).max(100).default(1),
  maxCount: z.number().int().min(1).max(100).optional(),
  userData: Base64.optional(),
  clientToken: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[\x21-\x7e]+$/, 'printable ASCII')
    .optional(),
  tags: Tags.optional(),
  blockDeviceMappings: z
    .array(z.lazy(() => BlockDeviceMapping))
    .max(16)
    .optional(),
});

export const StopInstanceRequest = z.strictObject({ force: z.boolean().default(false) });

export const DescribeInstancesQuery = z.object({
  state: z.string().optional(),
  instanceId: z.string().optional(),
  maxResults: z.coerce.number().int().min(1).max(10000).optional(),
});

export type RunInstancesInput = z.infer<typeof RunInstancesRequest>;

export const VolumeId = idOf('vol');
export const SnapshotId = idOf('snap');
export const VolumeTypeName = z.enum(['gp3', 'gp2', 'io1', 'io2', 'st1', 'sc1', 'standard']);
export const DeviceName = z.string().regex(/^\/dev\/(sd|xvd)[b-y]$/, 'like /dev/sdf (sdb to sdy)');

export const CreateVolumeRequest = z.strictObject({
  size: z.number().int().optional(),
  volumeType: VolumeTypeName.default('gp3'),
  iops: z.number().int().optional(),
  throughput: z.number().int().optional(),
  snapshotId: SnapshotId.optional(),
  tags: Tags.optional(),
});

export const AttachVolumeRequest = z.strictObject({ instanceId: InstanceId, device: DeviceName });
export const DetachVolumeRequest = z.strictObject({ force: z.boolean().default(false) });
export const ModifyVolumeRequest = z.strictObject({ size: z.number().int() });

export const CreateSnapshotRequest = z.strictObject({
  volumeId: VolumeId,
  description: z.string().max(255).optional(),
  tags: Tags.optional(),
});

/** At launch: data volumes (/dev/sdb../dev/sdy), or the root device (/dev/xvda) to change it. */
export const BlockDeviceMapping = z.strictObject({
  deviceName: z.union([DeviceName, z.enum(['/dev/xvda', '/dev/sda1'])]),
  ebs: z.strictObject({
    volumeSize: z.number().int().optional(),
    volumeType: VolumeTypeName.default('gp3'),
    iops: z.number().int().optional(),
    throughput: z.number().int().optional(),
    snapshotId: SnapshotId.optional(),
    deleteOnTermination: z.boolean().default(true),
  }),
});
