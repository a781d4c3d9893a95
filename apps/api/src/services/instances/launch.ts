import { createHash } from 'node:crypto';
import {
  CloudError,
  MAX_USER_DATA_BYTES,
  ROOT_DEVICE_NAME,
  diskTargetForDevice,
  errors,
  macForInstance,
  newId,
} from '@minicloud/domain';
import {
  findImage,
  holdImageForLaunch,
  instancesOfReservation,
  isUniqueViolation,
  lockRowForUpdate,
  writeTagsOfMany,
  type Tx,
} from '@minicloud/db';
import { jobIds } from '@minicloud/queue';
import type { RunInstancesInput } from '@minicloud/contracts';
import type { Subnet } from '@prisma/client';
import type { ServiceContext } from '../context.js';
import type { InstanceTypeService } from '../instance-types.js';
import type { KeyPairService } from '../key-pairs.js';
import type { VolumeService } from '../volumes.js';
import { allocateFromPools } from '../addresses.js';
import { requestNetworkApply } from '../network-apply.js';
import { allocateSubnetAddresses, checkRequestedAddress } from '../network-rules.js';
import { resolveInstanceGroups } from '../security-group-rows.js';
import { presentInstances } from './view.js';
import { submitJobs } from '../jobs.js';

const MAX_LAUNCH_ATTEMPTS = 8;

type PlannedVolume = Awaited<ReturnType<VolumeService['planVolume']>> & {
  device: string;
  deleteOnTermination: boolean;
  isRoot: boolean;
};

interface Reservation {
  input: RunInstancesInput;
  maxCount: number;
  requestHash: string;
  publicKey: string | null;
  vcpus: number;
  memoryMiB: number;
  volumes: PlannedVolume[];
  subnet: Subnet;
}

/**
 * RunInstances: check everything, then ONE transaction reserves the instances with their
 * addresses, groups, public addresses, tags and volumes (state pending), then one launch job per
 * instance, its id derived from the instance id (a retry or a duplicate never launches twice).
 */
