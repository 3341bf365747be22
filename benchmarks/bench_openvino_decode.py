"""aipc's OpenVINO runner vs OpenVINO GenAI's own LLMPipeline: decode tokens/s on the same export.

One process, one machine, batch 1, greedy, end-of-sequence off (exactly N tokens each). The model is
exported once per weight format by ``aipc convert --to openvino`` (optimum-intel + NNCF; a catalog
model gets random weights: the text is noise, the speed is real) and both sides load the same IR:
* OpenVINO GenAI: ``LLMPipeline(folder, "CPU", INFERENCE_NUM_THREADS=t, ATTENTION_BACKEND=b)`` with
  both of its attention backends (SDPA: the stateful model; PA: paged attention, continuous
  batching), fed the prompt ids, tokens timed as they reach a streamer;
* aipc: :class:`aipc.engines.openvino_runner.OVRunner` (one stateful infer request) driven by
  ``aipc.engines.generate.generate``, aipc's own loop (the one ``aipc generate`` and the server use).
Decode tokens/s = (N - 1) / (time of the last token - time of the first) on both sides. Each side's
configuration (thread count; GenAI's attention backend) is chosen by measurement, one interleaved run of
every candidate; then the two chosen configurations run alternately (A B B A ...) ``--reps`` times each, so
that the drift of a shared machine falls on both sides alike. MBU = (weight + KV bytes read per step) x tokens/s / the copy bandwidth ``aipc hw``
measured. Beside them: the torch engine (FastLM, fp32) and, where it runs, llama.cpp (Q8_0, Q4_K_M)
on the same model through the engine seam.

    python benchmarks/bench_openvino_decode.py                      # qwen2.5-0.5b, int8 + int4
    python benchmarks/bench_openvino_decode.py --write              # and record it in docs/benchmarks.md
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

from bench_common import command, finish  # noqa: E402


def _params(n: int):
    from aipc.engines.sampling import SamplingParams

    return SamplingParams(max_tokens=n, ignore_eos=True)


class AipcSide:
    """aipc's runner over one IR at one thread count; ``once()`` is one timed generation's stats."""

    def __init__(self, folder, threads: int, ids, n: int, bandwidth):
        from aipc.engines.openvino import _tokenizer
        from aipc.engines.openvino_runner import OVRunner

        self.runner = OVRunner(folder, threads=threads, max_len=len(ids) + n + 8)
        self.tok = _tokenizer(Path(folder), self.runner.vocab_size)
        self.ids, self.n, self.bandwidth = ids, n, bandwidth
        self.label = {"threads": threads, "kv_cache_precision": self.runner.kv_precision()}
        self._gen(8)  # warm-up

    def _gen(self, n: int, bandwidth=None):
        from aipc.engines.generate import generate

        return generate(self.runner, self.tok, self.ids, _params(n), bandwidth=bandwidth).stats

    def once(self):
        return self._gen(self.n, self.bandwidth)


class GenAISide:
    """OpenVINO GenAI's LLMPipeline over the same IR, one thread count and attention backend."""

    def __init__(self, folder, threads: int, backend: str, ids, n: int, bandwidth, wbytes: int, kvtok: int):
        from aipc.engines.openvino import _tokenizer
        from aipc.engines.openvino_genai import GenAIGenerator

        self.gen = GenAIGenerator(folder, threads=threads, max_len=len(ids) + n + 8,
                                  config={"ATTENTION_BACKEND": backend})
        self.tok = _tokenizer(Path(folder), 0) if (Path(folder) / "tokenizer.json").exists() else None
        self.ids, self.n, self.bandwidth, self.wbytes, self.kvtok = ids, n, bandwidth, wbytes, kvtok
        self.label = {"threads": threads, "attention_backend": backend}
        self.gen.generate(self.tok, ids, _params(8))  # warm-up

    def once(self):
        return self.gen.generate(self.tok, self.ids, _params(self.n), bandwidth=self.bandwidth,
                                 weight_bytes=self.wbytes, kv_bytes_per_token=self.kvtok).stats


def pick(sides: list, rounds: int = 1):
    """The side whose decode is fastest in ``rounds`` interleaved runs of every candidate (the choice by
    measurement), with each candidate's median tokens/s."""
    seen: list[list[float]] = [[] for _ in sides]
    for _ in range(rounds):
        for i, s in enumerate(sides):
            seen[i].append(s.once().decode_tokens_per_s)
    med = [statistics.median(v) for v in seen]
    return sides[med.index(max(med))], [{**s.label, "median": m} for s, m in zip(sides, med)]


