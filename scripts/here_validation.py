"""`aipc models --here` against measured runs on this machine — one command, for the quiet period.

    .venv/bin/python scripts/here_validation.py [--budget S] [--threads N] [--write] [--smoke] [--doc PATH]

1. Sweep: `aipc bench --sweep` on a subset (SWEEP_MODELS, one llama.cpp format per kernel family),
   within --budget seconds; the calibration is refitted from those runs.
2. Held-out: for each (model, format) of HELD_OUT — catalog models NOT in the sweep, random weights
   converted to GGUF by llama.cpp's converter — the table's decode tokens/s (a "calibrated" figure) is
   compared with a measured decode at the table's speed shape (`aipc bench --engine llamacpp`, not
   stored, so the table stays an estimate for them). Error = table / measured - 1. Target (issue 18):
   median |error| <= 15% over >= 5 pairs.
3. Largest context: each held-out model is loaded by llama.cpp with the table's largest context
   (the KV cache is allocated at load) and runs a short prompt and a decode step there; the process's
   peak RSS is compared with the device's usable memory.

--write puts the table in docs/validation.md ("## What you can run here: table against measured runs")
with the command, the CPU's ISA flags and the load average. Everything runs in an AIPC_HOME of its own
(a fresh aipc hw profile, results DB, GGUF cache and calibration), so no earlier run counts. --smoke: a tiny model built here, two
formats swept and two others held out (a check that the script runs, not a validation), written to
--doc (default: a temporary file).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

SWEEP_MODELS = ("gpt2", "smollm2-135m", "gemma-3-270m", "gemma-3-1b")  # the default plan (bench --sweep)
HELD_OUT = (("smollm2-360m", "q4_k_m"), ("smollm2-360m", "q6_k"), ("qwen2.5-0.5b", "q8_0"),
            ("qwen2.5-0.5b", "q4_0"), ("qwen3-0.6b", "q4_k_m"), ("qwen3-0.6b", "q5_k_m"))
THREADS = os.cpu_count() or 1
DOC = Path(__file__).resolve().parents[1] / "docs" / "validation.md"
TITLE = "## What you can run here: table against measured runs"


def _fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def smoke_plan(root: Path) -> tuple[list[str], dict, list[tuple[str, str]]]:
    """A tiny Qwen2 (hidden 256: whole K-quant blocks) built here: q8_0 and q4_k_m swept, q4_0 and q6_k held out."""
    from aipc.models.tiny import make_tiny_folder

    tiny = str(make_tiny_folder(root / "tiny-qwen2", "qwen2", hidden_size=256, intermediate_size=512,
                                num_attention_heads=4, num_key_value_heads=2))
    return [tiny], {"llamacpp": ("q8_0", "q4_k_m")}, [(tiny, "q4_0"), (tiny, "q6_k")]


def sweep(models: list[str], formats: dict | None, budget: float, db: Path) -> dict:
    from aipc.bench.here_sweep import SweepOptions, run_sweep

    res = run_sweep(SweepOptions(engines=["llamacpp"], models=models, formats=formats, budget_s=budget, db=db,
                                 threads=THREADS),
                    on_progress=lambda i, n, label: print(f"  sweep {i}/{n}: {label}", flush=True))
    print(f"sweep: {len(res['measured'])} measured, {len(res['already_stored'])} already stored; {res['calibration']}")
    for f in res.get("failed", []):
        print(f"  not measured {f['item']}: {f['error']}", flush=True)
    return res


def table_row(ref: str, fmt: str):
    from aipc.bench.here import formats
    from aipc.estimate import here as H
    from aipc.estimate import resolve_model
    from aipc.hardware.local import resolve_device

    rows, skipped = H.table(resolve_device("this"), formats(["llamacpp"]), models=[resolve_model(ref)])
    row = next((r for r in rows if r.format == fmt), None)
    if row is None:
        _fail(f"no table row for {ref} {fmt}: {skipped}")
    return row


def measure_decode(ref: str, fmt: str) -> float:
    """Decode tokens/s of ``ref`` at ``fmt`` at the table's speed shape (llama.cpp, not stored)."""
    from aipc.bench.runner import BenchOptions, run_bench
    from aipc.estimate.here import SPEED_GEN, SPEED_PROMPT

    rep = run_bench(BenchOptions(model=ref, devices="cpu", scenarios=("decode",), precision=fmt, engine="llamacpp",
                                 prompt=SPEED_PROMPT, gen=SPEED_GEN, quick=True, store=False, threads=THREADS))
    return float(rep["results"][0]["decode_tokens_per_s"])


