#!/usr/bin/env bash
# PostgreSQL primary + streaming hot standby on 127.0.0.1, the standby deliberately
# delayed (recovery_min_apply_delay) so that "committed on the primary, not yet visible
# on the replica" is real and repeatable in tests.
#
# Usage (as root):  pg_primary_replica.sh start|stop|status|urls|destroy
#
# Environment:
#   SA_EXPLAIN_SERVERS_BASE  state directory           (default /tmp/sa-explain-servers)
#   PG_PRIMARY_PORT          primary port              (default 55432)
#   PG_STANDBY_PORT          standby port              (default 55433)
#   PG_APPLY_DELAY           recovery_min_apply_delay  (default 1s)
#   PGVER                    PostgreSQL major version  (default: the newest installed, else 15)
#
# Never touches Debian's own "main" cluster (port 5432); everything lives under $BASE/pg.
# start is idempotent: a running pair is left alone, a stopped one is restarted on its data.
set -euo pipefail
SCRIPT_NAME=pg_primary_replica
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=_common.sh
. "$HERE/_common.sh"

PGDIR=$BASE/pg
if [ -z "${PGVER:-}" ]; then
  PGVER=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
  PGVER=${PGVER:-15}
fi
PRIMARY_PORT=${PG_PRIMARY_PORT:-55432}
STANDBY_PORT=${PG_STANDBY_PORT:-55433}
APPLY_DELAY=${PG_APPLY_DELAY:-1s}
BIN=/usr/lib/postgresql/$PGVER/bin
SOCK=$PGDIR/sock
PRIMARY=$PGDIR/primary
STANDBY=$PGDIR/standby

as_pg() { runuser -u postgres -- "$@"; }
psql_p() { as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PRIMARY_PORT" -U postgres "$@"; }

ensure_installed() {
  if [ ! -x "$BIN/initdb" ]; then
    apt_install "postgresql-$PGVER" "postgresql-client-$PGVER"
  fi
  id postgres >/dev/null 2>&1 || die "no postgres user after installing postgresql-$PGVER"
}

running() { [ -f "$1/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$1" status >/dev/null 2>&1; }

init_primary() {
  [ -f "$PRIMARY/PG_VERSION" ] && return
  log "initdb primary in $PRIMARY"
  as_pg "$BIN/initdb" -D "$PRIMARY" -U postgres -A trust -E UTF8 --locale=C >/dev/null
  cat >>"$PRIMARY/postgresql.conf" <<EOF
# --- sa-explain test primary ---
listen_addresses = '127.0.0.1'
port = $PRIMARY_PORT
unix_socket_directories = '$SOCK'
cluster_name = 'pg_primary'
wal_level = replica
max_wal_senders = 10
wal_keep_size = '128MB'
hot_standby = on
shared_buffers = '64MB'
fsync = off
synchronous_commit = on
max_connections = 100
EOF
  # initdb's default pg_hba.conf has only local and loopback (127.0.0.1/32, ::1/128)
  # lines, for normal and replication connections: nothing reaches it from outside.
}

start_one() {  # datadir label port
  if running "$1"; then log "$2 already running on 127.0.0.1:$3"; return; fi
  log "starting $2 on 127.0.0.1:$3"
  as_pg "$BIN/pg_ctl" -D "$1" -l "$PGDIR/$2.log" -w -t 60 start </dev/null >/dev/null 2>&1 \
    || { tail -20 "$PGDIR/$2.log" >&2; die "$2 did not start"; }
}

setup_roles() {
  psql_p -d postgres <<'SQL' >/dev/null
SET client_min_messages = warning;
SELECT 'CREATE ROLE app LOGIN PASSWORD ''app''' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname='app')\gexec
SELECT 'CREATE ROLE replicator LOGIN REPLICATION' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname='replicator')\gexec
SELECT 'CREATE DATABASE appdb OWNER app' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname='appdb')\gexec
-- pg_monitor lets the app read pg_stat_replication's LSN and lag columns (NULL otherwise)
GRANT pg_monitor TO app;
SQL
}

