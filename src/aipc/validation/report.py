"""Render validation rows: terminal table, JSON, and the Markdown of docs/validation.md."""

from __future__ import annotations

import datetime as dt
import platform
from pathlib import Path
from typing import Any

from aipc.render import gb
from aipc.validation.runner import Row, summary

ALLOCATOR_TEXT = {
    "aipc": "under aipc's allocator setting (`aipc.runtime.configure_allocator`: glibc `mallopt(M_MMAP_THRESHOLD, "
            "65536)` at start-up, as `aipc train/generate/serve/bench` set it; large blocks return to the OS on "
            "free, so peaks repeat) — the behaviour the estimate states and models",
    "default": "under glibc's default malloc (`AIPC_MALLOC=default`: freed large blocks may stay in the heap, so "
               "the peak depends on the run's history) — not what the estimate models; shown for comparison",
}


def as_dict(rows: list[Row]) -> dict[str, Any]:
    return {"rows": [{"name": r.name, "workload": r.workload, "measured_bytes": r.measured_bytes,
                      "estimated_bytes": r.estimated_bytes, "error": r.error,
                      "weights_only_bytes": r.weights_only_bytes, "weights_only_error": r.weights_only_error,
                      "peak_phase": r.peak_phase, "measurement": r.measured} for r in rows],
            "summary": summary(rows) if rows else {}}


def render(rows: list[Row], c) -> None:
    from rich.table import Table

    t = Table(title="peak memory: estimate beside measurement (CPU: peak RSS above the post-import baseline)")
    for col in ("workload", "measured", "aipc", "error", "weights only", "error"):
        t.add_column(col, justify="left" if col == "workload" else "right")
    for r in rows:
        t.add_row(r.name, gb(r.measured_bytes, 2), gb(r.estimated_bytes, 2), f"{r.error:+.1%}",
                  gb(r.weights_only_bytes, 2), f"{r.weights_only_error:+.1%}")
    c.print(t)
    if len(rows) > 1:
        s = summary(rows)
        c.print(f"aipc: median |error| {s['median_abs_error']:.1%}, max {s['max_abs_error']:.1%}; "
                f"weights-only: median {s['weights_only_median_abs_error']:.1%}, max {s['weights_only_max_abs_error']:.1%}")


def markdown(rows: list[Row], command: str, allocator: str = "aipc", device: str = "cpu") -> str:
    import torch  # versions of what was measured
    import transformers

    s = summary(rows)
    lines = [
        f"Command: `{command}` — {dt.date.today().isoformat()}, {platform.machine()} "
        f"{platform.processor() or ''} ({_cores()} cores), Python {platform.python_version()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}.",
        "",
        ("Measured: `torch.cuda.max_memory_allocated` after the model is built and the peak statistics reset. "
         if device.startswith("cuda") else
         "Measured: peak RSS (VmHWM) of a fresh process above its RSS right after importing torch and "
         f"transformers, {ALLOCATOR_TEXT.get(allocator, allocator)}. ")
        + "Training runs 2 optimizer steps (AdamW; the second has all states allocated); "
        "inference runs a prefill then `generate()` (greedy). Random weights, real transformers architectures.",
        "Estimated: `aipc estimate` peak minus its framework (import) component"
        + (" and its runtime component (CUDA context, allocator margin)" if device.startswith("cuda") else "")
        + ". Error = (estimate − measured) / measured.",
        "",
        "| workload | measured | aipc | error | weights only | error | peak phase |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r.name} | {gb(r.measured_bytes, 2)} | {gb(r.estimated_bytes, 2)} | {r.error:+.1%} | "
                     f"{gb(r.weights_only_bytes, 2)} | {r.weights_only_error:+.1%} | {r.peak_phase} |")
    lines += ["", f"**aipc: median |error| {s['median_abs_error']:.1%}, max {s['max_abs_error']:.1%}** over {s['n']} "
                  f"workloads; weights-only baseline: median {s['weights_only_median_abs_error']:.1%}, "
                  f"max {s['weights_only_max_abs_error']:.1%}.", ""]
    return "\n".join(lines)


def _cores() -> int:
    import os

    return os.cpu_count() or 1


SECTION = "## Peak memory: estimate beside measurement"


def section(command: str) -> str:
    """The section a command's table goes to: the docs' main table for `--set full` on the CPU under
    aipc's allocator, one section per other set / allocator / device."""
    import shlex

    args = shlex.split(command)
    opt = {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--")}
    parts = [f"{opt['--set']} set" if opt.get("--set", "full") != "full" else "",
             f"{opt['--allocator']} allocator" if opt.get("--allocator", "aipc") != "aipc" else "",
             opt.get("--device", "cpu") if opt.get("--device", "cpu") != "cpu" else ""]
    extra = ", ".join(p for p in parts if p)
    return SECTION + (f" ({extra})" if extra else "")


def write_markdown(rows: list[Row], path: str | Path, command: str, allocator: str = "aipc",
                   device: str = "cpu") -> None:
    """Write (or replace) this command's section of the file, keeping its other sections."""
    from aipc.mdsection import replace_section

    replace_section(path, section(command), markdown(rows, command, allocator, device),
                    new_file="# Validation: estimates against measurements\n")
