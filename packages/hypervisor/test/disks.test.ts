import { goldenFiles } from '@minicloud/testkit/golden';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostCommandError, type CommandRunner } from '@minicloud/host';
import {
  blkdeviotuneArgs,
  buildBackupXml,
  buildDiskXml,
  buildDomainXml,
  classifyVirshDiskError,
  DiskOps,
  HypervisorError,
  isUnplugPendingError,
  parseDomainDisks,
  parseDomBlkInfo,
  parseDomJobInfo,
  parseXml,
  XmlParseError,
  type ActiveState,
  type AttachDiskSpec,
} from '../src/index.js';
import { sampleSpec } from './fixtures.js';
import { codeOf as codeOfType } from '@minicloud/testkit/expect-errors';

const golden = goldenFiles(import.meta.url);

const codeOf = (fn: () => unknown) => codeOfType(fn, HypervisorError);

async function asyncCodeOf(p: Promise<unknown>): Promise<string | null> {
  try {
    await p;
    return null;
  } catch (e) {
    return e instanceof HypervisorError ? e.code : `not a HypervisorError: ${String(e)}`;
  }
}

const fileDisk: AttachDiskSpec = {
  path: '/var/lib/minicloud/volumes/vol-0123456789abcdef0.qcow2',
  format: 'qcow2',
  diskType: 'file',
  target: 'vdb',
  serial: 'vol0123456789abcdef0',
  iotune: { totalIopsSec: 3000, totalBytesSec: 131_072_000 },
};

const blockDisk: AttachDiskSpec = {
  path: '/dev/vg0/mc-vol-0123456789abcdef0',
  format: 'raw',
  diskType: 'block',
  target: 'vdc',
  serial: 'vol0123456789abcdef0',
  iotune: { readIopsSec: 500, writeIopsSec: 250, readBytesSec: 1_048_576 },
};

describe('buildDiskXml', () => {
  it('renders a qcow2 file volume with serial and I/O limits', () => {
    golden('disk-file.xml', buildDiskXml(fileDisk));
  });

  it('renders an LVM block volume (cache=none, io=native)', () => {
    golden('disk-block.xml', buildDiskXml(blockDisk));
  });

  it('renders no iotune element without limits (zeros are no limit)', () => {
    const xml = buildDiskXml({
      path: '/v/a.qcow2',
      format: 'qcow2',
      diskType: 'file',
      target: 'vdz',
      iotune: { totalIopsSec: 0 },
    });
    expect(xml).toBe(
      [
        `<disk type='file' device='disk'>`,
        `  <driver name='qemu' type='qcow2'/>`,
        `  <source file='/v/a.qcow2'/>`,
        `  <target dev='vdz' bus='virtio'/>`,
        `</disk>`,
        ``,
      ].join('\n'),
    );
  });

  const bad: [string, Partial<AttachDiskSpec> | Record<string, unknown>][] = [
    ['target vda (the root disk)', { target: 'vda' }],
    ['target sdb', { target: 'sdb' }],
    ['target vdaa', { target: 'vdaa' }],
    ['relative path', { path: 'vol.qcow2' }],
    ['path with ..', { path: '/var/../etc/shadow' }],
    ['path with a quote', { path: "/v/a'b" }],
    ['format vmdk', { format: 'vmdk' }],
    ['diskType network', { diskType: 'network' }],
    ['serial too long', { serial: 'vol-0123456789abcdef0' }],
    ['serial with space', { serial: 'a b' }],
    ['negative iops', { iotune: { totalIopsSec: -1 } }],
    ['fractional bytes', { iotune: { readBytesSec: 1.5 } }],
    ['huge limit', { iotune: { totalBytesSec: 2e15 } }],
    ['total + read iops', { iotune: { totalIopsSec: 100, readIopsSec: 10 } }],
    ['total + write bytes', { iotune: { totalBytesSec: 100, writeBytesSec: 10 } }],
    ['unknown iotune field', { iotune: { sizeIopsSec: 10 } }],
  ];
  it.each(bad)('rejects %s', (_what, patch) => {
    expect(codeOf(() => buildDiskXml({ ...fileDisk, ...patch } as AttachDiskSpec))).toBe(
      'InvalidDiskSpec',
    );
  });
});

