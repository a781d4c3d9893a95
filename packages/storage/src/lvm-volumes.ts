import { run as hostRun, type CommandRunner, type RunOptions } from '@minicloud/host';
import { StorageError } from './errors.js';
import {
  assertSnapshotId,
  assertVolumeId,
  assertVolumeSize,
  DEFAULT_MAX_VOLUME_BYTES,
  hostErrorText,
  type CreateVolumeOptions,
  type VolumeDriver,
  type VolumeLocation,
} from './volumes.js';

/**
 * Volumes as LVM thin logical volumes in one thin pool (the production backend on a KVM host):
 *
 *   VG/mc-vol-<17 hex>    a volume: a thin LV (`lvcreate -V SIZE -T VG/POOL`), raw, attached
 *                         to guests as `<disk type='block'>` with its device node /dev/VG/LV
 *   VG/mc-snap-<17 hex>   a snapshot: a thin snapshot of the volume (instant, copy-on-write),
 *                         with the activation-skip flag set (no device node, never opened)
 *   volume from snapshot  a thin snapshot of the snapshot, activation-skip cleared and active
 *
 * Every LV carries the tag `minicloud`. Thin snapshots do not depend on their origin staying:
 * a snapshot can be deleted while volumes made from it live on, and the other way round.
 *
 * Live snapshots: a thin snapshot of a volume attached to a running guest is crash-consistent.
 * LVM suspends the origin's device-mapper device for the metadata switch (in-flight I/O is
 * drained, dirty pages of the block device are flushed by the suspend's freeze), so the snapshot
 * holds every write the guest had completed and none of the later ones: what a power cut would
 * have left. Attach volumes with cache='none' (the hypervisor's block disks do) so nothing the
 * guest considers written sits in the host's page cache anyway.
 *
 * Capacity: thin pools over-commit. A full pool stops writes in every guest on it: monitor it
 * (dmeventd `thin_pool_autoextend_threshold`) — not this driver's job.
 *
 * The commands are built by pure functions (exported, unit-tested): on machines without
 * device-mapper nothing here can run (see the conformance test).
 */

export interface LvmVolumeDriverOptions {
  volumeGroup: string;
  thinPool: string;
  /** Largest volume accepted (default 16 TiB). */
  maxVolumeBytes?: number;
  run?: CommandRunner;
}

/** A command to run: the LVM tool and its argv. */
export interface LvmCommand {
  command: 'lvcreate' | 'lvextend' | 'lvremove' | 'lvchange' | 'lvs';
  args: string[];
}

export const LVM_TAG = 'minicloud';
/** LV names: `mc-` + the public id. */
export const LV_PREFIX = 'mc-';

// LVM's own rule for VG/LV names (no leading '-', none of the reserved forms), kept strict.
const LVM_NAME_RE = /^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,62}$/;
const VOLUME_LV_RE = /^mc-(vol-[0-9a-f]{17})$/;
const SNAPSHOT_LV_RE = /^mc-(snap-[0-9a-f]{17})$/;

function assertLvmName(name: string, what: string): string {
  if (typeof name !== 'string' || !LVM_NAME_RE.test(name) || name === '.' || name === '..') {
    throw new StorageError('InvalidParameterValue', `invalid ${what} ${JSON.stringify(name)}`);
  }
  return name;
}

export function volumeLvName(volumeId: string): string {
  return `${LV_PREFIX}${assertVolumeId(volumeId)}`;
}

export function snapshotLvName(snapshotId: string): string {
  return `${LV_PREFIX}${assertSnapshotId(snapshotId)}`;
}

function bytes(sizeBytes: number): string {
  assertVolumeSize(sizeBytes, Number.MAX_SAFE_INTEGER);
  return `${sizeBytes}b`;
}

// ---------------------------------------------------------------------------------------------
// command builders (pure)

