import { HostCommandError, type CommandRunner } from '@minicloud/host';
import {
  assertSnapshotId,
  assertVolumeId,
  assertVolumeSize,
  commandFailure,
  FileVolumeDriver,
  LvmVolumeDriver,
  lvchangeActivateCommand,
  lvcreateSnapshotCommand,
  lvcreateThinCommand,
  lvextendCommand,
  lvremoveCommand,
  lvsCommand,
  parseLvsJson,
  qemuImgConvertArgs,
  qemuImgCreateVolumeArgs,
  qemuImgLockProbeArgs,
  qemuImgResizeArgs,
  snapshotLvName,
  StorageError,
  volumeLvName,
} from '../src/index.js';
import { codeOf as codeOfType } from '@minicloud/testkit/expect-errors';

const VOL = 'vol-0123456789abcdef0';
const VOL2 = 'vol-00000000000000002';
const SNAP = 'snap-0123456789abcdef0';
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const codeOf = (fn: () => unknown) => codeOfType(fn, StorageError);

async function asyncCodeOf(p: Promise<unknown>): Promise<string | null> {
  try {
    await p;
    return null;
  } catch (e) {
    return e instanceof StorageError ? e.code : `not a StorageError: ${String(e)}`;
  }
}

describe('volume ids and sizes', () => {
  it.each([
    'vol-0123456789abcdef',
    'vol-0123456789abcdef01',
    'vol-0123456789ABCDEF0',
    'vol-0123456789abcdef0/',
    '../vol-0123456789abcdef0',
    'snap-0123456789abcdef0',
    '',
    'vol-0123456789abcdef0\n',
  ])('rejects volume id %j', (id) => {
    expect(codeOf(() => assertVolumeId(id))).toBe('InvalidParameterValue');
  });

  it('accepts vol-/snap- + 17 lowercase hex', () => {
    expect(assertVolumeId(VOL)).toBe(VOL);
    expect(assertSnapshotId(SNAP)).toBe(SNAP);
    expect(codeOf(() => assertSnapshotId(VOL))).toBe('InvalidParameterValue');
    expect(codeOf(() => assertSnapshotId('snap-0123456789abcdef'))).toBe('InvalidParameterValue');
  });

  it.each([0, -512, 511, 513, 1.5, Number.NaN, Infinity, 2 ** 60, '1024' as unknown as number])(
    'rejects size %p',
    (size) => {
      expect(codeOf(() => assertVolumeSize(size))).toBe('InvalidParameterValue');
    },
  );

  it('accepts multiples of 512 up to the maximum', () => {
    expect(assertVolumeSize(512)).toBe(512);
    expect(assertVolumeSize(16 * 1024 ** 4)).toBe(16 * 1024 ** 4);
    expect(codeOf(() => assertVolumeSize(2 * GiB, GiB))).toBe('InvalidParameterValue');
  });

  it('maps host failures to typed errors', () => {
    const err = (stderr: string) => new HostCommandError('qemu-img', [], 1, stderr, false);
    expect(
      commandFailure(
        'x',
        err(
          `qemu-img: Could not open 'a': Failed to get "write" lock\nIs another process using the image [a]?`,
        ),
      ).code,
    ).toBe('VolumeInUse');
    expect(
      commandFailure('x', err('qemu-img: error while writing: No space left on device')).code,
    ).toBe('InsufficientVolumeCapacity');
    expect(commandFailure('x', err('something else')).code).toBe('StorageCommandFailed');
  });
});

