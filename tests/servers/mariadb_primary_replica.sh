#!/usr/bin/env bash
# MariaDB primary + GTID replica with MASTER_DELAY: two private mariadbd instances on
# 127.0.0.1 (own datadir, port, socket, server_id). Debian's default MariaDB service
# (port 3306) is neither used nor touched.
#
# Usage (as root):  mariadb_primary_replica.sh start|stop|status|urls|destroy
#
# Environment:
#   SA_EXPLAIN_SERVERS_BASE  state directory       (default /tmp/sa-explain-servers)
#   MARIADB_PRIMARY_PORT     primary port          (default 33306)
#   MARIADB_REPLICA_PORT     replica port          (default 33307)
#   MARIADB_MASTER_DELAY     MASTER_DELAY seconds  (default 1)
set -euo pipefail
SCRIPT_NAME=mariadb_primary_replica
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=_common.sh
. "$HERE/_common.sh"

MDIR=$BASE/mariadb
PPORT=${MARIADB_PRIMARY_PORT:-33306}
RPORT=${MARIADB_REPLICA_PORT:-33307}
DELAY=${MARIADB_MASTER_DELAY:-1}

sock() { echo "$MDIR/$1/mariadb.sock"; }
sql() { local inst=$1; shift; mariadb --no-defaults -uroot --socket="$(sock "$inst")" -N -B "$@"; }

ensure_installed() {
  local need=()
  { command -v mariadbd && command -v mariadb-install-db; } >/dev/null 2>&1 || need+=(mariadb-server)
  { command -v mariadb && command -v mariadb-admin; } >/dev/null 2>&1 || need+=(mariadb-client)
  apt_install "${need[@]}"
  id mysql >/dev/null 2>&1 || die "no mysql user after installing mariadb-server"
}

write_cnf() {  # name port server_id extra-lines...
  local inst=$1 port=$2 sid=$3; shift 3
  local d=$MDIR/$inst
  mkdir -p "$d/data"
  {
    cat <<EOF
[mariadbd]
datadir=$d/data
socket=$d/mariadb.sock
pid-file=$d/mariadb.pid
log-error=$d/error.log
port=$port
bind-address=127.0.0.1
skip-name-resolve
server_id=$sid
log_bin=$d/data/mariadb-bin
binlog_format=ROW
gtid_strict_mode=1
innodb_buffer_pool_size=64M
innodb_log_file_size=32M
innodb_flush_log_at_trx_commit=2
sync_binlog=0
performance_schema=OFF
max_connections=100
EOF
    for line in "$@"; do echo "$line"; done
  } >"$d/my.cnf"
  chown -R mysql:mysql "$d"
}

init_instance() {
  local inst=$1 d=$MDIR/$1
  [ -d "$d/data/mysql" ] && return
  log "mariadb-install-db for $inst"
  mariadb-install-db --defaults-file="$d/my.cnf" --user=mysql \
      --auth-root-authentication-method=normal --skip-test-db </dev/null >"$d/install.log" 2>&1 \
    || { tail -20 "$d/install.log" >&2; die "mariadb-install-db failed for $inst"; }
}

alive() { [ -S "$(sock "$1")" ] && mariadb-admin --no-defaults -uroot --socket="$(sock "$1")" ping >/dev/null 2>&1; }

start_instance() {
  local inst=$1 port=$2 d=$MDIR/$1
  if alive "$inst"; then log "$inst already running on 127.0.0.1:$port"; return; fi
  log "starting $inst on 127.0.0.1:$port"
  # setsid detaches mariadbd from this shell and its stdio; stopped with mariadb-admin shutdown.
  setsid mariadbd --defaults-file="$d/my.cnf" --user=mysql </dev/null >>"$d/stdout.log" 2>&1 &
  for _ in $(seq 1 240); do alive "$inst" && return 0; sleep 0.25; done
  tail -20 "$d/error.log" >&2; die "$inst did not start in 60s"
}