def try_context(ref: str, fmt: str, context: int) -> dict:
    """Load with the table's largest context, prefill a short prompt, decode at the end of the context."""
    import torch

    from aipc import engines
    from aipc.bench.devices import rss_bytes
    from aipc.engines.gguf_convert import cached_gguf

    path = cached_gguf(ref, fmt)
    t0 = time.perf_counter()
    loaded = engines.load(str(path), engine="llamacpp", max_len=context, threads=THREADS)
    runner = loaded.runner
    tok = int(runner.prefill(0, torch.tensor([1, 2, 3, 4])).argmax())
    runner.decode1(tok, 4, slot=0)
    out = {"context": context, "ok": True, "rss_bytes": rss_bytes(), "seconds": time.perf_counter() - t0}
    loaded.resize()  # closes the llama.cpp context
    return out


def validate(pairs: list[tuple[str, str]]) -> list[dict]:
    from aipc.estimate import resolve_model

    out = []
    for ref, fmt in pairs:
        row = table_row(ref, fmt)
        got = measure_decode(ref, fmt)
        try:
            ctx = try_context(ref, fmt, row.max_context) if row.max_context else {"ok": False, "context": None}
        except Exception as e:  # noqa: BLE001 - a context that does not load is the finding, not a crash
            ctx = {"ok": False, "context": row.max_context, "error": str(e).splitlines()[0][:120]}
        out.append({"model": resolve_model(ref).name, "format": fmt, "table": row.decode_tokens_per_s,
                    "kind": row.decode_kind, "measured": got, "error": row.decode_tokens_per_s / got - 1,
                    "context": ctx, "usable_bytes": None})
        print(f"  {out[-1]['model']} {fmt}: table {row.decode_tokens_per_s:.3g} ({row.decode_kind}), measured "
              f"{got:.3g} tokens/s ({out[-1]['error']:+.1%}); context {ctx}", flush=True)
    return out


def report(results: list[dict], res: dict, args, load0: float, load1: float) -> str:
    from aipc.hardware.detect import isa_flags_line
    from aipc.hardware.local import resolve_device
    from aipc.render import gb

    usable = resolve_device("this").usable_memory_bytes
    med = statistics.median(abs(r["error"]) for r in results)
    lines = [f"Command: `.venv/bin/python scripts/here_validation.py{' --smoke' if args.smoke else ''} --budget "
             f"{args.budget:g} --threads {THREADS}{' --write' if args.write else ''}` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
             f"{platform.processor() or platform.machine()}, {THREADS} threads; ISA flags: {isa_flags_line()}; load average "
             f"{load0:.2f} before, {load1:.2f} after.",
             "" if not args.smoke else "\n**Smoke run (a tiny model; held-out formats, not models): not a validation.**",
             f"Sweep: {', '.join(res['planned'])}; {res['calibration']}.", "",
             "| model | format | table decode tokens/s (kind) | measured | error | largest context tried | RSS after it / usable |",
             "|---|---|---:|---:|---:|---|---|"]
    for r in results:
        c = r["context"]
        tried = f"{c['context']:,}: {'loads and decodes' if c['ok'] else 'FAILED ' + c.get('error', '')}" \
            if c.get("context") else "none fits"
        lines.append(f"| {r['model']} | {r['format']} | {r['table']:.3g} ({r['kind']}) | {r['measured']:.3g} | "
                     f"{r['error']:+.1%} | {tried} | {gb(c.get('rss_bytes'))} / {gb(usable)} |")
    lines += ["", f"**Median |error| {med:.1%} over {len(results)} held-out pairs** (target <= 15%, >= 5 pairs)."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    global THREADS
    ap.add_argument("--budget", type=float, default=900.0, help="sweep budget in seconds")
    ap.add_argument("--write", action="store_true", help="write the table to --doc")
    ap.add_argument("--smoke", action="store_true", help="a tiny model end to end (not a validation)")
    ap.add_argument("--threads", type=int, default=THREADS, help="CPU threads of every run (default: all)")
    ap.add_argument("--doc", type=Path, default=None, help="the Markdown file to write (default docs/validation.md; "
                    "--smoke: a temporary file)")
    args = ap.parse_args()
    if not (0 < args.budget <= 7 * 86400):
        _fail(f"--budget must be a number of seconds > 0 and <= 1 week (got {args.budget})")
    if not 1 <= args.threads <= 4096:
        _fail(f"--threads must be a whole number from 1 to 4096 (got {args.threads})")
    THREADS = args.threads
    work = Path(tempfile.mkdtemp(prefix="aipc-here-"))
    os.environ["AIPC_HOME"] = str(work / "home")  # its own profile, results DB and calibration: nothing else leaks in
    models, formats, pairs = smoke_plan(work) if args.smoke else (list(SWEEP_MODELS), None, list(HELD_OUT))
    doc = args.doc or (work / "validation.md" if args.smoke else DOC)
    load0 = os.getloadavg()[0]
    res = sweep(models, formats, args.budget, None)
    results = validate(pairs)
    body = report(results, res, args, load0, os.getloadavg()[0])
    print(body)
    if args.write or args.smoke:
        from aipc.mdsection import replace_section

        replace_section(doc, TITLE, body, new_file="# Validation\n")
        print(f"wrote {doc}")


if __name__ == "__main__":
    main()