describe('buildDomainXml with volumes', () => {
  it('renders block and file volumes with I/O limits', () => {
    const spec = sampleSpec();
    spec.disks.push(
      { ...blockDisk, target: 'vdc' },
      { ...fileDisk, target: 'vdd', iotune: { writeIopsSec: 100 } },
    );
    golden('domain-volumes.xml', buildDomainXml(spec));
  });

  it('keeps InvalidDomainSpec for bad disks in a domain', () => {
    const spec = sampleSpec();
    spec.disks[0]!.iotune = { totalIopsSec: 1, readIopsSec: 1 };
    expect(codeOf(() => buildDomainXml(spec))).toBe('InvalidDomainSpec');
    const spec2 = sampleSpec();
    (spec2.disks[0] as { diskType: string }).diskType = 'nbd';
    expect(codeOf(() => buildDomainXml(spec2))).toBe('InvalidDomainSpec');
  });
});

describe('parseXml', () => {
  it('reads elements, attributes (both quotes, entities), text, comments, CDATA', () => {
    const xml = `<?xml version="1.0"?>
<!-- c -->
<a x="1 &amp; 2" y='q&apos;s'>
  <b/>
  <c k="v">t&lt;1<![CDATA[<raw>]]></c>
  <!-- <d/> -->
</a>
`;
    const a = parseXml(xml);
    expect(a.name).toBe('a');
    expect(a.attrs).toEqual({ x: '1 & 2', y: "q's" });
    expect(a.children.map((c) => c.name)).toEqual(['b', 'c']);
    expect(a.children[1]!.text).toBe('t<1<raw>');
    expect(xml.slice(a.children[1]!.start, a.children[1]!.end)).toBe(
      '<c k="v">t&lt;1<![CDATA[<raw>]]></c>',
    );
  });

  it.each([
    ['<a><b></a>'],
    ['<a></b>'],
    ['<a>'],
    ['<a/><b/>'],
    ['text<a/>'],
    ['<!DOCTYPE a><a/>'],
    ['<a x=1/>'],
    [''],
  ])('refuses %j', (xml) => {
    expect(() => parseXml(xml)).toThrow(XmlParseError);
  });
});

/** A live domain XML as libvirt 9.0 prints it (trimmed). */
const LIVE_XML = `<domain type='qemu' id='7'>
  <name>mc-i-0123456789abcdef0</name>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/data/volumes/vol-00000000000000001.qcow2' index='2'/>
      <backingStore type='file' index='3'>
        <format type='qcow2'/>
        <source file='/data/images/ami-0123456789abcdef0.qcow2'/>
        <backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
      <serial>vol00000000000000001</serial>
      <alias name='virtio-disk0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/data/seeds/i-0123456789abcdef0.iso' index='1'/>
      <backingStore/>
      <target dev='vdb' bus='virtio'/>
      <readonly/>
      <alias name='virtio-disk1'/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw' cache='none' io='native'/>
      <source dev='/dev/vg0/mc-vol-0123456789abcdef0' index='4'/>
      <backingStore/>
      <target dev='vdc' bus='virtio'/>
      <iotune>
        <total_bytes_sec>0</total_bytes_sec>
        <read_iops_sec>500</read_iops_sec>
        <write_iops_sec>250</write_iops_sec>
        <total_iops_sec_max>1000</total_iops_sec_max>
      </iotune>
      <serial>vol0123456789abcdef0</serial>
      <alias name='virtio-disk2'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
    <interface type='ethernet'>
      <target dev='mct0'/>
    </interface>
  </devices>
</domain>
`;