/** A new thin volume of `sizeBytes` (LVM rounds up to whole extents) in VG/POOL. */
export function lvcreateThinCommand(
  vg: string,
  pool: string,
  lvName: string,
  sizeBytes: number,
): LvmCommand {
  assertLvmName(vg, 'volume group');
  assertLvmName(pool, 'thin pool');
  assertLvmName(lvName, 'LV name');
  return {
    command: 'lvcreate',
    // = `lvcreate -V SIZE -T VG/POOL -n NAME`, in lvcreate(8)'s canonical long form
    args: [
      '--yes',
      '--type',
      'thin',
      '--virtualsize',
      bytes(sizeBytes),
      '--thinpool',
      pool,
      '--name',
      lvName,
      '--addtag',
      LVM_TAG,
      vg,
    ],
  };
}

/**
 * A thin snapshot of VG/ORIGIN named `lvName`. `usable`: false for a snapshot (activation-skip
 * set, left inactive: nothing opens it), true for a volume made from a snapshot (skip cleared,
 * activated).
 */
export function lvcreateSnapshotCommand(
  vg: string,
  origin: string,
  lvName: string,
  usable: boolean,
): LvmCommand {
  assertLvmName(vg, 'volume group');
  assertLvmName(origin, 'origin LV');
  assertLvmName(lvName, 'LV name');
  return {
    command: 'lvcreate',
    args: [
      '--yes',
      '--snapshot',
      '--name',
      lvName,
      '--setactivationskip',
      usable ? 'n' : 'y',
      ...(usable ? ['--activate', 'y'] : []),
      '--addtag',
      LVM_TAG,
      `${vg}/${origin}`,
    ],
  };
}

/** Grow VG/LV to `sizeBytes` (for a thin LV: its virtual size). */
export function lvextendCommand(vg: string, lvName: string, sizeBytes: number): LvmCommand {
  assertLvmName(vg, 'volume group');
  assertLvmName(lvName, 'LV name');
  return { command: 'lvextend', args: ['--size', bytes(sizeBytes), `${vg}/${lvName}`] };
}

export function lvremoveCommand(vg: string, lvName: string): LvmCommand {
  assertLvmName(vg, 'volume group');
  assertLvmName(lvName, 'LV name');
  return { command: 'lvremove', args: ['--yes', `${vg}/${lvName}`] };
}

/** Activate VG/LV even when its activation-skip flag is set. */
export function lvchangeActivateCommand(vg: string, lvName: string): LvmCommand {
  assertLvmName(vg, 'volume group');
  assertLvmName(lvName, 'LV name');
  return {
    command: 'lvchange',
    args: ['--activate', 'y', '--ignoreactivationskip', `${vg}/${lvName}`],
  };
}

export const LVS_FIELDS = [
  'lv_name',
  'lv_size',
  'lv_attr',
  'pool_lv',
  'origin',
  'lv_tags',
  'vg_extent_size',
] as const;

/** Every (visible) LV of the VG, as JSON with sizes in bytes. */
export function lvsCommand(vg: string): LvmCommand {
  assertLvmName(vg, 'volume group');
  return {
    command: 'lvs',
    args: [
      '--reportformat',
      'json',
      '--units',
      'b',
      '--nosuffix',
      '--options',
      LVS_FIELDS.join(','),
      vg,
    ],
  };
}

export interface LvInfo {
  name: string;
  sizeBytes: number;
  /** lv_attr, e.g. 'Vwi-aotz--' (V thin volume, a active, o open, k activation skip). */
  attr: string;
  pool: string;
  origin: string;
  tags: string[];
  extentBytes: number;
  active: boolean;
  /** Open by someone (QEMU, a mount): not removable. */
  open: boolean;
  /** A thin volume ('V' type). */
  thin: boolean;
}

