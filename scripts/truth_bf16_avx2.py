"""A bf16 training step on a CPU without native bf16, predicted beside measured. One command:

    .venv/bin/python scripts/truth_bf16_avx2.py [--write docs/validation.md] [--model smollm2-135m]

This machine has AVX-512 and AMX (native bf16); the script emulates an AVX2-only CPU for the whole
run with ONEDNN_MAX_CPU_ISA=AVX2 and ATEN_CPU_CAPABILITY=avx2 (oneDNN and ATen then use no
AVX-512 / AMX kernels: bf16 is converted around every product). In a fresh AIPC_HOME it measures
`aipc hw` twice (the profile says bf16 is emulated and records the bf16 GEMM and linear forward+backward
peaks, each the best of the two runs), then `aipc bench MODEL --scenario train` in bf16 and in fp32 at a few shapes; each run
reports the estimator's step time beside the measured median (uncalibrated: the profile's peaks and
the default CPU efficiency). Target: the bf16 step within 30%. It also checks the emulation is real:
the bf16 GEMM peak must be far below the native one.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from truth_common import finish, parser, run_aipc  # noqa: E402

aipc = functools.partial(run_aipc, timeout=1800)  # seconds allowed to each aipc command

EMULATE = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
SHAPES = ((1, 64), (1, 128), (2, 128))
DEFAULT_MODEL = "smollm2-135m"


def hw(env: dict) -> dict:
    d = aipc("hw", "--refresh", "--json", env=env)
    cpu = d["devices"][0]
    return {"native_dtypes": d["native_dtypes"]["cpu"], "dtype_support": cpu["dtype_support"],
            "gemm": {k: v["flops_s"]["median"] for k, v in cpu["gemm"].items()},
            "train": {k: v["flops_s"]["median"] for k, v in cpu["train_gemm"].items()},
            "threads": cpu["threads"], "load_avg": d["load_avg"], "busy": d["busy"]}


def bench(model: str, prec: str, b: int, s: int, threads: int, env: dict) -> dict:
    d = aipc("bench", model, "--device", "cpu", "--scenario", "train", "--precision", prec, "--batch", str(b),
             "--seq-len", str(s), "--threads", str(threads), "--warmup", "1", "--min-reps", "3", "--min-time", "2",
             "--max-time", "60", "--no-store", "--json", env=env)
    r = d["results"][0]
    return {"precision": prec, "batch": b, "seq": s, "measured_s": r["median_s"], "est_s": r["est_s"],
            "error": r["est_error"], "mfu": r.get("mfu_measured"), "load_avg": d["load_avg"]}


def run(model: str, threads: int | None, shapes=SHAPES) -> dict:
    env = {**os.environ, **EMULATE, "AIPC_HOME": tempfile.mkdtemp(prefix="aipc-avx2-")}
    native_env = {k: v for k, v in os.environ.items() if k not in EMULATE}
    native = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                            env=native_env, capture_output=True, text=True).stdout.strip()
    t0 = time.time()
    if threads:  # the profile is per thread count: measure it at the count the benches use
        env["OMP_NUM_THREADS"] = str(threads)
    hw(env)  # measured twice, as a second `aipc hw --refresh` would: the profile keeps each figure's best
    prof = hw(env)  # (the emulated bf16 peak varied 4.8-6.0 GFLOP/s between single runs on this shared machine)
    th = threads or prof["threads"]
    runs = [bench(model, p, b, s, th, env) for p in ("bf16", "fp32") for b, s in shapes]
    return {"model": model, "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t0)),
            "native_capability": native, "emulation": EMULATE, "profile": prof, "threads": th, "runs": runs}


def markdown(r: dict) -> str:
    p = r["profile"]
    g = lambda x: f"{x / 1e9:,.1f}"  # noqa: E731
    model = "" if r["model"] == DEFAULT_MODEL else f" --model {r['model']}"
    lines = [f"Command: `.venv/bin/python scripts/truth_bf16_avx2.py{model} --write docs/validation.md` — started "
             f"{r['started']}, {r['threads']} threads, this machine's own torch capability {r['native_capability']}, "
             f"emulating AVX2 with {', '.join(f'{k}={v}' for k, v in r['emulation'].items())}.", "",
             f"Profile under emulation: native dtypes {p['native_dtypes']}; bf16 {p['dtype_support'].get('bf16')}; "
             f"GEMM GFLOP/s fp32 {g(p['gemm']['fp32'])}, bf16 {g(p['gemm']['bf16'])}; linear forward+backward "
             f"GFLOP/s fp32 {g(p['train']['fp32'])}, bf16 {g(p['train']['bf16'])}; load {p['load_avg']}.", "",
             f"| {r['model']} train step | batch x seq | measured (median) | estimate (uncalibrated) | error |",
             "|---|---|---:|---:|---:|"]
    for x in r["runs"]:
        lines.append(f"| {x['precision']} | {x['batch']} x {x['seq']} | {x['measured_s'] * 1e3:,.0f} ms | "
                     f"{x['est_s'] * 1e3:,.0f} ms | {x['error']:+.0%} |")
    bf = [abs(x["error"]) for x in r["runs"] if x["precision"] == "bf16"]
    lines += ["", f"**bf16 step on the emulated AVX2 CPU: largest |error| {max(bf):.0%}** (target within 30%).", ""]
    return "\n".join(lines)


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--shapes", help="batch x sequence list, e.g. 1x64,2x128 (default: " +
                    ",".join(f"{b}x{s}" for b, s in SHAPES) + ")")
    a = ap.parse_args()
    shapes = tuple(tuple(int(v) for v in x.split("x")) for x in a.shapes.split(",")) if a.shapes else SHAPES
    title = "## bf16 on a CPU without native bf16" + ("" if a.model == DEFAULT_MODEL else f" ({a.model})")
    return finish(run(a.model, a.threads, shapes), a.write, title, markdown)


if __name__ == "__main__":
    sys.exit(main())