export class InstanceLauncher {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly types: InstanceTypeService,
    private readonly keyPairs: KeyPairService,
    private readonly volumes: VolumeService,
  ) {}

  async run(input: RunInstancesInput) {
    const { db, settings } = this.ctx;
    const maxCount = input.maxCount ?? input.minCount;
    if (maxCount < input.minCount) {
      throw errors.invalidParameter('maxCount must be greater than or equal to minCount.');
    }
    const image = await findImage(db, input.imageId);
    if (!image || image.state === 'deregistered' || image.state === 'deregistering') {
      throw errors.notFound(
        'InvalidAMIID.NotFound',
        `The image id '${input.imageId}' does not exist.`,
      );
    }
    if (image.state !== 'available') {
      throw new CloudError(
        'InvalidAMIID.Unavailable',
        `The image '${image.id}' is ${image.state}.`,
        400,
      );
    }
    const type = await this.types.find(input.instanceType);
    if (!type) {
      throw errors.invalidParameter(`The instance type '${input.instanceType}' does not exist.`);
    }
    if (type.gpus > settings.gpuDevices.length) {
      throw new CloudError(
        'Unsupported',
        `The instance type '${type.instanceType}' needs ${type.gpus} GPU(s) and this host has none configured.`,
        400,
      );
    }
    let publicKey: string | null = null;
    if (input.keyName !== undefined) {
      const key = await this.keyPairs.findByName(input.keyName);
      if (!key)
        throw errors.notFound(
          'InvalidKeyPair.NotFound',
          `The key pair '${input.keyName}' does not exist.`,
        );
      publicKey = key.publicKey;
    }
    if (input.userData !== undefined) {
      const bytes = Buffer.from(input.userData, 'base64').length;
      // The setting may only lower the one limit the seed builder also holds to.
      const limit = Math.min(settings.maxUserDataBytes, MAX_USER_DATA_BYTES);
      if (bytes > limit) {
        throw errors.invalidParameter(`userData is ${bytes} bytes; the limit is ${limit} bytes.`);
      }
    }

    const subnet = await this.launchSubnet(input.subnetId);
    if (input.privateIpAddress !== undefined && maxCount > 1) {
      throw new CloudError(
        'InvalidParameterCombination',
        'privateIpAddress can only be given when launching one instance.',
      );
    }

    const volumes = await this.planLaunchVolumes(
      input,
      image.virtualSize === null ? 1 : Number(image.virtualSize),
    );

    const { clientToken, ...rest } = input;
    const requestHash = createHash('sha256')
      .update(JSON.stringify(canonical(rest)))
      .digest('hex');
    if (clientToken) {
      const existing = await this.byClientToken(clientToken, requestHash);
      if (existing) return existing;
    }

    for (let attempt = 1; ; attempt++) {
      try {
        const reservationId = await db.$transaction((tx) =>
          this.reserve(tx, {
            input,
            maxCount,
            requestHash,
            publicKey,
            vcpus: type.vcpus,
            memoryMiB: type.memoryMiB,
            volumes,
            subnet,
          }),
        );
        if (subnet.mapPublicIpOnLaunch)
          await requestNetworkApply(this.ctx, `public addresses of ${reservationId}`);
        return await this.enqueueLaunches(reservationId);
      } catch (e) {
        if (clientToken && isUniqueViolation(e, 'clientToken')) {
          // Another request with the same token won the race: answer as it did.
          const existing = await this.byClientToken(clientToken, requestHash);
          if (existing) return existing;
        }
        // Two launches picked the same free address: the primary key refused one; try again.
        // (An address asked for by the caller is checked again and reported as in use.)
        if (isUniqueViolation(e) && attempt < MAX_LAUNCH_ATTEMPTS) continue;
        throw e;
      }
    }
  }

  /** The one reserving transaction's body. */
  private async reserve(tx: Tx, a: Reservation): Promise<string> {
    const { subnet } = a;
    // First, and a write: the image checked above may have been deregistered since; from here
    // until commit no deregistration can slip in (see holdImageForLaunch).
    if (!(await holdImageForLaunch(tx, a.input.imageId))) {
      throw errors.notFound(
        'InvalidAMIID.NotFound',
        `The image id '${a.input.imageId}' does not exist or is no longer available.`,
      );
    }
    // Launches into one subnet pick their addresses one at a time (PostgreSQL runs them side by side).
    await lockRowForUpdate(tx, 'Subnet', subnet.id);
    const leases = await tx.addressLease.findMany({
      where: { subnetId: subnet.id },
      select: { ip: true },
    });
    const taken = new Set(leases.map((l) => l.ip));
    const ips =
      a.input.privateIpAddress !== undefined
        ? [checkRequestedAddress(subnet.cidrBlock, a.input.privateIpAddress, taken)]
        : allocateSubnetAddresses(subnet.cidrBlock, taken, a.maxCount);
    if (ips.length < a.input.minCount) {
      throw errors.insufficientCapacity(
        'InsufficientFreeAddressesInSubnet',
        `The subnet ${subnet.id} (${subnet.cidrBlock}) has ${ips.length} free address(es); ${a.input.minCount} requested.`,
      );
    }
    const reservationId = newId('reservation');
    await tx.reservation.create({
      data: {
        id: reservationId,
        clientToken: a.input.clientToken ?? null,
        requestHash: a.requestHash,
      },
    });
    // One statement per table, whatever the count: a 50-instance launch is a few milliseconds.
    const now = new Date();
    const instances = ips.map((ip, index) => {
      const id = newId('instance');
      return {
        id,
        reservationId,
        imageId: a.input.imageId,
        instanceType: a.input.instanceType,
        vcpus: a.vcpus,
        memoryMiB: a.memoryMiB,
        keyName: a.input.keyName ?? null,
        publicKey: a.publicKey,
        state: 'pending',
        privateIp: ip,
        macAddress: macForInstance(id),
        vpcId: subnet.vpcId,
        subnetId: subnet.id,
        networkInterfaceId: newId('networkInterface'),
        userData: a.input.userData ?? null,
        amiLaunchIndex: index,
      };
    });
    await tx.instance.createMany({ data: instances });
    const groupIds = await resolveInstanceGroups(tx, subnet.vpcId, a.input.securityGroupIds);
    await tx.instanceSecurityGroup.createMany({
      data: instances.flatMap((i) =>
        groupIds.map((groupId, position) => ({ instanceId: i.id, groupId, position })),
      ),
    });
    await tx.addressLease.createMany({
      data: instances.map((i) => ({
        network: subnet.vpcId,
        subnetId: subnet.id,
        ip: i.privateIp,
        mac: i.macAddress,
        instanceId: i.id,
      })),
    });
    if (subnet.mapPublicIpOnLaunch) {
      for (const i of instances) {
        await allocateFromPools(
          tx,
          { autoAssigned: true },
          { instanceId: i.id, privateIp: i.privateIp, vpcId: subnet.vpcId },
        );
      }
    }
    await writeTagsOfMany(
      tx,
      instances.map((i) => i.id),
      a.input.tags,
    );
    await tx.volume.createMany({
      data: instances.flatMap((i) =>
        a.volumes.map(({ device, deleteOnTermination, isRoot, ...plan }) => ({
          id: newId('volume'),
          ...plan,
          isRoot,
          imageId: isRoot ? a.input.imageId : null,
          state: 'creating',
          instanceId: i.id,
          device,
          target: isRoot ? 'vda' : diskTargetForDevice(device),
          attachState: 'attaching',
          attachTime: now,
          deleteOnTermination,
        })),
      ),
    });
    return reservationId;
  }

  /** The subnet a launch goes into: the given one, else the default VPC's default subnet. */
  private async launchSubnet(subnetId: string | undefined): Promise<Subnet> {
    const { db } = this.ctx;
    if (subnetId !== undefined) {
      const subnet = await db.subnet.findUnique({ where: { id: subnetId } });
      if (!subnet) {
        throw errors.notFound(
          'InvalidSubnetID.NotFound',
          `The subnet ID '${subnetId}' does not exist.`,
        );
      }
      return subnet;
    }
    const subnet = await db.subnet.findFirst({
      where: { defaultForAz: true, vpc: { isDefault: true } },
    });
    if (!subnet) {
      throw new CloudError(
        'VPCIdNotSpecified',
        'There is no default VPC with a default subnet; give subnetId.',
      );
    }
    return subnet;
  }

  /** The root volume (from the image, or as the /dev/xvda mapping says) and data volumes. */
  private async planLaunchVolumes(
    input: RunInstancesInput,
    imageBytes: number,
  ): Promise<PlannedVolume[]> {
    const imageGiB = Math.max(1, Math.ceil(imageBytes / 1024 ** 3));
    const mappings = input.blockDeviceMappings ?? [];
    const devices = new Set<string>();
    for (const m of mappings) {
      const key =
        m.deviceName === '/dev/sda1'
          ? ROOT_DEVICE_NAME
          : m.deviceName.replace('/dev/xvd', '/dev/sd');
      if (devices.has(key))
        throw errors.invalidParameter(`Device ${m.deviceName} is mapped twice.`);
      devices.add(key);
    }
    const rootMapping = mappings.find(
      (m) => m.deviceName === ROOT_DEVICE_NAME || m.deviceName === '/dev/sda1',
    );
    if (rootMapping?.ebs.snapshotId) {
      throw errors.invalidParameter(
        'The root volume comes from the image; snapshotId is not supported for it.',
      );
    }
    if (rootMapping?.ebs.volumeSize !== undefined && rootMapping.ebs.volumeSize < imageGiB) {
      throw errors.invalidParameter(
        `The root volume must be at least the image's ${imageGiB} GiB.`,
      );
    }
    const root = await this.volumes.planVolume({
      size: rootMapping?.ebs.volumeSize ?? imageGiB,
      volumeType: rootMapping?.ebs.volumeType ?? 'gp3',
      iops: rootMapping?.ebs.iops,
      throughput: rootMapping?.ebs.throughput,
    });
    const planned: PlannedVolume[] = [
      {
        ...root,
        device: ROOT_DEVICE_NAME,
        deleteOnTermination: rootMapping?.ebs.deleteOnTermination ?? true,
        isRoot: true,
      },
    ];
    for (const m of mappings) {
      if (m === rootMapping) continue;
      const plan = await this.volumes.planVolume({
        size: m.ebs.volumeSize,
        volumeType: m.ebs.volumeType,
        iops: m.ebs.iops,
        throughput: m.ebs.throughput,
        snapshotId: m.ebs.snapshotId,
      });
      planned.push({
        ...plan,
        device: m.deviceName,
        deleteOnTermination: m.ebs.deleteOnTermination,
        isRoot: false,
      });
    }
    return planned;
  }

  private async byClientToken(clientToken: string, requestHash: string) {
    const reservation = await this.ctx.db.reservation.findUnique({ where: { clientToken } });
    if (!reservation) return null;
    if (reservation.requestHash !== requestHash) throw errors.idempotentMismatch();
    return this.enqueueLaunches(reservation.id);
  }

  /** Enqueue (again) the launch of every pending instance of a reservation; job ids dedupe. */
  private async enqueueLaunches(reservationId: string) {
    const instances = await instancesOfReservation(this.ctx.db, reservationId);
    await submitJobs(
      this.ctx,
      'instance.launch',
      instances
        .filter((i) => i.state === 'pending' && i.actionSeq === 0)
        .map((i) => ({ payload: { instanceId: i.id }, jobId: jobIds.launch(i.id) })),
    );
    return { reservationId, instances: await presentInstances(this.ctx.db, instances) };
  }
}

/** A stable JSON form of the request (sorted keys) for the client-token comparison. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => [k, canonical(v)]),
    );
  }
  return value;
}