describe('parseDomainDisks', () => {
  it('reads every disk with its top-level source (not the backing chain)', () => {
    expect(parseDomainDisks(LIVE_XML)).toEqual([
      {
        target: 'vda',
        path: '/data/volumes/vol-00000000000000001.qcow2',
        format: 'qcow2',
        diskType: 'file',
        device: 'disk',
        serial: 'vol00000000000000001',
        readOnly: false,
        iotune: {},
        alias: 'virtio-disk0',
        bus: 'virtio',
      },
      {
        target: 'vdb',
        path: '/data/seeds/i-0123456789abcdef0.iso',
        format: 'raw',
        diskType: 'file',
        device: 'disk',
        serial: null,
        readOnly: true,
        iotune: {},
        alias: 'virtio-disk1',
        bus: 'virtio',
      },
      {
        target: 'vdc',
        path: '/dev/vg0/mc-vol-0123456789abcdef0',
        format: 'raw',
        diskType: 'block',
        device: 'disk',
        serial: 'vol0123456789abcdef0',
        readOnly: false,
        iotune: { readIopsSec: 500, writeIopsSec: 250 },
        alias: 'virtio-disk2',
        bus: 'virtio',
      },
      {
        target: 'hdc',
        path: null,
        format: null,
        diskType: 'file',
        device: 'cdrom',
        serial: null,
        readOnly: true,
        iotune: {},
        alias: null,
        bus: 'ide',
      },
    ]);
  });

  it('round-trips what buildDomainXml writes', () => {
    const spec = sampleSpec();
    spec.disks.push(blockDisk);
    const disks = parseDomainDisks(buildDomainXml(spec));
    expect(disks.map((d) => [d.target, d.diskType, d.path, d.iotune])).toEqual([
      ['vda', 'file', spec.disks[0]!.path, {}],
      ['vdb', 'file', spec.disks[1]!.path, {}],
      ['vdc', 'block', blockDisk.path, blockDisk.iotune],
    ]);
  });

  it('refuses what is not a domain', () => {
    expect(codeOf(() => parseDomainDisks('<disk/>'))).toBe('LibvirtError');
    expect(codeOf(() => parseDomainDisks('<domain>'))).toBe('LibvirtError');
  });
});

describe('backup and job XML/text', () => {
  it('backs up one disk and lists every other with backup=no', () => {
    golden(
      'backup.xml',
      buildBackupXml(
        ['vda', 'vdb', 'vdc'],
        'vdc',
        '/data/snapshots/snap-0123456789abcdef0.qcow2.partial',
      ),
    );
    expect(codeOf(() => buildBackupXml(['vda'], 'vdc', '/x'))).toBe('DiskNotFound');
    expect(codeOf(() => buildBackupXml(['vda'], 'vda', 'relative'))).toBe('InvalidDiskSpec');
    expect(codeOf(() => buildBackupXml(["vd'a"], "vd'a", '/x'))).toBe('InvalidDiskSpec');
  });

  it('parses domjobinfo', () => {
    expect(parseDomJobInfo('Job type:         None        \n\n')).toMatchObject({
      type: 'None',
      operation: null,
    });
    const done = parseDomJobInfo(
      'Job type:         Completed   \nOperation:        Backup      \nTime elapsed:     64           ms\nFile processed:   2.000 GiB\n',
    );
    expect(done).toMatchObject({ type: 'Completed', operation: 'Backup', errorMessage: null });
    expect(done.fields['Time elapsed']).toBe('64           ms');
    expect(
      parseDomJobInfo(
        'Job type:         Failed      \nOperation:        Backup      \nError message:    No space left\n',
      ),
    ).toMatchObject({ type: 'Failed', errorMessage: 'No space left' });
    expect(parseDomJobInfo('')).toMatchObject({ type: 'None' });
  });

  it('parses domblkinfo', () => {
    expect(
      parseDomBlkInfo(
        'Capacity:       2147483648\nAllocation:     208896\nPhysical:       262176\n\n',
      ),
    ).toEqual({
      capacity: 2147483648,
      allocation: 208896,
      physical: 262176,
    });
    expect(codeOf(() => parseDomBlkInfo('garbage'))).toBe('LibvirtError');
  });

  it('builds blkdeviotune options with every limit explicit', () => {
    expect(blkdeviotuneArgs({ totalIopsSec: 3000, readBytesSec: 5 })).toEqual([
      '--total-bytes-sec',
      '0',
      '--read-bytes-sec',
      '5',
      '--write-bytes-sec',
      '0',
      '--total-iops-sec',
      '3000',
      '--read-iops-sec',
      '0',
      '--write-iops-sec',
      '0',
    ]);
    expect(codeOf(() => blkdeviotuneArgs({ totalIopsSec: 1, writeIopsSec: 1 }))).toBe(
      'InvalidDiskSpec',
    );
  });
});

