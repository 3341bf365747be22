#!/usr/bin/env bash
# The GPU figures of docs/validation.md, measured on a CUDA machine in one command:
#   scripts/gpu_check.sh            (from the repository root, after ./setup.sh)
# 1. aipc hw --refresh       this GPU's measured peaks (GEMM per dtype, copy bandwidth)
# 2. aipc validate --set small --device cuda --write docs/validation.md
#                            peak memory: estimate beside torch.cuda.max_memory_allocated
# 3. aipc bench MODEL --device cuda:0 --scenario train,decode --json, for each MODEL
#                            step time and TPOT with MFU / MBU against the measured and the spec peak
# 4. scripts/gpu_table.py    writes the bench table into docs/validation.md ("GPU: train and decode")
# Without a CUDA GPU it stops at once (exit 2) and writes nothing.
# Environment: PYTHON (default .venv/bin/python), MODELS (default "smollm2-135m qwen2.5-0.5b"),
# DOCS (default docs/validation.md).
set -euo pipefail

PYTHON="${PYTHON:-.venv/bin/python}"
MODELS="${MODELS:-smollm2-135m qwen2.5-0.5b}"
DOCS="${DOCS:-docs/validation.md}"

if [ ! -x "$PYTHON" ]; then
    echo "error: no Python at $PYTHON; run ./setup.sh first or set PYTHON=/path/to/python" >&2
    exit 2
fi
if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)' 2>/dev/null; then
    echo "error: no CUDA GPU visible to torch here (torch.cuda.is_available() is False); run scripts/gpu_check.sh" \
         "on a machine with an NVIDIA GPU, its driver and a CUDA build of torch — nothing was measured or written" >&2
    exit 2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export AIPC_HOME="${AIPC_HOME:-$work/home}"
mkdir -p "$AIPC_HOME"
aipc() { "$PYTHON" -m aipc "$@"; }

echo "== aipc hw --refresh (this machine's GPU peaks)"
aipc hw --refresh --json > "$work/hw.json"

echo "== aipc validate --set small --device cuda (peak memory vs torch.cuda.max_memory_allocated)"
aipc validate --set small --device cuda --write "$DOCS"

reports=()
for model in $MODELS; do
    echo "== aipc bench $model --device cuda:0 --scenario train,decode"
    aipc bench "$model" --device cuda:0 --scenario train,decode --batch 4 --seq-len 512 --prompt-tokens 512 \
        --gen-tokens 64 --no-store --json > "$work/bench-$model.json"
    reports+=("$work/bench-$model.json")
done

"$PYTHON" scripts/gpu_table.py --docs "$DOCS" --hw "$work/hw.json" "${reports[@]}"
echo "written: $DOCS (sections 'Peak memory ... (cuda)' and 'GPU: train and decode')"