/** Parse the output of lvsCommand. Pure. */
export function parseLvsJson(json: string): LvInfo[] {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (e) {
    throw new StorageError('StorageCommandFailed', 'lvs printed invalid JSON', e);
  }
  const report = (doc as { report?: unknown }).report;
  if (!Array.isArray(report)) throw new StorageError('StorageCommandFailed', 'lvs: no report');
  const out: LvInfo[] = [];
  for (const section of report) {
    const lvs = (section as { lv?: unknown }).lv;
    if (!Array.isArray(lvs)) continue;
    for (const raw of lvs as Record<string, unknown>[]) {
      const str = (k: string) => (typeof raw[k] === 'string' ? (raw[k] as string) : '');
      const num = (k: string) => {
        const v = str(k).trim();
        return /^[0-9]+$/.test(v) ? Number(v) : NaN;
      };
      const attr = str('lv_attr');
      const sizeBytes = num('lv_size');
      const extentBytes = num('vg_extent_size');
      if (!str('lv_name') || !Number.isSafeInteger(sizeBytes)) {
        throw new StorageError('StorageCommandFailed', `lvs: bad row ${JSON.stringify(raw)}`);
      }
      out.push({
        name: str('lv_name'),
        sizeBytes,
        attr,
        pool: str('pool_lv'),
        origin: str('origin'),
        tags: str('lv_tags')
          .split(',')
          .map((t) => t.trim())
          .filter(Boolean),
        extentBytes: Number.isSafeInteger(extentBytes) && extentBytes > 0 ? extentBytes : 512,
        active: attr.charAt(4) === 'a',
        open: attr.charAt(5) === 'o',
        thin: attr.charAt(0) === 'V',
      });
    }
  }
  return out;
}

export function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}

function isLvMissingError(text: string): boolean {
  return /Failed to find logical volume|not found/i.test(text);
}

function lvmFailure(what: string, e: unknown): StorageError {
  if (e instanceof StorageError) return e;
  const text = hostErrorText(e);
  if (/in use|open logical volume|is open|device or resource busy/i.test(text)) {
    return new StorageError('VolumeInUse', `${what}: ${text}`, e);
  }
  if (
    /insufficient free space|free space in thin pool|thin pool .* (is )?full|out of data space/i.test(
      text,
    )
  ) {
    return new StorageError('InsufficientVolumeCapacity', `${what}: ${text}`, e);
  }
  return new StorageError('StorageCommandFailed', `${what}: ${text}`, e);
}

// ---------------------------------------------------------------------------------------------

export class LvmVolumeDriver implements VolumeDriver {
  readonly kind = 'lvm' as const;
  readonly liveSnapshots = 'driver' as const;
  readonly volumeGroup: string;
  readonly thinPool: string;
  private readonly maxVolumeBytes: number;
  private readonly run: CommandRunner;

  constructor(options: LvmVolumeDriverOptions) {
    this.volumeGroup = assertLvmName(options.volumeGroup, 'volume group');
    this.thinPool = assertLvmName(options.thinPool, 'thin pool');
    this.maxVolumeBytes = options.maxVolumeBytes ?? DEFAULT_MAX_VOLUME_BYTES;
    this.run = options.run ?? hostRun;
  }

  /** Device node of an (active) LV. */
  devicePath(lvName: string): string {
    return `/dev/${this.volumeGroup}/${assertLvmName(lvName, 'LV name')}`;
  }

