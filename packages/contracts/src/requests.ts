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
  /** Launch into this subnet (default: the default VPC's default subnet). */
  subnetId: z.lazy(() => SubnetId).optional(),
  /** The primary private address (only with one instance); default: the lowest free one. */
  privateIpAddress: z.lazy(() => Ipv4Address).optional(),
  /** Up to 5 groups of the subnet's VPC (checked by the service); default: the VPC's default. */
  securityGroupIds: z
    .array(z.lazy(() => SecurityGroupId))
    .min(1)
    .optional(),
});

export const StopInstanceRequest = z.strictObject({ force: z.boolean().default(false) });

export const DescribeInstancesQuery = z.object({
  state: z.string().optional(),
  instanceId: z.string().optional(),
  vpcId: z.lazy(() => VpcId).optional(),
  subnetId: z.lazy(() => SubnetId).optional(),
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

export const VpcId = idOf('vpc');
export const SubnetId = idOf('subnet');
export const InternetGatewayId = idOf('igw');
export const AllocationId = idOf('eipalloc');
export const PublicIpv4PoolId = idOf('ipv4pool');

/** Dotted-quad syntax only; ranges and meaning are checked by the services (EC2 error codes). */
export const Ipv4Address = z
  .string()
  .regex(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/, 'an IPv4 address like 10.0.1.5');
export const Ipv4Cidr = z
  .string()
  .regex(
    /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/,
    'an IPv4 CIDR like 10.0.0.0/16',
  );

export const CreateVpcRequest = z.strictObject({ cidrBlock: Ipv4Cidr, tags: Tags.optional() });

export const CreateSubnetRequest = z.strictObject({
  vpcId: VpcId,
  cidrBlock: Ipv4Cidr,
  mapPublicIpOnLaunch: z.boolean().default(false),
  tags: Tags.optional(),
});
export const ModifySubnetRequest = z.strictObject({ mapPublicIpOnLaunch: z.boolean() });
export const DescribeSubnetsQuery = z.object({ vpcId: VpcId.optional() });

export const CreateInternetGatewayRequest = z.strictObject({ tags: Tags.optional() });
export const InternetGatewayAttachmentRequest = z.strictObject({ vpcId: VpcId });

export const CreatePublicIpv4PoolRequest = z.union([
  z.strictObject({ cidr: Ipv4Cidr, description: z.string().max(255).optional() }),
  z.strictObject({
    firstIp: Ipv4Address,
    lastIp: Ipv4Address,
    description: z.string().max(255).optional(),
  }),
]);

export const AllocateAddressRequest = z.strictObject({
  /** Take the address from this pool (default: any pool with a free address). */
  publicIpv4Pool: PublicIpv4PoolId.optional(),
  /** Ask for this address (it must lie in a pool and be free). */
  address: Ipv4Address.optional(),
  tags: Tags.optional(),
});
export const AssociateAddressRequest = z.strictObject({
  instanceId: InstanceId,
  /** Move the address even when it is associated with another instance (EC2's default: false). */
  allowReassociation: z.boolean().default(false),
});

export const SecurityGroupId = idOf('sg');
export const SecurityGroupRuleId = idOf('sgr');

export const CreateSecurityGroupRequest = z.strictObject({
  groupName: z.string().min(1).max(255),
  description: z.string().min(1).max(255),
  /** Default: the default VPC. */
  vpcId: VpcId.optional(),
  tags: Tags.optional(),
});

/** One permission; protocols, ports and CIDRs are checked by the service (EC2 error codes). */
export const SecurityGroupRuleInput = z.strictObject({
  ipProtocol: z.union([z.string().max(16), z.number().int()]).transform(String),
  fromPort: z.number().int().optional(),
  toPort: z.number().int().optional(),
  cidrIpv4: z.string().max(32).optional(),
  referencedGroupId: SecurityGroupId.optional(),
  description: z.string().max(255).optional(),
});
export type SecurityGroupRuleInputType = z.infer<typeof SecurityGroupRuleInput>;

/** Authorize or revoke: one rule, or {rules: [...]} (revoke also takes {securityGroupRuleIds}). */
export const SecurityGroupRulesRequest = z.union([
  z.strictObject({ rules: z.array(SecurityGroupRuleInput).min(1).max(100) }),
  SecurityGroupRuleInput.transform((rule) => ({ rules: [rule] })),
]);
export const RevokeSecurityGroupRulesRequest = z.union([
  SecurityGroupRulesRequest,
  z.strictObject({ securityGroupRuleIds: z.array(SecurityGroupRuleId).min(1).max(100) }),
]);
export const DescribeSecurityGroupsQuery = z.object({ vpcId: VpcId.optional() });
export const ModifyInstanceSecurityGroupsRequest = z.strictObject({
  securityGroupIds: z.array(SecurityGroupId).min(1),
});
