"""Process-wide torch settings aipc applies before running a model on the CPU.

Flush-to-zero for denormal floats: with random weights (how aipc builds catalog models) activations
drift into the denormal range and x86 CPUs then run many times slower (measured in docs/benchmarks.md
"Measurements behind defaults"). GPUs flush denormals in their
fast paths anyway; the numeric effect is limited to values below 1.2e-38. Benchmarks that compare
aipc with a peer apply it to the whole process, so both sides run under the same setting.
"""

from __future__ import annotations

_done = False


def prepare_cpu() -> bool:
    """Enable flush-to-zero for denormals (once per process); True if the CPU supports it."""
    global _done
    import torch

    ok = bool(torch.set_flush_denormal(True))
    _done = True
    return ok
