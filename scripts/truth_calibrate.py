"""Held-out time error after `aipc calibrate` (torch engine, this CPU). One command:

    .venv/bin/python scripts/truth_calibrate.py [--write docs/validation.md] [--passes 2] [--threads N]

In a fresh AIPC_HOME: `aipc hw`, then `aipc bench MODEL --scenario train,prefill,decode` at every shape
below (each shape `--passes` times, fp32, a fixed thread count so every run shares one profile), then
`aipc calibrate --json`. It reports, per scenario, the median and the largest |error| of the held-out
predictions (each run predicted by factors refitted without any run of its model, scenario and shape;
`aipc.bench.calibration.held_out`) and of the uncalibrated estimator. Targets: median <= 10%, max <= 20%.
"""

from __future__ import annotations

import functools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from truth_common import finish, parser, run_aipc  # noqa: E402

aipc = functools.partial(run_aipc, timeout=3600)  # seconds allowed to each aipc command

SHAPES = {"smollm2-135m": [(1, 32), (1, 64), (1, 128), (1, 256), (2, 64), (4, 32)],
          "gpt2": [(1, 32), (1, 64), (1, 128), (1, 256)],
          "smollm2-360m": [(1, 32), (1, 64), (1, 128)]}


def run(passes: int, threads: int, shapes: dict) -> dict:
    env = {**os.environ, "AIPC_HOME": tempfile.mkdtemp(prefix="aipc-calibrate-"), "OMP_NUM_THREADS": str(threads)}
    t0 = time.time()
    load0 = os.getloadavg()[0]
    hw = aipc("hw", "--json", env=env)
    loads = []
    for _ in range(passes):
        for model, ss in shapes.items():
            for b, s in ss:
                rep = aipc("bench", model, "--device", "cpu", "--scenario", "train,prefill,decode", "--precision", "fp32",
                           "--warmup", "1", "--min-reps", "5", "--min-time", "1", "--max-time", "20", "--batch", str(b),
                           "--seq-len", str(s), "--prompt-tokens", str(s), "--gen-tokens", "16",
                           "--threads", str(threads), "--json", env=env)
                loads.append(rep["load_avg"][0])
    res = aipc("calibrate", "--json", env=env)
    return {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t0)), "wall_s": time.time() - t0,
            "load_before": load0, "load_during": [min(loads), max(loads)], "threads": threads, "passes": passes,
            "profile": {"fp32_gemm": hw["devices"][0]["gemm"]["fp32"]["flops_s"]["median"],
                        "fp32_train": hw["devices"][0]["train_gemm"]["fp32"]["flops_s"]["median"],
                        "copy": hw["devices"][0]["bandwidth"]["copy"]["bytes_s"]["median"]},
            "summary": summary(res["held_out"]), "held_out": res["held_out"]}


def summary(rows: list[dict]) -> dict:
    out = {}
    for scen in ("train", "prefill", "decode", "all"):
        rs = [r for r in rows if scen == "all" or r["scenario"] == scen]
        after = [abs(r["error_after"]) for r in rs if r["error_after"] is not None]
        before = [abs(r["error_before"]) for r in rs if r["error_before"] is not None]
        if after:
            out[scen] = {"n": len(rs), "median_after": statistics.median(after), "max_after": max(after),
                         "median_before": statistics.median(before) if before else None,
                         "max_before": max(before) if before else None}
    return out


def markdown(r: dict) -> str:
    p = r["profile"]
    lines = [f"Command: `.venv/bin/python scripts/truth_calibrate.py --write docs/validation.md` — started {r['started']}, "
             f"{r['wall_s'] / 60:.0f} min, {r['threads']} threads, fp32, {r['passes']} passes over the shapes; 1-minute "
             f"load {r['load_before']:.1f} before, {r['load_during'][0]:.1f}-{r['load_during'][1]:.1f} during. Profile: "
             f"fp32 GEMM {p['fp32_gemm'] / 1e9:,.0f} GFLOP/s, linear forward+backward {p['fp32_train'] / 1e9:,.0f} GFLOP/s, "
             f"copy {p['copy'] / 1e9:,.1f} GB/s.", "",
             f"Shapes (batch, tokens): " + "; ".join(f"{m} {', '.join(map(str, ss))}" for m, ss in SHAPES.items()) + ".", "",
             "| scenario | runs | held-out median abs error | held-out max | uncalibrated median | uncalibrated max |",
             "|---|---:|---:|---:|---:|---:|"]
    pct = lambda x: "-" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    for scen, s in r["summary"].items():
        lines.append(f"| {scen} | {s['n']} | {pct(s['median_after'])} | {pct(s['max_after'])} | "
                     f"{pct(s['median_before'])} | {pct(s['max_before'])} |")
    lines += ["", "Targets: held-out median <= 10%, max <= 20%.", ""]
    return "\n".join(lines)


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--models", help="comma-separated subset of " + ", ".join(SHAPES))
    a = ap.parse_args()
    shapes = {m: SHAPES[m] for m in (a.models.split(",") if a.models else SHAPES)}
    r = run(a.passes, a.threads, shapes)
    return finish(r, a.write, "## Calibration: held-out error (one command)", markdown,
                  shown={k: v for k, v in r.items() if k != "held_out"})


if __name__ == "__main__":
    sys.exit(main())
