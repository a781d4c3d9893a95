import {
  assertSafePath,
  IOTUNE_FIELDS,
  renderDiskLines,
  validateDisk,
  xmlEscape,
  type DiskFormat,
  type DiskSpec,
  type DiskType,
  type IoTune,
} from './domain-xml.js';
import { HypervisorError } from './errors.js';
import { child, childrenNamed, parseXml, XmlParseError, type XmlElement } from './xml.js';

/**
 * Pure XML for disk hot-plug and backups: the `<disk>` device document given to
 * `virsh attach-device`, the disks read back from a domain's XML, the `<domainbackup>` document
 * of a live snapshot, and the text virsh prints about jobs and block devices.
 */

/** A disk to hot-plug: a volume at vdb..vdz (vda is the root disk, attached at define time). */
export interface AttachDiskSpec {
  /** Absolute path: qcow2/raw file, or block device (LV) when diskType is 'block'. */
  path: string;
  format: DiskFormat;
  diskType: DiskType;
  /** vdb..vdz */
  target: string;
  /** virtio-blk serial, 1-20 of [A-Za-z0-9_.-] (EC2/Nitro style: the volume id without '-'). */
  serial?: string;
  iotune?: IoTune;
  readOnly?: boolean;
}

const HOTPLUG_TARGET_RE = /^vd[b-z]$/;
export const DISK_TARGET_RE = /^vd[a-z]$/;

export function validateAttachDisk(disk: AttachDiskSpec): void {
  if (typeof disk !== 'object' || disk === null) {
    throw new HypervisorError('InvalidDiskSpec', 'disk must be an object');
  }
  if (disk.diskType !== 'file' && disk.diskType !== 'block') {
    throw new HypervisorError(
      'InvalidDiskSpec',
      `invalid disk diskType: ${JSON.stringify(disk.diskType)}`,
    );
  }
  validateDisk(disk as DiskSpec, 'InvalidDiskSpec');
  if (!HOTPLUG_TARGET_RE.test(disk.target)) {
    throw new HypervisorError(
      'InvalidDiskSpec',
      `invalid hot-plug target ${JSON.stringify(disk.target)} (vdb..vdz)`,
    );
  }
}

