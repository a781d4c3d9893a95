import { createHash } from 'node:crypto';
import { HypervisorError } from './errors.js';

/**
 * The libvirt domain XML of a minicloud instance. Pure: no I/O, every interpolated value is
 * validated first and XML-escaped as it is written. Golden tests pin the output.
 */

export type VirtType = 'kvm' | 'qemu' | 'test';
export type DiskFormat = 'qcow2' | 'raw';

export type DiskType = 'file' | 'block';

/**
 * I/O limits of one disk (libvirt `<iotune>`, QEMU throttling), per second. 0 or absent = no
 * limit. A total limit and a read/write limit of the same kind cannot both be set.
 */
export interface IoTune {
  totalIopsSec?: number;
  readIopsSec?: number;
  writeIopsSec?: number;
  totalBytesSec?: number;
  readBytesSec?: number;
  writeBytesSec?: number;
}

/** IoTune fields and their libvirt element names, in libvirt's order. */
export const IOTUNE_FIELDS = [
  ['totalBytesSec', 'total_bytes_sec'],
  ['readBytesSec', 'read_bytes_sec'],
  ['writeBytesSec', 'write_bytes_sec'],
  ['totalIopsSec', 'total_iops_sec'],
  ['readIopsSec', 'read_iops_sec'],
  ['writeIopsSec', 'write_iops_sec'],
] as const satisfies readonly (readonly [keyof IoTune, string])[];

/** libvirt refuses iotune values above 1e15. */
export const IOTUNE_MAX = 1_000_000_000_000_000;

export interface DiskSpec {
  /** Absolute host path of the image file, or of the block device when diskType is 'block'. */
  path: string;
  format: DiskFormat;
  /** Guest device name: vda, vdb, ... (virtio-blk). */
  target: string;
  readOnly?: boolean;
  /** virtio-blk serial (guest sees it in /dev/disk/by-id): 1-20 of [A-Za-z0-9_.-]. */
  serial?: string;
  /**
   * 'file' (default): `<disk type='file'>`, `<source file>`. 'block': `<disk type='block'>`,
   * `<source dev>` (an LVM volume), opened with cache='none' io='native'.
   */
  diskType?: DiskType;
  /** I/O limits (EBS volume types become these). */
  iotune?: IoTune;
}

export interface NicSpec {
  /** Pre-created tap (the network driver creates it, attaches it to a bridge and sets it up). */
  tap: string;
  mac: string;
}

export interface InstanceMetadata {
  instanceId: string;
  instanceType: string;
  imageId: string;
}

export interface DomainSpec {
  name: string;
  uuid: string;
  virtType: VirtType;
  vcpus: number;
  memoryMiB: number;
  disks: DiskSpec[];
  nics: NicSpec[];
  /** Serial console (ttyS0) output is appended here by virtlogd, across boots. */
  consoleLogPath: string;
  metadata: InstanceMetadata;
}

export const MINICLOUD_XMLNS = 'https://minicloud.dev/xmlns/instance/1';

export interface MinicloudMetadata extends InstanceMetadata {
  /** sha256 of the XML buildDomainXml produced (with an empty hash); detects config drift. */
  configHash: string | null;
}

// ---------------------------------------------------------------------------------------------
// validation

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const PATH_RE = /^\/[A-Za-z0-9_.+@/:-]*$/;
const TARGET_RE = /^vd[a-z]$/;
const SERIAL_RE = /^[A-Za-z0-9_.-]{1,20}$/;
const TAP_RE = /^[A-Za-z0-9_.-]{1,15}$/;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const INSTANCE_ID_RE = /^i-[0-9a-f]{8,17}$/;
const IMAGE_ID_RE = /^ami-[0-9a-f]{8,17}$/;
const INSTANCE_TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

type SpecErrorCode = 'InvalidDomainSpec' | 'InvalidDiskSpec';

function check(
  ok: boolean,
  what: string,
  value: unknown,
  code: SpecErrorCode = 'InvalidDomainSpec',
): void {
  if (!ok) throw new HypervisorError(code, `invalid ${what}: ${JSON.stringify(value)}`);
}

function checkPath(path: string, what: string, code: SpecErrorCode = 'InvalidDomainSpec'): void {
  check(
    typeof path === 'string' &&
      PATH_RE.test(path) &&
      path.length <= 4096 &&
      !path.split('/').includes('..') &&
      !path.endsWith('/'),
    what,
    path,
    code,
  );
}

