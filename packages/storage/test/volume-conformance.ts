/**
 * The volume driver conformance suite: the same behaviour, checked the same way, for every
 * VolumeDriver (file, LVM). Call runVolumeDriverConformance from an integration test file with a
 * factory that sets up a driver on real storage and says how to find what it left behind.
 *
 * Data checks use qemu-io (qemu-utils) on the volume's own path and format: a qcow2 file or a
 * raw block device.
 */
import { randomBytes } from 'node:crypto';
import { expect } from '@jest/globals';
import { HostCommandError, run } from '@minicloud/host';
import { StorageError, type VolumeDriver, type VolumeLocation } from '../src/index.js';

const MiB = 1024 * 1024;

export interface ConformanceTarget {
  driver: VolumeDriver;
  /** What this driver's storage still holds (files, LVs): must be empty at the end. */
  leftovers(): Promise<string[]>;
  /** Tear the storage down (called last, also after failures). */
  cleanup?(): Promise<void>;
}

export const newVolumeId = () => `vol-${randomBytes(9).toString('hex').slice(0, 17)}`;
export const newSnapshotId = () => `snap-${randomBytes(9).toString('hex').slice(0, 17)}`;

async function qemuIo(loc: VolumeLocation, command: string, readOnly: boolean): Promise<void> {
  await run('qemu-io', ['-f', loc.format, ...(readOnly ? ['-r'] : []), '-c', command, loc.path], {
    timeoutMs: 60_000,
  });
}

/** Write `pattern` (a byte) at [offset, offset+length). */
export async function writePattern(
  loc: VolumeLocation,
  pattern: number,
  offset: number,
  length: number,
): Promise<void> {
  await qemuIo(loc, `write -P 0x${pattern.toString(16)} ${offset} ${length}`, false);
}

/** true when every byte of [offset, offset+length) is `pattern` (qemu-io exits 1 otherwise). */
export async function holdsPattern(
  loc: VolumeLocation,
  pattern: number,
  offset: number,
  length: number,
): Promise<boolean> {
  try {
    await qemuIo(loc, `read -P 0x${pattern.toString(16)} ${offset} ${length}`, true);
    return true;
  } catch (e) {
    if (e instanceof HostCommandError && /Pattern verification failed/.test(e.stderr)) return false;
    if (e instanceof HostCommandError && e.exitCode === 1) return false;
    throw e;
  }
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  let caught: unknown = null;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(StorageError);
  expect((caught as StorageError).code).toBe(code);
}

