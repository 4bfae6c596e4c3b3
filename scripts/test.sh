#!/usr/bin/env bash
# The test command: installs and starts the real servers (MariaDB, Redis, Kafka, MinIO)
# under infra/local, then runs the whole suite against them and the embedded adapters.
# Extra arguments go to pytest.  Usage: scripts/test.sh [-k expr] [-x]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
started=$(date +%s)
# Deployment tools (kustomize, kubeconform, terraform + providers, for tests/manifests) are
# Go builds: started first, in the background, while packages install and servers start.
mkdir -p .local
bash scripts/deploy-tools.sh >.local/deploy-tools.log 2>&1 &
deploy_tools=$!
echo "== python packages"
bash scripts/setup-python.sh functions,models,train,rag,dev
echo "== real servers"
bash infra/local/up.sh
set -a
. .local/infra/env.sh
set +a
export MEDFLOW_REQUIRE_REAL=1   # a missing server fails the run instead of skipping tests
echo "== deployment tools"
if ! wait "$deploy_tools"; then
  cat .local/deploy-tools.log >&2
  echo "scripts/deploy-tools.sh failed (log above)" >&2
  exit 1
fi
tail -n 1 .local/deploy-tools.log
echo "== tests"
set +e
.venv/bin/pytest "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
  echo "pytest collected no tests: failing the run" >&2
  status=1
fi
echo "test command finished in $(( $(date +%s) - started )) s with status $status"
exit $status
