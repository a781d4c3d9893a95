#!/usr/bin/env bash
# Build the minicloud test guest image: a small BIOS-bootable qcow2 made only
# from Debian packages (Debian 12 cloud kernel, busybox-static, dropbear-bin).
#
#   scripts/build-test-image.sh OUTPUT.qcow2
#
# Boot chain: SeaBIOS -> syslinux mbr.bin -> extlinux (ext4 partition 1,
# label minicloud-root) -> vmlinuz + initrd.img (busybox; insmods the virtio,
# isofs and ACPI button modules) -> switch_root to the ext4 root -> busybox
# init (/etc/inittab) -> rcS (NoCloud seed, hostname, keys, DHCP, host keys)
# -> dropbear on port 22 -> rc.final ("sshd ready", user-data once per
# instance-id). The ACPI power button (virsh shutdown/reboot, QEMU
# system_powerdown) is handled by busybox acpid -> poweroff.
# Helper files live in scripts/test-image/ (rootfs/ is copied verbatim).
#
# For the EBS volume tests the image also contains (copied with their shared
# libraries from this host's Debian packages):
#   - e2fsprogs: mke2fs (mkfs.ext2/3/4, /etc/mke2fs.conf), e2fsck (fsck.ext2/
#     3/4), resize2fs (online grow of a mounted ext4), tune2fs (e2label),
#     dumpe2fs; util-linux: blkid, findmnt, mountpoint, flock -- in /sbin and
#     /usr/sbin resp. /usr/bin, replacing busybox applets of the same name.
#   - GNU coreutils dd (iflag/oflag=direct, conv=fsync), sync, timeout, nohup
#     in /usr/bin (/bin/dd, /bin/sync link there); md5sum/sha256sum/wc/
#     blockdev/fdisk/fsfreeze are busybox's. root's login shell is bash, so
#     commands run over SSH find these on PATH. Busybox ash (/bin/sh, #!/bin/sh
#     scripts, "sh -c") always prefers its own applets: there, dd/sync/
#     timeout are busybox's unless called as /usr/bin/dd etc.
#   - Hot-plug: the cloud kernel has ACPI PCI hot-plug (acpiphp) built in, so
#     virtio-blk disks hot-(un)plug on machine 'pc' with nothing loaded;
#     devtmpfs creates/removes /dev/vdX (names: lowest free letter, not the
#     libvirt target name; find a volume by /sys/block/vdX/serial). A capacity
#     change (block_resize / virsh blockresize) shows in /sys/block/vdX/size.
#   - mdev -d (started by rcS, /etc/mdev.conf, /lib/mdev/disk-by-id) keeps
#     udev-style /dev/disk/by-id/virtio-<serial>[-partN] links.
#   - no fio (Debian's links librados/librbd/libgfapi: tens of MB).
#
# The output is cached: OUTPUT.stamp holds a hash of this script and the
# helper files; if it matches and OUTPUT exists, nothing is rebuilt. The
# image is written to OUTPUT.tmp.PID and renamed into place; concurrent runs
# for the same directory are serialized with flock on the directory.
# Needs root (loop mount for extlinux). Takes ~10 s plus a 27 MB download.
# Network use: apt only (apt-get download of the kernel, apt-get install of
# missing build tools).
set -euo pipefail

usage() { echo "usage: $0 OUTPUT.qcow2" >&2; exit 2; }
[ $# -eq 1 ] || usage
case "$1" in -h|--help) usage ;; esac

