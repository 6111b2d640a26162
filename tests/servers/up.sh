#!/usr/bin/env bash
# Start every server the test suite talks to and print their URLs as shell exports:
#
#     eval "$(bash tests/servers/up.sh)"
#
# stdout carries ONLY `export KEY=value` lines; progress and timings go to stderr.
#
# 1. The machine's base services (started before the session on this kind of machine,
#    but they can be down): PostgreSQL 5432, MariaDB 3306, Redis 6379, RabbitMQ 5672.
#    Each is checked and, when down, started with the machine's documented command.
# 2. Missing Debian packages, in ONE apt-get run: pgpool2, the MariaDB server/client,
#    PostgreSQL, and what building mysqlclient needs (libmariadb-dev, pkg-config).
# 3. The replica setups: PG primary + delayed standby and MariaDB primary + delayed
#    replica in parallel, then pgpool-II in front of the PG pair.
#
# Exit status is non-zero when anything failed to come up (the exports printed so far
# are still valid). Idempotent: a second run only checks and prints (well under 1 s).
set -euo pipefail
SCRIPT_NAME=up
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=_common.sh
. "$HERE/_common.sh"

T0=$(date +%s.%N)
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
emit() {  # KEY value: one export line, value shell-quoted
  printf 'export %s=%q\n' "$1" "$2"
}
emit_urls() {  # read KEY=value lines (from a script's `urls`) and export them
  local line
  while IFS= read -r line; do
    [[ $line =~ ^([A-Z][A-Z0-9_]*)=([^[:space:]]+)$ ]] && emit "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
  done
}
failed=()

# ---------------------------------------------------------------- 1. apt packages
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql postgresql-client)
command -v pgpool >/dev/null 2>&1 || need+=(pgpool2)
{ command -v mariadbd && command -v mariadb-install-db; } >/dev/null 2>&1 || need+=(mariadb-server)
{ command -v mariadb && command -v mariadb-admin; } >/dev/null 2>&1 || need+=(mariadb-client)
pkg_missing libmariadb-dev && need+=(libmariadb-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
if [ "${#need[@]}" -gt 0 ]; then
  t=$(date +%s.%N)
  apt_install "${need[@]}"
  log "apt packages installed in $(since "$t")s: ${need[*]}"
fi

# ---------------------------------------------------------------- 2. base services
wait_port() {  # port seconds
  local i
  for ((i = 0; i < $2 * 4; i++)); do tcp_open "$1" && return 0; sleep 0.25; done
  return 1
}

base_pg() {
  if ! tcp_open 5432; then
    log "PostgreSQL 5432 is down: starting the machine's main cluster"
    local v; v=$(ls /etc/postgresql | sort -n | tail -1)
    pg_ctlcluster --skip-systemctl-redirect "$v" main start </dev/null >/dev/null 2>&1 || true
    wait_port 5432 30 || { log "PostgreSQL 5432 did not come up"; return 1; }
  fi
  local have
  have=$(runuser -u postgres -- psql -X -At -h 127.0.0.1 -p 5432 -U postgres -d postgres \
         -c "SELECT 1 FROM pg_database WHERE datname = 'test'" 2>/dev/null) || { log "cannot query PostgreSQL 5432"; return 1; }
  if [ "$have" != 1 ]; then
    log "creating database test on PostgreSQL 5432"
    runuser -u postgres -- psql -X -q -h 127.0.0.1 -p 5432 -U postgres -d postgres -c "CREATE DATABASE test" >/dev/null
  fi
}

base_mariadb() {
  if ! tcp_open 3306; then
    log "MariaDB 3306 is down: starting the machine's default mariadbd"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    # --pidfile keeps start-stop-daemon from mistaking our private test instances
    # (same binary) for the default server.
    start-stop-daemon --start --oknodo --background --make-pidfile \
      --pidfile /run/mysqld/sa-explain-default.pid --exec /usr/sbin/mariadbd </dev/null >/dev/null 2>&1 || true
    wait_port 3306 60 || { log "MariaDB 3306 did not come up"; return 1; }
  fi
  local i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    mariadb --no-defaults -uroot -h127.0.0.1 -P3306 -e "CREATE DATABASE IF NOT EXISTS test" 2>/dev/null && return 0
    sleep 0.5
  done
  log "cannot use MariaDB 3306 as root"; return 1
}

base_redis() {
  tcp_open 6379 && return 0
  log "Redis 6379 is down: starting it"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log </dev/null >/dev/null 2>&1 || true
  wait_port 6379 15 || { log "Redis 6379 did not come up"; return 1; }
}

base_rabbitmq() {
  tcp_open 5672 && return 0
  log "RabbitMQ 5672 is down: starting it (takes a few seconds)"
  rabbitmq-server -detached </dev/null >/dev/null 2>&1 || true
  wait_port 5672 90 || { log "RabbitMQ 5672 did not come up"; return 1; }
}

t=$(date +%s.%N)
base_pg || failed+=("postgresql:5432")
base_mariadb || failed+=("mariadb:3306")
base_redis || failed+=("redis:6379")
base_rabbitmq || failed+=("rabbitmq:5672")
log "base services checked in $(since "$t")s"
emit PG_URL "postgresql+psycopg://postgres@127.0.0.1:5432/test"
emit MARIADB_URL "mysql+pymysql://root@127.0.0.1:3306/test"
emit REDIS_URL "redis://127.0.0.1:6379/0"
emit AMQP_URL "amqp://guest:guest@127.0.0.1:5672//"

# ---------------------------------------------------------------- 3. replica setups
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
run_timed() {  # name script: start it, stdout to $TMP/name.out, status to $TMP/name.rc
  local t1; t1=$(date +%s.%N)
  if bash "$HERE/$2" start >"$TMP/$1.out"; then echo 0 >"$TMP/$1.rc"; else echo 1 >"$TMP/$1.rc"; fi
  log "$1 start took $(since "$t1")s"
}
run_timed pg pg_primary_replica.sh &
pg_job=$!
run_timed mariadb mariadb_primary_replica.sh &
mariadb_job=$!
wait "$pg_job" || true
if [ "$(cat "$TMP/pg.rc")" = 0 ]; then
  emit_urls <"$TMP/pg.out"
  run_timed pgpool pgpool.sh
  if [ "$(cat "$TMP/pgpool.rc")" = 0 ]; then emit_urls <"$TMP/pgpool.out"; else failed+=(pgpool); fi
else
  failed+=(pg_primary_replica pgpool)
fi
wait "$mariadb_job" || true
if [ "$(cat "$TMP/mariadb.rc")" = 0 ]; then emit_urls <"$TMP/mariadb.out"; else failed+=(mariadb_primary_replica); fi

if [ "${#failed[@]}" -gt 0 ]; then
  log "FAILED: ${failed[*]} (total $(since "$T0")s)"
  exit 1
fi
log "all servers up in $(since "$T0")s"
