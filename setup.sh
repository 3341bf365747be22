#!/usr/bin/env bash
# Create or reuse the local virtual environment .venv and install aipc into it.
#   ./setup.sh          runtime (aipc + LoRA, serve, data, seal extras, llama.cpp and OpenVINO engines)
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

stamp="$(cat pyproject.toml setup.sh openvino-export-requirements.txt | sha256sum | cut -c1-16)-$EXTRA"
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

LLAMA_CPP_PY="$(grep -o 'llama-cpp-python==[0-9.]*' pyproject.toml | head -n 1 | cut -d= -f3)"
# GCC < 14's _tile_loadconfig tells the optimiser it reads 8 bytes, so the stores that fill llama.cpp's
# AMX tile configuration are dropped and its AMX kernels (Q4/Q5/Q6/Q8 weights) die with SIGILL on CPUs
# with AMX. There llama-cpp-python is built without AMX (once per machine; the wheel is kept).
amx_gcc_bug() {
  grep -qw amx_tile /proc/cpuinfo 2>/dev/null || return 1
  local hdr
  hdr="$(${CC:-gcc} -print-file-name=include 2>/dev/null)/amxtileintrin.h"
  [ -f "$hdr" ] && grep -q '(const void \*\*)__config' "$hdr"
}
llama_has_amx() {
  "$VENV/bin/python" -c 'import llama_cpp, sys; sys.exit("AMX_INT8 = 1" not in llama_cpp.llama_print_system_info().decode())' \
    >/dev/null 2>&1
}
if amx_gcc_bug && { ! "$VENV/bin/python" -c 'import llama_cpp' >/dev/null 2>&1 || llama_has_amx; }; then
  wheels="${XDG_CACHE_HOME:-$HOME/.cache}/aipc/wheels/llama-cpp-python-$LLAMA_CPP_PY-noamx"
  if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "setup.sh: building llama-cpp-python $LLAMA_CPP_PY without AMX (this GCC drops llama.cpp's AMX tile" \
         "configuration): about 15-40 minutes on 2 cores, once per machine (kept in $wheels)" >&2
    noamx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    CMAKE_ARGS="${CMAKE_ARGS:-} -DCMAKE_C_FLAGS='$noamx' -DCMAKE_CXX_FLAGS='$noamx'" \
      "${PIP[@]}" wheel --no-deps --no-cache-dir --no-binary llama-cpp-python "llama-cpp-python==$LLAMA_CPP_PY" -w "$wheels"
  fi
  "${PIP[@]}" install --force-reinstall --no-deps "$wheels"/llama_cpp_python-*.whl
elif ! "$VENV/bin/python" -c 'import llama_cpp' >/dev/null 2>&1; then
  echo "setup.sh: installing llama-cpp-python $LLAMA_CPP_PY; where no binary wheel fits, pip builds it from source" \
       "for this CPU (about 12-15 minutes on 2 cores, once per machine: pip caches the wheel)" >&2
fi
"${PIP[@]}" install -e ".[$EXTRA]"

# llama.cpp's own GGUF converter (convert_hf_to_gguf.py, its conversion/ package and gguf-py) from the
# same llama-cpp-python release: `aipc convert --to gguf` runs it; nothing is downloaded at run time.
conv="$VENV/share/aipc/llama.cpp"
if [ "$(cat "$conv/.release" 2>/dev/null)" != "$LLAMA_CPP_PY" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  "${PIP[@]}" download --no-deps --no-binary :all: "llama-cpp-python==$LLAMA_CPP_PY" -d "$tmp" >/dev/null
  tar xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp" --wildcards \
    '*/vendor/llama.cpp/convert_hf_to_gguf.py' '*/vendor/llama.cpp/conversion/*' '*/vendor/llama.cpp/gguf-py/*'
  rm -rf "$conv" && mkdir -p "$(dirname "$conv")"
  mv "$tmp"/llama_cpp_python-*/vendor/llama.cpp "$conv"
  echo "$LLAMA_CPP_PY" > "$conv/.release"
fi
# OpenVINO's exporter (optimum-intel) supports transformers < 5.6 only: it goes with the transformers
# release it supports into a folder of its own, which `aipc convert --to openvino` puts first on the
# PYTHONPATH of its export child process; everything else comes from this environment.
ovx="$VENV/share/aipc/openvino-export"
ovx_want="$(sha256sum openvino-export-requirements.txt | cut -c1-16)"
if [ "$(cat "$ovx/.requirements" 2>/dev/null)" != "$ovx_want" ]; then
  echo "setup.sh: installing the OpenVINO exporter (optimum-intel + its transformers) into $ovx" >&2
  rm -rf "$ovx" && mkdir -p "$ovx"
  "${PIP[@]}" install --no-deps --target "$ovx" -r openvino-export-requirements.txt
  echo "$ovx_want" > "$ovx/.requirements"
fi
echo "$stamp" > "$VENV/.aipc-stamp"
