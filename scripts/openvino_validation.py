"""The estimator against measured OpenVINO runs on this machine — one command, for a quiet machine.

    .venv/bin/python scripts/openvino_validation.py [--quick] [--write]

1. Exports small catalog models to OpenVINO IR with random weights (aipc's cache; optimum-intel +
   NNCF) and measures prefill and decode through `aipc bench --engine openvino` for every (model,
   weight format, shape) below, stored in a results DB of its own.
2. Fits the calibration on a subset (CALIB_* below) and predicts every other run — another weight
   format, another shape, another model — with it ("held-out"); also predicts every run uncalibrated
   (the default factors). Error = estimate / measured - 1; median and max |error| per scenario.
   Target (issue 16): held-out median <= 10%, max <= 20%.

The fitting and error tables are llama.cpp's validation's (scripts/llamacpp_validation.py), run on
OpenVINO's runs. --write puts them in docs/validation.md ("## OpenVINO: estimates against measured
runs") with the command, the CPU's ISA flags and the load average; it refuses to write when the
1-minute load was above 1.0 at the start.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llamacpp_validation as common  # noqa: E402

MODELS = ("smollm2-135m", "qwen2.5-0.5b", "llama-3.2-1b")
FORMATS = ("int8", "int4", "fp16")
SHAPES = ((128, 32), (512, 32))  # (prompt tokens, generated tokens)
CALIB = (("smollm2-135m", "llama-3.2-1b"), ("int8", "int4"), ((128, 32),))
TITLE = "## OpenVINO: estimates against measured runs"


def collect_runs(db: Path, quick: bool) -> None:
    for model in MODELS[:2] if quick else MODELS:
        for fmt in FORMATS:
            for prompt, gen in SHAPES:
                t0 = time.perf_counter()
                rows = common.bench(model, fmt, prompt, gen, db, quick, engine="openvino")
                print(f"  {model} {fmt} p={prompt}: " + ", ".join(
                    f"{r['scenario']} {r['median_s'] * 1e3:.1f} ms" for r in rows) + f" ({time.perf_counter() - t0:.0f} s)",
                    flush=True)


def main(argv: list[str]) -> int:
    quick, write = "--quick" in argv, "--write" in argv
    load0 = os.getloadavg()
    print(f"load average at start: {load0[0]:.2f}", flush=True)
    db = Path(tempfile.mkdtemp(prefix="aipc-openvino-validation-")) / "runs.db"
    collect_runs(db, quick)
    calib = (tuple(m for m in CALIB[0] if not quick or m in MODELS[:2]) or MODELS[:1], *CALIB[1:])
    ev = common.evaluate(db, calib)
    lines = [f"held-out (calibrated on {ev['n_calib']} runs of {', '.join(calib[0])} at {', '.join(calib[1])}, "
             f"prompt {calib[2][0][0]}): {common.summary(ev['rows'], 'cal_err')}",
             f"uncalibrated (default factors): {common.summary(ev['rows'], 'uncal_err')}"]
    load1 = os.getloadavg()
    lines.append(f"load average: {load0[0]:.2f} at start, {load1[0]:.2f} at the end; {common.environment()}")
    print("\n".join(lines))
    if not write:
        return 0
    return common.write_section(TITLE, "openvino_validation.py", quick, load0[0], lines, ev["rows"], "format")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
