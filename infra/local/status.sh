#!/usr/bin/env bash
# One line per local test server; exit status 0 only when all are running.
# usage: infra/local/status.sh [service...]
set -euo pipefail
SERVICE=infra
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

services=("$@")
((${#services[@]})) || services=("${SERVICES[@]}")
rc=0
for svc in "${services[@]}"; do
    "$INFRA_SCRIPTS_DIR/$svc.sh" status || rc=1
done
exit "$rc"
