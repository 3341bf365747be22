"""The estimator against measured OpenVINO runs on this machine — one command, for a quiet machine.

    .venv/bin/python scripts/openvino_validation.py [--quick] [--write] [--from-db FILE] [--passes N]

1. Exports small catalog models to OpenVINO IR with random weights (aipc's cache; optimum-intel +
   NNCF) and measures prefill and decode through `aipc bench --engine openvino` for every (model,
   weight format, shape) below, stored in a results DB of its own.
2. Fits the calibration on a subset (CALIB_* below) and predicts every other run — another weight
   format, another shape, another model — with it ("held-out"); also predicts every run uncalibrated
   (the default factors). Error = estimate / measured - 1; median and max |error| per scenario.
   Every shape is measured twice (--passes N), a whole sweep apart; the faster run of each is kept
   (llamacpp_validation.fastest_of_passes). Target (issue 16): held-out median <= 10%, max <= 20%.

The fitting and error tables are llama.cpp's validation's (scripts/llamacpp_validation.py), run on
OpenVINO's runs. --write puts them in docs/validation.md ("## OpenVINO: estimates against measured
runs") with the command, the CPU's ISA flags and the load average; it refuses to write when the
1-minute load was above 1.0 at the start.

--from-db FILE measures nothing: it re-evaluates the runs stored in FILE (a results DB an earlier run of
this script left, e.g. the runs.db it names) with the estimator as it is now, against this machine's
cached aipc hw profile. Its output, and what --write puts in docs/validation.md (a section of its own,
"## OpenVINO: estimates re-evaluated from stored runs"), say so and when those runs were measured.
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
TITLE_FROM_DB = "## OpenVINO: estimates re-evaluated from stored runs"


def collect_runs(db: Path, quick: bool, n_passes: int) -> None:
    common.collect_runs(db, quick, n_passes, engine="openvino", grid=(MODELS[:2] if quick else MODELS, FORMATS, SHAPES))


def stored_runs(path: str) -> tuple[Path, set[str], str]:
    """(the DB, the models it holds, 'first - last' stored time of its OpenVINO bench runs) for --from-db;
    ValueError with one 'error:' line when FILE is not a results DB with such runs."""
    from aipc.bench.store import ResultsDB

    db = Path(path)
    if not db.is_file():
        raise ValueError(f"error: --from-db {path}: no such file; give the runs.db an earlier "
                         "'scripts/openvino_validation.py' run printed")
    try:
        runs = [r for r in ResultsDB(db, create=False).runs(kind="bench") if r.get("engine") == "openvino"
                or (r.get("workload") or {}).get("engine") == "openvino"]
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input error
        raise ValueError(f"error: --from-db {path}: not a readable aipc results DB ({e})") from None
    if not runs:
        raise ValueError(f"error: --from-db {path}: holds no OpenVINO bench runs; run this script without --from-db")
    times = sorted(r["created_at"] for r in runs)
    return db, {r["model"] for r in runs}, f"{times[0][:16].replace('T', ' ')} - {times[-1][11:16]} UTC"


def _revision() -> str:
    """'git <short hash>' of this checkout (with '+ changes' where src/ differs from it), for --from-db."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "an unknown revision"
    return f"git {sha}{' + changes in src/' if dirty else ''}" if sha else "an unknown revision"


def main(argv: list[str]) -> int:
    bad = common.bad_args(argv, {"--quick", "--write"}, {"--from-db", "--passes"}, __doc__)
    if bad is not None:
        return bad
    quick, write = "--quick" in argv, "--write" in argv
    from_db = argv[argv.index("--from-db") + 1] if "--from-db" in argv[:-1] else None
    if "--from-db" in argv and from_db is None:
        print("error: --from-db needs a FILE (a results DB of an earlier run)", file=sys.stderr)
        return 2
    load0 = os.getloadavg()
    if from_db:
        try:
            db, models, measured = stored_runs(from_db)
        except ValueError as e:
            print(e, file=sys.stderr)
            return 2
        print(f"re-evaluated from the runs measured at {measured} ({db}); nothing measured now", flush=True)
    else:
        print(f"load average at start: {load0[0]:.2f}", flush=True)
        db, models = Path(tempfile.mkdtemp(prefix="aipc-openvino-validation-")) / "runs.db", set(MODELS[:2] if quick else MODELS)
        print(f"runs stored in {db} (re-evaluate them later with --from-db)", flush=True)
        collect_runs(db, quick, common.passes(argv, quick))
    calib = (tuple(m for m in CALIB[0] if m in models) or tuple(sorted(models))[:1], *CALIB[1:])
    ev = common.evaluate(db, calib)
    lines = [f"held-out (calibrated on {ev['n_calib']} runs of {', '.join(calib[0])} at {', '.join(calib[1])}, "
             f"prompt {calib[2][0][0]}): {common.summary(ev['rows'], 'cal_err')}",
             f"uncalibrated (default factors): {common.summary(ev['rows'], 'uncal_err')}"]
    if from_db:
        lines.insert(0, f"re-evaluated from the runs measured at {measured} with the estimator at {_revision()} "
                        f"(no new measurement); {common.environment()}")
    else:
        load1 = os.getloadavg()
        lines.append(f"load average: {load0[0]:.2f} at start, {load1[0]:.2f} at the end; {common.environment()}")
    print("\n".join(lines))
    if not write:
        return 0
    if from_db:
        cmd = (f"`.venv/bin/python scripts/openvino_validation.py --from-db {from_db} --write` (re-evaluated "
               f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from the runs measured at {measured})")
        return common.write_section(TITLE_FROM_DB, "openvino_validation.py", "", None, lines, ev["rows"],
                                    "format", command=cmd)
    return common.write_section(TITLE, "openvino_validation.py", common.shown_flags(argv), load0[0], lines, ev["rows"],
                                "format")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
