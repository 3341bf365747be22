"""`aipc models --here --json` over the whole catalog: wall time of a whole process from a cold shell,
with a cached `aipc hw` profile and calibration (issue 18: <= 1 s on the 2-core machine).

    .venv/bin/python benchmarks/bench_models_here.py [--runs 7] [--write]

The GGUF-parts cache (aipc.estimate.here_cache) is emptied first: the first run computes llama.cpp's
per-tensor mix for every model and type and fills it, and is reported apart; the median is over the
runs after it. One more run under ``-X importtime`` checks that torch, transformers and
llama_cpp are never imported. No peer tool answers this question offline, so there is no ratio.
Writes the section "## aipc models --here" of docs/benchmarks.md with the command, the CPU's ISA
flags and the load average."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AIPC = str(Path(sys.executable).with_name("aipc"))
CMD = [AIPC, "models", "--here", "--json"]
HEAVY = ("torch", "transformers", "llama_cpp")


def timed() -> tuple[float, dict]:
    t = time.perf_counter()
    r = subprocess.run(CMD, check=True, capture_output=True, text=True)
    return time.perf_counter() - t, json.loads(r.stdout)


def heavy_imports() -> list[str]:
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "aipc", *CMD[1:]], capture_output=True, text=True,
                       check=True)
    names = {ln.split("|")[-1].strip() for ln in r.stderr.splitlines() if ln.startswith("import time:")}
    return sorted(n for n in names if n.split(".")[0] in HEAVY)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    from aipc.estimate.here_cache import _path
    from aipc.hardware.detect import isa_flags_line

    _path().unlink(missing_ok=True)  # the first run computes every GGUF mix and fills the cache
    load0 = os.getloadavg()
    first, data = timed()
    if not data["measured_peaks"]:
        sys.exit("error: no cached aipc hw profile of this machine; run '.venv/bin/aipc hw --quick' first")
    walls = [timed()[0] for _ in range(a.runs)]
    heavy = heavy_imports()
    load1 = os.getloadavg()
    kinds = sorted({r["decode_kind"] for r in data["rows"]})
    body = "\n".join([
        f"Command: `.venv/bin/python benchmarks/bench_models_here.py --runs {a.runs} --write` — "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; ISA flags: {isa_flags_line()}; load average "
        f"{load0[0]:.2f} before, {load1[0]:.2f} after (2 cores: above 1 other work was running).",
        "",
        "| what | wall | target |",
        "|---|---:|---:|",
        f"| `aipc models --here --json`, first run, GGUF-parts cache empty (fills it) | {first:.2f} s | |",
        f"| the same, median of {a.runs} runs (min {min(walls):.2f} s, max {max(walls):.2f} s) | "
        f"{statistics.median(walls):.2f} s | <= 1 s |",
        "",
        f"{len(data['rows'])} rows ({', '.join(data['engines'])}), {len(data['skipped'])} not modelled; decode "
        f"figures of kind {', '.join(kinds)}. Heavy modules imported: {', '.join(heavy) or 'none'} "
        "(`-X importtime`).",
    ])
    print(body)
    if a.write:
        from aipc.mdsection import replace_section

        replace_section(ROOT / "docs" / "benchmarks.md", "## aipc models --here", body)


if __name__ == "__main__":
    main()