describe('virsh error classification', () => {
  it.each([
    ["error: failed to get domain 'nope'", 'DomainNotFound'],
    ['error: Requested operation is not valid: domain is not running', 'DomainNotRunning'],
    ['error: No disk found whose source path or target is vdx', 'DiskNotFound'],
    ['error: invalid argument: invalid path vdx not assigned to domain', 'DiskNotFound'],
    ["error: invalid argument: disk 'vdx' not found in domain", 'DiskNotFound'],
    ["error: invalid argument: missing persistent configuration for disk 'vdx'", 'DiskNotFound'],
    ['error: Requested operation is not valid: target vdc already exists', 'DiskTargetInUse'],
    ['error: internal error: unable to execute QEMU command', 'LibvirtError'],
  ])('%s -> %s', (stderr, code) => {
    expect(classifyVirshDiskError(stderr)).toBe(code);
  });

  it('recognises a pending unplug', () => {
    expect(
      isUnplugPendingError(
        'error: operation failed: device vdc is already in the process of unplug',
      ),
    ).toBe(true);
    expect(isUnplugPendingError('error: Operation not supported')).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// DiskOps against a simulated libvirt (what virsh would do to the config and live XML)

interface SimDisk {
  target: string;
  path: string;
  iotune?: Record<string, number>;
}

function domainXmlOf(disks: SimDisk[]): string {
  return `<domain type='qemu'><devices>${disks
    .map(
      (d) =>
        `<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${d.path}'/><target dev='${d.target}' bus='virtio'/></disk>`,
    )
    .join('')}</devices></domain>`;
}

function simulator(options: { guestAcksUnplug?: boolean; state?: ActiveState } = {}) {
  const sim = {
    state: (options.state ?? 'running') as ActiveState | null,
    config: [{ target: 'vda', path: '/v/root.qcow2' }] as SimDisk[],
    live: [{ target: 'vda', path: '/v/root.qcow2' }] as SimDisk[],
    guestAcksUnplug: options.guestAcksUnplug ?? true,
    pendingUnplug: new Set<string>(),
    calls: [] as string[],
    jobs: [] as string[], // scripted domjobinfo answers
    completed: 'Job type: Completed\nOperation: Backup\n',
    capacity: 1024 ** 3,
    backupWrites: true,
  };
  const fail = (stderr: string): never => {
    throw new HostCommandError('virsh', [], 1, stderr, false);
  };
  const opt = (args: readonly string[], name: string) => args[args.indexOf(name) + 1] as string;
  const run: CommandRunner = async (command, args) => {
    expect(command).toBe('virsh');
    expect(args.slice(0, 2)).toEqual(['-c', 'qemu:///system']);
    const [verb, ...rest] = args.slice(2);
    sim.calls.push(`${verb} ${rest.filter((a) => !a.includes('minicloud-virsh-')).join(' ')}`);
    const ok = (stdout = '') => ({ stdout, stderr: '', exitCode: 0 });
    const live = rest.includes('--live');
    const config = rest.includes('--config');
    if (live && sim.state !== 'running')
      fail('error: Requested operation is not valid: domain is not running');
    switch (verb) {
      case 'attach-device': {
        const xml = readFileSync(opt(rest, '--file'), 'utf8');
        const disk = parseDomainDisks(`<domain><devices>${xml}</devices></domain>`)[0]!;
        const add = (list: SimDisk[]) => {
          if (list.some((d) => d.target === disk.target)) {
            fail(`error: Requested operation is not valid: target ${disk.target} already exists`);
          }
          list.push({ target: disk.target, path: disk.path! });
        };
        if (live) add(sim.live);
        if (config) add(sim.config);
        return ok('Device attached successfully');
      }
      case 'detach-disk': {
        const target = opt(rest, '--target');
        if (config) {
          if (!sim.config.some((d) => d.target === target)) {
            fail(`error: No disk found whose source path or target is ${target}`);
          }
          sim.config = sim.config.filter((d) => d.target !== target);
        }
        if (live) {
          if (!sim.live.some((d) => d.target === target)) {
            fail(`error: No disk found whose source path or target is ${target}`);
          }
          if (sim.guestAcksUnplug) sim.live = sim.live.filter((d) => d.target !== target);
          else sim.pendingUnplug.add(target);
        }
        return ok('Disk detached successfully');
      }
      case 'domblkinfo':
        return ok(`Capacity:       ${sim.capacity}\nAllocation:     1\nPhysical:       1\n`);
      case 'blockresize':
        sim.capacity = Number(opt(rest, '--size').replace(/B$/, ''));
        return ok();
      case 'blkdeviotune':
        return ok();
      case 'domjobinfo':
        if (rest.includes('--completed')) return ok(sim.completed);
        return ok(`Job type: ${sim.jobs.shift() ?? 'None'}\n`);
      case 'backup-begin': {
        const xml = readFileSync(opt(rest, '--backupxml'), 'utf8');
        const file = /<target file='([^']+)'/.exec(xml)![1]!;
        if (sim.backupWrites) writeFileSync(file, 'qcow2 bytes');
        return ok('Backup started');
      }
      case 'domjobabort':
        sim.jobs = [];
        return ok();
      default:
        return fail(`unexpected virsh ${verb}`);
    }
  };
  const ops = new DiskOps({
    uri: 'qemu:///system',
    run,
    domainXml: async (_name, inactive) =>
      sim.state === null
        ? null
        : domainXmlOf(inactive || sim.state !== 'running' ? sim.config : sim.live),
    getState: async () => sim.state,
  });
  return { sim, ops };
}

const vol = (target: string, path = `/v/${target}.qcow2`): AttachDiskSpec => ({
  path,
  format: 'qcow2',
  diskType: 'file',
  target,
});

describe('DiskOps (simulated libvirt)', () => {
  it('attaches to config and live in one call, then is idempotent', async () => {
    const { sim, ops } = simulator();
    expect(await ops.attachDisk('d', vol('vdb'), { live: true })).toEqual({
      config: 'attached',
      live: 'attached',
    });
    expect(sim.calls).toEqual(['attach-device --domain d --file --config --live']);
    sim.calls.length = 0;
    expect(await ops.attachDisk('d', vol('vdb'), { live: true })).toEqual({
      config: 'present',
      live: 'present',
    });
    expect(sim.calls).toEqual([]);
  });

  it('finishes a half-done attach (config only) and attaches config-only when stopped', async () => {
    const { sim, ops } = simulator();
    sim.config.push({ target: 'vdb', path: '/v/vdb.qcow2' });
    expect(await ops.attachDisk('d', vol('vdb'), { live: true })).toEqual({
      config: 'present',
      live: 'attached',
    });
    expect(sim.calls).toEqual(['attach-device --domain d --file --live']);

    const off = simulator({ state: 'shutoff' });
    expect(await off.ops.attachDisk('d', vol('vdc'), { live: true })).toEqual({
      config: 'attached',
      live: 'not-running',
    });
    expect(off.sim.calls).toEqual(['attach-device --domain d --file --config']);
    expect(await off.ops.attachDisk('d', vol('vdd'), { live: false })).toMatchObject({
      live: 'not-requested',
    });
  });

  it('refuses a taken target and a source attached elsewhere', async () => {
    const { sim, ops } = simulator();
    await ops.attachDisk('d', vol('vdb'), { live: true });
    sim.calls.length = 0;
    expect(
      await asyncCodeOf(ops.attachDisk('d', vol('vdb', '/v/other.qcow2'), { live: true })),
    ).toBe('DiskTargetInUse');
    expect(await asyncCodeOf(ops.attachDisk('d', vol('vdc', '/v/vdb.qcow2'), { live: true }))).toBe(
      'DiskAlreadyAttached',
    );
    expect(sim.calls).toEqual([]);
    expect(await asyncCodeOf(ops.attachDisk('d', vol('vda'), { live: true }))).toBe(
      'InvalidDiskSpec',
    );
    const gone = simulator();
    gone.sim.state = null;
    expect(await asyncCodeOf(gone.ops.attachDisk('d', vol('vdb'), { live: true }))).toBe(
      'DomainNotFound',
    );
  });

  it('detaches live (waiting for the guest) then from the config; absent is fine', async () => {
    const { sim, ops } = simulator();
    await ops.attachDisk('d', vol('vdb'), { live: true });
    sim.calls.length = 0;
    expect(await ops.detachDisk('d', 'vdb', { live: true, timeoutMs: 1_000, pollMs: 10 })).toEqual({
      config: 'detached',
      live: 'detached',
    });
    expect(sim.calls).toEqual([
      'detach-disk --domain d --target vdb --live',
      'detach-disk --domain d --target vdb --config',
    ]);
    expect(await ops.detachDisk('d', 'vdb', { live: true, timeoutMs: 1_000 })).toEqual({
      config: 'absent',
      live: 'absent',
    });
  });

  it('times out when the guest never releases the disk, leaving it attached; force removes the config', async () => {
    const { sim, ops } = simulator({ guestAcksUnplug: false });
    await ops.attachDisk('d', vol('vdb'), { live: true });
    sim.calls.length = 0;
    const t0 = Date.now();
    expect(
      await asyncCodeOf(
        ops.detachDisk('d', 'vdb', { live: true, timeoutMs: 300, pollMs: 20, resendMs: 100 }),
      ),
    ).toBe('DetachTimeout');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(sim.calls.filter((c) => c.endsWith('--live')).length).toBeGreaterThanOrEqual(2); // resent
    expect(sim.config.map((d) => d.target)).toEqual(['vda', 'vdb']);
    expect(
      await ops.detachDisk('d', 'vdb', { live: true, timeoutMs: 100, pollMs: 20, force: true }),
    ).toEqual({ config: 'detached', live: 'pending' });
    expect(sim.config.map((d) => d.target)).toEqual(['vda']);
    expect(sim.live.map((d) => d.target)).toEqual(['vda', 'vdb']);
  });

  it('resizes only a running domain, only upwards', async () => {
    const { sim, ops } = simulator();
    expect(await ops.resizeDisk('d', 'vda', 2 * 1024 ** 3)).toBe('resized');
    expect(sim.calls).toContain(`blockresize --domain d --path vda --size ${2 * 1024 ** 3}B`);
    expect(await ops.resizeDisk('d', 'vda', 2 * 1024 ** 3)).toBe('unchanged');
    expect(await asyncCodeOf(ops.resizeDisk('d', 'vda', 1024 ** 3))).toBe('DiskShrinkNotSupported');
    expect(await asyncCodeOf(ops.resizeDisk('d', 'vda', 1000))).toBe('InvalidDiskSpec');
    sim.state = 'shutoff';
    expect(await asyncCodeOf(ops.resizeDisk('d', 'vda', 4 * 1024 ** 3))).toBe('DomainNotRunning');
  });

  it('sets I/O limits in the config and live, separately', async () => {
    const { sim, ops } = simulator();
    await ops.attachDisk('d', vol('vdb'), { live: true });
    sim.calls.length = 0;
    expect(await ops.setDiskIoTune('d', 'vdb', { totalIopsSec: 100 }, { live: true })).toEqual({
      config: true,
      live: true,
    });
    const limits = blkdeviotuneArgs({ totalIopsSec: 100 }).join(' ');
    expect(sim.calls).toEqual([
      `blkdeviotune --domain d --device vdb ${limits} --config`,
      `blkdeviotune --domain d --device vdb ${limits} --live`,
    ]);
    expect(await asyncCodeOf(ops.setDiskIoTune('d', 'vdx', {}, { live: true }))).toBe(
      'DiskNotFound',
    );
  });

  describe('backupDisk', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'minicloud-test-backup-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('waits for the job, checks it completed, links the file into place', async () => {
      const { sim, ops } = simulator();
      const dest = join(dir, 'snap-a.qcow2');
      sim.jobs = ['None', 'Unbounded', 'Unbounded'];
      const r = await ops.backupDisk('d', 'vda', dest, { timeoutMs: 5_000, pollMs: 5 });
      expect(r.created).toBe(true);
      expect(readFileSync(dest, 'utf8')).toBe('qcow2 bytes');
      expect(existsSync(`${dest}.partial`)).toBe(false);
      expect(sim.calls.filter((c) => c.startsWith('domjobinfo'))).toEqual([
        'domjobinfo --domain d',
        'domjobinfo --domain d',
        'domjobinfo --domain d',
        'domjobinfo --domain d',
        'domjobinfo --domain d --completed',
      ]);
      sim.calls.length = 0;
      expect(await ops.backupDisk('d', 'vda', dest, { timeoutMs: 5_000 })).toEqual({
        created: false,
        durationMs: 0,
      });
      expect(sim.calls).toEqual([]);
    });

    it('fails (and removes the partial file) when the job failed', async () => {
      const { sim, ops } = simulator();
      const dest = join(dir, 'snap-b.qcow2');
      sim.completed =
        'Job type: Failed\nOperation: Backup\nError message: No space left on device\n';
      const err = await ops.backupDisk('d', 'vda', dest, { timeoutMs: 5_000 }).catch((e) => e);
      expect(err).toBeInstanceOf(HypervisorError);
      expect(err.code).toBe('BackupFailed');
      expect(err.message).toMatch(/Failed.*No space left/);
      expect(existsSync(dest)).toBe(false);
      expect(existsSync(`${dest}.partial`)).toBe(false);
    });

    it('aborts the job on timeout', async () => {
      const { sim, ops } = simulator();
      const dest = join(dir, 'snap-c.qcow2');
      sim.jobs = ['None', ...Array(1000).fill('Unbounded')];
      expect(
        await asyncCodeOf(ops.backupDisk('d', 'vda', dest, { timeoutMs: 100, pollMs: 5 })),
      ).toBe('BackupTimeout');
      expect(sim.calls).toContain('domjobabort --domain d');
      expect(existsSync(dest) || existsSync(`${dest}.partial`)).toBe(false);
    });

    it('needs a running domain and an existing disk', async () => {
      const { sim, ops } = simulator();
      expect(
        await asyncCodeOf(ops.backupDisk('d', 'vdq', join(dir, 'x.qcow2'), { timeoutMs: 100 })),
      ).toBe('DiskNotFound');
      sim.state = 'shutoff';
      expect(
        await asyncCodeOf(ops.backupDisk('d', 'vda', join(dir, 'x.qcow2'), { timeoutMs: 100 })),
      ).toBe('DomainNotRunning');
    });
  });

  it('refuses the test driver (virsh cannot reach it)', async () => {
    const ops = new DiskOps({
      uri: 'test:///default',
      run: async () => ({ stdout: '', stderr: '', exitCode: 0 }),
      domainXml: async () => domainXmlOf([{ target: 'vda', path: '/v/a' }]),
      getState: async () => 'running',
    });
    expect(await asyncCodeOf(ops.attachDisk('d', vol('vdb'), { live: true }))).toBe('NotSupported');
    expect((await ops.listDisks('d', { live: true })).map((d) => d.target)).toEqual(['vda']);
  });
});
