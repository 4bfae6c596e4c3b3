# shellcheck shell=bash disable=SC2034  # constants are used by the sourcing scripts
# Shared helpers for the local test servers (MariaDB, Redis, Kafka, MinIO).
# Sourced by infra/local/*.sh; not meant to be executed on its own.
#
# Layout (REPO = repository root, found from this file's location):
#   $REPO/.local/infra/<service>/      data and generated config of one server
#   $REPO/.local/infra/logs/<svc>.log  server logs (appended, one "=== start" marker per start)
#   $REPO/.local/infra/run/            pid files, sockets, locks
#   $REPO/.local/infra/credentials.env generated passwords (mode 600, never committed)
#   $REPO/.local/infra/env.sh          connection settings for the test suite (written by up.sh)
#   ${MEDFLOW_CACHE_DIR:-$HOME/.cache/medflow}  downloads/builds shared by every clone on this machine

set -euo pipefail

INFRA_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
REPO="$(cd "$INFRA_SCRIPTS_DIR/../.." && pwd -P)"
INFRA_DIR="$REPO/.local/infra"
LOG_DIR="$INFRA_DIR/logs"
RUN_DIR="$INFRA_DIR/run"
CREDENTIALS_FILE="$INFRA_DIR/credentials.env"
ENV_FILE="$INFRA_DIR/env.sh"
CACHE_DIR="${MEDFLOW_CACHE_DIR:-${HOME:?HOME is not set}/.cache/medflow}"
BIND_HOST=127.0.0.1

# Fixed loopback ports and names (also used by up.sh to write env.sh).
# MEDFLOW_INFRA_PORT_OFFSET shifts every port, so a second checkout (a benchmark of the
# test command in a fresh clone, say) can run its own servers beside this one's.
SERVICES=(mariadb redis kafka minio)
PORT_OFFSET="${MEDFLOW_INFRA_PORT_OFFSET:-0}"
MARIADB_PORT=$((33306 + PORT_OFFSET))
MARIADB_DATABASE=medflow
MARIADB_USER=medflow
REDIS_PORT=$((36379 + PORT_OFFSET))
KAFKA_PORT=$((39092 + PORT_OFFSET))
KAFKA_CONTROLLER_PORT=$((39093 + PORT_OFFSET))
MINIO_PORT=$((39000 + PORT_OFFSET))
MINIO_CONSOLE_PORT=$((39001 + PORT_OFFSET))
MINIO_ACCESS_KEY=medflow
MINIO_REGION=us-east-1

# Go is usually installed outside the default PATH.
case ":$PATH:" in *:/usr/local/go/bin:*) ;; *) PATH="$PATH:/usr/local/go/bin" ;; esac
export PATH

SERVICE="${SERVICE:-infra}"

# ---------------------------------------------------------------- messages

info() { printf '%s: %s\n' "$SERVICE" "$*" >&2; }

# die MESSAGE [LOGFILE] -- print an error (plus the end of LOGFILE) and exit 1.
die() {
    local msg="$1" logfile="${2:-}"
    printf 'ERROR %s: %s\n' "$SERVICE" "$msg" >&2
    if [[ -n "$logfile" ]]; then
        printf 'ERROR %s: see log file %s\n' "$SERVICE" "$logfile" >&2
        if [[ -s "$logfile" ]]; then
            printf -- '----- last lines of %s -----\n' "$logfile" >&2
            tail -n 25 "$logfile" >&2 || true
            printf -- '-----\n' >&2
        fi
    fi
    exit 1
}

ensure_dirs() {
    mkdir -p "$INFRA_DIR" "$LOG_DIR" "$RUN_DIR" "$CACHE_DIR"
}

# log_marker LOGFILE -- append a start marker; prints the log size before it
# (so a readiness check can look only at what this start wrote). Called only
# while the server is stopped, so a big log is rotated to LOGFILE.1 here.
log_marker() {
    local logfile="$1" size=0
    if [[ -f "$logfile" ]] && (($(stat -c %s "$logfile") > 50 * 1024 * 1024)); then
        mv -f "$logfile" "$logfile.1"
    fi
    [[ -f "$logfile" ]] && size=$(stat -c %s "$logfile")
    printf '=== start %s (pid %s) ===\n' "$(date '+%F %T')" "$$" >>"$logfile"
    echo "$size"
}

# ---------------------------------------------------------------- locking

# with_lock LOCKFILE CMD... -- run CMD while holding an exclusive flock.
with_lock() {
    local lockfile="$1"; shift
    mkdir -p "$(dirname "$lockfile")"
    (
        flock -w 1800 9 || die "timed out waiting for lock $lockfile"
        "$@"
    ) 9>"$lockfile"
}

# ---------------------------------------------------------------- packages

as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

_apt_install_locked() {
    local log="$LOG_DIR/apt.log"
    info "installing Debian packages: $* (log: $log)"
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            -o DPkg::Lock::Timeout=300 "$@" >>"$log" 2>&1; then
        as_root apt-get update -q >>"$log" 2>&1 || true
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            -o DPkg::Lock::Timeout=300 "$@" >>"$log" 2>&1 \
            || die "apt-get install $* failed" "$log"
    fi
}

# apt_install PKG... -- serialised across our scripts (they may run in parallel).
apt_install() {
    ensure_dirs
    with_lock "$CACHE_DIR/apt.lock" _apt_install_locked "$@"
}

# ---------------------------------------------------------------- credentials

