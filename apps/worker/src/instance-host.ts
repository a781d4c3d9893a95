import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { domainName, hostnameFor, tapName } from '@minicloud/domain';
import { buildSeedDocuments, writeSeedIso } from '@minicloud/cloudinit';
import { ensurePrivateDir, removePath } from '@minicloud/host';
import type { DomainSpec } from '@minicloud/hypervisor';
import type { Image, Instance, Volume } from '@prisma/client';
import type { WorkerDeps } from './context.js';
import { ensureInstanceNetwork, ensureInstancePort } from './network/instance-ports.js';
import { syncVpcReservations } from './network/reservations.js';
import { upsertSecurityPort } from './network/security-groups.js';
import type { Revert } from './revert.js';
import { attachedVolumes, diskFor, driverFor, ensureVolume } from './volume-host.js';

/** Where an instance's files live and what its host objects are called. */
export function instanceLayout(deps: WorkerDeps, instanceId: string) {
  const dir = join(deps.settings.instancesDir, instanceId);
  return {
    dir,
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

/**
 * The domain an instance should have: its attached volumes (root first; read unless the caller
 * has them), seed, NIC, console.
 */
export async function domainSpecFor(
  deps: WorkerDeps,
  instance: Instance,
  attached?: readonly Volume[],
): Promise<DomainSpec> {
  const l = instanceLayout(deps, instance.id);
  const volumes = attached ?? (await attachedVolumes(deps, instance.id));
  const disks = await Promise.all(volumes.map((v) => diskFor(deps, v)));
  return {
    name: l.domain,
    uuid: uuidFor(instance.id),
    virtType: deps.settings.virtType,
    vcpus: instance.vcpus,
    memoryMiB: instance.memoryMiB,
    // The seed sits on the last target so EC2 device names (/dev/sdb..sdy) map one to one.
    disks: [...disks, { path: l.seedIso, format: 'raw', target: 'vdz', readOnly: true }],
    nics: [{ tap: l.tap, mac: instance.macAddress }],
    consoleLogPath: l.consoleLog,
    metadata: {
      instanceId: instance.id,
      instanceType: instance.instanceType,
      imageId: instance.imageId,
    },
  };
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
  // Seed (user-data) and console log: root only, QEMU passes through to the seed.
  await ensurePrivateDir(l.dir, deps.settings.qemuGid ?? null);

  let attached: Volume[] | undefined;
  const volumes = async () => {
    const list = (attached = await attachedVolumes(deps, instance.id));
    if (!list.some((v) => v.isRoot)) throw new Error(`instance ${instance.id} has no root volume`);
    await Promise.all(
      list.map(async (v) => {
        if (fresh && v.state === 'creating') {
          revert.add(`volume ${v.id}`, () => driverFor(deps, v).delete(v.id));
          await ensureVolume(deps, v, instance.image);
        }
      }),
    );
  };
  const seed = () =>
    writeSeedIso(
      l.seedIso,
      buildSeedDocuments({
        instanceId: instance.id,
        hostname: hostnameFor(instance.id, instance.privateIp),
        publicKeys: instance.publicKey ? [instance.publicKey] : [],
        userData: instance.userData ? Buffer.from(instance.userData, 'base64') : null,
        mac: instance.macAddress,
      }),
    );
  // The VPC exists first (from the instance's row alone when it is known). The domain needs only
  // its tap; the DHCP reservation and the security-group port (the tables drop what an unknown
  // tap sends until then) are made while the domain starts: its guest asks for an address only
  // once its kernel runs. Each is made together with those of concurrent launches.
  const network = ensureInstanceNetwork(deps, instance);
  const tap = network.then((spec) =>
    ensureInstancePort(deps, { vpcId: instance.vpcId, tap: l.tap, mac: instance.macAddress }, spec),
  );
  const reservationAndFirewall = Promise.allSettled([
    network.then((spec) => syncVpcReservations(deps, instance.vpcId, spec)),
    network.then(() => upsertSecurityPort(deps, instance.id)),
  ]);
  const domain = async () => {
    // Disk, seed and tap do not depend on each other: make them at the same time.
    throwFirstFailure(await Promise.allSettled([volumes(), seed(), tap]));
    revert.add('domain', () =>
      fresh ? deps.hypervisor.undefine(l.domain) : deps.hypervisor.destroy(l.domain),
    );
    // The volumes read above are still what the domain gets (making them changes no row).
    await deps.hypervisor.ensureRunning(await domainSpecFor(deps, instance, attached));
  };
  // Everything settles before a failure is thrown, so the undo never races a step still running.
  const [started, rest] = await Promise.allSettled([domain(), reservationAndFirewall]);
  throwFirstFailure([started]);
  throwFirstFailure(rest.status === 'fulfilled' ? rest.value : []);
}

function throwFirstFailure(results: PromiseSettledResult<unknown>[]): void {
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** After a successful launch or start: the instance's volumes are attached and in use. */
export async function markVolumesAttached(deps: WorkerDeps, instanceId: string): Promise<void> {
  await deps.db.volume.updateMany({
    where: {
      instanceId,
      state: { in: ['creating', 'in-use'] },
      attachState: { in: ['attaching', 'attached'] },
    },
    data: { state: 'in-use', attachState: 'attached' },
  });
}

/** Remove every host object of an instance. Idempotent: missing things are fine. */
export async function tearDown(deps: WorkerDeps, instanceId: string): Promise<void> {
  const l = instanceLayout(deps, instanceId);
  await deps.hypervisor.undefine(l.domain);
  await deps.network.removePort(l.tap);
  await removePath(l.dir);
}
