#!/usr/bin/env bash
# Times the README's test command (scripts/test.sh) the way CI runs it: in a fresh clone.
#
#   bench/test_command.sh warm    servers running, packages and builds cached (a developer's rerun)
#   bench/test_command.sh fresh   nothing cached: empty MedFlow, Go, Maven and pip caches, the
#                                 Debian server packages purged, servers stopped (a new machine)
#
# Writes bench/results/test_command.json (figures fresh_s / warm_s, the other kept) and a
# line in bench/RESULTS.md. The clone runs its own servers on ports shifted by 1000
# (MEDFLOW_INFRA_PORT_OFFSET), beside this checkout's. The fresh mode purges the
# mariadb-server and redis-server packages (running servers keep running): run it on a
# machine you can disturb.
set -euo pipefail
MODE="${1:?usage: bench/test_command.sh warm|fresh}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d /tmp/medflow-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
git clone -q "$REPO" "$WORK/clone"
cp -r "$REPO/../shared" "$WORK/shared" 2>/dev/null || true

env_args=(MEDFLOW_INFRA_PORT_OFFSET=1000)
if [[ "$MODE" == "fresh" ]]; then
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq mariadb-server mariadb-server-core redis-server redis-tools >/dev/null 2>&1 || true
  apt-get clean
  mkdir -p "$WORK/cache" "$WORK/gocache" "$WORK/gomod" "$WORK/m2"
  env_args+=(MEDFLOW_CACHE_DIR="$WORK/cache" GOCACHE="$WORK/gocache" GOMODCACHE="$WORK/gomod"
             MAVEN_OPTS="-Dmaven.repo.local=$WORK/m2" PIP_NO_CACHE_DIR=1)
fi

start=$(date +%s.%N)
set +e
(cd "$WORK/clone" && env "${env_args[@]}" CI=true bash .ci/run) > "$WORK/run.log" 2>&1
status=$?
set -e
elapsed=$(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$start" "$(date +%s.%N)")
(cd "$WORK/clone" && env "${env_args[@]}" bash infra/local/down.sh >/dev/null 2>&1 || true)
tail -3 "$WORK/run.log"
if [[ $status -ne 0 ]]; then
  echo "test command failed (status $status); log: kept at $REPO/bench/.work/test_command-$MODE.log" >&2
  mkdir -p "$REPO/bench/.work" && cp "$WORK/run.log" "$REPO/bench/.work/test_command-$MODE.log"
  exit $status
fi
summary=$(grep -oE "[0-9]+ passed[^=]*" "$WORK/run.log" | sed "s/ *$//" | paste -sd "+" - || true)   # the suite, then the manifest tests
python3 "$REPO/bench/record.py" test_command "${MODE}_s" "$elapsed" \
  "test command ($MODE machine): ${elapsed} s in a fresh clone [$summary]"
