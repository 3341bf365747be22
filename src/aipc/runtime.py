"""Process-wide settings aipc applies before running a model on the CPU: denormals, the allocator,
and the thread count.

Flush-to-zero for denormal floats: with random weights (how aipc builds catalog models) activations
drift into the denormal range and x86 CPUs then run many times slower (measured in docs/benchmarks.md
"Measurements behind defaults"). GPUs flush denormals in their
fast paths anyway; the numeric effect is limited to values below 1.2e-38. Benchmarks that compare
aipc with a peer apply it to the whole process, so both sides run under the same setting.

The allocator (:func:`configure_allocator`): glibc's default malloc keeps freed large blocks in the
heap (its mmap threshold grows with the blocks it has seen), so a process's peak RSS depends on its
history — 3-69% above the tensors' peak on this project's CPU runs (FIELD-NOTES). aipc's own
processes (train, generate, serve, bench, the validation children) set ``M_MMAP_THRESHOLD`` to
64 KiB with ``mallopt`` at start-up, as ``MALLOC_MMAP_THRESHOLD_=65536`` does: large blocks are
mmapped and returned on free, so the peak is the tensors' peak that ``aipc estimate`` models (it
says which allocator behaviour it describes). ``AIPC_MALLOC=default`` keeps glibc's default.

Threads (:func:`choose_threads`): on a busy CPU every multi-threaded operator waits for its slowest
thread, and a step with all threads can run 4-15x slower than with one; the count is chosen by
timing a linear layer of the run's shape at each candidate, now (as ``aipc serve`` / ``generate``
do with decode steps).
"""

from __future__ import annotations

import os
import statistics
import sys
import time

_done = False
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3     # glibc <malloc.h>
MMAP_THRESHOLD_BYTES = 65536
ENV = "AIPC_MALLOC"
allocator_state: dict[str, str] = {}


def prepare_cpu() -> bool:
    """Enable flush-to-zero for denormals (once per process); True if the CPU supports it."""
    global _done
    import torch

    ok = bool(torch.set_flush_denormal(True))
    _done = True
    return ok


def _glibc():
    """glibc as a ctypes library, or None on another C library / OS."""
    import ctypes
    import platform

    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def configure_allocator(env: dict | None = None) -> str:
    """Set glibc's mmap threshold to 64 KiB (and return free heap memory to the OS) for this
    process, unless ``AIPC_MALLOC=default``; returns the allocator behaviour in effect, in words."""
    env = os.environ if env is None else env
    if env.get(ENV, "").strip().lower() == "default":
        state = "glibc malloc defaults (AIPC_MALLOC=default)"
    elif env.get("MALLOC_MMAP_THRESHOLD_"):
        state = f"glibc malloc, MALLOC_MMAP_THRESHOLD_={env['MALLOC_MMAP_THRESHOLD_']} (environment)"
    else:
        libc = _glibc()
        if libc is None:
            state = "not glibc: the C library's default allocator"
        elif libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1:
            libc.malloc_trim(0)
            state = f"glibc malloc, mmap threshold {MMAP_THRESHOLD_BYTES // 1024} KiB (mallopt at start-up)"
        else:
            state = "glibc malloc defaults (mallopt refused)"
    allocator_state["allocator"] = state
    return state


def allocator() -> str:
    """The allocator behaviour this process runs under (after :func:`configure_allocator`)."""
    return allocator_state.get("allocator") or "glibc malloc defaults (not configured)"


# ---------------------------------------------------------------- threads

def candidates(default: int) -> list[int]:
    """Thread counts worth timing: the default, half of it (4+ cores) and 1, largest first."""
    return sorted({default, max(1, default // 2) if default >= 4 else default, 1}, reverse=True)


def pick_threads(fn, counts: list[int], rounds: int = 2, reps: int = 2) -> tuple[int, dict[int, float]]:
    """The torch thread count with the fastest ``fn()`` (median seconds of ``rounds`` alternating
    rounds of ``reps`` calls, after one warm-up call each); leaves the winner set."""
    import torch

    per: dict[int, list[float]] = {c: [] for c in counts}
    for c in counts:
        torch.set_num_threads(c)
        fn()
    for _ in range(rounds):
        for c in counts:
            torch.set_num_threads(c)
            t = time.perf_counter()
            for _ in range(reps):
                fn()
            per[c].append((time.perf_counter() - t) / reps)
    med = {c: statistics.median(v) for c, v in per.items()}
    best = min(med, key=med.get)
    torch.set_num_threads(best)
    return best, med


def layer_probe(rows: int, hidden: int, inter: int, dtype: str = "fp32", train: bool = False,
                max_flops: float = 2e8):
    """A closure running one linear layer of the run's shape: (rows, hidden) -> inter, forward (and
    backward for training), shrunk to about ``max_flops`` so a probe call stays around 0.1 s even
    where a dtype is emulated."""
    import torch
    import torch.nn.functional as F

    tdt = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    hidden, inter = min(hidden, 4096), min(inter, 4 * 4096)
    per_row = (6 if train else 2) * hidden * inter
    rows = max(8, min(rows, 2048, int(max_flops // per_row) or 8))
    x = torch.randn(rows, hidden, dtype=tdt, requires_grad=train)
    w = torch.randn(inter, hidden, dtype=tdt, requires_grad=train)
    if not train:
        def fwd():
            with torch.inference_mode():
                F.linear(x, w)
        return fwd
    gy = torch.randn(rows, inter, dtype=tdt)

    def step():
        x.grad = w.grad = None
        F.linear(x, w).backward(gy)
    return step


def choose_threads(rows: int, hidden: int, inter: int, dtype: str = "fp32", train: bool = False
                   ) -> tuple[int, dict[int, float], str]:
    """(threads, seconds per probe call by thread count, one-line note) for a CPU run of this shape,
    chosen by measurement now; the winner is left set."""
    import torch

    default = torch.get_num_threads()
    counts = candidates(default)
    if len(counts) == 1:
        return default, {}, f"{default} CPU thread (one available)"
    best, med = pick_threads(layer_probe(rows, hidden, inter, dtype, train), counts)
    times = ", ".join(f"{c}: {s * 1e3:.1f} ms" for c, s in med.items())
    return best, med, (f"{best} CPU threads, chosen by timing a {'training ' if train else ''}linear layer "
                       f"({rows} x {hidden} -> {inter}, {dtype}) at each count now ({times})")
