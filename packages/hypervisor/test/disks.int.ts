/**
 * Disk operations against the real qemu:///system under TCG:
 * - a BOOTED guest (the minicloud test image: Debian cloud kernel + busybox, NoCloud seed) for
 *   everything the guest must take part in: hot-plug seen by the guest kernel, live unplug (the
 *   guest must ack the ACPI PCI unplug), live resize seen by the guest;
 * - a guest that never boots an OS (SeaBIOS loops on an empty disk) for what must work without
 *   guest cooperation, and for a guest that cannot ack an unplug (DetachTimeout / force).
 * Live snapshots use libvirt's backup API while HMP `qemu-io` writes into the attached disk.
 *
 * Needs: root, libvirtd + virtlogd, qemu-system-x86, qemu-utils, genisoimage, and the test image
 * (MINICLOUD_TEST_IMAGE, default /tmp/minicloud-devimg/test.qcow2; scripts/build-test-image.sh
 * builds it). Everything carries a random `mtv???-` prefix, lives under /tmp/minicloud-test-*,
 * and is removed in afterAll, even after failures.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import { run } from '@minicloud/host';
// Test-only: checks the hypervisor's live snapshot against the storage driver that consumes it.
import { FileVolumeDriver } from '@minicloud/storage';
import {
  HypervisorError,
  LibvirtHypervisor,
  parseDomBlkInfo,
  type AttachDiskSpec,
  type DomainSpec,
} from '../src/index.js';

jest.setTimeout(300_000);

const URI = 'qemu:///system';
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const IMAGE = process.env.MINICLOUD_TEST_IMAGE ?? '/tmp/minicloud-devimg/test.qcow2';
const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
const rand3 = Array.from(
  { length: 3 },
  () => alphabet[Math.floor(Math.random() * alphabet.length)],
).join('');
const prefix = `mtv${rand3}-`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const fmt = (xs: number[]) =>
  `p50 ${median(xs).toFixed(0)} ms [${xs.map((x) => x.toFixed(0)).join(', ')}]`;

let dir = '';
let seq = 0;
const hv = new LibvirtHypervisor({ uri: URI });

const virsh = async (...args: string[]) => (await run('virsh', ['-c', URI, ...args])).stdout;

async function ourDomains(): Promise<string[]> {
  return (await virsh('list', '--all', '--name'))
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s.startsWith(prefix));
}

async function qcow2(name: string, size: number): Promise<string> {
  const path = join(dir, name);
  await run('qemu-img', [
    'create',
    '-q',
    '-f',
    'qcow2',
    '-o',
    'preallocation=off',
    path,
    String(size),
  ]);
  return path;
}

function spec(disks: DomainSpec['disks'], overrides: Partial<DomainSpec> = {}): DomainSpec {
  const n = (seq++).toString(16).padStart(4, '0');
  return {
    name: `${prefix}${n}`,
    uuid: randomUUID(),
    virtType: 'qemu',
    vcpus: 1,
    memoryMiB: 256,
    disks,
    nics: [],
    consoleLogPath: join(dir, `console-${n}.log`),
    metadata: {
      instanceId: `i-0000000000000${n}`,
      instanceType: 't3.nano',
      imageId: 'ami-0123456789abcdef0',
    },
    ...overrides,
  };
}

async function waitForConsole(path: string, re: RegExp, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await readFile(path, 'utf8').catch(() => '');
    const m = re.exec(text);
    if (m) return m[0];
    if (Date.now() > deadline) {
      throw new Error(
        `console ${path}: no ${re} within ${timeoutMs} ms; tail:\n${text.slice(-2000)}`,
      );
    }
    await sleep(200);
  }
}

/** HMP qemu-io on an attached disk (its BlockBackend, as the guest's writes go). */
async function hmpQemuIo(domain: string, target: string, command: string): Promise<void> {
  const disk = (await hv.listDisks(domain, { live: true })).find((d) => d.target === target);
  if (!disk?.alias) throw new Error(`${domain} has no ${target} with an alias`);
  const out = await virsh(
    'qemu-monitor-command',
    domain,
    '--hmp',
    `qemu-io -d ${disk.alias}/virtio-backend "${command}"`,
  );
  // Errors of the command itself show here; qemu-io's own output goes to the domain log.
  if (/error|Could not|not found/i.test(out)) throw new Error(`HMP qemu-io: ${out.trim()}`);
}