export function runVolumeDriverConformance(
  name: string,
  makeTarget: () => Promise<ConformanceTarget>,
): void {
  describe(name, () => {
    let t: ConformanceTarget | null = null;
    const volumes = new Set<string>();
    const snapshots = new Set<string>();
    const vol = () => {
      const id = newVolumeId();
      volumes.add(id);
      return id;
    };
    const snap = () => {
      const id = newSnapshotId();
      snapshots.add(id);
      return id;
    };
    const d = () => {
      if (!t) throw new Error('driver setup failed');
      return t.driver;
    };

    beforeAll(async () => {
      t = await makeTarget();
    });

    afterAll(async () => {
      try {
        if (t) {
          for (const id of snapshots) await t.driver.deleteSnapshot(id).catch(() => undefined);
          for (const id of volumes) await t.driver.delete(id).catch(() => undefined);
        }
      } finally {
        await t?.cleanup?.();
      }
    });

    it('creates, locates, lists and deletes a volume', async () => {
      const id = vol();
      expect(await d().locate(id)).toBeNull();
      const loc = await d().create(id, 64 * MiB);
      expect(loc.sizeBytes).toBe(64 * MiB);
      expect(loc.format).toBe(d().kind === 'file' ? 'qcow2' : 'raw');
      expect(loc.diskType).toBe(d().kind === 'file' ? 'file' : 'block');
      expect(loc.path.startsWith('/')).toBe(true);
      expect(await d().locate(id)).toEqual(loc);
      expect(await d().prepareForAttach(id)).toEqual(loc);
      expect(await d().listVolumes()).toContain(id);
      // A new volume reads as zeros.
      expect(await holdsPattern(loc, 0, 0, MiB)).toBe(true);
      await d().delete(id);
      expect(await d().locate(id)).toBeNull();
      expect(await d().listVolumes()).not.toContain(id);
    });

    it('is idempotent: create twice, delete twice', async () => {
      const id = vol();
      const a = await d().create(id, 32 * MiB);
      await writePattern(a, 0x11, 0, MiB);
      const b = await d().create(id, 32 * MiB);
      expect(b).toEqual(a);
      expect(await holdsPattern(b, 0x11, 0, MiB)).toBe(true); // not re-created
      await expectCode(d().create(id, 48 * MiB), 'IdempotentParameterMismatch');
      await d().delete(id);
      await d().delete(id);
      await d().deleteSnapshot(newSnapshotId());
      expect(await d().locate(id)).toBeNull();
    });

    it('grows a volume (data kept) and refuses to shrink it', async () => {
      const id = vol();
      const loc = await d().create(id, 32 * MiB);
      await writePattern(loc, 0x22, 0, MiB);
      await d().resize(id, 96 * MiB);
      const grown = await d().locate(id);
      expect(grown?.sizeBytes).toBe(96 * MiB);
      expect(await holdsPattern(grown!, 0x22, 0, MiB)).toBe(true);
      expect(await holdsPattern(grown!, 0, 95 * MiB, MiB)).toBe(true);
      await d().resize(id, 96 * MiB); // same size: nothing to do
      await expectCode(d().resize(id, 64 * MiB), 'VolumeShrinkNotSupported');
      expect((await d().locate(id))?.sizeBytes).toBe(96 * MiB);
      await d().delete(id);
    });

    it('snapshot, write more, volume from snapshot holds exactly the snapshot data', async () => {
      const src = vol();
      const s = snap();
      const copy = vol();
      const big = vol();
      const loc = await d().create(src, 64 * MiB);
      await writePattern(loc, 0xab, 0, MiB);
      await writePattern(loc, 0x5c, 63 * MiB, MiB);

      await d().snapshotOffline(src, s);
      await d().snapshotOffline(src, s); // idempotent
      expect(await d().listSnapshots()).toContain(s);
      const snapLoc = await d().locateSnapshot(s);
      expect(snapLoc?.sizeBytes).toBe(64 * MiB);

      // The volume moves on; the snapshot must not.
      await writePattern(loc, 0xcd, 0, MiB);
      await writePattern(loc, 0xef, MiB, MiB);

      const c = await d().create(copy, 64 * MiB, { fromSnapshotId: s });
      expect(c.sizeBytes).toBe(64 * MiB);
      expect(await holdsPattern(c, 0xab, 0, MiB)).toBe(true);
      expect(await holdsPattern(c, 0, MiB, MiB)).toBe(true);
      expect(await holdsPattern(c, 0x5c, 63 * MiB, MiB)).toBe(true);
      expect(await holdsPattern(loc, 0xcd, 0, MiB)).toBe(true);
      expect(await holdsPattern(loc, 0xef, MiB, MiB)).toBe(true);

      // Bigger than the snapshot: the data, then zeros up to the new size.
      const b = await d().create(big, 128 * MiB, { fromSnapshotId: s });
      expect(b.sizeBytes).toBe(128 * MiB);
      expect(await holdsPattern(b, 0xab, 0, MiB)).toBe(true);
      expect(await holdsPattern(b, 0, 127 * MiB, MiB)).toBe(true);
      expect(await d().create(big, 128 * MiB, { fromSnapshotId: s })).toEqual(b);

      await expectCode(d().create(vol(), 32 * MiB, { fromSnapshotId: s }), 'InvalidParameterValue');

      // Writes to a volume made from a snapshot do not reach the snapshot (or its siblings).
      await writePattern(c, 0x77, 0, MiB);
      expect(await holdsPattern(b, 0xab, 0, MiB)).toBe(true);

      // Deleting the snapshot leaves the volumes made from it intact.
      await d().deleteSnapshot(s);
      await d().deleteSnapshot(s);
      expect(await d().locateSnapshot(s)).toBeNull();
      expect(await d().listSnapshots()).not.toContain(s);
      expect(await holdsPattern(b, 0xab, 0, MiB)).toBe(true);
      expect(await holdsPattern(c, 0x77, 0, MiB)).toBe(true);

      for (const id of [src, copy, big]) await d().delete(id);
    });

    it('reports missing volumes and snapshots with typed errors', async () => {
      const missing = newVolumeId();
      await expectCode(d().resize(missing, 64 * MiB), 'InvalidVolume.NotFound');
      await expectCode(d().snapshotOffline(missing, snap()), 'InvalidVolume.NotFound');
      await expectCode(d().prepareForAttach(missing), 'InvalidVolume.NotFound');
      await expectCode(
        d().create(vol(), 64 * MiB, { fromSnapshotId: newSnapshotId() }),
        'InvalidSnapshot.NotFound',
      );
      expect(await d().locateSnapshot(newSnapshotId())).toBeNull();
    });

    it('validates ids and sizes before anything reaches a path or a command', async () => {
      for (const bad of [
        'vol-1',
        'vol-0123456789ABCDEF0',
        '../vol-0123456789abcdef0',
        'snap-0123456789abcdef0',
        '',
      ]) {
        await expectCode(d().create(bad, 64 * MiB), 'InvalidParameterValue');
        await expectCode(d().delete(bad), 'InvalidParameterValue');
        await expectCode(d().locate(bad), 'InvalidParameterValue');
      }
      for (const bad of ['snap-1', 'vol-0123456789abcdef0', 'snap-0123456789abcdef0/x']) {
        await expectCode(d().deleteSnapshot(bad), 'InvalidParameterValue');
        await expectCode(d().snapshotOffline(newVolumeId(), bad), 'InvalidParameterValue');
      }
      for (const size of [0, -512, 1000, 1.5 * 512, Number.NaN, 2 ** 60]) {
        await expectCode(d().create(vol(), size), 'InvalidParameterValue');
      }
    });

    it('leaves nothing behind', async () => {
      for (const id of snapshots) await d().deleteSnapshot(id);
      for (const id of volumes) await d().delete(id);
      for (const id of volumes) expect(await d().locate(id)).toBeNull();
      expect((await d().listVolumes()).filter((id) => volumes.has(id))).toEqual([]);
      expect((await d().listSnapshots()).filter((id) => snapshots.has(id))).toEqual([]);
      expect(await t!.leftovers()).toEqual([]);
    });
  });
}