/** The `<disk>` device XML of `disk` (validated; HypervisorError 'InvalidDiskSpec'). */
export function buildDiskXml(disk: AttachDiskSpec): string {
  validateAttachDisk(disk);
  return renderDiskLines(disk, '').join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// reading disks back

export interface DomainDisk {
  target: string;
  /** file or dev of the top-level source; null for an empty drive or a network disk. */
  path: string | null;
  /** The driver type (qcow2, raw, ...); null when absent. */
  format: string | null;
  /** disk type attribute: file, block, network, volume, ... */
  diskType: string;
  /** device attribute: disk, cdrom, ... */
  device: string;
  serial: string | null;
  readOnly: boolean;
  /** The non-zero limits among the six IoTune fields (burst limits are ignored). */
  iotune: IoTune;
  /** libvirt's device alias (live XML only), e.g. virtio-disk2. */
  alias: string | null;
  /** bus of the target (virtio, sata, ...). */
  bus: string | null;
}

function nonNegativeInt(text: string): number | null {
  const t = text.trim();
  return /^[0-9]+$/.test(t) && Number.isSafeInteger(Number(t)) ? Number(t) : null;
}

function readDisk(el: XmlElement): DomainDisk | null {
  const target = child(el, 'target')?.attrs.dev;
  if (!target) return null;
  const source = child(el, 'source');
  const path = source?.attrs.file ?? source?.attrs.dev ?? null;
  const iotune: IoTune = {};
  const io = child(el, 'iotune');
  for (const [key, name] of IOTUNE_FIELDS) {
    const v = nonNegativeInt(child(io, name)?.text ?? '');
    if (v !== null && v > 0) iotune[key] = v;
  }
  const serial = child(el, 'serial')?.text.trim();
  return {
    target,
    path: path || null,
    format: child(el, 'driver')?.attrs.type ?? null,
    diskType: el.attrs.type ?? 'file',
    device: el.attrs.device ?? 'disk',
    serial: serial ? serial : null,
    readOnly: child(el, 'readonly') !== undefined,
    iotune,
    alias: child(el, 'alias')?.attrs.name ?? null,
    bus: child(el, 'target')?.attrs.bus ?? null,
  };
}

/**
 * The disks of a domain XML (as libvirt prints it, live or inactive). Only the top-level source
 * counts: `<backingStore>` and `<mirror>` sources are nested elements and ignored. Pure.
 */
export function parseDomainDisks(xml: string): DomainDisk[] {
  let root: XmlElement;
  try {
    root = parseXml(xml);
  } catch (e) {
    if (e instanceof XmlParseError) {
      throw new HypervisorError('LibvirtError', `unreadable domain XML: ${e.message}`, e);
    }
    throw e;
  }
  if (root.name !== 'domain') {
    throw new HypervisorError('LibvirtError', `expected <domain>, got <${root.name}>`);
  }
  return childrenNamed(child(root, 'devices'), 'disk')
    .map(readDisk)
    .filter((d): d is DomainDisk => d !== null);
}

// ---------------------------------------------------------------------------------------------
// backups (live snapshots)

/**
 * `<domainbackup mode='push'>` copying `target` into a new qcow2 file at `destFile`, and nothing
 * else (every other disk listed with backup='no': libvirt backs up all disks by default).
 */
export function buildBackupXml(allTargets: string[], target: string, destFile: string): string {
  const targets = [...new Set(allTargets)];
  for (const t of [...targets, target]) {
    if (!DISK_TARGET_RE.test(t) && !/^(sd|hd)[a-z]{1,2}$/.test(t)) {
      throw new HypervisorError('InvalidDiskSpec', `invalid disk target ${JSON.stringify(t)}`);
    }
  }
  if (!targets.includes(target)) {
    throw new HypervisorError('DiskNotFound', `no disk ${target} to back up`);
  }
  assertSafePath(destFile, 'backup file');
  const e = xmlEscape;
  const lines = [`<domainbackup mode='push'>`, `  <disks>`];
  for (const t of targets) {
    if (t === target) {
      lines.push(
        `    <disk name='${e(t)}' backup='yes' type='file'>`,
        `      <target file='${e(destFile)}'/>`,
        `      <driver type='qcow2'/>`,
        `    </disk>`,
      );
    } else {
      lines.push(`    <disk name='${e(t)}' backup='no'/>`);
    }
  }
  lines.push(`  </disks>`, `</domainbackup>`, ``);
  return lines.join('\n');
}

export interface DomJobInfo {
  /** 'None', 'Bounded', 'Unbounded', 'Completed', 'Failed', 'Cancelled' (virsh's words). */
  type: string;
  /** e.g. 'Backup'; null when virsh printed none. */
  operation: string | null;
  errorMessage: string | null;
  /** Every "Key: value" line. */
  fields: Record<string, string>;
}

/** Parse `virsh domjobinfo` output. Pure. */
export function parseDomJobInfo(text: string): DomJobInfo {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z][A-Za-z0-9 ]*?):\s*(.*?)\s*$/.exec(line);
    if (m) fields[m[1] as string] = m[2] as string;
  }
  return {
    type: fields['Job type'] ?? 'None',
    operation: fields['Operation'] ?? null,
    errorMessage: fields['Error message'] ?? null,
    fields,
  };
}

export interface DomBlkInfo {
  capacity: number;
  allocation: number;
  physical: number;
}

/** Parse `virsh domblkinfo DOMAIN TARGET` (bytes). Pure. */
export function parseDomBlkInfo(text: string): DomBlkInfo {
  const get = (key: string) => {
    const m = new RegExp(`^${key}:\\s*([0-9]+)\\s*$`, 'm').exec(text);
    if (!m) throw new HypervisorError('LibvirtError', `domblkinfo printed no ${key}: ${text}`);
    return Number(m[1]);
  };
  return { capacity: get('Capacity'), allocation: get('Allocation'), physical: get('Physical') };
}
