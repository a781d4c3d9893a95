#!/usr/bin/env bash
# Install what is missing and start the services minicloud needs. Safe to run again.
# Debian 12, as root. Used by scripts/run.sh and scripts/test.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
[ "$(id -u)" = 0 ] || die "run as root (minicloud manages bridges, nftables and libvirt)"
# Two setups at once (a test run beside `run.sh`) would race in npm ci: one at a time.
exec 9>/run/minicloud-setup.lock
flock 9

DEBIAN_PACKAGES=(
  qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients libvirt-dev
  dnsmasq-base dnsmasq-utils nftables conntrack iputils-arping iproute2 genisoimage redis-server postgresql
  busybox-static dropbear-bin cpio e2fsprogs extlinux syslinux-common parted
  python3 make g++ pkg-config ca-certificates tini
)
missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ! command -v node >/dev/null; then missing+=(nodejs npm); fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  # 9>&-: a daemon that a package starts on install must not inherit the set-up lock.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 9>&-
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js 20 or newer is needed (found $(node --version)); install it from NodeSource or nvm and run again"

# npm dependencies: reinstall only when package-lock.json changed since the last install.
stamp=node_modules/.minicloud-installed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  say "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
  touch "$stamp"
fi
if [ ! -f node_modules/.prisma/client/index.js ] || [ prisma/schema.prisma -nt node_modules/.prisma/client/index.js ]; then
  say "generating the Prisma client"
  npx prisma generate >/dev/null
fi
# The PostgreSQL twin of the client (prisma/postgresql/schema.prisma, made by scripts/postgres-schema.ts).
pg_client=node_modules/.prisma/client-postgresql/index.js
if [ ! -f "$pg_client" ] || [ prisma/postgresql/schema.prisma -nt "$pg_client" ]; then
  say "generating the Prisma client for PostgreSQL"
  npx prisma generate --config prisma/postgresql/prisma.config.ts >/dev/null
fi

# Services. There may be no systemd (containers, CI): start the daemons directly when needed.
# Redis: loopback only, a generated password, append-only persistence (see setup-redis.sh).
bash scripts/setup-redis.sh 9>&-
# minicloud (run.sh) and the tests (test.sh, testkit) read the password from this file.
export MINICLOUD_REDIS_PASSWORD_FILE="${MINICLOUD_REDIS_DIR:-/var/lib/minicloud-redis}/password"
source "$ROOT/scripts/setup-postgres.sh"
if ! pgrep -x virtlogd >/dev/null; then say "starting virtlogd"; virtlogd -d 9>&-; fi
if ! pgrep -x libvirtd >/dev/null; then
  # Under a child subreaper (tini -s): where PID 1 reaps orphans slowly (containers), every QEMU
  # exit otherwise leaves a zombie that libvirt waits ~1.7 s for on each stop or destroy.
  say "starting libvirtd"
  setsid tini -s -- libvirtd </dev/null >>/var/log/minicloud-libvirtd.log 2>&1 9>&- &
fi
for _ in $(seq 100); do virsh -c qemu:///system version >/dev/null 2>&1 && break; sleep 0.1; done
virsh -c qemu:///system version >/dev/null 2>&1 || die "libvirtd does not answer on qemu:///system"

# The default test image (cached; rebuilt only when its build script changes).
export MINICLOUD_CACHE_DIR="${MINICLOUD_CACHE_DIR:-/var/cache/minicloud}"
mkdir -p "$MINICLOUD_CACHE_DIR"
bash scripts/build-test-image.sh "$MINICLOUD_CACHE_DIR/test-image.qcow2"
export MINICLOUD_TEST_IMAGE="$MINICLOUD_CACHE_DIR/test-image.qcow2"
# Release the set-up lock: run.sh and test.sh exec long-lived processes that must not hold it.
exec 9>&-