_ensure_credentials_locked() {
    local key
    umask 077
    touch "$CREDENTIALS_FILE"
    for key in "$@"; do
        if ! grep -q "^${key}=" "$CREDENTIALS_FILE"; then
            printf '%s=%s\n' "$key" "$(openssl rand -hex 16)" >>"$CREDENTIALS_FILE"
        fi
    done
    chmod 600 "$CREDENTIALS_FILE"
}

# load_credentials KEY... -- generate any missing KEY once (random hex), then
# source the file so every KEY is set in the calling shell.
load_credentials() {
    ensure_dirs
    command -v openssl >/dev/null 2>&1 || apt_install openssl
    with_lock "$RUN_DIR/credentials.lock" _ensure_credentials_locked "$@"
    # shellcheck disable=SC1090
    source "$CREDENTIALS_FILE"
}

# ---------------------------------------------------------------- processes

# pid_cmdline PID -- the command line of PID with spaces between arguments.
pid_cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }

# running_pid PIDFILE MARKER -- print the pid from PIDFILE if that process is
# alive and its command line contains MARKER (a literal string, normally a
# path of this checkout, so a recycled pid is not mistaken for our server);
# otherwise remove the stale pid file and return 1.
running_pid() {
    local pidfile="$1" marker="$2" pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(tr -dc '0-9' <"$pidfile" 2>/dev/null || true)"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && [[ "$(pid_cmdline "$pid")" == *"$marker"* ]]; then
        echo "$pid"
        return 0
    fi
    rm -f "$pidfile"
    return 1
}

# start_detached PIDFILE LOGFILE CMD... -- run CMD in its own session (survives
# the calling shell and terminal), stdout/stderr appended to LOGFILE, pid
# (of CMD itself, via exec) written to PIDFILE.
start_detached() {
    local pidfile="$1" logfile="$2"; shift 2
    rm -f "$pidfile"
    # The wrapper closes inherited descriptors (notably our flock fds, which
    # would otherwise stay locked for the server's lifetime), records its own
    # pid and execs the server, so the pid file holds the server's pid.
    # shellcheck disable=SC2016 # expanded by the inner bash
    setsid bash -c 'echo $$ >"$1"; shift
        for ((fd = 3; fd < 256; fd++)); do eval "exec $fd>&-"; done 2>/dev/null
        exec "$@"' _ "$pidfile" "$@" </dev/null >>"$logfile" 2>&1 &
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s "$pidfile" ]] && return 0
        sleep 0.1
    done
    die "could not start $1" "$logfile"
}

# stop_pid PID NAME [TIMEOUT_S] -- SIGTERM, wait, then SIGKILL.
stop_pid() {
    local pid="$1" name="$2" timeout="${3:-30}" i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < timeout * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    info "$name (pid $pid) did not stop within ${timeout}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    die "could not kill $name (pid $pid)"
}

# ---------------------------------------------------------------- ports

# port_open PORT -- true if something accepts TCP connections on BIND_HOST:PORT.
port_open() {
    (exec 3<>"/dev/tcp/$BIND_HOST/$1") 2>/dev/null
}

# port_owner PORT -- best-effort description of the process listening on PORT.
port_owner() {
    local port="$1" out=""
    if command -v ss >/dev/null 2>&1; then
        out="$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'users:(([^)]*))' | head -n1 || true)"
    fi
    if [[ -z "$out" ]] && command -v fuser >/dev/null 2>&1; then
        local pid
        pid="$(fuser -n tcp "$port" 2>/dev/null | tr -s ' ' | sed 's/^ //' | cut -d' ' -f1 || true)"
        [[ -n "$pid" ]] && out="pid $pid: $(pid_cmdline "$pid" | cut -c1-200)"
    fi
    echo "${out:-unknown process}"
}

# require_ports_free PORT... -- die if any port is taken (our server is not
# running, so whatever listens there is somebody else's).
require_ports_free() {
    local port
    for port in "$@"; do
        if port_open "$port"; then
            die "port $BIND_HOST:$port is already in use by a process that was not started by this checkout ($REPO): $(port_owner "$port"). Stop it (or free the port) and retry."
        fi
    done
}

# ---------------------------------------------------------------- waiting

# wait_for TIMEOUT_S PID LOGFILE DESCRIPTION CMD... -- poll CMD until it
# succeeds; fail early if PID dies, fail after TIMEOUT_S seconds.
wait_for() {
    local timeout="$1" pid="$2" logfile="$3" what="$4"; shift 4
    local deadline=$((SECONDS + timeout))
    while true; do
        if "$@" >/dev/null 2>&1; then return 0; fi
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            die "process $pid exited while waiting for $what" "$logfile"
        fi
        if ((SECONDS >= deadline)); then
            die "timed out after ${timeout}s waiting for $what" "$logfile"
        fi
        sleep 0.25
    done
}

# ---------------------------------------------------------------- CLI

# service_main "$@" -- dispatch {install|start|stop|status} to functions
# svc_install, svc_start, svc_stop, svc_status defined by the caller.
service_main() {
    local cmd="${1:-}"
    case "$cmd" in
        install) ensure_dirs; with_lock "$RUN_DIR/$SERVICE.lock" svc_install ;;
        start)   ensure_dirs; with_lock "$RUN_DIR/$SERVICE.lock" svc_start ;;
        stop)    ensure_dirs; with_lock "$RUN_DIR/$SERVICE.lock" svc_stop ;;
        status)  svc_status ;;
        *) echo "usage: $0 {install|start|stop|status}" >&2; exit 2 ;;
    esac
}