setup_primary() {
  # Already done? (GRANTs are binlogged: re-running them would make the replica apply
  # new events, one MASTER_DELAY later, on every start.)
  [ "$(sql primary -e "SELECT COUNT(*) FROM mysql.user WHERE user IN ('app','repl','plain')")" = 3 ] \
    && [ -n "$(sql primary -e "SHOW DATABASES LIKE 'appdb'")" ] && return 0
  sql primary <<'SQL'
CREATE DATABASE IF NOT EXISTS appdb;
CREATE USER IF NOT EXISTS 'repl'@'127.0.0.1' IDENTIFIED BY 'repl';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';
CREATE USER IF NOT EXISTS 'app'@'127.0.0.1' IDENTIFIED BY 'app';
GRANT ALL PRIVILEGES ON appdb.* TO 'app'@'127.0.0.1';
-- lets the app run SHOW SLAVE/REPLICA STATUS and read @@gtid_binlog_pos for lag readings
GRANT SLAVE MONITOR, BINLOG MONITOR ON *.* TO 'app'@'127.0.0.1';
-- a user WITHOUT the monitor privileges, to test what the probe does when refused
CREATE USER IF NOT EXISTS 'plain'@'127.0.0.1' IDENTIFIED BY 'plain';
GRANT ALL PRIVILEGES ON appdb.* TO 'plain'@'127.0.0.1';
SQL
}

setup_replica() {
  local have
  # (vertical output needs the field names: no -N here)
  have=$(mariadb --no-defaults -uroot --socket="$(sock replica)" -e "SHOW SLAVE STATUS\G" | sed -n 's/^ *SQL_Delay: //p')
  if [ -n "$have" ]; then
    if [ "$have" != "$DELAY" ]; then
      log "replica: MASTER_DELAY $have -> $DELAY"
      sql replica -e "STOP SLAVE; CHANGE MASTER TO MASTER_DELAY=$DELAY; START SLAVE"
    else
      sql replica -e "START SLAVE" 2>/dev/null || true
    fi
    return
  fi
  log "configuring replication (GTID slave_pos, MASTER_DELAY=$DELAY)"
  sql replica <<SQL
CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$PPORT,
  MASTER_USER='repl', MASTER_PASSWORD='repl',
  MASTER_USE_GTID=slave_pos, MASTER_DELAY=$DELAY, MASTER_CONNECT_RETRY=1;
START SLAVE;
SQL
}

wait_caught_up() {
  local pos r
  pos=$(sql primary -e "SELECT @@gtid_binlog_pos")
  r=$(sql replica -e "SELECT MASTER_GTID_WAIT('$pos', 60)")
  [ "$r" = "0" ] || die "replica NOT caught up to '$pos' (MASTER_GTID_WAIT=$r); see $MDIR/replica/error.log"
  log "replica caught up to $pos (MASTER_DELAY=$DELAY)"
}

urls() {
  cat <<EOF
MARIADB_PRIMARY_URL=mysql+pymysql://app:app@127.0.0.1:$PPORT/appdb
MARIADB_REPLICA_URL=mysql+pymysql://app:app@127.0.0.1:$RPORT/appdb
MARIADB_MASTER_DELAY=$DELAY
EOF
}

cmd=${1:-start}
case "$cmd" in
  start)
    ensure_installed
    mkdir -p "$MDIR"
    write_cnf primary "$PPORT" 1
    write_cnf replica "$RPORT" 2 "read_only=ON" "relay_log=$MDIR/replica/data/relay-bin" "log_slave_updates=ON"
    init_instance primary; init_instance replica
    start_instance primary "$PPORT"; setup_primary
    start_instance replica "$RPORT"; setup_replica
    wait_caught_up
    urls ;;
  stop)
    for inst in replica primary; do
      if alive "$inst"; then
        log "stopping $inst"
        mariadb-admin --no-defaults -uroot --socket="$(sock "$inst")" shutdown >/dev/null 2>&1 || true
      fi
    done ;;
  status)
    rc=0
    for pair in "primary:$PPORT" "replica:$RPORT"; do
      inst=${pair%%:*}
      if alive "$inst"; then echo "mariadb $inst (127.0.0.1:${pair##*:}): running"
      else echo "mariadb $inst (127.0.0.1:${pair##*:}): stopped"; rc=3; fi
    done
    exit $rc ;;
  urls) urls ;;
  destroy) "$0" stop || true; rm -rf "$MDIR"; log "removed $MDIR" ;;
  *) echo "usage: $0 start|stop|status|urls|destroy" >&2; exit 2 ;;
esac
