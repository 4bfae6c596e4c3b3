#!/usr/bin/env bash
# The run command: MedFlow on its embedded defaults (SQLite, in-process cache and events,
# a local folder for objects) with demo data, every function on one port.
# Usage: scripts/run.sh            (MEDFLOW_PORT=8080 by default; state in .local/data)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
echo "setting up Python packages (first time: about a minute)..."
bash scripts/setup-python.sh functions,rag
export MEDFLOW_DATA_DIR="${MEDFLOW_DATA_DIR:-$REPO/.local/data}"
PORT="${MEDFLOW_PORT:-8080}"
export MEDFLOW_PUBLIC_BASE_URL="${MEDFLOW_PUBLIC_BASE_URL:-http://127.0.0.1:$PORT}"
DICOM_PORT="${MEDFLOW_DICOM_PORT:-11112}"   # the DICOM C-STORE/C-ECHO receiver (AE title MEDFLOW)
exec .venv/bin/medflow serve --migrate --demo --host 127.0.0.1 --port "$PORT" --dicom-port "$DICOM_PORT"
