"""Harness overhead of ``aipc bench``: does the timing loop add anything to what it measures?

1. Empty workload: ``time_loop(lambda: None)`` — the median sample and the wall time per iteration of
   the whole loop (bookkeeping included). Target: < 1 ms per iteration.
2. A train step and a decode step of a real architecture (random weights, CPU): the harness
   (``aipc.bench.stats.time_loop`` with device sync, the same ``Prepared.fn`` the bench runs) against
   a bare ``time.perf_counter()`` loop around the same calls. The two alternate in blocks of
   ``--block`` calls for ``--rounds`` rounds, so drift on a shared machine hits both alike.
   Target: medians agree within 3%.

    .venv/bin/python benchmarks/bench_harness_overhead.py [--model smollm2-135m] [--write-docs]

``--write-docs`` replaces the "### Harness overhead" part of the "## Bench" section of
docs/benchmarks.md with the table printed here.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def bare_loop(fn, before, sync, n: int) -> list[float]:
    out = []
    for _ in range(n):
        if before:
            before()
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return out


def harness_loop(fn, before, sync, n: int) -> list[float]:
    from aipc.bench.stats import LoopConfig, time_loop

    return time_loop(fn, LoopConfig(warmup=0, min_reps=n, min_s=0.0, max_s=0.0), sync=sync, before=before).samples


def compare(fn, before, sync, rounds: int, block: int) -> dict:
    bare_loop(fn, before, sync, 2)  # warm-up, untimed
    a, b = [], []
    for r in range(rounds):
        first, second = (bare_loop, harness_loop) if r % 2 == 0 else (harness_loop, bare_loop)
        x = first(fn, before, sync, block)
        y = second(fn, before, sync, block)
        (a if first is bare_loop else b).extend(x)
        (b if first is bare_loop else a).extend(y)
    ma, mb = statistics.median(a), statistics.median(b)
    qa, qb = statistics.quantiles(a, n=10), statistics.quantiles(b, n=10)
    return {"bare_median_s": ma, "harness_median_s": mb, "diff": mb / ma - 1, "n": len(a),
            "bare_p10_p90": (qa[0], qa[-1]), "harness_p10_p90": (qb[0], qb[-1]), "min_diff": min(b) / min(a) - 1}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--seq", type=int, default=32, help="train sequence length")
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--gen", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=16, help="rounds for the train step")
    ap.add_argument("--rounds-decode", type=int, default=50)
    ap.add_argument("--block", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()

    import torch

    from aipc.measure import sync_fn
    from aipc.bench.scenarios import prepare
    from aipc.bench.stats import LoopConfig, summarize, time_loop
    from aipc.estimate import resolve_model

    if args.threads:
        torch.set_num_threads(args.threads)
    # 1. empty workload
    t0 = time.perf_counter()
    s = time_loop(lambda: None, LoopConfig(warmup=10, min_reps=10000, min_s=0.0, max_s=10.0))
    wall = time.perf_counter() - t0
    empty = {"median_s": summarize(s.samples).median, "wall_per_iter_s": wall / (len(s.samples) + 10), "n": len(s.samples)}

    # 2. train step and decode step, harness vs bare loop
    spec = resolve_model(args.model)
    torch.manual_seed(0)
    model = spec.build("fp32", args.device)
    sync = sync_fn(args.device)
    shape = {"batch": 1, "seq": args.seq, "prompt": args.prompt, "gen": args.gen, "method": "full"}
    rows = {}
    for scen in ("decode", "train"):
        prep = prepare(torch, scen, model, shape=shape, device=args.device, is_decoder=spec.is_decoder,
                       vocab=spec.vocab_size, sync=sync)
        rounds = args.rounds_decode if scen == "decode" else args.rounds
        rows[scen] = compare(prep.fn, prep.before, sync, rounds, args.block)
        prep.cleanup()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cmd = "python benchmarks/bench_harness_overhead.py " + " ".join(sys.argv[1:])
    lines = [
        "### Harness overhead",
        "",
        f"Command: `{cmd.strip()}`; machine: {platform.node()} ({os.cpu_count()} CPUs, {platform.processor() or platform.machine()}), "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, 1-min load average {load:.1f} at the end; "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        "| measurement | bare perf_counter loop: median (p10–p90) | aipc harness (time_loop): median (p10–p90) "
        "| difference of medians (of minima) | target |",
        "|---|---|---|---|---|",
        f"| empty workload, median sample ({empty['n']} calls) | - | {empty['median_s'] * 1e6:.2f} µs | - | < 1 ms |",
        f"| empty workload, wall time per iteration incl. bookkeeping | - | {empty['wall_per_iter_s'] * 1e6:.2f} µs | - | < 1 ms |",
    ]
    for scen, r in rows.items():
        what = (f"{args.model} train step (b1, s{args.seq}, AdamW, fp32)" if scen == "train"
                else f"{args.model} decode step (b1, ctx {args.prompt}..{args.prompt + args.gen - 2}, fp32)")
        ok = "yes" if abs(r["diff"]) <= 0.03 else "NO"
        (a10, a90), (b10, b90) = r["bare_p10_p90"], r["harness_p10_p90"]
        lines.append(f"| {what}, {r['n']} calls each | {r['bare_median_s'] * 1e3:.2f} ms ({a10 * 1e3:.1f}–{a90 * 1e3:.1f}) | "
                     f"{r['harness_median_s'] * 1e3:.2f} ms ({b10 * 1e3:.1f}–{b90 * 1e3:.1f}) | {r['diff']:+.2%} "
                     f"({r['min_diff']:+.2%}) | within 3%: {ok} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write_docs:
        write_section(ROOT / "docs" / "benchmarks.md", "### Harness overhead", text)
    return 0


def write_section(path: Path, heading: str, text: str) -> None:
    """Replace ``heading``'s block (up to the next ### heading) inside the '## Bench' section of
    ``path``, creating the section or the block when absent; other sections are left as they are."""
    doc = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if "\n## Bench\n" not in doc:
        doc = doc.rstrip("\n") + "\n\n## Bench\n\n"
    start = doc.index("\n## Bench\n") + len("\n## Bench\n")
    end = doc.find("\n## ", start)
    end = len(doc) if end == -1 else end + 1
    section = doc[start:end]
    if heading in section:
        i = section.index(heading)
        j = section.find("\n### ", i + 1)
        rest = "" if j == -1 else "\n" + section[j + 1:]
        section = section[:i] + text + rest
    else:
        section = (section.rstrip("\n") + "\n\n" if section.strip() else "\n") + text
    tail = doc[end:]
    doc = doc[:start] + section.rstrip("\n") + "\n" + ("\n" + tail if tail else "")
    path.write_text(doc, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