describe('qemu-img argv for file volumes', () => {
  it('creates sparse qcow2 volumes with explicit formats', () => {
    expect(qemuImgCreateVolumeArgs('/v/vol.qcow2', 10 * GiB)).toEqual([
      'create',
      '-q',
      '-f',
      'qcow2',
      '-o',
      'preallocation=off',
      '/v/vol.qcow2',
      String(10 * GiB),
    ]);
    expect(qemuImgConvertArgs('/s/snap.qcow2', '/v/vol.qcow2.tmp')).toEqual([
      'convert',
      '-q',
      '-f',
      'qcow2',
      '-O',
      'qcow2',
      '-o',
      'preallocation=off',
      '/s/snap.qcow2',
      '/v/vol.qcow2.tmp',
    ]);
    expect(qemuImgResizeArgs('/v/vol.qcow2', 2 * GiB)).toEqual([
      'resize',
      '-q',
      '-f',
      'qcow2',
      '/v/vol.qcow2',
      String(2 * GiB),
    ]);
  });

  it('probes the lock with info WITHOUT -U, under prlimit', () => {
    const args = qemuImgLockProbeArgs('/v/vol.qcow2');
    expect(args.slice(2)).toEqual([
      'qemu-img',
      'info',
      '--output=json',
      '-f',
      'qcow2',
      '/v/vol.qcow2',
    ]);
    expect(args).not.toContain('-U');
    expect(args[0]).toMatch(/^--as=/);
  });

  it('refuses relative paths and bad sizes', () => {
    expect(codeOf(() => qemuImgCreateVolumeArgs('vol.qcow2', GiB))).toBe('InvalidParameterValue');
    expect(codeOf(() => qemuImgConvertArgs('/a/../b', '/c'))).toBe('InvalidParameterValue');
    expect(codeOf(() => qemuImgResizeArgs('/v/x', 100))).toBe('InvalidParameterValue');
  });
});