/** Throws HypervisorError(code) unless `path` is an absolute path safe to put in XML. */
export function assertSafePath(
  path: string,
  what: string,
  code: SpecErrorCode = 'InvalidDiskSpec',
): void {
  checkPath(path, what, code);
}

/** Throws HypervisorError(code) naming the first bad limit. */
export function validateIoTune(
  iotune: IoTune,
  code: SpecErrorCode = 'InvalidDiskSpec',
  what = 'iotune',
): void {
  check(typeof iotune === 'object' && iotune !== null, what, iotune, code);
  const known = new Set<string>(IOTUNE_FIELDS.map(([k]) => k));
  for (const key of Object.keys(iotune)) check(known.has(key), `${what} field`, key, code);
  for (const [key] of IOTUNE_FIELDS) {
    const v = iotune[key];
    check(
      v === undefined || (Number.isSafeInteger(v) && v >= 0 && v <= IOTUNE_MAX),
      `${what}.${key}`,
      v,
      code,
    );
  }
  const set = (k: keyof IoTune) => (iotune[k] ?? 0) > 0;
  check(
    !(set('totalBytesSec') && (set('readBytesSec') || set('writeBytesSec'))),
    `${what}: totalBytesSec together with readBytesSec/writeBytesSec`,
    iotune,
    code,
  );
  check(
    !(set('totalIopsSec') && (set('readIopsSec') || set('writeIopsSec'))),
    `${what}: totalIopsSec together with readIopsSec/writeIopsSec`,
    iotune,
    code,
  );
}

/** Throws HypervisorError(code) naming the first bad field of one disk. */
export function validateDisk(d: DiskSpec, code: SpecErrorCode = 'InvalidDomainSpec'): void {
  check(typeof d === 'object' && d !== null, 'disk', d, code);
  check(
    d.diskType === undefined || d.diskType === 'file' || d.diskType === 'block',
    'disk diskType',
    d.diskType,
    code,
  );
  checkPath(d.path, 'disk path', code);
  check(d.format === 'qcow2' || d.format === 'raw', 'disk format', d.format, code);
  check(typeof d.target === 'string' && TARGET_RE.test(d.target), 'disk target', d.target, code);
  check(
    d.readOnly === undefined || typeof d.readOnly === 'boolean',
    'disk readOnly',
    d.readOnly,
    code,
  );
  check(
    d.serial === undefined || (typeof d.serial === 'string' && SERIAL_RE.test(d.serial)),
    'disk serial',
    d.serial,
    code,
  );
  if (d.iotune !== undefined) validateIoTune(d.iotune, code, 'disk iotune');
}

/** Throws HypervisorError('InvalidDomainSpec') naming the first bad field. */
export function validateDomainSpec(spec: DomainSpec): void {
  check(typeof spec.name === 'string' && NAME_RE.test(spec.name), 'domain name', spec.name);
  check(
    typeof spec.uuid === 'string' && UUID_RE.test(spec.uuid),
    'uuid (lowercase RFC 4122)',
    spec.uuid,
  );
  check(['kvm', 'qemu', 'test'].includes(spec.virtType), 'virtType', spec.virtType);
  check(Number.isInteger(spec.vcpus) && spec.vcpus >= 1 && spec.vcpus <= 255, 'vcpus', spec.vcpus);
  check(
    Number.isInteger(spec.memoryMiB) && spec.memoryMiB >= 16 && spec.memoryMiB <= 16 * 1024 * 1024,
    'memoryMiB',
    spec.memoryMiB,
  );
  check(
    Array.isArray(spec.disks) && spec.disks.length >= 1 && spec.disks.length <= 26,
    'disks',
    spec.disks?.length,
  );
  const targets = new Set<string>();
  for (const d of spec.disks) {
    validateDisk(d);
    check(!targets.has(d.target), 'disk target (duplicate)', d.target);
    targets.add(d.target);
  }
  check(Array.isArray(spec.nics) && spec.nics.length <= 8, 'nics', spec.nics?.length);
  const taps = new Set<string>();
  for (const n of spec.nics) {
    check(typeof n.tap === 'string' && TAP_RE.test(n.tap), 'nic tap', n.tap);
    check(!taps.has(n.tap), 'nic tap (duplicate)', n.tap);
    taps.add(n.tap);
    const mac = typeof n.mac === 'string' ? n.mac.toLowerCase() : '';
    // A guest MAC must be unicast (I/G bit of the first octet clear).
    check(
      MAC_RE.test(mac) && (parseInt(mac.slice(0, 2), 16) & 1) === 0,
      'nic mac (unicast)',
      n.mac,
    );
  }
  checkPath(spec.consoleLogPath, 'consoleLogPath');
  const md = spec.metadata;
  check(typeof md === 'object' && md !== null, 'metadata', md);
  check(
    typeof md.instanceId === 'string' && INSTANCE_ID_RE.test(md.instanceId),
    'metadata.instanceId',
    md.instanceId,
  );
  check(
    typeof md.instanceType === 'string' && INSTANCE_TYPE_RE.test(md.instanceType),
    'metadata.instanceType',
    md.instanceType,
  );
  check(
    typeof md.imageId === 'string' && IMAGE_ID_RE.test(md.imageId),
    'metadata.imageId',
    md.imageId,
  );
}

