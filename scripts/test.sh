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
wait_for_deploy_tools() {
  echo "== deployment tools"
  if ! wait "$deploy_tools"; then
    cat .local/deploy-tools.log >&2
    echo "scripts/deploy-tools.sh failed (log above)" >&2
    exit 1
  fi
  tail -n 1 .local/deploy-tools.log
}
set +e
if [[ $# -eq 0 ]]; then
  # The whole suite: everything but the manifest tests runs while the deployment tools
  # build (a first build takes most of 20 minutes on 2 cores), then the manifest tests.
  echo "== tests (the manifest tests once the deployment tools are built)"
  .venv/bin/pytest --ignore=tests/manifests
  status=$?
  wait_for_deploy_tools
  echo "== manifest tests"
  .venv/bin/pytest tests/manifests
  manifests=$?
  if [[ $status -eq 5 || $manifests -eq 5 ]]; then
    echo "pytest collected no tests in one of the two parts: failing the run" >&2
    status=1
  elif [[ $status -eq 0 ]]; then
    status=$manifests
  fi
else
  wait_for_deploy_tools
  echo "== tests"
  .venv/bin/pytest "$@"
  status=$?
  if [[ $status -eq 5 ]]; then
    echo "pytest collected no tests: failing the run" >&2
    status=1
  fi
fi
set -e
echo "test command finished in $(( $(date +%s) - started )) s with status $status"
exit $status