  async create(
    volumeId: string,
    sizeBytes: number,
    opts: CreateVolumeOptions = {},
  ): Promise<VolumeLocation> {
    const name = volumeLvName(volumeId);
    assertVolumeSize(sizeBytes, this.maxVolumeBytes);
    const snapName =
      opts.fromSnapshotId !== undefined ? snapshotLvName(opts.fromSnapshotId) : undefined;

    const lvs = await this.lvs();
    const existing = lvs.get(name);
    if (existing) return this.existingVolume(existing, sizeBytes);

    if (snapName === undefined) {
      try {
        await this.exec(lvcreateThinCommand(this.volumeGroup, this.thinPool, name, sizeBytes));
      } catch (e) {
        return this.afterCreateRace(e, name, sizeBytes, `creating volume ${volumeId}`);
      }
    } else {
      const snap = lvs.get(snapName);
      if (!snap) {
        throw new StorageError(
          'InvalidSnapshot.NotFound',
          `snapshot ${opts.fromSnapshotId} does not exist`,
        );
      }
      if (roundUp(sizeBytes, snap.extentBytes) < snap.sizeBytes) {
        throw new StorageError(
          'InvalidParameterValue',
          `volume size ${sizeBytes} is smaller than snapshot ${opts.fromSnapshotId} (${snap.sizeBytes} bytes)`,
        );
      }
      try {
        await this.exec(lvcreateSnapshotCommand(this.volumeGroup, snapName, name, true));
      } catch (e) {
        return this.afterCreateRace(e, name, sizeBytes, `creating volume ${volumeId}`);
      }
      const target = roundUp(sizeBytes, snap.extentBytes);
      if (target > snap.sizeBytes) {
        try {
          await this.exec(lvextendCommand(this.volumeGroup, name, target));
        } catch (e) {
          // Undo, so a retry starts from scratch instead of finding a volume of the wrong size.
          await this.exec(lvremoveCommand(this.volumeGroup, name)).catch(() => undefined);
          throw lvmFailure(`growing volume ${volumeId}`, e);
        }
      }
    }
    const made = (await this.lvs()).get(name);
    if (!made) {
      throw new StorageError('StorageCommandFailed', `volume ${volumeId} missing after lvcreate`);
    }
    return this.location(made);
  }

  async delete(volumeId: string): Promise<void> {
    const name = volumeLvName(volumeId);
    const lv = (await this.lvs()).get(name);
    if (!lv) return;
    if (lv.open) {
      throw new StorageError('VolumeInUse', `volume ${volumeId} is open (attached to a guest?)`);
    }
    await this.remove(name, `deleting volume ${volumeId}`);
  }

  async resize(volumeId: string, newSizeBytes: number): Promise<void> {
    assertVolumeSize(newSizeBytes, this.maxVolumeBytes);
    const name = volumeLvName(volumeId);
    const lv = (await this.lvs()).get(name);
    if (!lv) throw new StorageError('InvalidVolume.NotFound', `volume ${volumeId} does not exist`);
    const target = roundUp(newSizeBytes, lv.extentBytes);
    if (target < lv.sizeBytes) {
      throw new StorageError(
        'VolumeShrinkNotSupported',
        `volume ${volumeId} is ${lv.sizeBytes} bytes; it cannot shrink to ${newSizeBytes}`,
      );
    }
    if (target === lv.sizeBytes) return;
    try {
      await this.exec(lvextendCommand(this.volumeGroup, name, target));
    } catch (e) {
      throw lvmFailure(`resizing volume ${volumeId}`, e);
    }
  }

  /** Also safe while the volume is attached to a running guest (see the module comment). */
  async snapshotOffline(volumeId: string, snapshotId: string): Promise<void> {
    const name = volumeLvName(volumeId);
    const snapName = snapshotLvName(snapshotId);
    const lvs = await this.lvs();
    if (lvs.has(snapName)) return;
    if (!lvs.has(name)) {
      throw new StorageError('InvalidVolume.NotFound', `volume ${volumeId} does not exist`);
    }
    try {
      await this.exec(lvcreateSnapshotCommand(this.volumeGroup, name, snapName, false));
    } catch (e) {
      if ((await this.lvs()).has(snapName)) return; // created concurrently
      throw lvmFailure(`snapshot of ${volumeId}`, e);
    }
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    const snapName = snapshotLvName(snapshotId);
    if (!(await this.lvs()).has(snapName)) return;
    await this.remove(snapName, `deleting snapshot ${snapshotId}`);
  }

  async locate(volumeId: string): Promise<VolumeLocation | null> {
    const lv = (await this.lvs()).get(volumeLvName(volumeId));
    return lv ? this.location(lv) : null;
  }