init_standby() {
  [ -f "$STANDBY/PG_VERSION" ] && return
  log "pg_basebackup -> $STANDBY"
  as_pg "$BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U replicator \
        -D "$STANDBY" -R -X stream -c fast </dev/null >/dev/null
  cat >>"$STANDBY/postgresql.auto.conf" <<EOF
# --- sa-explain test standby (overrides the settings copied from the primary) ---
port = $STANDBY_PORT
cluster_name = 'pg_standby'
recovery_min_apply_delay = '$APPLY_DELAY'
wal_receiver_status_interval = '1s'
hot_standby = on
hot_standby_feedback = on
EOF
}

set_delay() {  # keep recovery_min_apply_delay in line with PG_APPLY_DELAY on restarts
  local cur
  cur=$(as_pg "$BIN/psql" -X -At -h "$SOCK" -p "$STANDBY_PORT" -U postgres -d postgres \
        -c "SELECT setting::int = (SELECT CAST(EXTRACT(EPOCH FROM INTERVAL '$APPLY_DELAY') * 1000 AS int)) FROM pg_settings WHERE name = 'recovery_min_apply_delay'" 2>/dev/null || true)
  if [ "$cur" = "f" ]; then
    log "standby: setting recovery_min_apply_delay = '$APPLY_DELAY'"
    as_pg "$BIN/psql" -X -q -h "$SOCK" -p "$STANDBY_PORT" -U postgres -d postgres \
      -c "ALTER SYSTEM SET recovery_min_apply_delay = '$APPLY_DELAY'" -c "SELECT pg_reload_conf()" >/dev/null
  fi
}

wait_streaming() {
  local st
  for _ in $(seq 1 120); do
    st=$(psql_p -d postgres -Atc "SELECT state FROM pg_stat_replication WHERE application_name='pg_standby'" 2>/dev/null || true)
    if [ "$st" = "streaming" ]; then log "standby is streaming (recovery_min_apply_delay=$APPLY_DELAY)"; return 0; fi
    sleep 0.25
  done
  die "standby did not reach 'streaming' in 30s (see $PGDIR/standby.log)"
}

urls() {
  cat <<EOF
PG_PRIMARY_URL=postgresql+psycopg://app:app@127.0.0.1:$PRIMARY_PORT/appdb
PG_STANDBY_URL=postgresql+psycopg://app:app@127.0.0.1:$STANDBY_PORT/appdb
PG_PRIMARY_ADMIN_URL=postgresql+psycopg://postgres@127.0.0.1:$PRIMARY_PORT/appdb
PG_STANDBY_ADMIN_URL=postgresql+psycopg://postgres@127.0.0.1:$STANDBY_PORT/appdb
PG_APPLY_DELAY=$APPLY_DELAY
EOF
}

cmd=${1:-start}
case "$cmd" in
  start)
    ensure_installed
    mkdir -p "$PGDIR" "$SOCK"
    chown postgres:postgres "$PGDIR" "$SOCK"
    init_primary; start_one "$PRIMARY" primary "$PRIMARY_PORT"; setup_roles
    init_standby; start_one "$STANDBY" standby "$STANDBY_PORT"; set_delay
    wait_streaming
    urls ;;
  stop)
    for pair in "$STANDBY:standby" "$PRIMARY:primary"; do
      d=${pair%%:*}
      if [ -d "$d" ] && running "$d"; then
        log "stopping ${pair##*:}"
        as_pg "$BIN/pg_ctl" -D "$d" -m fast -w stop </dev/null >/dev/null 2>&1 || true
      fi
    done ;;
  status)
    rc=0
    for pair in "$PRIMARY:primary:$PRIMARY_PORT" "$STANDBY:standby:$STANDBY_PORT"; do
      d=${pair%%:*}; rest=${pair#*:}
      if [ -d "$d" ] && running "$d"; then echo "pg ${rest%%:*} (127.0.0.1:${rest##*:}): running"
      else echo "pg ${rest%%:*} (127.0.0.1:${rest##*:}): stopped"; rc=3; fi
    done
    exit $rc ;;
  urls) urls ;;
  destroy)
    "$0" stop || true
    rm -rf "$PGDIR"; log "removed $PGDIR" ;;
  *) echo "usage: $0 start|stop|status|urls|destroy" >&2; exit 2 ;;
esac
