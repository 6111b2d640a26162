# Sourced by the server scripts in this directory (not executable on its own).
#
# Conventions shared by every script:
#   * state lives under $SA_EXPLAIN_SERVERS_BASE (default /tmp/sa-explain-servers);
#   * everything listens on 127.0.0.1 only, on non-default ports;
#   * progress goes to stderr, machine-readable KEY=value lines to stdout;
#   * daemons never inherit our stdout/stderr (so `eval "$(up.sh)"` cannot hang
#     waiting for a daemon to close the pipe);
#   * apt-get runs only when a needed binary is missing, and `apt-get update` at
#     most once per up.sh run (SA_EXPLAIN_APT_UPDATED=1 is exported after it).

BASE=${SA_EXPLAIN_SERVERS_BASE:-/tmp/sa-explain-servers}

log() { printf '[%s] %s\n' "${SCRIPT_NAME:-servers}" "$*" >&2; }

die() { log "ERROR: $*"; exit 1; }

# apt_install pkg... : install the packages with apt-get (quietly, progress to stderr).
apt_install() {
  [ "$#" -gt 0 ] || return 0
  [ "$(id -u)" = 0 ] || die "need root to apt-get install $*"
  export DEBIAN_FRONTEND=noninteractive
  if [ "${SA_EXPLAIN_APT_UPDATED:-0}" != 1 ]; then
    log "apt-get update"
    apt-get update -qq >&2 || die "apt-get update failed"
    export SA_EXPLAIN_APT_UPDATED=1
  fi
  log "apt-get install $*"
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>"$BASE/apt.err" \
    || { cat "$BASE/apt.err" >&2; die "apt-get install $* failed"; }
}

# pkg_missing pkg: true when the Debian package is not installed.
pkg_missing() { ! dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# tcp_open port [host]: true when something accepts TCP connections there.
tcp_open() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

mkdir -p "$BASE"
