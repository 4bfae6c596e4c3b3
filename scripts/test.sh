#!/usr/bin/env bash
# The test command: installs and starts the real servers (MariaDB, Redis, Kafka, MinIO)
# under infra/local, then runs the whole suite against them and the embedded adapters.
# Extra arguments go to pytest.  Usage: scripts/test.sh [-k expr] [-x]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
started=$(date +%s)
echo "== python packages"
bash scripts/setup-python.sh functions,models,train,dev
echo "== real servers"
bash infra/local/up.sh
set -a
. .local/infra/env.sh
set +a
export MEDFLOW_REQUIRE_REAL=1   # a missing server fails the run instead of skipping tests
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
