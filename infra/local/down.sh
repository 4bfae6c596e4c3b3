#!/usr/bin/env bash
# Stop the local test servers (SIGTERM, then SIGKILL after a timeout).
# Data, logs and credentials are kept; `up.sh` starts them again.
# usage: infra/local/down.sh [service...]   (default: all four)
set -euo pipefail
SERVICE=infra
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

services=("$@")
((${#services[@]})) || services=("${SERVICES[@]}")
declare -A job
for svc in "${services[@]}"; do
    [[ -x "$INFRA_SCRIPTS_DIR/$svc.sh" ]] || die "unknown service '$svc' (known: ${SERVICES[*]})"
    ( set -o pipefail; "$INFRA_SCRIPTS_DIR/$svc.sh" stop 2>&1 | sed -u "s/^/[$svc] /" >&2 ) &
    job[$svc]=$!
done
failed=()
for svc in "${services[@]}"; do
    wait "${job[$svc]}" || failed+=("$svc")
done
((${#failed[@]} == 0)) || die "could not stop: ${failed[*]}"