// ---------------------------------------------------------------------------------------------
// XML

const XML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
};

/** Escape for both text content and (single- or double-quoted) attribute values. */
export function xmlEscape(value: string | number): string {
  return String(value).replace(/[&<>"']/g, (c) => XML_ESCAPES[c] ?? c);
}

export function xmlUnescape(value: string): string {
  return value.replace(/&(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);/g, (_m, ent: string) => {
    switch (ent) {
      case 'amp':
        return '&';
      case 'lt':
        return '<';
      case 'gt':
        return '>';
      case 'quot':
        return '"';
      case 'apos':
        return "'";
      default:
        return String.fromCodePoint(
          ent.startsWith('#x') ? parseInt(ent.slice(2), 16) : parseInt(ent.slice(1), 10),
        );
    }
  });
}

/**
 * The `<disk>` element of one disk, each line prefixed with `indent`. File disks keep QEMU's
 * default cache mode; block devices (LVs) are opened with O_DIRECT + native AIO (no host page
 * cache between the guest and the device, as usual for LVM-backed guests).
 */
export function renderDiskLines(d: DiskSpec, indent: string): string[] {
  const e = xmlEscape;
  const block = d.diskType === 'block';
  const lines = [
    `<disk type='${block ? 'block' : 'file'}' device='disk'>`,
    block
      ? `  <driver name='qemu' type='${e(d.format)}' cache='none' io='native'/>`
      : `  <driver name='qemu' type='${e(d.format)}'/>`,
    block ? `  <source dev='${e(d.path)}'/>` : `  <source file='${e(d.path)}'/>`,
    `  <target dev='${e(d.target)}' bus='virtio'/>`,
  ];
  const limits = IOTUNE_FIELDS.filter(([k]) => (d.iotune?.[k] ?? 0) > 0);
  if (limits.length > 0) {
    lines.push(`  <iotune>`);
    for (const [k, el] of limits) lines.push(`    <${el}>${e(d.iotune![k]!)}</${el}>`);
    lines.push(`  </iotune>`);
  }
  if (d.readOnly) lines.push(`  <readonly/>`);
  if (d.serial !== undefined) lines.push(`  <serial>${e(d.serial)}</serial>`);
  lines.push(`</disk>`);
  return lines.map((l) => indent + l);
}

function cpuXml(virtType: VirtType): string[] {
  switch (virtType) {
    // Real KVM: expose the host CPU (fastest, and what cloud images expect).
    case 'kvm':
      return [`  <cpu mode='host-passthrough' check='none' migratable='on'/>`];
    // TCG: qemu64 is QEMU's TCG default and boots a Debian cloud kernel in ~2 s here; nothing
    // KVM-only (no host-passthrough/host-model, no kvm features) may appear.
    case 'qemu':
    case 'test':
      return [
        `  <cpu mode='custom' match='exact' check='none'>`,
        `    <model fallback='forbid'>qemu64</model>`,
        `  </cpu>`,
      ];
  }
}

function render(spec: DomainSpec, configHash: string): string {
  const e = xmlEscape;
  const md = spec.metadata;
  const lines: string[] = [
    `<domain type='${e(spec.virtType)}'>`,
    `  <name>${e(spec.name)}</name>`,
    `  <uuid>${e(spec.uuid)}</uuid>`,
    `  <metadata>`,
    `    <minicloud:instance xmlns:minicloud="${MINICLOUD_XMLNS}">`,
    `      <minicloud:instanceId>${e(md.instanceId)}</minicloud:instanceId>`,
    `      <minicloud:instanceType>${e(md.instanceType)}</minicloud:instanceType>`,
    `      <minicloud:imageId>${e(md.imageId)}</minicloud:imageId>`,
    `      <minicloud:configHash>${e(configHash)}</minicloud:configHash>`,
    `    </minicloud:instance>`,
    `  </metadata>`,
    `  <memory unit='MiB'>${e(spec.memoryMiB)}</memory>`,
    `  <vcpu>${e(spec.vcpus)}</vcpu>`,
    `  <os>`,
    `    <type arch='x86_64'>hvm</type>`,
    `    <boot dev='hd'/>`,
    `  </os>`,
    `  <features>`,
    `    <acpi/>`,
    `    <apic/>`,
    `  </features>`,
    ...cpuXml(spec.virtType),
    `  <clock offset='utc'/>`,
    `  <on_poweroff>destroy</on_poweroff>`,
    `  <on_reboot>restart</on_reboot>`,
    `  <on_crash>destroy</on_crash>`,
    `  <devices>`,
  ];
  for (const d of spec.disks) lines.push(...renderDiskLines(d, '    '));
  for (const n of spec.nics) {
    lines.push(
      `    <interface type='ethernet'>`,
      `      <mac address='${e(n.mac.toLowerCase())}'/>`,
      `      <target dev='${e(n.tap)}' managed='no'/>`,
      `      <model type='virtio'/>`,
      `    </interface>`,
    );
  }
  lines.push(
    // ttyS0 on a pty (so `virsh console` works) whose output virtlogd appends to the log file;
    // append='on' keeps earlier boots' output (virtlogd rotates the file at its max_size).
    `    <serial type='pty'>`,
    `      <log file='${e(spec.consoleLogPath)}' append='on'/>`,
    `      <target port='0'/>`,
    `    </serial>`,
    `    <console type='pty'>`,
    `      <target type='serial' port='0'/>`,
    `    </console>`,
    `    <controller type='usb' model='none'/>`,
    `    <memballoon model='none'/>`,
    `    <rng model='virtio'>`,
    `      <backend model='random'>/dev/urandom</backend>`,
    `    </rng>`,
    `  </devices>`,
    `</domain>`,
    ``,
  );
  return lines.join('\n');
}

/**
 * The domain XML for `spec`. Validates the spec (HypervisorError 'InvalidDomainSpec'), and embeds
 * in the minicloud metadata a configHash (sha256 of the same document with an empty hash) that
 * `LibvirtHypervisor.ensureDefined` compares to decide whether a defined domain is up to date
 * (libvirt normalises XML, so comparing documents directly would never match).
 */
export function buildDomainXml(spec: DomainSpec): string {
  validateDomainSpec(spec);
  const hash = createHash('sha256').update(render(spec, '')).digest('hex');
  return render(spec, hash);
}

/** The configHash buildDomainXml embeds for `spec`. */
export function domainConfigHash(spec: DomainSpec): string {
  validateDomainSpec(spec);
  return createHash('sha256').update(render(spec, '')).digest('hex');
}

/**
 * Read the minicloud metadata back from a domain XML (as libvirt returns it: the namespace prefix
 * may differ, whitespace is re-indented). Null when the domain has none (not ours) or it is
 * incomplete.
 */
export function parseMinicloudMetadata(xml: string): MinicloudMetadata | null {
  const nsUri = MINICLOUD_XMLNS.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const open = new RegExp(`<([A-Za-z_][\\w.-]*):instance\\s+xmlns:\\1=(["'])${nsUri}\\2\\s*>`);
  const m = open.exec(xml);
  if (!m) return null;
  const prefix = m[1] as string;
  const start = m.index + m[0].length;
  const end = xml.indexOf(`</${prefix}:instance>`, start);
  if (end < 0) return null;
  const body = xml.slice(start, end);
  const field = (name: string): string | null => {
    const f = new RegExp(`<${prefix}:${name}\\s*>([^<]*)</${prefix}:${name}\\s*>`).exec(body);
    if (f) return xmlUnescape(f[1] as string).trim();
    return new RegExp(`<${prefix}:${name}\\s*/>`).test(body) ? '' : null;
  };
  const instanceId = field('instanceId');
  const instanceType = field('instanceType');
  const imageId = field('imageId');
  if (!instanceId || instanceType === null || imageId === null) return null;
  const configHash = field('configHash');
  return { instanceId, instanceType, imageId, configHash: configHash || null };
}
