#!/usr/bin/env bash
# The run command: MedFlow on its embedded defaults (SQLite, in-process cache and events,
# a local folder for objects) with demo data, every function on one port.
# Also starts the local KServe model server with the diagnostic models on ONNX Runtime
# (MEDFLOW_MODELS_PORT, default 8090; demo v2 requests written to .local/data/model-requests/).
# Usage: scripts/run.sh            (MEDFLOW_PORT=8080 by default; state in .local/data)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
echo "setting up Python packages (first time: a few minutes; the model server needs KServe and ONNX Runtime)..."
bash scripts/setup-python.sh functions,models,rag
export MEDFLOW_DATA_DIR="${MEDFLOW_DATA_DIR:-$REPO/.local/data}"
PORT="${MEDFLOW_PORT:-8080}"
export MEDFLOW_PUBLIC_BASE_URL="${MEDFLOW_PUBLIC_BASE_URL:-http://127.0.0.1:$PORT}"
DICOM_PORT="${MEDFLOW_DICOM_PORT:-11112}"   # the DICOM C-STORE/C-ECHO receiver (AE title MEDFLOW)
MODELS_PORT="${MEDFLOW_MODELS_PORT:-8090}"  # the KServe model server with the five models (ONNX Runtime)
export MEDFLOW_MODELS_URL="${MEDFLOW_MODELS_URL:-http://127.0.0.1:$MODELS_PORT}"   # where the analysis worker calls them
.venv/bin/medflow models demo-requests "$MEDFLOW_DATA_DIR/model-requests" --port "$MODELS_PORT"
.venv/bin/medflow models serve --http-port "$MODELS_PORT" --cpu &
models_pid=$!
trap 'kill "$models_pid" 2>/dev/null || true' EXIT INT TERM
.venv/bin/medflow serve --migrate --demo --host 127.0.0.1 --port "$PORT" --dicom-port "$DICOM_PORT"
