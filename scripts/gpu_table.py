"""Write `aipc bench` results (JSON reports) as the "GPU: train and decode" table of docs/validation.md.

    python scripts/gpu_table.py --docs docs/validation.md [--hw hw.json] bench-1.json [bench-2.json ...]

Called by scripts/gpu_check.sh after its bench runs; works on any bench report (the CPU's too, which
is how tests/test_gpu_check.py checks it without a GPU).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

SECTION = "## GPU: train and decode"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _ms(x) -> str:
    return "-" if x is None else f"{x * 1e3:.2f} ms"


def table(reports: list[dict], hw: dict | None) -> str:
    """The section body: what ran where, then one row per (model, device, scenario)."""
    gpus = [g["name"] for g in (hw or {}).get("machine", {}).get("gpus", [])]
    vers = reports[0].get("versions", {}) if reports else {}
    lines = [f"Command: `scripts/gpu_check.sh` — {dt.date.today().isoformat()}, "
             f"{', '.join(gpus) or 'device as in the rows'}, torch {vers.get('torch')} (CUDA {vers.get('torch_cuda')}), "
             f"transformers {vers.get('transformers')}.", "",
             "MFU = model FLOPs/s (6N + attention per token, training; 2N + attention, decode) / peak; "
             "'meas' against the `aipc hw` peak of this GPU, 'spec' against the catalog's dense peak. "
             "MBU = bytes read per decode step (weights + KV cache) / bandwidth. Estimate: `aipc estimate` "
             "for the same workload on this GPU's measured profile (uncalibrated).", "",
             "| model | device | precision | scenario | batch x tokens | median | MFU meas / spec | "
             "MBU meas / spec | estimate (error) |",
             "|---|---|---|---|---|---:|---:|---:|---:|"]
    for rep in reports:
        for r in rep["results"]:
            w = r["workload"]
            toks = w["seq_len"] if r["scenario"] == "train" else w["prompt_tokens"]
            est = "-" if r.get("est_s") is None else f"{_ms(r['est_s'])} ({r['est_error']:+.0%})"
            lines.append(f"| {r['model']} | {r['device']} | {r['precision']} | {r['scenario']} | "
                         f"{w['batch_size']} x {toks} | {_ms(r['median_s'])} | "
                         f"{_pct(r.get('mfu_measured'))} / {_pct(r.get('mfu_spec'))} | "
                         f"{_pct(r.get('mbu_measured'))} / {_pct(r.get('mbu_spec'))} | {est} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", required=True)
    ap.add_argument("--hw")
    ap.add_argument("reports", nargs="+")
    a = ap.parse_args(argv)
    try:
        reports = [json.loads(Path(p).read_text()) for p in a.reports]
        hw = json.loads(Path(a.hw).read_text()) if a.hw else None
    except (OSError, ValueError) as e:
        print(f"error: cannot read a bench report: {e}", file=sys.stderr)
        return 2
    from aipc.mdsection import replace_section

    replace_section(a.docs, SECTION, table(reports, hw), new_file="# Validation: estimates against measurements\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
