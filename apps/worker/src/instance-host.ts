import { createHash } from 'node:crypto';
import { access, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { domainName, tapName } from '@minicloud/domain';
import { buildSeedDocuments, writeSeedIso } from '@minicloud/cloudinit';
import { ensureOverlay } from '@minicloud/storage';
import { removePath } from '@minicloud/host';
import type { DomainSpec } from '@minicloud/hypervisor';
import type { Image, Instance } from '@prisma/client';
import type { WorkerDeps } from './context.js';
import type { Revert } from './revert.js';

/** Where an instance's files live and what its host objects are called. */
export function instanceLayout(deps: WorkerDeps, instanceId: string) {
  const dir = join(deps.settings.instancesDir, instanceId);
  return {
    dir,
    rootDisk: join(dir, 'root.qcow2'),
    seedIso: join(dir, 'seed.iso'),
    consoleLog: join(dir, 'console.log'),
    domain: domainName(deps.settings.prefix, instanceId),
    tap: tapName(deps.settings.prefix, instanceId),
  };
}

/** A stable libvirt UUID derived from the instance id, so a redefine never changes identity. */
function uuidFor(instanceId: string): string {
  const h = createHash('sha256').update(instanceId).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function domainSpecFor(deps: WorkerDeps, instance: Instance): DomainSpec {
  const l = instanceLayout(deps, instance.id);
  return {
    name: l.domain,
    uuid: uuidFor(instance.id),
    virtType: deps.settings.virtType,
    vcpus: instance.vcpus,
    memoryMiB: instance.memoryMiB,
    disks: [
      { path: l.rootDisk, format: 'qcow2', target: 'vda' },
      { path: l.seedIso, format: 'raw', target: 'vdb', readOnly: true },
    ],
    nics: [{ tap: l.tap, mac: instance.macAddress }],
    consoleLogPath: l.consoleLog,
    metadata: {
      instanceId: instance.id,
      instanceType: instance.instanceType,
      imageId: instance.imageId,
    },
  };
}

function hostnameFor(instance: Instance): string {
  return instance.privateIp ? `ip-${instance.privateIp.replaceAll('.', '-')}` : instance.id;
}

/**
 * Tell dnsmasq the full set of reservations of the network. The database read happens inside
 * the driver's per-network lock, so a slower concurrent sync can never apply an older set.
 */
export async function syncReservations(deps: WorkerDeps): Promise<void> {
  await deps.network.syncReservations(deps.settings.network, async () => {
    const leases = await deps.db.addressLease.findMany({
      where: { network: deps.settings.networkName, instance: { state: { not: 'terminated' } } },
      select: { ip: true, instance: { select: { macAddress: true } } },
    });
    return leases.map((l) => ({
      mac: l.instance.macAddress,
      ip: l.ip,
      hostname: `ip-${l.ip.replaceAll('.', '-')}`,
    }));
  });
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/**
 * Make every host object of an instance exist and its domain run. Each step is "ensure"-style
 * (safe to repeat after a crash) and registers its undo on `revert`.
 * `fresh` is true for a first launch: then the disk and seed are created and undone on failure.
 */
export async function bringUp(
  deps: WorkerDeps,
  instance: Instance & { image: Image },
  revert: Revert,
  fresh: boolean,
): Promise<void> {
  const l = instanceLayout(deps, instance.id);
  // Undo steps are registered before their step runs: each undo is idempotent, so a step that
  // failed half-way is cleaned too.
  if (fresh) revert.add('instance directory', () => removePath(l.dir));
  revert.add('tap', async () => void (await deps.network.removePort(l.tap)));
  await mkdir(l.dir, { recursive: true });

  const rootDisk = async () => {
    if (await exists(l.rootDisk)) return;
    if (!fresh) throw new Error(`root disk of ${instance.id} is missing (${l.rootDisk})`);
    if (!instance.image.path || !instance.image.format) {
      throw new Error(`image ${instance.imageId} has no file`);
    }
    await ensureOverlay({
      path: l.rootDisk,
      backingPath: instance.image.path,
      backingFormat: instance.image.format as 'qcow2' | 'raw',
    });
  };
  const seed = () =>
    writeSeedIso(
      l.seedIso,
      buildSeedDocuments({
        instanceId: instance.id,
        hostname: hostnameFor(instance),
        publicKeys: instance.publicKey ? [instance.publicKey] : [],
        userData: instance.userData ? Buffer.from(instance.userData, 'base64') : null,
        mac: instance.macAddress,
      }),
    );
  const port = async () => {
    await deps.network.ensurePort({
      bridge: deps.settings.network.bridge,
      tap: l.tap,
      mac: instance.macAddress,
    });
    await syncReservations(deps);
  };
  // Disk, seed and port do not depend on each other: make them at the same time.
  const results = await Promise.allSettled([rootDisk(), seed(), port()]);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;

  revert.add('domain', () =>
    fresh ? deps.hypervisor.undefine(l.domain) : deps.hypervisor.destroy(l.domain),
  );
  await deps.hypervisor.ensureRunning(domainSpecFor(deps, instance));
}

/** Remove every host object of an instance. Idempotent: missing things are fine. */
export async function tearDown(deps: WorkerDeps, instanceId: string): Promise<void> {
  const l = instanceLayout(deps, instanceId);
  await deps.hypervisor.undefine(l.domain);
  await deps.network.removePort(l.tap);
  await removePath(l.dir);
}
