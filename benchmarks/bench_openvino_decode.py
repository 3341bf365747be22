"""aipc's OpenVINO runner vs OpenVINO GenAI's own LLMPipeline: decode tokens/s on the same export.

One process, one machine, batch 1, greedy, end-of-sequence off (exactly N tokens each). The model is
exported once per weight format by ``aipc convert --to openvino`` (optimum-intel + NNCF; a catalog
model gets random weights: the text is noise, the speed is real) and both sides load the same IR:
* OpenVINO GenAI: ``LLMPipeline(folder, "CPU", INFERENCE_NUM_THREADS=t, ATTENTION_BACKEND=b)`` with
  both of its attention backends (SDPA: the stateful model; PA: paged attention, continuous
  batching), fed the prompt ids, tokens timed as they reach a streamer;
* aipc: :class:`aipc.engines.openvino_runner.OVRunner` (one stateful infer request) driven by
  ``aipc.engines.generate.generate``, aipc's own loop (the one ``aipc generate`` and the server use).
Decode tokens/s = (N - 1) / (time of the last token - time of the first) on both sides. Thread
counts are chosen by measurement: every candidate is run on both sides and each side's best
median counts. MBU = (weight + KV bytes read per step) x tokens/s / the copy bandwidth ``aipc hw``
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


def run_aipc(folder, threads: int, ids, n: int, reps: int, bandwidth) -> dict:
    from aipc.engines.openvino import _tokenizer
    from aipc.engines.openvino_runner import OVRunner
    from aipc.engines.generate import generate

    runner = OVRunner(folder, threads=threads, max_len=len(ids) + n + 8)
    tok = _tokenizer(Path(folder), runner.vocab_size)
    generate(runner, tok, ids, _params(8))  # warm-up
    runs = [generate(runner, tok, ids, _params(n), bandwidth=bandwidth).stats for _ in range(reps)]
    return _summary(runs, threads, {"kv_cache_precision": runner.kv_precision()})


def run_genai(folder, threads: int, backend: str, ids, n: int, reps: int, bandwidth, wbytes: int,
              kvtok: int) -> dict:
    from aipc.engines.openvino import _tokenizer
    from aipc.engines.openvino_genai import GenAIGenerator

    gen = GenAIGenerator(folder, threads=threads, max_len=len(ids) + n + 8, config={"ATTENTION_BACKEND": backend})
    tok = _tokenizer(Path(folder), 0) if (Path(folder) / "tokenizer.json").exists() else None
    gen.generate(tok, ids, _params(8))
    runs = [gen.generate(tok, ids, _params(n), bandwidth=bandwidth, weight_bytes=wbytes,
                         kv_bytes_per_token=kvtok).stats for _ in range(reps)]
    return _summary(runs, threads, {"attention_backend": backend})


def _summary(runs, threads, extra) -> dict:
    tps = [s.decode_tokens_per_s for s in runs]
    med = statistics.median(tps)
    mbu = [s.mbu for s in runs if s.mbu is not None]
    return {"threads": threads, "median": med, "min": min(tps), "max": max(tps),
            "mbu": statistics.median(mbu) if mbu else None, "ttft_s": statistics.median(s.ttft_s for s in runs),
            "bytes_per_step": runs[0].weight_bytes_per_step + runs[0].kv_bytes_per_step, **extra}


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
        s = _summary(runs, t, {})
        best = s if best is None or s["median"] > best["median"] else best
    return best


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--formats", default="int8,int4")
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
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
        aipc = [run_aipc(folder, t, ids, args.new_tokens, args.reps, bandwidth) for t in threads]
        best_ai = max(aipc, key=lambda r: r["median"])
        from aipc.engines.openvino_runner import OVRunner

        probe = OVRunner(folder, max_len=64)
        wb, kv = probe.weight_bytes_per_step(), probe.kv_bytes_per_token()
        del probe
        genai = [run_genai(folder, t, be, ids, args.new_tokens, args.reps, bandwidth, wb, kv)
                 for t in threads for be in ("SDPA", "PA")]  # GenAI's stateful (SDPA) and paged (PA) backends
        best_g = max(genai, key=lambda r: r["median"])
        rows.append({"engine": "openvino", "format": fmt, "aipc": best_ai, "genai": best_g,
                     "all_aipc": aipc, "all_genai": genai, "ratio": best_ai["median"] / best_g["median"]})
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


def _print(r: dict) -> None:
    print(f"{r['model']}, batch 1, prompt {r['prompt_tokens']}, {r['new_tokens']} new tokens, {r['reps']} reps, "
          f"ISA {r['isa']}, load {r['load_avg_1min']}, bandwidth {r['bandwidth'][0]} ({r['bandwidth'][1]})")
    for row in r["rows"]:
        print(f"  openvino {row['format']}: GenAI {_fmt(row['genai'])} | aipc {_fmt(row['aipc'])} | "
              f"ratio {row['ratio']:.3f}")
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
             "(N-1) / (last token - first token); threads chosen by measurement (each side's best candidate). "
             "MBU against `aipc hw`'s measured copy bandwidth. Rows come from "
             "`benchmarks/bench_openvino_decode.py --write`.")
    def mbu(a: dict) -> str:
        return f"{a['mbu'] * 100:.0f}%" if a.get("mbu") else "n/a"

    tail = f"{r['isa']} | {r['load_avg_1min'][0]}-{r['load_avg_1min'][1]} | `{r['command'].strip()}` |"
    lines = [f"| {date} | {r['model']} | openvino {row['format']} | {_fmt(row['genai'])} | {_fmt(row['aipc'])} | "
             f"**{row['ratio']:.3f}** | {mbu(row['aipc'])} | {tail}" for row in r["rows"]]
    lines += [f"| {date} | {r['model']} | {p['engine']} {p['format']} | - | {_fmt(p['aipc'])} | - | "
              f"{mbu(p['aipc'])} | {tail}" for p in r["peers"]]
    for line in lines:
        append_to_section(ROOT / "docs" / "benchmarks.md", "## OpenVINO decode", header, line, intro=intro)


if __name__ == "__main__":
    main()