def duel(a, b, reps: int) -> tuple[dict, dict, list[float]]:
    """``reps`` runs of a and b, alternating (a, b, b, a, ...) so drift of a shared machine falls on both
    alike; each side's summary and the ratio a/b of each adjacent pair."""
    ra, rb, pairs = [], [], []
    for k in range(reps):
        first, second = (a, b) if k % 2 == 0 else (b, a)
        x, y = first.once(), second.once()
        sa, sb = (x, y) if first is a else (y, x)
        ra.append(sa)
        rb.append(sb)
        pairs.append(sa.decode_tokens_per_s / sb.decode_tokens_per_s)
    return _summary(ra, a.label), _summary(rb, b.label), pairs


def _summary(runs, label) -> dict:
    tps = [s.decode_tokens_per_s for s in runs]
    med = statistics.median(tps)
    mbu = [s.mbu for s in runs if s.mbu is not None]
    return {**label, "median": med, "min": min(tps), "max": max(tps),
            "mbu": statistics.median(mbu) if mbu else None, "ttft_s": statistics.median(s.ttft_s for s in runs),
            "bytes_per_step": runs[0].weight_bytes_per_step + runs[0].kv_bytes_per_step}


def compare_format(folder, fmt: str, threads: list[int], ids, args, bandwidth) -> dict:
    """aipc against GenAI on one export: each side's configuration chosen by measurement, then the duel."""
    from aipc.engines.openvino_runner import OVRunner

    aipc_best, aipc_all = pick([AipcSide(folder, t, ids, args.new_tokens, bandwidth) for t in threads])
    probe = OVRunner(folder, max_len=64)
    wb, kv = probe.weight_bytes_per_step(), probe.kv_bytes_per_token()
    del probe
    genai_best, genai_all = pick([GenAISide(folder, t, be, ids, args.new_tokens, bandwidth, wb, kv)
                                  for t in threads for be in ("SDPA", "PA")])  # GenAI's stateful and paged backends
    a, g, pairs = duel(aipc_best, genai_best, args.reps)
    return {"engine": "openvino", "format": fmt, "aipc": a, "genai": g, "all_aipc": aipc_all,
            "all_genai": genai_all, "ratio": a["median"] / g["median"], "pair_ratios": pairs}


def run_seam(model: str, engine: str, fmt: str, ids, n: int, reps: int, bandwidth, threads: list[int]) -> dict:
    """torch / llama.cpp through aipc.engines (when the seam is installed); the best thread count."""
    try:
        from aipc.engines import load
    except ImportError as e:
        return {"error": f"engine seam not available: {e}"}
    from aipc.engines.generate import generate

    best = None
    for t in threads:
        try:
            loaded = load(model, engine=engine, weight_format=fmt, threads=t, max_len=len(ids) + n + 8)
            generate(loaded.runner, loaded.tokenizer, ids, _params(8))
            runs = [generate(loaded.runner, loaded.tokenizer, ids, _params(n), bandwidth=bandwidth).stats
                    for _ in range(reps)]
        except Exception as e:  # a peer engine failing here is recorded, not fatal
            return {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}
        s = _summary(runs, {"threads": t})
        best = s if best is None or s["median"] > best["median"] else best
    return best


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--formats", default="int8,int4")
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=6, help="runs of each side in the duel, alternating")
    ap.add_argument("--threads", default=None, help="candidates, comma-separated (default: 1 and all cores)")
    ap.add_argument("--peers", default="torch:fp32,llamacpp:q8_0,llamacpp:q4_k_m",
                    help="engine:format pairs run beside OpenVINO ('' for none)")
    ap.add_argument("--write", action="store_true", help="record the result in docs/benchmarks.md")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from aipc.engines.openvino import ensure_ir
    from aipc.engines.generate import measured_bandwidth
    from aipc.hardware.detect import isa_flags_line

    threads = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, os.cpu_count() or 1})
    ids = [(7 * i + 3) % 20000 + 300 for i in range(args.prompt_tokens)]
    bandwidth = measured_bandwidth("cpu")
    load0 = os.getloadavg()[0]
    rows = []
    for fmt in args.formats.split(","):
        folder, _ = ensure_ir(args.model, fmt, progress=False)
        rows.append(compare_format(folder, fmt, threads, ids, args, bandwidth))
    peers = []
    for pair in filter(None, args.peers.split(",")):
        engine, fmt = pair.split(":")
        peers.append({"engine": engine, "format": fmt,
                      "aipc": run_seam(args.model, engine, fmt, ids, args.new_tokens, args.reps, bandwidth, threads)})
    load1 = os.getloadavg()[0]
    import openvino

    result = {"model": f"{args.model} (random weights)", "prompt_tokens": args.prompt_tokens,
              "new_tokens": args.new_tokens, "reps": args.reps, "thread_candidates": threads, "rows": rows,
              "peers": peers, "bandwidth": bandwidth, "isa": isa_flags_line(),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs",
              "load_avg_1min": [round(load0, 2), round(load1, 2)], "openvino": openvino.__version__,
              "command": command("bench_openvino_decode.py", argv)}
    return finish(result, args, _print, write_doc, default=str)


