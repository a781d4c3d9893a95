import { run as hostRun, type CommandRunner } from '@minicloud/host';
import { HypervisorError } from './errors.js';

/** The user and group QEMU runs as: the files it opens must be reachable by them. */
export interface QemuProcessOwner {
  uid: number;
  gid: number;
}

/**
 * QEMU's user and group from libvirt's capabilities (the DAC security model's base label, e.g.
 * `<baselabel type='kvm'>+64055:+64055</baselabel>`), or null when libvirt labels no files for
 * it (the test driver, or no DAC model). Pure.
 */
export function parseQemuProcessOwner(
  capabilitiesXml: string,
  virtType: string,
): QemuProcessOwner | null {
  for (const [, block] of capabilitiesXml.matchAll(/<secmodel>([\s\S]*?)<\/secmodel>/g)) {
    if (!/<model>\s*dac\s*<\/model>/.test(block!)) continue;
    const labels = [...block!.matchAll(/<baselabel type='([^']*)'>([^<]*)<\/baselabel>/g)];
    const label = (labels.find(([, type]) => type === virtType) ?? labels[0])?.[2];
    if (label === undefined) return null;
    const m = /^\+?(\d+):\+?(\d+)$/.exec(label.trim());
    if (!m)
      throw new HypervisorError('LibvirtError', `unexpected DAC label in capabilities: ${label}`);
    return { uid: Number(m[1]), gid: Number(m[2]) };
  }
  return null;
}

/** QEMU's user and group on this libvirt connection (see parseQemuProcessOwner). */
export async function qemuProcessOwner(
  uri: string,
  virtType: string,
  run: CommandRunner = hostRun,
): Promise<QemuProcessOwner | null> {
  const { stdout } = await run('virsh', ['-c', uri, 'capabilities'], { timeoutMs: 30_000 });
  return parseQemuProcessOwner(stdout, virtType);
}
