#!/usr/bin/env bash
# Local MinIO (S3 API 127.0.0.1:39000, console 127.0.0.1:39001) for the test suite.
# The binary is built from source with `go install` (pinned version) into
# $CACHE_DIR/bin; a first build takes several minutes, later runs reuse it.
# usage: infra/local/minio.sh {install|start|stop|status}
set -euo pipefail
SERVICE=minio
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
PORT=$MINIO_PORT
CONSOLE_PORT=$MINIO_CONSOLE_PORT
ACCESS_KEY=$MINIO_ACCESS_KEY
REGION=$MINIO_REGION
BIN_DIR="$CACHE_DIR/bin"
MINIO_BIN="$BIN_DIR/minio"
SVC_DIR="$INFRA_DIR/minio"
DATA_DIR="$SVC_DIR/data"
PIDFILE="$RUN_DIR/minio.pid"
LOG="$LOG_DIR/minio.log"
PID_MARKER="server $DATA_DIR "
START_TIMEOUT=60

# ---------------------------------------------------------------- install

# binary_is_current -- the cached binary exists and was built from the pinned
# version (checked with `go version -m` when Go is available).
binary_is_current() {
    [[ -x "$MINIO_BIN" ]] || return 1
    command -v go >/dev/null 2>&1 || return 0
    go version -m "$MINIO_BIN" 2>/dev/null \
        | awk -v m="$MINIO_MODULE" -v v="$MINIO_VERSION" '$1 == "mod" && $2 == m && $3 == v {ok = 1} END {exit !ok}'
}

_install_locked() {
    local buildlog="$LOG_DIR/minio-install.log" deadline
    # A build started by hand (or by another tool) may already be running:
    # wait for it instead of compiling twice on a 2-core machine.
    deadline=$((SECONDS + 1800))
    while pgrep -f "go install $MINIO_MODULE@" >/dev/null 2>&1 && ((SECONDS < deadline)); do
        binary_is_current && break
        info "waiting for a running 'go install $MINIO_MODULE' to finish"
        sleep 10
    done
    binary_is_current && return 0
    command -v go >/dev/null 2>&1 \
        || die "Go is required to build MinIO (expected /usr/local/go/bin/go or go on PATH)"
    local tmp="$BIN_DIR/.build.$$"
    info "building MinIO $MINIO_VERSION with 'go install' (first time: several minutes; log: $buildlog)"
    mkdir -p "$tmp"
    # GOMODCACHE/GOCACHE stay at their defaults under $HOME, so rebuilds are fast.
    if ! GOBIN="$tmp" CGO_ENABLED=0 go install "$MINIO_MODULE@$MINIO_VERSION" >"$buildlog" 2>&1; then
        rm -rf "$tmp"
        die "go install $MINIO_MODULE@$MINIO_VERSION failed" "$buildlog"
    fi
    mv -f "$tmp/minio" "$MINIO_BIN"
    rm -rf "$tmp"
}

svc_install() {
    command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
    mkdir -p "$BIN_DIR"
    binary_is_current || with_lock "$CACHE_DIR/minio-build.lock" _install_locked
}

# ---------------------------------------------------------------- lifecycle

minio_ready() {
    curl -fsS -o /dev/null "http://$BIND_HOST:$PORT/minio/health/live" &&
        curl -fsS -o /dev/null "http://$BIND_HOST:$PORT/minio/health/ready"
}

svc_start() {
    local pid
    load_credentials MINIO_ROOT_PASSWORD
    if pid="$(running_pid "$PIDFILE" "$PID_MARKER")"; then
        minio_ready 2>/dev/null && return 0
        wait_for "$START_TIMEOUT" "$pid" "$LOG" "MinIO (pid $pid) to become ready" minio_ready
        return 0
    fi
    svc_install
    require_ports_free "$PORT" "$CONSOLE_PORT"
    mkdir -p "$DATA_DIR"
    log_marker "$LOG" >/dev/null
    export MINIO_ROOT_USER="$ACCESS_KEY" MINIO_ROOT_PASSWORD MINIO_SITE_REGION="$REGION" \
        MINIO_UPDATE=off MINIO_BROWSER=on MINIO_SCANNER_SPEED=slowest  # the data scanner idles on a 2-core box
    start_detached "$PIDFILE" "$LOG" "$MINIO_BIN" server "$DATA_DIR" \
        --address "$BIND_HOST:$PORT" --console-address "$BIND_HOST:$CONSOLE_PORT" --quiet
    pid="$(<"$PIDFILE")"
    wait_for "$START_TIMEOUT" "$pid" "$LOG" "MinIO to become ready on http://$BIND_HOST:$PORT" minio_ready
}

svc_stop() {
    local pid
    pid="$(running_pid "$PIDFILE" "$PID_MARKER")" || return 0
    stop_pid "$pid" minio 30
    rm -f "$PIDFILE"
}

svc_status() {
    local pid
    if pid="$(running_pid "$PIDFILE" "$PID_MARKER")"; then
        if minio_ready 2>/dev/null; then
            echo "minio: running (pid $pid) on http://$BIND_HOST:$PORT (console http://$BIND_HOST:$CONSOLE_PORT)"
        else
            echo "minio: process $pid alive but not ready (log: $LOG)"; return 1
        fi
    else
        echo "minio: stopped"; return 3
    fi
}

service_main "$@"
