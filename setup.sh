#!/usr/bin/env bash
# Create or reuse the local virtual environment .venv and install aipc into it.
#   ./setup.sh          runtime (aipc + LoRA, serve, data, seal extras)
#   ./setup.sh dev      the above plus the test tools
# Where no NVIDIA GPU is present, the CPU build of torch is installed first, so pip never
# pulls a multi-GB CUDA build on a CPU-only machine (CI included).
set -euo pipefail
cd "$(dirname "$0")"
VENV="${AIPC_VENV:-.venv}"
EXTRA="${1:-all}"
[ "$EXTRA" = "dev" ] || EXTRA="all"

PY=""
for cand in python3 python3.13 python3.12 python3.11 python3.10; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "import sys; sys.exit(sys.version_info < (3, 10))" 2>/dev/null; then
    PY="$cand"; break
  fi
done
[ -n "$PY" ] || { echo "setup.sh: needs Python >= 3.10 (none found on PATH)" >&2; exit 2; }

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

stamp="$(cat pyproject.toml setup.sh | sha256sum | cut -c1-16)-$EXTRA"
if [ -f "$VENV/.aipc-stamp" ] && [ "$(cat "$VENV/.aipc-stamp")" = "$stamp" ]; then
  exit 0
fi

has_nvidia() {
  [ -e /proc/driver/nvidia/version ] && return 0
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1
}

if ! "$VENV/bin/python" -c 'import torch' >/dev/null 2>&1; then
  if has_nvidia; then
    echo "setup.sh: NVIDIA GPU found: installing the default (CUDA) torch build" >&2
    "${PIP[@]}" install "torch>=2.4"
  else
    # CPU-only machine: a CPU wheel that pip can see locally (find-links) first, else PyTorch's CPU index.
    local_cpu=""
    for d in $("$VENV/bin/python" -m pip config get global.find-links 2>/dev/null || true) ${PIP_FIND_LINKS:-}; do
      ls "$d"/torch-*+cpu-*.whl >/dev/null 2>&1 && local_cpu=1
    done
    if [ -n "$local_cpu" ]; then
      echo "setup.sh: no NVIDIA GPU: installing the local CPU build torch==2.13.0" >&2
      "${PIP[@]}" install "torch==2.13.0"
    else
      echo "setup.sh: no NVIDIA GPU: installing torch from PyTorch's CPU index" >&2
      "${PIP[@]}" install torch --index-url https://download.pytorch.org/whl/cpu
    fi
  fi
fi

"${PIP[@]}" install -e ".[$EXTRA]"
echo "$stamp" > "$VENV/.aipc-stamp"
