/**
 * Read ISO images with a real guest kernel's isofs, for hosts whose own kernel has none: the
 * minicloud test image's kernel and initramfs (Debian cloud kernel + busybox, isofs as a module)
 * are booted straight under QEMU (TCG, no libvirt, no network) with the images as virtio disks,
 * and an /init of ours, appended to the initramfs, mounts each one as Rock Ridge, as Joliet
 * (norock) and as plain ISO 9660 (norock,nojoliet) and prints every file's mode and SHA-256.
 */
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '@minicloud/host';

export const MOUNT_MODES = ['ro', 'ro,norock', 'ro,norock,nojoliet'] as const;
export type MountMode = (typeof MOUNT_MODES)[number];

/** One file as the guest read it: `name mode sha256`, e.g. `meta-data 644 3f9a...`. */
export type GuestListing = Record<MountMode, string[]>;

const INIT = `#!/bin/busybox sh
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
while read -r mod; do [ -n "$mod" ] && insmod "/lib/modules/$mod.ko" 2>/dev/null; done < /lib/modules/load-order
mkdir -p /mnt
for dev in $(cd /sys/block && ls -d vd*); do
  for opt in ${MOUNT_MODES.join(' ')}; do
    echo "@@ $dev $opt"
    mount -t iso9660 -o $opt /dev/$dev /mnt || echo "@@ mount failed"
    for f in /mnt/*; do
      [ -f "$f" ] && echo "@F \${f#/mnt/} $(stat -c %a "$f") $(sha256sum < "$f" | cut -d' ' -f1)"
    done
    umount /mnt
  done
done
echo "@@ done"
poweroff -f
`;

/** The kernel and initramfs from /boot on the test image's root partition (the first one). */
async function extractBoot(
  image: string,
  dir: string,
): Promise<{ kernel: string; initrd: string }> {
  const raw = join(dir, 'disk.raw');
  await run('qemu-img', ['convert', '-O', 'raw', image, raw], { timeoutMs: 60_000 });
  const mbr = (await readFile(raw)).subarray(0, 512);
  const offset = mbr.readUInt32LE(0x1c6) * 512; // partition 1's first sector
  const kernel = join(dir, 'vmlinuz');
  const initrd = join(dir, 'initrd.img');
  for (const [from, to] of [
    ['/boot/vmlinuz', kernel],
    ['/boot/initrd.img', initrd],
  ] as const) {
    await run('debugfs', ['-R', `dump ${from} ${to}`, `${raw}?offset=${offset}`]);
  }
  await rm(raw);
  return { kernel, initrd };
}

/**
 * Boot the test image's kernel with `isos` attached (vda, vdb, ... in order) and return what it
 * read from each. Temp files live in a minicloud-test dir, removed at the end.
 */
export async function readWithGuestKernel(
  testImage: string,
  isos: string[],
): Promise<GuestListing[]> {
  const dir = await mkdtemp('/tmp/minicloud-test-guestkernel-');
  try {
    const { kernel, initrd } = await extractBoot(testImage, dir);
    // A second cpio archive after the first: its /init replaces the image's.
    const stage = join(dir, 'stage');
    await mkdir(stage);
    await writeFile(join(stage, 'init'), INIT, { mode: 0o755 });
    const extra = join(dir, 'init.cpio');
    await run('cpio', ['-o', '-H', 'newc', '-R', '0:0', '-O', extra], {
      cwd: stage,
      input: 'init\n',
    });
    const size = (await readFile(initrd)).length;
    await appendFile(initrd, Buffer.alloc((4 - (size % 4)) % 4)); // archives start 4-aligned
    await appendFile(initrd, await readFile(extra));

    const drives = isos.flatMap((iso) => [
      '-drive',
      `file=${iso},format=raw,if=virtio,readonly=on`,
    ]);
    const { stdout } = await run(
      'qemu-system-x86_64',
      [
        ...['-accel', 'tcg', '-m', '256', '-nographic', '-no-reboot', '-nic', 'none'],
        ...['-kernel', kernel, '-initrd', initrd],
        ...['-append', 'console=ttyS0 quiet panic=-1'],
        ...drives,
      ],
      { timeoutMs: 180_000 },
    );
    return parse(stdout.replaceAll('\r', ''), isos.length);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function parse(serial: string, disks: number): GuestListing[] {
  if (!serial.includes('@@ done')) throw new Error(`the guest did not finish:\n${serial}`);
  if (serial.includes('@@ mount failed'))
    throw new Error(`a mount failed in the guest:\n${serial}`);
  const out: GuestListing[] = [];
  let current: string[] | undefined;
  for (const line of serial.split('\n')) {
    const head = /@@ vd([a-z]) (\S+)$/.exec(line); // the first may follow the firmware's escapes
    if (head) {
      const disk = head[1]!.charCodeAt(0) - 'a'.charCodeAt(0);
      out[disk] ??= { ro: [], 'ro,norock': [], 'ro,norock,nojoliet': [] };
      current = out[disk]![head[2] as MountMode];
    } else if (line.startsWith('@F ') && current) {
      current.push(line.slice(3));
    }
  }
  if (out.length !== disks) throw new Error(`the guest saw ${out.length} disks, not ${disks}`);
  return out;
}
