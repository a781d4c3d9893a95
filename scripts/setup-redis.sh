#!/usr/bin/env bash
# Redis for minicloud: loopback only, a generated password (mode 0600 under its data directory),
# append-only persistence. Safe to run again. Run by scripts/setup.sh; settings (for a second
# Redis, and for testing this script): MINICLOUD_REDIS_PORT (6379), MINICLOUD_REDIS_DIR
# (/var/lib/minicloud-redis), MINICLOUD_REDIS_LOG (/var/log/minicloud-redis.log).
#
#   nothing answers on the port        -> start redis-server with DIR/redis.conf
#   answers to our password            -> make sure append-only is on (CONFIG SET), done
#   answers without any password       -> an older minicloud set-up: switched over in place, no
#                                         restart: append-only on (the running data set is
#                                         written to the AOF first), then the password. Clients
#                                         already connected keep their connections; every new
#                                         connection must authenticate. Its next start reads
#                                         DIR/redis.conf, which holds the same settings.
#   wants another password             -> stop with an error (never touched)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
port="${MINICLOUD_REDIS_PORT:-6379}"
dir="${MINICLOUD_REDIS_DIR:-/var/lib/minicloud-redis}"
logfile="${MINICLOUD_REDIS_LOG:-/var/log/minicloud-redis.log}"
password_file="$dir/password"
conf="$dir/redis.conf"

mkdir -p "$dir"
chmod 0700 "$dir"
if [ ! -s "$password_file" ]; then
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$password_file.tmp")
  mv "$password_file.tmp" "$password_file"
  say "generated a Redis password in $password_file (mode 0600)"
fi
chmod 0600 "$password_file"
password="$(cat "$password_file")"

(
  umask 077
  cat >"$conf.tmp" <<EOF
# Written by minicloud's scripts/setup-redis.sh (rewritten on every run).
# Loopback only (IPv6 loopback when the host has it), a password, append-only persistence.
bind 127.0.0.1 -::1
protected-mode yes
port $port
dir $dir
requirepass $password
appendonly yes
appendfsync everysec
save ""
daemonize yes
pidfile $dir/redis.pid
logfile $logfile
EOF
)
mv "$conf.tmp" "$conf"

# The password travels in the environment (REDISCLI_AUTH), never on a command line.
with_password() { REDISCLI_AUTH="$password" redis-cli -h 127.0.0.1 -p "$port" "$@" 2>/dev/null; }
without_password() { redis-cli -h 127.0.0.1 -p "$port" "$@" 2>/dev/null; }

# $1: with_password or without_password (whichever the running Redis accepts).
ensure_append_only() {
  if [ "$($1 --raw config get appendonly | tail -n 1)" != yes ]; then
    say "turning on append-only persistence of the Redis on port $port"
    [ "$($1 config set appendonly yes)" = OK ] || die "CONFIG SET appendonly failed"
  fi
  # Turning it on writes the data set to the AOF in the background: wait until that is done.
  for _ in $(seq 300); do
    $1 --raw info persistence | grep -q '^aof_rewrite_in_progress:0' && return 0
    sleep 0.1
  done
  die "the Redis on port $port did not finish writing its append-only file"
}

# Without a password first: redis-cli still answers PONG when AUTH fails on a password-less Redis.
answer="$(without_password ping || true)"
if [ "$answer" = PONG ]; then
  say "switching the running Redis on 127.0.0.1:$port to a password and append-only persistence (no restart)"
  ensure_append_only without_password
  [ "$(without_password config set bind '127.0.0.1 -::1')" = OK ] || die "CONFIG SET bind failed"
  # From here on, new connections must authenticate; existing ones stay open.
  [ "$(without_password config set requirepass "$password")" = OK ] ||
    die "CONFIG SET requirepass failed"
  [ "$(with_password ping)" = PONG ] || die "the Redis on port $port refuses the new password"
  say "Redis on port $port now needs the password in $password_file; its next start uses $conf"
elif [[ "$answer" == *NOAUTH* ]]; then
  [ "$(with_password ping || true)" = PONG ] ||
    die "a Redis on 127.0.0.1:$port wants a password other than the one in $password_file; stop it or put its password there"
  ensure_append_only with_password
else
  say "starting redis-server on 127.0.0.1:$port (data and password in $dir)"
  redis-server "$conf" 9>&- || die "redis-server did not start (see $logfile)"
  for _ in $(seq 100); do [ "$(with_password ping || true)" = PONG ] && break; sleep 0.1; done
  [ "$(with_password ping || true)" = PONG ] || die "redis-server does not answer on port $port (see $logfile)"
fi