/** qemu-io read with pattern check on a qcow2 file that no QEMU has open. */
async function fileHolds(path: string, pattern: number, offset: number, length: number) {
  try {
    await run('qemu-io', [
      '-f',
      'qcow2',
      '-r',
      '-c',
      `read -P 0x${pattern.toString(16)} ${offset} ${length}`,
      path,
    ]);
    return true;
  } catch {
    return false;
  }
}

const volume = (
  path: string,
  target: string,
  extra: Partial<AttachDiskSpec> = {},
): AttachDiskSpec => ({
  path,
  format: 'qcow2',
  diskType: 'file',
  target,
  ...extra,
});

let virshDirsBefore: string[] = [];
const virshTempDirs = async () =>
  (await readdir(tmpdir())).filter((n) => n.startsWith('minicloud-virsh-'));

beforeAll(async () => {
  await virsh('version').catch((e: Error) => {
    throw new Error(
      `libvirtd is not reachable at ${URI} (start virtlogd -d and libvirtd -d): ${e.message}`,
    );
  });
  if (!existsSync(IMAGE)) {
    throw new Error(`test image ${IMAGE} missing: run scripts/build-test-image.sh ${IMAGE}`);
  }
  virshDirsBefore = await virshTempDirs();
  dir = await mkdtemp('/tmp/minicloud-test-disks-');
  await chmod(dir, 0o755); // QEMU runs as libvirt-qemu and must reach the files
});

afterAll(async () => {
  await hv.close();
  for (const name of await ourDomains().catch(() => [])) {
    await virsh('destroy', name).catch(() => undefined);
    await virsh('undefine', name, '--nvram', '--managed-save').catch(() => undefined);
  }
  if (dir) await rm(dir, { recursive: true, force: true });
  expect(await ourDomains()).toEqual([]);
  expect(existsSync(dir)).toBe(false);
  // Only ours: a worker killed elsewhere may have left one (its reconciler sweeps those).
  const left = (await virshTempDirs()).filter((n) => !virshDirsBefore.includes(n));
  expect(left).toEqual([]);
});

