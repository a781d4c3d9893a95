# Sourced by scripts/setup.sh (which holds the set-up lock on fd 9, so two runs never overlap).
# Starts Debian's PostgreSQL cluster without systemd, on loopback only, and makes a `minicloud`
# role (password login, may create databases) with a database of the same name. The generated
# password and the full URL are kept 0600 under $MINICLOUD_POSTGRES_DIR; the integration tests
# read the URL from there and create one database per test run.
MINICLOUD_POSTGRES_DIR="${MINICLOUD_POSTGRES_DIR:-/var/lib/minicloud-postgres}"

pg_version=$(ls /usr/lib/postgresql | sort -n | tail -1)
[ -n "$pg_version" ] || die "PostgreSQL is not installed (Debian package postgresql)"
# Debian's packaging makes a `main` cluster on install; make it if it was dropped since.
if ! pg_lsclusters -h | awk -v v="$pg_version" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
  say "creating the PostgreSQL $pg_version cluster 'main'"
  pg_createcluster "$pg_version" main >/dev/null 9>&-
fi
pg_port=$(pg_lsclusters -h | awk -v v="$pg_version" '$1 == v && $2 == "main" { print $3 }')
if ! pg_isready -q -h 127.0.0.1 -p "$pg_port" -t 2; then
  say "starting PostgreSQL $pg_version/main on 127.0.0.1:$pg_port"
  # Loopback only whatever postgresql.conf says; pg_ctl waits for start-up, bounded by timeout.
  timeout 90 pg_ctlcluster "$pg_version" main start -o "-c listen_addresses=127.0.0.1" \
    </dev/null >/dev/null 9>&- || die "PostgreSQL did not start (see /var/log/postgresql/)"
  for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 -p "$pg_port" -t 1 && break; sleep 0.1; done
  pg_isready -q -h 127.0.0.1 -p "$pg_port" -t 2 || die "PostgreSQL does not answer on 127.0.0.1:$pg_port"
fi

install -d -m 0700 "$MINICLOUD_POSTGRES_DIR"
if [ ! -s "$MINICLOUD_POSTGRES_DIR/password" ]; then
  (umask 077 && od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$MINICLOUD_POSTGRES_DIR/password")
fi
pg_password=$(cat "$MINICLOUD_POSTGRES_DIR/password")
pg_admin() { (cd / && timeout 30 runuser -u postgres -- psql -X -q -At -p "$pg_port" -v ON_ERROR_STOP=1 "$@"); }
pg_admin -v pw="$pg_password" >/dev/null <<'SQL'
SELECT 'CREATE ROLE minicloud' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'minicloud')
\gexec
ALTER ROLE minicloud WITH LOGIN CREATEDB PASSWORD :'pw';
SELECT 'CREATE DATABASE minicloud OWNER minicloud'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'minicloud')
\gexec
SQL
(umask 077 && printf 'postgresql://minicloud:%s@127.0.0.1:%s/minicloud\n' "$pg_password" "$pg_port" \
  >"$MINICLOUD_POSTGRES_DIR/url")
unset pg_password