log() { echo "build-test-image: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (needs mount -o loop for extlinux)"

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HELPERS=$SCRIPT_DIR/test-image
[ -d "$HELPERS/rootfs" ] && [ -f "$HELPERS/initramfs-init" ] || die "missing helper files in $HELPERS"

OUT_DIR=$(cd "$(dirname "$1")" && pwd) || die "output directory $(dirname "$1") does not exist"
OUTPUT=$OUT_DIR/$(basename "$1")
STAMP=$OUTPUT.stamp

DISK_MIB=128        # virtual disk size
PART_START_MIB=1    # partition 1 starts at 1 MiB
ROOT_LABEL=minicloud-root

# ------------------------------------------------------------------ cache
compute_stamp() {
    (
        cd "$SCRIPT_DIR"
        sha256sum "$(basename "${BASH_SOURCE[0]}")"
        find test-image -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    ) | sha256sum | cut -d' ' -f1
}
WANT_STAMP=$(compute_stamp)
up_to_date() { [ -f "$OUTPUT" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT_STAMP" ]; }
if up_to_date; then
    log "$OUTPUT is up to date"
    exit 0
fi
# Serialize concurrent builds into the same directory (lock the directory
# itself, so no lock file is left behind), then check again.
exec 9<"$OUT_DIR"
flock -w 900 9 || die "timed out waiting for another build in $OUT_DIR"
if up_to_date; then
    log "$OUTPUT is up to date (built concurrently)"
    exit 0
fi

# ------------------------------------------------------------------ tools
apt_install() {
    log "installing: $*"
    # waits up to 10 min for a concurrent apt/dpkg to release its lock
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
        install -y --no-install-recommends "$@" >&2
}
need=()
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v extlinux >/dev/null || need+=(extlinux)
[ -f /usr/lib/syslinux/mbr/mbr.bin ] || need+=(syslinux-common)
command -v parted >/dev/null || need+=(parted)
command -v cpio >/dev/null || need+=(cpio)
command -v dropbear >/dev/null || [ -x /usr/sbin/dropbear ] || need+=(dropbear-bin)
# copied into the image for the volume tests (see VOLUME_TOOLS below)
for t in mke2fs e2fsck resize2fs tune2fs dumpe2fs; do
    command -v $t >/dev/null || { need+=(e2fsprogs); break; }
done
[ -f /etc/mke2fs.conf ] || need+=(e2fsprogs)
command -v blkid >/dev/null || need+=(util-linux)
for t in dd sync timeout nohup; do
    command -v $t >/dev/null || { need+=(coreutils); break; }
done
for t in flock mountpoint findmnt; do
    command -v $t >/dev/null || { need+=(util-linux); break; }
done
if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi

# ------------------------------------------------------------------ workdir
OUT_TMP=$OUTPUT.tmp.$$
STAMP_TMP=$STAMP.tmp.$$
WORK=$(mktemp -d /tmp/minicloud-build-test-image.XXXXXX)
chmod 755 "$WORK"   # lets apt's _apt user write downloads here
MNT=$WORK/mnt
cleanup() {
    local rc=$?
    if mountpoint -q "$MNT" 2>/dev/null; then
        umount "$MNT" || umount -l "$MNT" || true
    fi
    rm -rf "$WORK"
    rm -f "$OUT_TMP" "$STAMP_TMP"
    exit $rc
}
trap cleanup EXIT
trap 'log "error: command failed (line $LINENO): $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM

cd "$WORK"
mkdir -p debs kernel root initramfs sftp "$MNT"
chown _apt debs 2>/dev/null || true   # apt-get download drops privileges to _apt

# ------------------------------------------------------------------ packages
# Kernel: the exact version linux-image-cloud-amd64 depends on.
KPKG=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$KPKG" ] || die "cannot resolve linux-image-cloud-amd64 (run apt-get update?)"
log "downloading $KPKG openssh-sftp-server"
# sftp-server (libc only) lets OpenSSH's scp/sftp work against dropbear
(cd debs && apt-get download "$KPKG" openssh-sftp-server >&2)
dpkg -x debs/openssh-sftp-server_*.deb sftp
dpkg -x debs/"$KPKG"_*.deb kernel
KVER=$(ls kernel/lib/modules | head -n1)
[ -n "$KVER" ] && [ -f "kernel/boot/vmlinuz-$KVER" ] || die "no kernel in $KPKG"
KMOD=kernel/lib/modules/$KVER

# busybox: must be the static build (busybox-static). If the host's
# /bin/busybox is dynamic, fetch busybox-static without installing it.
BUSYBOX=/bin/busybox
if ! [ -x "$BUSYBOX" ] || ldd "$BUSYBOX" >/dev/null 2>&1; then
    log "downloading busybox-static"
    (cd debs && apt-get download busybox-static >&2)
    mkdir -p bb && dpkg -x debs/busybox-static_*.deb bb
    BUSYBOX=$WORK/bb/bin/busybox
fi
ldd "$BUSYBOX" >/dev/null 2>&1 && die "$BUSYBOX is not statically linked"

# ------------------------------------------------------------------ modules
# Load order (dependencies first); ext4 (+jbd2, mbcache, crc16, crc32c) is
# built into the cloud kernel.
MODULES="
kernel/drivers/virtio/virtio_ring
kernel/drivers/virtio/virtio
kernel/drivers/virtio/virtio_pci_legacy_dev
kernel/drivers/virtio/virtio_pci_modern_dev
kernel/drivers/virtio/virtio_pci
kernel/net/core/failover
kernel/drivers/net/net_failover
kernel/drivers/net/virtio_net
kernel/drivers/block/virtio_blk
kernel/drivers/char/hw_random/virtio-rng
kernel/drivers/cdrom/cdrom
kernel/fs/isofs/isofs
kernel/drivers/acpi/button
kernel/drivers/input/evdev
"
grep -q '^ext4.ko$\|/ext4.ko$' "$KMOD/modules.builtin" || die "ext4 is not built into $KVER"
mkdir -p initramfs/lib/modules
: > initramfs/lib/modules/load-order
for m in $MODULES; do
    f=$KMOD/$m.ko
    [ -f "$f" ] || die "module $m.ko not found in $KVER"
    name=$(basename "$m")
    cp "$f" "initramfs/lib/modules/$name.ko"
    echo "$name" >> initramfs/lib/modules/load-order
done

# ------------------------------------------------------------------ initramfs
mkdir -p initramfs/bin initramfs/dev initramfs/proc initramfs/sys initramfs/newroot
cp "$BUSYBOX" initramfs/bin/busybox
for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] || ln -s busybox "initramfs/bin/$applet"
done
install -m 755 "$HELPERS/initramfs-init" initramfs/init
mknod -m 600 initramfs/dev/console c 5 1
mknod -m 666 initramfs/dev/null c 1 3
(cd initramfs && find . -print0 | LC_ALL=C sort -z |
    cpio --null -o -H newc --owner=0:0 --quiet) | gzip -9 > initrd.img

# ------------------------------------------------------------------ rootfs
R=$WORK/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,run,proc,sys,dev,home,mnt,var/log,var/lib/cloud,var/tmp,boot/extlinux,lib64,lib/x86_64-linux-gnu}
chmod 700 "$R/root"
chmod 1777 "$R/tmp" "$R/var/tmp"
cp "$BUSYBOX" "$R/bin/busybox"
"$BUSYBOX" --list-full | while read -r applet; do
    [ -e "$R/$applet" ] || [ -L "$R/$applet" ] || ln -s /bin/busybox "$R/$applet"
done

# dynamically linked binaries from the host's Debian packages + their libs
copy_with_libs() {
    local bin=$1 dest=$2 name path
    install -D -m 755 "$bin" "$R$dest"
    while read -r name path; do
        case "$name" in
            /*ld-linux-x86-64.so.2)
                [ -e "$R/lib64/ld-linux-x86-64.so.2" ] ||
                    cp "$(readlink -f "$name")" "$R/lib64/ld-linux-x86-64.so.2" ;;
            *)
                [ -e "$R/lib/x86_64-linux-gnu/$name" ] ||
                    cp "$(readlink -f "$path")" "$R/lib/x86_64-linux-gnu/$name" ;;
        esac
    done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 } $1 ~ /^\// { print $1 }')
}
copy_with_libs /usr/sbin/dropbear /usr/sbin/dropbear
copy_with_libs /usr/bin/dropbearkey /usr/bin/dropbearkey
copy_with_libs /usr/bin/dbclient /usr/bin/dbclient
rm -f "$R/bin/bash"
copy_with_libs /bin/bash /bin/bash
copy_with_libs sftp/usr/lib/openssh/sftp-server /usr/lib/openssh/sftp-server
ln -s openssh/sftp-server "$R/usr/lib/sftp-server"   # dropbear's SFTPSERVER_PATH
# glibc's name service modules are built in (files); nothing else needed.

# Volume-test tools (replacing busybox applet links of the same name):
# e2fsprogs + util-linux blkid in /sbin (with /usr/sbin aliases, as on
# merged-/usr Debian), GNU dd/sync/timeout in /usr/bin (/bin/dd and
# /bin/sync point there, so no busybox dd is left on any PATH).
VOLUME_TOOLS="mke2fs e2fsck resize2fs tune2fs dumpe2fs blkid"
for t in $VOLUME_TOOLS; do
    rm -f "$R/sbin/$t" "$R/usr/sbin/$t"
    copy_with_libs "$(command -v "$t")" "/sbin/$t"
    ln -s "/sbin/$t" "$R/usr/sbin/$t"
done
for alias in mkfs.ext2:mke2fs mkfs.ext3:mke2fs mkfs.ext4:mke2fs \
             fsck.ext2:e2fsck fsck.ext3:e2fsck fsck.ext4:e2fsck e2label:tune2fs; do
    rm -f "$R/sbin/${alias%%:*}" "$R/usr/sbin/${alias%%:*}"
    ln -s "${alias#*:}" "$R/sbin/${alias%%:*}"
    ln -s "/sbin/${alias%%:*}" "$R/usr/sbin/${alias%%:*}"
done
cp /etc/mke2fs.conf "$R/etc/mke2fs.conf"
# GNU coreutils + util-linux helpers (nohup, flock, mountpoint, findmnt
# are not in Debian's busybox at all)
for t in dd sync timeout nohup flock mountpoint findmnt; do
    rm -f "$R/bin/$t" "$R/usr/bin/$t"
    copy_with_libs "$(command -v "$t")" "/usr/bin/$t"
done
ln -s /usr/bin/dd "$R/bin/dd"
ln -s /usr/bin/sync "$R/bin/sync"

cp -a "$HELPERS/rootfs/." "$R/"
chmod 755 "$R/etc/init.d/"* "$R/etc/acpi/PWRF/00000080" "$R/usr/share/udhcpc/default.script" \
    "$R/lib/mdev/disk-by-id"
chmod 644 "$R/etc/mdev.conf"
chmod 644 "$R/etc/passwd" "$R/etc/group"
chmod 640 "$R/etc/shadow"
chmod 700 "$R/etc/dropbear" 2>/dev/null || mkdir -m 700 "$R/etc/dropbear"
mkdir -p -m 700 "$R/root/.ssh"
ln -sfn /proc/mounts "$R/etc/mtab"
echo "$KVER" > "$R/etc/minicloud-kernel"

cat > "$R/boot/extlinux/extlinux.conf" <<EOF
SERIAL 0 115200
DEFAULT minicloud
PROMPT 0
TIMEOUT 1
LABEL minicloud
  LINUX /boot/vmlinuz
  INITRD /boot/initrd.img
  APPEND root=LABEL=$ROOT_LABEL rw console=ttyS0,115200 panic=10 tsc=reliable no_timer_check
EOF
chown -R 0:0 "$R"

# ------------------------------------------------------------------ disk
PART_MIB=$((DISK_MIB - PART_START_MIB))
truncate -s "${PART_MIB}M" rootfs.img
# no 64bit / metadata_csum_seed / orphan_file: keep it simple for extlinux
mkfs.ext4 -q -F -L "$ROOT_LABEL" -d "$R" -m 0 \
    -O ^64bit,^metadata_csum_seed,^orphan_file,^resize_inode \
    -E lazy_itable_init=0,lazy_journal_init=0 -J size=4 \
    rootfs.img >&2

# kernel + initrd are copied through the mounted fs, not via mkfs -d: mkfs -d
# creates sparse files (holes where the data is zero), which extlinux
# cannot read ("I/O error").
mount -o loop rootfs.img "$MNT"
cp --sparse=never "kernel/boot/vmlinuz-$KVER" "$MNT/boot/vmlinuz"
cp --sparse=never initrd.img "$MNT/boot/initrd.img"
extlinux --install "$MNT/boot/extlinux" >&2
sync
umount "$MNT"

truncate -s "${DISK_MIB}M" disk.img
parted -s disk.img mklabel msdos \
    mkpart primary ext4 "${PART_START_MIB}MiB" 100% \
    set 1 boot on >&2
dd if=/usr/lib/syslinux/mbr/mbr.bin of=disk.img bs=440 count=1 conv=notrunc status=none
dd if=rootfs.img of=disk.img bs=1M seek="$PART_START_MIB" conv=notrunc,sparse status=none

qemu-img convert -f raw -O qcow2 disk.img "$OUT_TMP"
rm -f "$STAMP"          # never leave a matching stamp next to a half-replaced image
mv -f "$OUT_TMP" "$OUTPUT"
echo "$WANT_STAMP" > "$STAMP_TMP"
mv -f "$STAMP_TMP" "$STAMP"
log "wrote $OUTPUT (kernel $KVER, $(du -h "$OUTPUT" | cut -f1) on disk, ${DISK_MIB} MiB virtual)"