describe('disks of a booted guest (test image)', () => {
  let s: DomainSpec;
  let vol1 = '';
  let snap1 = '';
  const CHUNKS = 64; // MiB written by the "guest" around the live snapshot

  beforeAll(async () => {
    const root = join(dir, 'root.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', IMAGE, '-F', 'qcow2', root]);
    const seedDir = join(dir, 'seed');
    await mkdir(seedDir);
    await writeFile(
      join(seedDir, 'meta-data'),
      `instance-id: i-${rand3}0000000000001\nlocal-hostname: ${prefix}guest\n`,
    );
    await writeFile(join(seedDir, 'user-data'), '#!/bin/sh\necho mtv-user-data-ran\n');
    await writeFile(join(seedDir, 'network-config'), 'version: 2\nethernets: {}\n');
    const seed = join(dir, 'seed.iso');
    await run(
      'genisoimage',
      [
        '-quiet',
        '-output',
        seed,
        '-volid',
        'cidata',
        '-joliet',
        '-rock',
        'meta-data',
        'user-data',
        'network-config',
      ],
      { cwd: seedDir },
    );
    s = spec([
      { path: root, format: 'qcow2', target: 'vda' },
      { path: seed, format: 'raw', target: 'vdb', readOnly: true },
    ]);
    vol1 = await qcow2('vol1.qcow2', GiB);
    snap1 = join(dir, 'snap1.qcow2');
    const t0 = performance.now();
    await hv.ensureRunning(s);
    // rcS runs after the kernel (with its ACPI PCI hot-plug driver) is up.
    await waitForConsole(s.consoleLogPath, /rcS done/, 180_000);
    console.log(`test image booted to "rcS done" in ${(performance.now() - t0).toFixed(0)} ms`);
  });

  it('hot-plugs a volume: in the config, in the live domain, and the guest kernel sees it', async () => {
    const disk = volume(vol1, 'vdc', {
      serial: 'vol00000000000000001',
      iotune: { totalIopsSec: 2000 },
    });
    expect(await hv.attachDisk(s.name, disk, { live: true })).toEqual({
      config: 'attached',
      live: 'attached',
    });
    const live = (await hv.listDisks(s.name, { live: true })).find((d) => d.target === 'vdc');
    expect(live).toMatchObject({
      path: vol1,
      format: 'qcow2',
      diskType: 'file',
      serial: 'vol00000000000000001',
      iotune: { totalIopsSec: 2000 },
    });
    expect(live?.alias).toMatch(/^virtio-disk/);
    expect((await hv.listDisks(s.name, { live: false })).map((d) => d.target)).toContain('vdc');
    const seen = await waitForConsole(
      s.consoleLogPath,
      /virtio_blk \S+: \[vd[a-z]+\] 2097152 512-byte logical blocks[^\n]*/,
      60_000,
    );
    console.log(`guest kernel: ${seen.trim()}`);

    // idempotent, and conflicts are typed
    expect(await hv.attachDisk(s.name, disk, { live: true })).toEqual({
      config: 'present',
      live: 'present',
    });
    const other = await qcow2('other.qcow2', GiB);
    await expect(hv.attachDisk(s.name, volume(other, 'vdc'), { live: true })).rejects.toMatchObject(
      {
        code: 'DiskTargetInUse',
      },
    );
    await expect(hv.attachDisk(s.name, volume(vol1, 'vdd'), { live: true })).rejects.toMatchObject({
      code: 'DiskAlreadyAttached',
    });
  });

  it('takes a crash-consistent live snapshot (backup API) while the guest keeps writing', async () => {
    await hmpQemuIo(s.name, 'vdc', `write -P 0x5a 0 ${CHUNKS}M`);
    // The "guest" overwrites chunk after chunk, in order, from before the backup starts until
    // after it ended. A point-in-time copy must then hold the first k chunks new (0x6b: written
    // before the job started) and all the others old (0x5a): never a later chunk without an
    // earlier one.
    let writes = 0;
    let writesWhenBackupReturned = -1;
    const writer = (async () => {
      for (let i = 0; i < CHUNKS; i++) {
        await hmpQemuIo(s.name, 'vdc', `write -P 0x6b ${i}M 1M`);
        writes++;
      }
    })();
    await sleep(100);
    const r = await hv.backupDisk(s.name, 'vdc', snap1, { timeoutMs: 120_000 });
    writesWhenBackupReturned = writes;
    await writer;
    expect(r.created).toBe(true);
    expect(existsSync(`${snap1}.partial`)).toBe(false);
    const chunks: string[] = [];
    for (let i = 0; i < CHUNKS; i++) {
      if (await fileHolds(snap1, 0x6b, i * MiB, MiB)) chunks.push('n');
      else if (await fileHolds(snap1, 0x5a, i * MiB, MiB)) chunks.push('o');
      else chunks.push('?');
    }
    const picture = chunks.join('');
    const k = picture.indexOf('o') < 0 ? CHUNKS : picture.indexOf('o');
    console.log(
      `live snapshot (${CHUNKS} MiB data, 1 GiB disk) took ${r.durationMs} ms; snapshot chunks ` +
        `(n = written before the job, o = older data): ${picture}; ${writesWhenBackupReturned} of ` +
        `${CHUNKS} sequential 1 MiB writes had completed when backupDisk returned`,
    );
    expect(picture).toBe('n'.repeat(k) + 'o'.repeat(CHUNKS - k));
    expect(k).toBeLessThanOrEqual(writesWhenBackupReturned);
    expect(await fileHolds(snap1, 0, CHUNKS * MiB, MiB)).toBe(true);
    const info = JSON.parse(
      (await run('qemu-img', ['info', '--output=json', '-f', 'qcow2', snap1])).stdout,
    );
    expect(info['virtual-size']).toBe(GiB);
    expect(info['backing-filename']).toBeUndefined();
    // idempotent
    expect(await hv.backupDisk(s.name, 'vdc', snap1, { timeoutMs: 10_000 })).toEqual({
      created: false,
      durationMs: 0,
    });
    await expect(
      hv.backupDisk(s.name, 'vdq', join(dir, 'x.qcow2'), { timeoutMs: 10_000 }),
    ).rejects.toMatchObject({
      code: 'DiskNotFound',
    });
  });

  it('grows the disk live: domblkinfo and the guest kernel see the new size', async () => {
    expect(await hv.resizeDisk(s.name, 'vdc', 2 * GiB)).toBe('resized');
    expect(parseDomBlkInfo(await virsh('domblkinfo', s.name, 'vdc')).capacity).toBe(2 * GiB);
    const seen = await waitForConsole(
      s.consoleLogPath,
      /vd[a-z]+: detected capacity change from 2097152 to 4194304/,
      60_000,
    );
    console.log(`guest kernel: ${seen}`);
    expect(await hv.resizeDisk(s.name, 'vdc', 2 * GiB)).toBe('unchanged');
    await expect(hv.resizeDisk(s.name, 'vdc', GiB)).rejects.toMatchObject({
      code: 'DiskShrinkNotSupported',
    });
  });

  it('sets I/O limits live and in the config', async () => {
    expect(
      await hv.setDiskIoTune(
        s.name,
        'vdc',
        { readIopsSec: 500, writeIopsSec: 250, totalBytesSec: 50 * MiB },
        { live: true },
      ),
    ).toEqual({ config: true, live: true });
    const shown = await virsh('blkdeviotune', s.name, 'vdc');
    expect(shown).toMatch(/^total_iops_sec\s*:\s*0$/m);
    expect(shown).toMatch(/^read_iops_sec\s*:\s*500$/m);
    expect(shown).toMatch(/^write_iops_sec\s*:\s*250$/m);
    expect(shown).toMatch(new RegExp(`^total_bytes_sec\\s*:\\s*${50 * MiB}$`, 'm'));
    const want = { readIopsSec: 500, writeIopsSec: 250, totalBytesSec: 50 * MiB };
    for (const live of [true, false]) {
      expect(
        (await hv.listDisks(s.name, { live })).find((d) => d.target === 'vdc')?.iotune,
      ).toEqual(want);
    }
  });

  it('unplugs the volume from the booted guest (it acks the ACPI unplug)', async () => {
    const t0 = performance.now();
    expect(await hv.detachDisk(s.name, 'vdc', { live: true, timeoutMs: 60_000 })).toEqual({
      config: 'detached',
      live: 'detached',
    });
    console.log(`live detach from the booted guest: ${(performance.now() - t0).toFixed(0)} ms`);
    for (const live of [true, false]) {
      expect((await hv.listDisks(s.name, { live })).map((d) => d.target)).toEqual(['vda', 'vdb']);
    }
    expect(await hv.detachDisk(s.name, 'vdc', { live: true, timeoutMs: 1_000 })).toEqual({
      config: 'absent',
      live: 'absent',
    });
    // The volume (closed now) holds everything the "guest" wrote, and its new size.
    expect(await fileHolds(vol1, 0x6b, 0, CHUNKS * MiB)).toBe(true);
    const info = JSON.parse(
      (await run('qemu-img', ['info', '--output=json', '-f', 'qcow2', vol1])).stdout,
    );
    expect(info['virtual-size']).toBe(2 * GiB);
  });

  it('measures attach, live snapshot and detach of a 10 GiB volume (p50 of 5)', async () => {
    const attach: number[] = [];
    const seen: number[] = [];
    const backup: number[] = [];
    const detach: number[] = [];
    const guestNames = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const path = await qcow2(`bench-${i}.qcow2`, 10 * GiB);
      const before = (await readFile(s.consoleLogPath, 'utf8')).length;
      let t0 = performance.now();
      await hv.attachDisk(s.name, volume(path, 'vdd'), { live: true });
      attach.push(performance.now() - t0);
      for (;;) {
        const text = (await readFile(s.consoleLogPath, 'utf8')).slice(before);
        // The guest kernel names disks itself (next free vdX), not after libvirt's target.
        const m = /\[(vd[a-z]+)\] 20971520 512-byte logical blocks/.exec(text);
        if (m) {
          guestNames.add(m[1] as string);
          break;
        }
        if (performance.now() - t0 > 60_000) throw new Error('guest did not see vdd');
        await sleep(20);
      }
      seen.push(performance.now() - t0);
      await hmpQemuIo(s.name, 'vdd', 'write -P 0xab 0 1M');
      const snap = join(dir, `bench-snap-${i}.qcow2`);
      t0 = performance.now();
      await hv.backupDisk(s.name, 'vdd', snap, { timeoutMs: 120_000 });
      backup.push(performance.now() - t0);
      t0 = performance.now();
      await hv.detachDisk(s.name, 'vdd', { live: true, timeoutMs: 60_000 });
      detach.push(performance.now() - t0);
      expect(await fileHolds(snap, 0xab, 0, MiB)).toBe(true);
      await rm(path);
      await rm(snap);
    }
    console.log(
      [
        'booted TCG guest, 10 GiB qcow2 volume:',
        `  attachDisk (config + live)          ${fmt(attach)}`,
        `  ... until the guest kernel sees it  ${fmt(seen)}`,
        `  backupDisk (live snapshot, 1 MiB)   ${fmt(backup)}`,
        `  detachDisk (live, guest acks)       ${fmt(detach)}`,
        `  (libvirt target vdd; the guest kernel named it ${[...guestNames].join(', ')})`,
      ].join('\n'),
    );
  });

  it('keeps an attachment across stop/start (it is in the persistent config)', async () => {
    const vol2 = await qcow2('vol2.qcow2', GiB);
    await hv.attachDisk(s.name, volume(vol2, 'vde'), { live: true });
    await hv.destroy(s.name);
    expect((await hv.listDisks(s.name, { live: true })).map((d) => d.target)).toContain('vde');
    await hv.start(s.name);
    expect((await hv.listDisks(s.name, { live: true })).find((d) => d.target === 'vde')?.path).toBe(
      vol2,
    );
    await expect(hv.resizeDisk(s.name, 'vde', 2 * GiB)).resolves.toBe('resized');
    await hv.undefine(s.name);
  });
});