describe('FileVolumeDriver paths', () => {
  const d = new FileVolumeDriver({ volumesDir: '/data/volumes', snapshotsDir: '/data/snapshots' });

  it('puts volumes and snapshots at fixed names', () => {
    expect(d.kind).toBe('file');
    expect(d.liveSnapshots).toBe('hypervisor-backup');
    expect(d.volumePath(VOL)).toBe(`/data/volumes/${VOL}.qcow2`);
    expect(d.snapshotPath(SNAP)).toBe(`/data/snapshots/${SNAP}.qcow2`);
    expect(codeOf(() => d.volumePath('vol-../../etc'))).toBe('InvalidParameterValue');
    expect(codeOf(() => d.snapshotPath(VOL))).toBe('InvalidParameterValue');
  });

  it('wants absolute directories', () => {
    expect(codeOf(() => new FileVolumeDriver({ volumesDir: 'volumes', snapshotsDir: '/s' }))).toBe(
      'InvalidParameterValue',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// LVM

describe('LVM command construction', () => {
  it('names LVs mc-<id>', () => {
    expect(volumeLvName(VOL)).toBe(`mc-${VOL}`);
    expect(snapshotLvName(SNAP)).toBe(`mc-${SNAP}`);
    expect(codeOf(() => volumeLvName('vol-x'))).toBe('InvalidParameterValue');
  });

  it('creates a thin volume in the pool, sized in bytes, tagged', () => {
    expect(lvcreateThinCommand('vg0', 'pool0', `mc-${VOL}`, 10 * GiB)).toEqual({
      command: 'lvcreate',
      args: [
        '--yes',
        '--type',
        'thin',
        '--virtualsize',
        `${10 * GiB}b`,
        '--thinpool',
        'pool0',
        '--name',
        `mc-${VOL}`,
        '--addtag',
        'minicloud',
        'vg0',
      ],
    });
  });

  it('snapshots: skip-activation for snapshots, active for volumes from snapshots', () => {
    expect(lvcreateSnapshotCommand('vg0', `mc-${VOL}`, `mc-${SNAP}`, false)).toEqual({
      command: 'lvcreate',
      args: [
        '--yes',
        '--snapshot',
        '--name',
        `mc-${SNAP}`,
        '--setactivationskip',
        'y',
        '--addtag',
        'minicloud',
        `vg0/mc-${VOL}`,
      ],
    });
    expect(lvcreateSnapshotCommand('vg0', `mc-${SNAP}`, `mc-${VOL2}`, true)).toEqual({
      command: 'lvcreate',
      args: [
        '--yes',
        '--snapshot',
        '--name',
        `mc-${VOL2}`,
        '--setactivationskip',
        'n',
        '--activate',
        'y',
        '--addtag',
        'minicloud',
        `vg0/mc-${SNAP}`,
      ],
    });
  });

  it('extends, removes, activates and lists', () => {
    expect(lvextendCommand('vg0', `mc-${VOL}`, 20 * GiB)).toEqual({
      command: 'lvextend',
      args: ['--size', `${20 * GiB}b`, `vg0/mc-${VOL}`],
    });
    expect(lvremoveCommand('vg0', `mc-${SNAP}`)).toEqual({
      command: 'lvremove',
      args: ['--yes', `vg0/mc-${SNAP}`],
    });
    expect(lvchangeActivateCommand('vg0', `mc-${VOL}`)).toEqual({
      command: 'lvchange',
      args: ['--activate', 'y', '--ignoreactivationskip', `vg0/mc-${VOL}`],
    });
    expect(lvsCommand('vg0')).toEqual({
      command: 'lvs',
      args: [
        '--reportformat',
        'json',
        '--units',
        'b',
        '--nosuffix',
        '--options',
        'lv_name,lv_size,lv_attr,pool_lv,origin,lv_tags,vg_extent_size',
        'vg0',
      ],
    });
  });

  it.each([
    ['-vg', 'pool'],
    ['vg/x', 'pool'],
    ['vg', '../pool'],
    ['vg', 'po ol'],
    ['', 'pool'],
  ])('refuses volume group %j / pool %j', (vg, pool) => {
    expect(codeOf(() => lvcreateThinCommand(vg, pool, `mc-${VOL}`, GiB))).toBe(
      'InvalidParameterValue',
    );
    expect(codeOf(() => new LvmVolumeDriver({ volumeGroup: vg, thinPool: pool }))).toBe(
      'InvalidParameterValue',
    );
  });

  it('parses lvs JSON (sizes in bytes, attr flags, tags)', () => {
    const json = `  {
      "report": [
          {
              "lv": [
                  {"lv_name":"pool", "lv_size":"536870912", "lv_attr":"twi-aotz--", "pool_lv":"", "origin":"", "lv_tags":"", "vg_extent_size":"4194304"},
                  {"lv_name":"mc-${VOL}", "lv_size":"1073741824", "lv_attr":"Vwi-aotz--", "pool_lv":"pool", "origin":"", "lv_tags":"minicloud", "vg_extent_size":"4194304"},
                  {"lv_name":"mc-${SNAP}", "lv_size":"1073741824", "lv_attr":"Vwi---tz-k", "pool_lv":"pool", "origin":"mc-${VOL}", "lv_tags":"minicloud,other", "vg_extent_size":"4194304"}
              ]
          }
      ]
  }`;
    const lvs = parseLvsJson(json);
    expect(lvs).toHaveLength(3);
    expect(lvs[1]).toEqual({
      name: `mc-${VOL}`,
      sizeBytes: GiB,
      attr: 'Vwi-aotz--',
      pool: 'pool',
      origin: '',
      tags: ['minicloud'],
      extentBytes: 4 * MiB,
      active: true,
      open: true,
      thin: true,
    });
    expect(lvs[2]).toMatchObject({
      active: false,
      open: false,
      thin: true,
      tags: ['minicloud', 'other'],
    });
    expect(lvs[0]).toMatchObject({ thin: false });
    expect(parseLvsJson('{"report":[{"lv":[]}]}')).toEqual([]);
    expect(codeOf(() => parseLvsJson('nope'))).toBe('StorageCommandFailed');
    expect(
      codeOf(() => parseLvsJson('{"report":[{"lv":[{"lv_name":"x","lv_size":"1.5"}]}]}')),
    ).toBe('StorageCommandFailed');
  });
});

/**
 * A small LVM simulator behind a CommandRunner: it understands exactly the commands the driver
 * builds (and fails on anything else), so the driver's logic runs without device-mapper.
 */
function fakeLvm(options: { extent?: number; poolFree?: number } = {}) {
  const extent = options.extent ?? 4 * MiB;
  let poolFree = options.poolFree ?? Infinity;
  interface Lv {
    size: number;
    active: boolean;
    open: boolean;
    skip: boolean;
    origin: string;
    tags: string[];
    thin: boolean;
    pool: string;
  }
  const lvs = new Map<string, Lv>([
    [
      'pool',
      {
        size: 100 * GiB,
        active: true,
        open: true,
        skip: false,
        origin: '',
        tags: [],
        thin: false,
        pool: '',
      },
    ],
  ]);
  const calls: string[] = [];
  const fail = (stderr: string, code = 5): never => {
    throw new HostCommandError('lvm', [], code, stderr, false);
  };
  const round = (n: number) => Math.ceil(n / extent) * extent;
  const parseSize = (s: string) => {
    const m = /^([0-9]+)b$/.exec(s);
    if (!m) fail(`bad size ${s}`, 3);
    return Number(m![1]);
  };
  const opt = (args: readonly string[], name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? (args[i + 1] as string) : undefined;
  };
  const lvPath = (arg: string) => {
    const [vg, name] = arg.split('/');
    if (vg !== 'vg0' || !name) fail(`Volume group "${vg}" not found`);
    return name as string;
  };
  const run: CommandRunner = async (command, args, runOptions) => {
    calls.push(`${command} ${args.join(' ')}`);
    expect(runOptions?.env?.LVM_SUPPRESS_FD_WARNINGS).toBe('1');
    switch (command) {
      case 'lvs': {
        expect(args[args.length - 1]).toBe('vg0');
        const rows = [...lvs].map(([name, lv]) => ({
          lv_name: name,
          lv_size: String(lv.size),
          lv_attr: `${lv.thin ? 'V' : 't'}wi-${lv.active ? 'a' : '-'}${lv.open ? 'o' : '-'}tz-${lv.skip ? 'k' : '-'}`,
          pool_lv: lv.pool,
          origin: lv.origin,
          lv_tags: lv.tags.join(','),
          vg_extent_size: String(extent),
        }));
        return { stdout: JSON.stringify({ report: [{ lv: rows }] }), stderr: '', exitCode: 0 };
      }
      case 'lvcreate': {
        const name = opt(args, '--name')!;
        if (lvs.has(name)) fail(`Logical Volume "${name}" already exists in volume group "vg0"`);
        const tags = args.includes('--addtag') ? [opt(args, '--addtag')!] : [];
        if (args.includes('--snapshot')) {
          const origin = lvPath(args[args.length - 1] as string);
          const o = lvs.get(origin) ?? fail(`Failed to find logical volume "vg0/${origin}"`);
          const skip = opt(args, '--setactivationskip') === 'y';
          lvs.set(name, {
            size: o.size,
            active: !skip,
            open: false,
            skip,
            origin,
            tags,
            thin: true,
            pool: 'pool',
          });
        } else {
          expect(opt(args, '--type')).toBe('thin');
          expect(opt(args, '--thinpool')).toBe('pool');
          const size = round(parseSize(opt(args, '--virtualsize')!));
          if (size > poolFree)
            fail('Insufficient free space: 2560 extents needed, but only 10 available');
          lvs.set(name, {
            size,
            active: true,
            open: false,
            skip: false,
            origin: '',
            tags,
            thin: true,
            pool: 'pool',
          });
        }
        return { stdout: '', stderr: '', exitCode: 0 };
      }
      case 'lvextend': {
        const name = lvPath(args[args.length - 1] as string);
        const lv = lvs.get(name) ?? fail(`Failed to find logical volume "vg0/${name}"`);
        const size = round(parseSize(opt(args, '--size')!));
        if (size === lv.size) fail('New size (256 extents) matches existing size (256 extents).');
        if (size < lv.size) fail('New size given smaller than existing size');
        lv.size = size;
        return { stdout: '', stderr: '', exitCode: 0 };
      }
      case 'lvremove': {
        expect(args).toContain('--yes');
        const name = lvPath(args[args.length - 1] as string);
        const lv = lvs.get(name) ?? fail(`Failed to find logical volume "vg0/${name}"`);
        if (lv.open) fail(`Logical volume vg0/${name} in use.`);
        lvs.delete(name);
        return { stdout: '', stderr: '', exitCode: 0 };
      }
      case 'lvchange': {
        const name = lvPath(args[args.length - 1] as string);
        const lv = lvs.get(name) ?? fail(`Failed to find logical volume "vg0/${name}"`);
        if (lv.skip && !args.includes('--ignoreactivationskip'))
          return { stdout: '', stderr: '', exitCode: 0 };
        lv.active = true;
        return { stdout: '', stderr: '', exitCode: 0 };
      }
      default:
        return fail(`unexpected command ${command}`, 127);
    }
  };
  return {
    run,
    calls,
    lvs,
    setPoolFree: (n: number) => {
      poolFree = n;
    },
  };
}

describe('LvmVolumeDriver (simulated LVM)', () => {
  const make = (opts?: Parameters<typeof fakeLvm>[0]) => {
    const lvm = fakeLvm(opts);
    return { lvm, d: new LvmVolumeDriver({ volumeGroup: 'vg0', thinPool: 'pool', run: lvm.run }) };
  };
  const changes = (calls: string[]) => calls.filter((c) => !c.startsWith('lvs '));

  it('creates a thin LV and returns its block device', async () => {
    const { lvm, d } = make();
    expect(d.kind).toBe('lvm');
    expect(d.liveSnapshots).toBe('driver');
    const loc = await d.create(VOL, 10 * GiB);
    expect(loc).toEqual({
      path: `/dev/vg0/mc-${VOL}`,
      format: 'raw',
      diskType: 'block',
      sizeBytes: 10 * GiB,
    });
    expect(changes(lvm.calls)).toEqual([
      `lvcreate --yes --type thin --virtualsize ${10 * GiB}b --thinpool pool --name mc-${VOL} --addtag minicloud vg0`,
    ]);
    expect(await d.locate(VOL)).toEqual(loc);
    expect(await d.listVolumes()).toEqual([VOL]);
    expect(await d.listSnapshots()).toEqual([]);
  });

  it('is idempotent on create (extent rounding included) and refuses another size', async () => {
    const { lvm, d } = make();
    const a = await d.create(VOL, 10 * MiB); // rounded up to 12 MiB
    expect(a.sizeBytes).toBe(12 * MiB);
    lvm.calls.length = 0;
    expect(await d.create(VOL, 10 * MiB)).toEqual(a);
    expect(changes(lvm.calls)).toEqual([]);
    expect(await asyncCodeOf(d.create(VOL, 20 * MiB))).toBe('IdempotentParameterMismatch');
  });

  it('activates an existing inactive volume on create and prepareForAttach', async () => {
    const { lvm, d } = make();
    await d.create(VOL, GiB);
    lvm.lvs.get(`mc-${VOL}`)!.active = false;
    lvm.calls.length = 0;
    await d.prepareForAttach(VOL);
    expect(changes(lvm.calls)).toEqual([
      `lvchange --activate y --ignoreactivationskip vg0/mc-${VOL}`,
    ]);
    lvm.calls.length = 0;
    await d.prepareForAttach(VOL);
    expect(changes(lvm.calls)).toEqual([]);
    expect(await asyncCodeOf(d.prepareForAttach(VOL2))).toBe('InvalidVolume.NotFound');
  });

  it('snapshots (inactive, skip flag) and creates volumes from snapshots, grown when asked', async () => {
    const { lvm, d } = make();
    await d.create(VOL, GiB);
    lvm.calls.length = 0;
    await d.snapshotOffline(VOL, SNAP);
    await d.snapshotOffline(VOL, SNAP); // idempotent
    expect(changes(lvm.calls)).toEqual([
      `lvcreate --yes --snapshot --name mc-${SNAP} --setactivationskip y --addtag minicloud vg0/mc-${VOL}`,
    ]);
    expect(await d.listSnapshots()).toEqual([SNAP]);
    expect(await d.locateSnapshot(SNAP)).toMatchObject({
      path: `/dev/vg0/mc-${SNAP}`,
      sizeBytes: GiB,
    });

    lvm.calls.length = 0;
    const v = await d.create(VOL2, 2 * GiB, { fromSnapshotId: SNAP });
    expect(v).toEqual({
      path: `/dev/vg0/mc-${VOL2}`,
      format: 'raw',
      diskType: 'block',
      sizeBytes: 2 * GiB,
    });
    expect(changes(lvm.calls)).toEqual([
      `lvcreate --yes --snapshot --name mc-${VOL2} --setactivationskip n --activate y --addtag minicloud vg0/mc-${SNAP}`,
      `lvextend --size ${2 * GiB}b vg0/mc-${VOL2}`,
    ]);
    expect(lvm.lvs.get(`mc-${VOL2}`)).toMatchObject({ active: true, skip: false });
    expect(await d.listVolumes()).toEqual([VOL2, VOL].sort());

    // same size as the snapshot: no lvextend
    lvm.calls.length = 0;
    const v3 = 'vol-00000000000000003';
    await d.create(v3, GiB, { fromSnapshotId: SNAP });
    expect(changes(lvm.calls)).toHaveLength(1);

    expect(
      await asyncCodeOf(d.create('vol-00000000000000004', 512 * MiB, { fromSnapshotId: SNAP })),
    ).toBe('InvalidParameterValue');
    expect(
      await asyncCodeOf(
        d.create('vol-00000000000000004', GiB, { fromSnapshotId: 'snap-00000000000000009' }),
      ),
    ).toBe('InvalidSnapshot.NotFound');
    expect(
      await asyncCodeOf(d.snapshotOffline(VOL2.replace('2', '9'), 'snap-00000000000000008')),
    ).toBe('InvalidVolume.NotFound');
  });

  it('resizes: grows with lvextend, same size is a no-op, shrink refused', async () => {
    const { lvm, d } = make();
    await d.create(VOL, GiB);
    lvm.calls.length = 0;
    await d.resize(VOL, 2 * GiB);
    await d.resize(VOL, 2 * GiB);
    await d.resize(VOL, 2 * GiB - 512); // rounds up to the same extent count: nothing to do
    expect(changes(lvm.calls)).toEqual([`lvextend --size ${2 * GiB}b vg0/mc-${VOL}`]);
    expect(await asyncCodeOf(d.resize(VOL, GiB))).toBe('VolumeShrinkNotSupported');
    expect(await asyncCodeOf(d.resize(VOL2, GiB))).toBe('InvalidVolume.NotFound');
  });

  it('deletes idempotently, refuses an open LV, keeps volumes made from a deleted snapshot', async () => {
    const { lvm, d } = make();
    await d.create(VOL, GiB);
    await d.snapshotOffline(VOL, SNAP);
    await d.create(VOL2, GiB, { fromSnapshotId: SNAP });
    lvm.lvs.get(`mc-${VOL2}`)!.open = true;
    expect(await asyncCodeOf(d.delete(VOL2))).toBe('VolumeInUse');
    lvm.lvs.get(`mc-${VOL2}`)!.open = false;
    lvm.calls.length = 0;
    await d.deleteSnapshot(SNAP);
    await d.deleteSnapshot(SNAP);
    await d.delete(VOL);
    await d.delete(VOL);
    expect(changes(lvm.calls)).toEqual([
      `lvremove --yes vg0/mc-${SNAP}`,
      `lvremove --yes vg0/mc-${VOL}`,
    ]);
    expect(await d.listVolumes()).toEqual([VOL2]);
    await d.delete(VOL2);
    expect([...lvm.lvs.keys()]).toEqual(['pool']);
  });

  it('maps a full pool to InsufficientVolumeCapacity', async () => {
    const { lvm, d } = make();
    lvm.setPoolFree(GiB);
    expect(await asyncCodeOf(d.create(VOL, 10 * GiB))).toBe('InsufficientVolumeCapacity');
    expect(await d.listVolumes()).toEqual([]);
  });

  it('treats a concurrent create of the same volume as success', async () => {
    const { lvm, d } = make();
    const racing: CommandRunner = async (command, args, o) => {
      if (command === 'lvcreate' && !lvm.lvs.has(`mc-${VOL}`)) {
        await lvm.run(command, args, o); // the other worker wins...
        return lvm.run(command, args, o); // ...and ours fails with "already exists"
      }
      return lvm.run(command, args, o);
    };
    const d2 = new LvmVolumeDriver({ volumeGroup: 'vg0', thinPool: 'pool', run: racing });
    expect((await d2.create(VOL, GiB)).sizeBytes).toBe(GiB);
    expect(await d.locate(VOL)).not.toBeNull();
  });

  it('ignores LVs that are not minicloud volumes or snapshots', async () => {
    const { lvm, d } = make();
    lvm.lvs.set('root', {
      size: GiB,
      active: true,
      open: true,
      skip: false,
      origin: '',
      tags: [],
      thin: false,
      pool: '',
    });
    lvm.lvs.set('mc-vol-xyz', {
      size: GiB,
      active: true,
      open: false,
      skip: false,
      origin: '',
      tags: [],
      thin: true,
      pool: 'pool',
    });
    expect(await d.listVolumes()).toEqual([]);
    expect(await d.listSnapshots()).toEqual([]);
    // A non-thin LV under our name is not silently adopted.
    lvm.lvs.set(`mc-${VOL}`, {
      size: GiB,
      active: true,
      open: false,
      skip: false,
      origin: '',
      tags: [],
      thin: false,
      pool: '',
    });
    expect(await asyncCodeOf(d.create(VOL, GiB))).toBe('StorageCommandFailed');
  });
});
