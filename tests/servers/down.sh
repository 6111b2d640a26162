#!/usr/bin/env bash
# Stop the servers started by up.sh: pgpool-II, the PostgreSQL pair and the MariaDB pair.
# The machine's base services (PostgreSQL 5432, MariaDB 3306, Redis, RabbitMQ) belong to
# the machine and are left running.
#
# Usage:  down.sh            stop (data kept: the next up.sh restarts in about a second)
#         down.sh --destroy  stop and remove all state under $SA_EXPLAIN_SERVERS_BASE
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
action=stop
[ "${1:-}" = "--destroy" ] && action=destroy
rc=0
for script in pgpool.sh pg_primary_replica.sh mariadb_primary_replica.sh; do
  bash "$HERE/$script" "$action" >&2 || rc=1
done
exit $rc
