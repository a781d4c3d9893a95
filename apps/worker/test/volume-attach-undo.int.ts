/**
 * The attach job's undo removes only what the job attached (issue 11): an attach that fails
 * because its target holds another disk must leave that disk in the domain. Real SQLite, the
 * real FileVolumeDriver and libvirt's qemu:///system with a domain that is defined but never
 * started (config-only attach: no guest, no QEMU process). The domain and files carry the test
 * prefix and are removed in afterAll.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyedLock, domainName, newId, volumeSerial } from '@minicloud/domain';
import { run } from '@minicloud/host';
import { LibvirtHypervisor } from '@minicloud/hypervisor';
import type { Job } from '@minicloud/queue';
import { FileVolumeDriver } from '@minicloud/storage';
import type { Db } from '@minicloud/db';
import { freshDatabase, testPrefix } from '@minicloud/testkit/api-harness';
import type { WorkerDeps } from '../src/context.js';
import { attachVolume } from '../src/jobs/volume.jobs.js';

const URI = 'qemu:///system';
const P = testPrefix('mv');
const MiB = 1024 * 1024;
/** A job on its last attempt: the failure path runs its undo. */
const lastAttempt = { attemptsMade: 0, opts: { attempts: 1 } } as unknown as Job;

let dir: string;
let db: Db;
let deps: WorkerDeps;
const hypervisor = new LibvirtHypervisor({ uri: URI });
const instanceId = newId('instance');
const domain = domainName(P, instanceId);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'minicloud-test-attach-'));
  db = await freshDatabase(dir);
  const volumes = new FileVolumeDriver({
    volumesDir: join(dir, 'volumes'),
    snapshotsDir: join(dir, 'snapshots'),
  });
  deps = {
    db,
    hypervisor,
    volumes,
    rootVolumes: volumes,
    locks: new KeyedLock(),
    log: () => {},
    settings: { prefix: P, instancesDir: join(dir, 'instances') },
  } as unknown as WorkerDeps;
});

afterAll(async () => {
  await hypervisor.undefine(domain).catch(() => {});
  await hypervisor.close();
  await db?.$disconnect();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('a failed attach leaves the disk that holds its target alone', async () => {
  // A disk minicloud did not put there (drift, or another volume) sits at vdg.
  const foreign = join(dir, 'foreign.qcow2');
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', foreign, String(8 * MiB)]);
  await hypervisor.ensureDefined({
    name: domain,
    uuid: randomUUID(),
    virtType: 'qemu',
    vcpus: 1,
    memoryMiB: 128,
    disks: [{ path: foreign, format: 'qcow2', target: 'vdg' }],
    nics: [],
    consoleLogPath: join(dir, 'console.log'),
    metadata: { instanceId, instanceType: 't3.nano', imageId: 'ami-0123456789abcdef0' },
  });
  const volumeId = newId('volume');
  await deps.volumes.create(volumeId, 8 * MiB * 128);
  await db.volume.create({
    data: {
      id: volumeId,
      sizeGiB: 1,
      volumeType: 'gp3',
      state: 'in-use',
      instanceId,
      device: '/dev/sdg',
      target: 'vdg',
      attachState: 'attaching',
      attachTime: new Date(),
    },
  });

  await expect(attachVolume(deps, volumeId, lastAttempt)).rejects.toMatchObject({
    code: 'DiskTargetInUse',
  });

  const disks = await hypervisor.listDisks(domain, { live: false });
  expect(disks.map((d) => [d.target, d.path])).toEqual([['vdg', foreign]]);
  const row = await db.volume.findUniqueOrThrow({ where: { id: volumeId } });
  expect([row.state, row.instanceId, row.attachState]).toEqual(['available', null, null]);
  expect(row.stateReason).toMatch(/attach failed/);
});

it('a failed attach still removes its own disk (by serial) from the domain', async () => {
  const volumeId = newId('volume');
  const path = join(dir, 'own.qcow2');
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', path, String(8 * MiB)]);
  // An earlier attempt of the job attached the disk; then the volume's file went away, so this
  // attempt fails before it attaches anything.
  await hypervisor.attachDisk(
    domain,
    { path, format: 'qcow2', diskType: 'file', target: 'vdh', serial: volumeSerial(volumeId) },
    { live: false },
  );
  await db.volume.create({
    data: {
      id: volumeId,
      sizeGiB: 1,
      volumeType: 'gp3',
      state: 'in-use',
      instanceId,
      device: '/dev/sdh',
      target: 'vdh',
      attachState: 'attaching',
      attachTime: new Date(),
    },
  });

  await expect(attachVolume(deps, volumeId, lastAttempt)).rejects.toThrow();

  const targets = (await hypervisor.listDisks(domain, { live: false })).map((d) => d.target);
  expect(targets).toEqual(['vdg']);
  const row = await db.volume.findUniqueOrThrow({ where: { id: volumeId } });
  expect([row.state, row.instanceId]).toEqual(['available', null]);
});