describe('disks of a guest that never boots (SeaBIOS loop)', () => {
  let s: DomainSpec;

  beforeAll(async () => {
    const root = await qcow2('blank-root.qcow2', 64 * MiB);
    s = spec([{ path: root, format: 'qcow2', target: 'vda' }], { memoryMiB: 128 });
  });

  it('attaches to a stopped domain (config only); the disk is there after start', async () => {
    const v = await qcow2('cold.qcow2', GiB);
    await hv.ensureDefined(s);
    expect(await hv.attachDisk(s.name, volume(v, 'vdb'), { live: true })).toEqual({
      config: 'attached',
      live: 'not-running',
    });
    await expect(hv.resizeDisk(s.name, 'vdb', 2 * GiB)).rejects.toMatchObject({
      code: 'DomainNotRunning',
    });
    await expect(
      hv.backupDisk(s.name, 'vdb', join(dir, 'cold-snap.qcow2'), { timeoutMs: 5_000 }),
    ).rejects.toMatchObject({
      code: 'DomainNotRunning',
    });
    await hv.start(s.name);
    expect((await hv.listDisks(s.name, { live: true })).map((d) => d.target)).toEqual([
      'vda',
      'vdb',
    ]);
    // the live XML shows the block layer: alias assigned by QEMU
    expect((await hv.listDisks(s.name, { live: true }))[1]?.alias).toMatch(/^virtio-disk/);
  });

  it('cannot unplug without the guest: DetachTimeout keeps it attached; force drops it from the config', async () => {
    const v = await qcow2('stuck.qcow2', GiB);
    await hv.attachDisk(s.name, volume(v, 'vdc'), { live: true });
    const t0 = performance.now();
    const err = await hv
      .detachDisk(s.name, 'vdc', { live: true, timeoutMs: 2_000 })
      .catch((e: unknown) => e);
    const took = performance.now() - t0;
    expect(err).toBeInstanceOf(HypervisorError);
    expect((err as HypervisorError).code).toBe('DetachTimeout');
    console.log(
      `DetachTimeout after ${took.toFixed(0)} ms (timeoutMs 2000; libvirt waits 5 s per unplug request)`,
    );
    for (const live of [true, false]) {
      expect((await hv.listDisks(s.name, { live })).map((d) => d.target)).toContain('vdc');
    }
    expect(
      await hv.detachDisk(s.name, 'vdc', { live: true, timeoutMs: 1_000, force: true }),
    ).toEqual({
      config: 'detached',
      live: 'pending',
    });
    expect((await hv.listDisks(s.name, { live: false })).map((d) => d.target)).not.toContain('vdc');
    expect((await hv.listDisks(s.name, { live: true })).map((d) => d.target)).toContain('vdc');
    // A power cycle ends it: the next boot is built from the config.
    await hv.destroy(s.name);
    await hv.start(s.name);
    expect((await hv.listDisks(s.name, { live: true })).map((d) => d.target)).not.toContain('vdc');
  });

  it('live snapshot works without guest cooperation, as the file volume driver uses it', async () => {
    // The flow the worker runs: a FileVolumeDriver volume attached to a running domain, a live
    // snapshot straight into the driver's snapshot path, a new volume from that snapshot.
    // The driver makes its directories 0700 (guest data is private); the server makes them
    // passable for QEMU's group at start. Here, as the test's own directory: passable by all.
    for (const sub of ['volumes', 'snapshots']) await mkdir(join(dir, sub), { mode: 0o755 });
    const volumes = new FileVolumeDriver({
      volumesDir: join(dir, 'volumes'),
      snapshotsDir: join(dir, 'snapshots'),
    });
    const volId = 'vol-0000000000000000a';
    const snapId = 'snap-0000000000000000a';
    const loc = await volumes.create(volId, GiB);
    await hv.attachDisk(s.name, volume(loc.path, 'vdd'), { live: true });
    await hmpQemuIo(s.name, 'vdd', 'write -P 0x5a 0 1M');
    const prep = await volumes.prepareLiveSnapshot(volId, snapId);
    expect(prep).toEqual({ path: volumes.snapshotPath(snapId), exists: false });
    // The file driver refuses an offline snapshot of a volume in use.
    await expect(volumes.snapshotOffline(volId, snapId)).rejects.toMatchObject({
      code: 'VolumeInUse',
    });
    expect((await hv.backupDisk(s.name, 'vdd', prep.path, { timeoutMs: 60_000 })).created).toBe(
      true,
    );
    await hmpQemuIo(s.name, 'vdd', 'write -P 0x6b 0 1M');
    expect(await volumes.listSnapshots()).toEqual([snapId]);
    expect((await volumes.locateSnapshot(snapId))?.sizeBytes).toBe(GiB);
    const copy = await volumes.create('vol-0000000000000000b', 2 * GiB, { fromSnapshotId: snapId });
    expect(await fileHolds(copy.path, 0x5a, 0, MiB)).toBe(true);
    await expect(volumes.delete(volId)).rejects.toMatchObject({ code: 'VolumeInUse' });
    await hv.undefine(s.name);
    await volumes.delete(volId);
    await volumes.delete('vol-0000000000000000b');
    await volumes.deleteSnapshot(snapId);
    expect(await volumes.listVolumes()).toEqual([]);
  });
});
