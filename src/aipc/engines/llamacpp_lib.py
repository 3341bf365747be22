"""The parts of llama.cpp's C API (through llama-cpp-python's ctypes bindings) that aipc uses:
library start-up, its log, opening a GGUF model, and reading model facts.

llama.cpp reports errors through its log and a NULL / non-zero return. aipc installs one log
callback that keeps the recent lines (to put the cause in a one-line error) and prints nothing
unless ``AIPC_LLAMA_LOG=1``; a listener can watch lines as they come (quantization progress).
"""

from __future__ import annotations

import collections
import ctypes
import os
import threading
from collections.abc import Callable
from pathlib import Path

from aipc.errors import AipcError

GGUF_MAGIC = b"GGUF"
_lock = threading.Lock()
_state: dict = {"ready": False, "listener": None, "partial": ""}
_recent: collections.deque[str] = collections.deque(maxlen=64)


def lib():
    """The llama_cpp ctypes module, initialised once (backend started, log captured)."""
    import llama_cpp

    with _lock:
        if not _state["ready"]:
            _state["callback"] = llama_cpp.llama_log_callback(_on_log)  # keep a reference: C holds the pointer
            llama_cpp.llama_log_set(_state["callback"], ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
            _state["ready"] = True
    return llama_cpp


def _on_log(level: int, text: bytes, user_data) -> None:
    s = _state["partial"] + text.decode("utf-8", errors="replace")
    lines = s.split("\n")
    _state["partial"] = lines.pop()  # an unfinished line waits for its continuation
    for line in lines:
        _recent.append(line)
        if os.environ.get("AIPC_LLAMA_LOG") == "1":
            print(line, flush=True)
        listener = _state["listener"]
        if listener is not None:
            listener(line)


def set_listener(fn: Callable[[str], None] | None) -> None:
    """Call ``fn(line)`` for every llama.cpp log line from now on (None stops it)."""
    _state["listener"] = fn


def clear_log() -> None:
    _recent.clear()
    _state["partial"] = ""


def recent_lines() -> list[str]:
    return list(_recent)


def last_error(default: str = "no reason given") -> str:
    """The most telling recent log line: llama.cpp's stated reason, not its generic "failed to load"."""
    import re

    lines = [ln.strip() for ln in _recent if ln.strip()]
    generic = ("failed to load model", "failed to read", "failed to quantize")

    def bare(ln: str) -> str:
        return re.sub(r"^[\w:]+: (error loading model: )?", "", ln)

    for ln in reversed(lines):
        if "error loading model:" in ln and not any(g in bare(ln) for g in generic):
            return bare(ln)
    first = next((i for i, ln in enumerate(lines) if any(g in ln for g in generic)), None)
    if first:
        return bare(lines[first - 1])
    for ln in reversed(lines):
        if any(w in ln.lower() for w in ("error", "failed", "invalid", "unknown", "not supported", "unsupported")):
            return bare(ln)
    return bare(lines[-1]) if lines else default


def check_gguf_file(path: Path) -> None:
    """A readable file that starts with the GGUF magic, or a one-line AipcError saying what to do."""
    if not path.is_file():
        raise AipcError(f"no such file: {path}; pass a .gguf file (make one with 'aipc convert MODEL --to gguf')")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as e:
        raise AipcError(f"cannot read {path}: {e.strerror}; check the file and its permissions") from None
    if head != GGUF_MAGIC:
        raise AipcError(f"{path} is not a GGUF file (it does not start with 'GGUF'); "
                        "convert the model with 'aipc convert MODEL --to gguf'")


def amx_miscompiled() -> bool:
    """True when this llama.cpp has AMX kernels compiled by GCC < 14, whose ``_tile_loadconfig`` lets
    the optimiser drop the tile configuration: they die with SIGILL on Q4/Q5/Q6/Q8 weights."""
    import re

    ll = lib()
    if b"AMX_INT8 = 1" not in ll.llama_print_system_info():
        return False
    so = next(iter(sorted((Path(ll.__file__).parent / "lib").glob("libggml-cpu.so*"))), None)
    try:
        m = re.search(rb"GCC: \([^)]*\) (\d+)\.", so.read_bytes()) if so else None
    except OSError:
        return False
    return bool(m) and int(m.group(1)) < 14


def use_extra_buffers() -> bool:
    """Whether llama.cpp may put weights in its extra CPU buffer types (repacked layouts, AMX).

    ``AIPC_LLAMA_EXTRA_BUFTS=1``/``0`` decides; by default yes, unless :func:`amx_miscompiled`
    (then weights stay in plain CPU buffers and a note says to rebuild with ./setup.sh)."""
    env = os.environ.get("AIPC_LLAMA_EXTRA_BUFTS")
    if env in ("0", "1"):
        return env == "1"
    if "extra" not in _state:
        _state["extra"] = not amx_miscompiled()
    return _state["extra"]


def _note_once() -> None:
    if _state.get("extra") is False and not _state.get("noted"):
        import sys

        _state["noted"] = True
        print("note: this llama.cpp has AMX kernels built by GCC < 14, which crash (SIGILL); running without "
              "them (no AMX, no repacked weights). ./setup.sh rebuilds llama-cpp-python without AMX.", file=sys.stderr)


def open_model(path: Path, *, gpu_layers: int = 0):
    """A ``llama_model_p`` for the GGUF at ``path`` (memory-mapped); AipcError when llama.cpp refuses it."""
    check_gguf_file(path)
    ll = lib()
    params = ll.llama_model_default_params()
    params.n_gpu_layers = gpu_layers
    params.use_extra_bufts = use_extra_buffers()
    clear_log()
    model = ll.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise AipcError(f"llama.cpp cannot load {path}: {last_error()}; the file may be truncated or corrupt, "
                        "or made for another llama.cpp version: convert it again with 'aipc convert'")
    _note_once()
    return model


def meta(model, key: str) -> str | None:
    """A GGUF metadata value as text (None when the key is absent)."""
    ll = lib()
    buf = ctypes.create_string_buffer(1024)
    n = ll.llama_model_meta_val_str(model, key.encode(), buf, len(buf))
    if n < 0:
        return None
    if n >= len(buf):
        buf = ctypes.create_string_buffer(n + 1)
        ll.llama_model_meta_val_str(model, key.encode(), buf, len(buf))
    return buf.value.decode("utf-8", errors="replace")


def model_facts(model) -> dict:
    """Shape facts llama.cpp reports for a loaded model (no file parsing of our own)."""
    ll = lib()
    arch = meta(model, "general.architecture") or "?"
    n_head = ll.llama_model_n_head(model)
    n_embd = ll.llama_model_n_embd(model)
    key_len = meta(model, f"{arch}.attention.key_length")
    val_len = meta(model, f"{arch}.attention.value_length")
    head_k = int(key_len) if key_len else n_embd // max(n_head, 1)
    return {
        "architecture": arch,
        "name": meta(model, "general.name"),
        "file_type": meta(model, "general.file_type"),
        "n_layer": ll.llama_model_n_layer(model),
        "n_head": n_head,
        "n_head_kv": ll.llama_model_n_head_kv(model),
        "n_embd": n_embd,
        "head_dim_k": head_k,
        "head_dim_v": int(val_len) if val_len else head_k,
        "n_ctx_train": ll.llama_model_n_ctx_train(model),
        "n_params": ll.llama_model_n_params(model),
        "size_bytes": ll.llama_model_size(model),
        "n_vocab": ll.llama_vocab_n_tokens(ll.llama_model_get_vocab(model)),
    }


class _GGUFInitParams(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]


def _ggml_base():
    """ggml's own GGUF reader (libggml-base, loaded by llama_cpp), with argument types set once."""
    if "ggml" not in _state:
        lib()
        path = Path(lib().__file__).parent / "lib"
        name = next((p for p in sorted(path.glob("libggml-base.*")) if p.suffix in (".so", ".dylib", ".dll")), None)
        g = ctypes.CDLL(str(name or path / "libggml-base.so"))
        g.gguf_init_from_file.argtypes = [ctypes.c_char_p, _GGUFInitParams]
        g.gguf_init_from_file.restype = ctypes.c_void_p
        g.gguf_find_tensor.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        g.gguf_find_tensor.restype = ctypes.c_int64
        g.gguf_get_tensor_size.argtypes = [ctypes.c_void_p, ctypes.c_int64]
        g.gguf_get_tensor_size.restype = ctypes.c_size_t
        g.gguf_free.argtypes = [ctypes.c_void_p]
        _state["ggml"] = g
    return _state["ggml"]


def tensor_bytes(path: Path, names: tuple[str, ...]) -> dict[str, int | None]:
    """Bytes of the named tensors (None when absent), read by ggml's GGUF header reader."""
    g = _ggml_base()
    ctx = g.gguf_init_from_file(str(path).encode(), _GGUFInitParams(True, None))
    if not ctx:
        return {}
    try:
        out = {}
        for name in names:
            i = g.gguf_find_tensor(ctx, name.encode())
            out[name] = int(g.gguf_get_tensor_size(ctx, i)) if i >= 0 else None
        return out
    finally:
        g.gguf_free(ctx)