def _fmt(r: dict) -> str:
    if "error" in r:
        return f"n/a ({r['error']})"
    mbu = f", MBU {r['mbu'] * 100:.0f}%" if r.get("mbu") else ""
    be = f", {r['attention_backend']}" if r.get("attention_backend") else ""
    return f"{r['median']:.1f} tok/s ({r['min']:.1f}-{r['max']:.1f}), {r['threads']} thr{be}{mbu}"


def _ratio(row: dict, bold: bool = False) -> str:
    r = f"{row['ratio']:.3f}"
    pairs = row.get("pair_ratios")
    extra = f" (pairs {min(pairs):.3f}-{max(pairs):.3f})" if pairs else ""
    return (f"**{r}**" if bold else r) + extra


def _print(r: dict) -> None:
    print(f"{r['model']}, batch 1, prompt {r['prompt_tokens']}, {r['new_tokens']} new tokens, {r['reps']} reps, "
          f"ISA {r['isa']}, load {r['load_avg_1min']}, bandwidth {r['bandwidth'][0]} ({r['bandwidth'][1]})")
    for row in r["rows"]:
        print(f"  openvino {row['format']}: GenAI {_fmt(row['genai'])} | aipc {_fmt(row['aipc'])} | "
              f"ratio {_ratio(row)}")
    for p in r["peers"]:
        print(f"  {p['engine']} {p['format']}: aipc {_fmt(p['aipc'])}")


def write_doc(r: dict) -> None:
    from aipc.mdsection import append_to_section

    date = time.strftime("%Y-%m-%d")
    header = ("| date | model | engine, weights | OpenVINO GenAI decode tok/s (best threads) | aipc decode tok/s "
              "(best threads) | aipc / GenAI | aipc MBU | CPU ISA | load avg | command |\n"
              "|---|---|---|---|---|---|---|---|---|---|")
    intro = ("aipc's OpenVINO runner (aipc's own generate loop over one stateful OpenVINO infer request) against "
             "OpenVINO GenAI's `LLMPipeline` on the same IR folder (exported by `aipc convert --to openvino`), and "
             "the torch and llama.cpp engines on the same model. Batch 1, greedy, exactly N tokens; decode tok/s = "
             "(N-1) / (last token - first token). Each side's thread count (and GenAI's attention backend) is chosen "
             "by measurement: one interleaved run of every candidate, the fastest kept; then the two chosen "
             "configurations run alternately (A B B A ...), so that drift of the shared machine falls on both; the "
             "ratio is of the medians, with the range of the adjacent pairs' ratios. "
             "MBU against `aipc hw`'s measured copy bandwidth. Rows come from "
             "`benchmarks/bench_openvino_decode.py --write`.")
    def mbu(a: dict) -> str:
        return f"{a['mbu'] * 100:.0f}%" if a.get("mbu") else "n/a"

    tail = f"{r['isa']} | {r['load_avg_1min'][0]}-{r['load_avg_1min'][1]} | `{r['command'].strip()}` |"
    lines = [f"| {date} | {r['model']} | openvino {row['format']} | {_fmt(row['genai'])} | {_fmt(row['aipc'])} | "
             f"{_ratio(row, bold=True)} | {mbu(row['aipc'])} | {tail}" for row in r["rows"]]
    lines += [f"| {date} | {r['model']} | {p['engine']} {p['format']} | - | {_fmt(p['aipc'])} | - | "
              f"{mbu(p['aipc'])} | {tail}" for p in r["peers"]]
    for line in lines:
        append_to_section(ROOT / "docs" / "benchmarks.md", "## OpenVINO decode", header, line, intro=intro)


if __name__ == "__main__":
    main()
