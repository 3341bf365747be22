"""Estimator speed: `aipc estimate` from a cold shell, one estimate in process, a 10,000-workload sweep.

    .venv/bin/python benchmarks/bench_estimate_speed.py [--write]

Targets (issue 3): cold shell <= 0.5 s wall (no torch import on this path); one estimate <= 5 ms;
a sweep of 10,000 workloads <= 1 s. Medians of repeated runs; the machine and load are recorded."""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AIPC = str(Path(sys.executable).with_name("aipc"))


def cold_shell(n: int = 7) -> list[float]:
    """Wall time of a whole `aipc estimate ... --json` process."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([AIPC, "estimate", "llama-3.1-8b", "--device", "rtx-4090", "--json"], check=True,
                       capture_output=True)
        out.append(time.perf_counter() - t)
    return out


def in_process() -> tuple[float, float, float]:
    from aipc.estimate import estimate, resolve_model
    from aipc.hardware.local import resolve_device
    from aipc.estimate.sweep import sweep
    from aipc.spec import Workload, workload_from_dict

    m, d = resolve_model("llama-3.1-8b"), resolve_device("rtx-4090")
    fits = Workload(model="llama-3.1-8b", task="infer").validate()
    nofit = workload_from_dict({"model": "llama-3.1-8b", "task": "train", "precision": "mixed-bf16"})
    estimate(fits, d, model=m)

    def per_call(w, n=300):
        t = time.perf_counter()
        for _ in range(n):
            estimate(w, d, model=m)
        return (time.perf_counter() - t) / n

    one_fit = statistics.median(per_call(fits) for _ in range(5))
    one_nofit = statistics.median(per_call(nofit, 50) for _ in range(5))
    ws = [Workload(model="llama-3.1-8b", task=t, batch_size=b, seq_len=s, prompt_tokens=s,
                   method="full" if t == "infer" else "lora").validate()
          for t, b, s in itertools.product(["infer", "train"], range(1, 51), range(256, 256 * 101, 256))]
    assert len(ws) == 10_000
    times = []
    for _ in range(3):
        t = time.perf_counter()
        sweep(ws, d)
        times.append(time.perf_counter() - t)
    return one_fit, one_nofit, statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    cold = cold_shell()
    one_fit, one_nofit, sw = in_process()
    load = os.getloadavg()[0]
    body = "\n".join([
        f"Command: `.venv/bin/python benchmarks/bench_estimate_speed.py --write` — {time.strftime('%Y-%m-%d')}, "
        f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, load average {load:.1f} "
        "at the end (other work was running if > 1).",
        "",
        "| what | median | target |",
        "|---|---:|---:|",
        f"| `aipc estimate llama-3.1-8b --device rtx-4090 --json`, cold shell (7 runs; min {min(cold):.2f} s) | {statistics.median(cold):.2f} s | <= 0.5 s |",
        f"| one estimate in process (fits: no suggestions) | {one_fit * 1e3:.2f} ms | <= 5 ms |",
        f"| one estimate in process (does not fit: suggestions + device count) | {one_nofit * 1e3:.2f} ms | <= 5 ms |",
        f"| sweep of 10,000 workloads (`aipc.estimate.sweep`) | {sw:.2f} s | <= 1 s |",
    ])
    print(body)
    if a.write:
        from aipc.mdsection import replace_section

        replace_section(ROOT / "docs" / "benchmarks.md", "## Estimate", body)


if __name__ == "__main__":
    main()
