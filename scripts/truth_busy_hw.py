"""Does a busy moment rewrite the machine? One command, one number (docs/validation.md):

    .venv/bin/python scripts/truth_busy_hw.py [--write docs/validation.md] [--quick]

In a fresh AIPC_HOME: `aipc hw --refresh` on the machine as it is (run it quiet), then the same time
estimate (`aipc estimate smollm2-135m --task train --precision fp32 --device this:cpu`, step time);
then two busy processes (pure-Python spin loops, one per core of a 2-core machine) start,
`aipc hw --refresh` runs again while they spin, they stop, and the estimate is taken again. The
number is estimate-after-busy / estimate-after-quiet (target: within 30%). For contrast it also
reports what the busy measurement alone gives (`aipc hw --refresh --replace` while busy, which keeps
only that measurement — how a busy refresh used to rewrite the profile).
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

aipc = functools.partial(run_aipc, timeout=900)  # seconds allowed to each aipc command

ESTIMATE = ["estimate", "smollm2-135m", "--task", "train", "--precision", "fp32", "--seq-len", "256",
            "--device", "this:cpu", "--json"]


def step_s(env: dict) -> float:
    return aipc(*ESTIMATE, env=env)["estimates"][0]["time"]["step_s"]


def peaks(env: dict) -> dict:
    d = aipc("hw", "--json", env=env)
    cpu = d["devices"][0]
    return {"fp32_gemm": cpu["gemm"]["fp32"]["flops_s"]["median"], "fp32_train": cpu["train_gemm"]["fp32"]["flops_s"]["median"],
            "copy": cpu["bandwidth"]["copy"]["bytes_s"]["median"], "load_avg": d["load_avg"], "busy": d["busy"]}


class Busy:
    """``n`` CPU-bound processes for the duration of a with-block."""

    def __init__(self, n: int):
        self.n, self.procs = n, []

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.n)]
        time.sleep(5)  # let them show in the 1-minute load average and CPU use
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(10)


def run(quick: bool) -> dict:
    home = tempfile.mkdtemp(prefix="aipc-busy-hw-")
    env = {**os.environ, "AIPC_HOME": home}
    mode = ["--quick"] if quick else []
    t0 = time.time()
    load0 = os.getloadavg()[0]
    aipc("hw", "--refresh", *mode, "--json", env=env)
    quiet = {"step_s": step_s(env), **peaks(env)}
    with Busy(2):
        aipc("hw", "--refresh", *mode, "--json", env=env)
        kept = {"step_s": step_s(env), **peaks(env)}
        aipc("hw", "--refresh", "--replace", *mode, "--json", env=env)
    alone = {"step_s": step_s(env), **peaks(env)}
    return {"quiet": quiet, "after_busy_refresh": kept, "busy_measurement_alone": alone,
            "ratio": kept["step_s"] / quiet["step_s"], "ratio_without_protection": alone["step_s"] / quiet["step_s"],
            "load_before": load0, "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t0)),
            "mode": "quick" if quick else "full"}


def markdown(r: dict) -> str:
    g = lambda x: f"{x / 1e9:,.1f}"  # noqa: E731
    rows = [("quiet `aipc hw --refresh`", r["quiet"]), ("then `aipc hw --refresh` with 2 busy processes", r["after_busy_refresh"]),
            ("(contrast) busy measurement alone, `--replace`", r["busy_measurement_alone"])]
    lines = [f"Command: `.venv/bin/python scripts/truth_busy_hw.py{' --quick' if r['mode'] == 'quick' else ''} --write "
             f"docs/validation.md` — started {r['started']}, 1-minute load {r['load_before']:.1f} before.", "",
             "| profile after | fp32 GEMM GFLOP/s | fp32 train GFLOP/s | copy GB/s | load during last measurement | "
             "estimated step (smollm2-135m, b1 s256, fp32) |", "|---|---:|---:|---:|---|---:|"]
    for name, x in rows:
        la = x["load_avg"] or [None, None]
        lines.append(f"| {name} | {g(x['fp32_gemm'])} | {g(x['fp32_train'])} | {g(x['copy'])} | "
                     f"{la[0] if la[0] is None else round(la[0], 1)} → {la[1] if la[1] is None else round(la[1], 1)} | "
                     f"{x['step_s'] * 1e3:,.1f} ms |")
    lines += ["", f"**Estimate after the busy refresh / after the quiet one: {r['ratio']:.2f}** (target within 30%); "
                  f"had the busy measurement replaced the profile: {r['ratio_without_protection']:.2f}.", ""]
    return "\n".join(lines)


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    return finish(run(a.quick), a.write, "## A busy moment does not rewrite the machine", markdown)


if __name__ == "__main__":
    sys.exit(main())
