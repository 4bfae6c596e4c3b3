#!/usr/bin/env bash
# Stop the local test servers and delete everything under .local/infra
# (data, generated config, credentials, logs, env.sh). The download/build
# cache outside the repository ($MEDFLOW_CACHE_DIR) is kept.
# usage: infra/local/reset.sh
set -euo pipefail
SERVICE=infra
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"$INFRA_SCRIPTS_DIR/down.sh"
case "$INFRA_DIR" in
    */.local/infra) rm -rf "$INFRA_DIR" ;;
    *) die "refusing to delete unexpected path $INFRA_DIR" ;;
esac
echo "infra: removed $INFRA_DIR"