  async locateSnapshot(snapshotId: string): Promise<VolumeLocation | null> {
    const lv = (await this.lvs()).get(snapshotLvName(snapshotId));
    return lv ? this.location(lv) : null;
  }

  async prepareForAttach(volumeId: string): Promise<VolumeLocation> {
    const name = volumeLvName(volumeId);
    const lv = (await this.lvs()).get(name);
    if (!lv) throw new StorageError('InvalidVolume.NotFound', `volume ${volumeId} does not exist`);
    if (!lv.active) {
      try {
        await this.exec(lvchangeActivateCommand(this.volumeGroup, name));
      } catch (e) {
        throw lvmFailure(`activating volume ${volumeId}`, e);
      }
    }
    return this.location(lv);
  }

  async listVolumes(): Promise<string[]> {
    return this.listIds(VOLUME_LV_RE);
  }

  async listSnapshots(): Promise<string[]> {
    return this.listIds(SNAPSHOT_LV_RE);
  }

  // -------------------------------------------------------------------------------------------

  private location(lv: LvInfo): VolumeLocation {
    return {
      path: this.devicePath(lv.name),
      format: 'raw',
      diskType: 'block',
      sizeBytes: lv.sizeBytes,
    };
  }

  private async listIds(re: RegExp): Promise<string[]> {
    const ids: string[] = [];
    for (const lv of (await this.lvs()).values()) {
      const m = re.exec(lv.name);
      if (m) ids.push(m[1] as string);
    }
    return ids.sort();
  }

  private async existingVolume(lv: LvInfo, sizeBytes: number): Promise<VolumeLocation> {
    if (!lv.thin || lv.pool !== this.thinPool) {
      throw new StorageError(
        'StorageCommandFailed',
        `LV ${this.volumeGroup}/${lv.name} exists but is not a thin volume in pool ${this.thinPool}`,
      );
    }
    if (lv.sizeBytes !== roundUp(sizeBytes, lv.extentBytes)) {
      throw new StorageError(
        'IdempotentParameterMismatch',
        `volume ${lv.name.slice(LV_PREFIX.length)} exists with size ${lv.sizeBytes}, not ${sizeBytes}`,
      );
    }
    if (!lv.active) {
      try {
        await this.exec(lvchangeActivateCommand(this.volumeGroup, lv.name));
      } catch (e) {
        throw lvmFailure(`activating ${lv.name}`, e);
      }
    }
    return this.location(lv);
  }

  /** lvcreate failed: fine if the LV is there now (a concurrent create), else the error. */
  private async afterCreateRace(
    e: unknown,
    name: string,
    sizeBytes: number,
    what: string,
  ): Promise<VolumeLocation> {
    const lv = (await this.lvs().catch(() => new Map<string, LvInfo>())).get(name);
    if (lv && /already exists/i.test(hostErrorText(e))) return this.existingVolume(lv, sizeBytes);
    throw lvmFailure(what, e);
  }

  private async remove(name: string, what: string): Promise<void> {
    try {
      await this.exec(lvremoveCommand(this.volumeGroup, name));
    } catch (e) {
      if (isLvMissingError(hostErrorText(e)) && !(await this.lvs()).has(name)) return;
      throw lvmFailure(what, e);
    }
  }

  private async lvs(): Promise<Map<string, LvInfo>> {
    let stdout: string;
    try {
      ({ stdout } = await this.exec(lvsCommand(this.volumeGroup)));
    } catch (e) {
      throw lvmFailure(`listing LVs of ${this.volumeGroup}`, e);
    }
    return new Map(parseLvsJson(stdout).map((lv) => [lv.name, lv]));
  }

  private exec(cmd: LvmCommand) {
    const options: RunOptions = {
      timeoutMs: 120_000,
      // LVM complains about every inherited file descriptor otherwise.
      env: { ...process.env, LVM_SUPPRESS_FD_WARNINGS: '1' },
    };
    return this.run(cmd.command, cmd.args, options);
  }
}
