#!/usr/bin/env bash
# Every measurement the issues ask for, one after the other, for a quiet machine (nothing else running).
# Each step writes its own section of docs/ with the command, the CPU's ISA flags and the load average;
# a step that fails or runs past its limit is logged and the next one starts.
#     scripts/quiet_period.sh [LOGDIR]            (default /tmp/aipc-quiet)
# Steps (limits in minutes): llama.cpp decode vs llama-bench + 1B convert (30), llama.cpp estimator
# validation incl. the report's 8B answer (45), OpenVINO decode vs GenAI (20), OpenVINO estimator
# validation (30), "what can I run here" held-out check (30), team DB (10), models --here speed (5).
set -u
cd "$(dirname "$0")/.."
LOG="${1:-/tmp/aipc-quiet}"; mkdir -p "$LOG"
PY=.venv/bin/python
GGUF8B="${AIPC_GGUF_8B:-$HOME/.cache/aipc-bench/gguf/llama-3.1-8b-q4_k_m-seed0.gguf}"
quiet() {  # wait (at most 5 minutes) for the 1-minute load average to fall below 0.9
  for _ in $(seq 60); do
    awk '{exit !($1 < 0.9)}' /proc/loadavg && return 0
    sleep 5
  done
}
step() {  # name minutes command...
  local name="$1" mins="$2"; shift 2
  quiet
  echo "$(date -u +%FT%TZ) start $name (load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$LOG/steps.log"
  timeout "$((mins * 60))" "$@" > "$LOG/$name.log" 2>&1
  echo "$(date -u +%FT%TZ) end $name rc=$? (load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$LOG/steps.log"
}
step llamacpp_decode 30 $PY benchmarks/bench_llamacpp_decode.py --write
if [ -f "$GGUF8B" ]; then
  step llamacpp_validation 45 $PY scripts/llamacpp_validation.py --write --gguf-8b "$GGUF8B"
else
  step llamacpp_validation 45 $PY scripts/llamacpp_validation.py --write
fi
step openvino_decode 20 $PY benchmarks/bench_openvino_decode.py --write
step openvino_validation 30 $PY scripts/openvino_validation.py --write
step here_validation 30 $PY scripts/here_validation.py --write
step team_db 10 $PY benchmarks/bench_team_db.py --write
step models_here 5 $PY benchmarks/bench_models_here.py --write
