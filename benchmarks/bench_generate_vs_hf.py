"""aipc generate vs HF generate(): decode tokens/s, same model, precision, prompt, machine, one run.

Both sides run in this process on one random-weight Llama (real transformers architecture), batch 1,
greedy. HF: ``model.generate(ids, max_new_tokens=N, do_sample=False)`` with default settings
(DynamicCache, default logits processors and stopping criteria). aipc: ``aipc.engines.generate.generate``
(FastLM: static KV cache, fused projections). End-of-sequence is disabled on both so each produces
exactly N tokens, and the two token sequences are checked to be identical.

Decode tokens/s is measured the same way for both: (N − 1) / (T(N) − T(1)), where T(k) is the wall
time to generate k tokens from the same prompt — prefill and first token cancel out. Runs alternate
HF/aipc (order flipped each repetition); medians are reported with min–max.

    python benchmarks/bench_generate_vs_hf.py                 # ~55M params fp32, prints a table
    python benchmarks/bench_generate_vs_hf.py --write         # and records it in docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bench_common import add_llama_shape, command, finish, llama_config  # noqa: E402


def build(args):
    from transformers import LlamaForCausalLM

    from aipc.models.dtypes import torch_dtype

    cfg = llama_config(args, max_position_embeddings=args.prompt_tokens + args.new_tokens + 16, eos_token_id=None,
                       bos_token_id=None, pad_token_id=None)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch_dtype(args.dtype)).eval()
    model.generation_config.eos_token_id = None  # exactly N tokens on both sides
    model.generation_config.pad_token_id = 0     # silences the "setting pad_token_id" notice
    return model


def hf_run(model, ids, n):
    t = time.perf_counter()
    out = model.generate(ids, max_new_tokens=n, do_sample=False)
    return time.perf_counter() - t, out[0, ids.shape[1]:].tolist()


def aipc_run(runner, tok, ids, n):
    from aipc.engines.generate import generate
    from aipc.engines.sampling import SamplingParams

    t = time.perf_counter()
    res = generate(runner, tok, ids[0].tolist(), SamplingParams(max_tokens=n, ignore_eos=True))
    return time.perf_counter() - t, res.token_ids, res.stats


class _NoTok:  # generate() detokenizes for streaming; ids above a real vocab decode to '' here
    eos_token_id = None

    def decode(self, ids, skip_special_tokens=True):
        return ""


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_llama_shape(ap, hidden=512, intermediate=1408, layers=8, heads=8, kv_heads=2)
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads for both sides (default: torch's)")
    ap.add_argument("--aipc-auto-threads", action="store_true",
                    help="aipc picks its thread count as 'aipc generate' does by default (measured 1 vs all); "
                         "HF keeps --threads / torch's default")
    ap.add_argument("--compile", action="store_true", help="aipc side: torch.compile the decode step (--compile)")
    ap.add_argument("--write", action="store_true", help="record the result in docs/benchmarks.md")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from aipc.runtime import prepare_cpu

    prepare_cpu()  # flush denormals for the whole process: HF and aipc run under the same setting
    if args.threads:
        torch.set_num_threads(args.threads)
    from aipc.engines.hfrunner import make_runner

    model = build(args)
    params = sum(p.numel() for p in model.parameters())
    runner = make_runner(model, max_len=args.prompt_tokens + args.new_tokens + 8)
    compile_s = None
    if args.compile:
        t = time.perf_counter()
        runner.compile()
        runner.prefill(0, torch.arange(4))
        int(runner.decode1(1, 4).argmax())  # compiles here
        compile_s = time.perf_counter() - t
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, args.vocab, (1, args.prompt_tokens), generator=g)
    tok = _NoTok()
    N = args.new_tokens
    hf_threads = torch.get_num_threads()
    ai_threads, auto_note = hf_threads, ""
    if args.aipc_auto_threads:
        from aipc.engines.generate import pick_threads

        ai_threads, med = pick_threads(runner, sorted({hf_threads, 1}, reverse=True))
        auto_note = "auto: " + ", ".join(f"{c} thr {s * 1e3:.1f} ms/step" for c, s in med.items())
    load0 = os.getloadavg()[0]
    torch.set_num_threads(hf_threads)
    hf_run(model, ids, 4)  # warm-up
    torch.set_num_threads(ai_threads)
    aipc_run(runner, tok, ids, 4)
    hf_tps, ai_tps, ai_internal, same = [], [], [], True
    for r in range(args.reps):
        order = ("hf", "aipc") if r % 2 == 0 else ("aipc", "hf")
        for side in order:
            torch.set_num_threads(hf_threads if side == "hf" else ai_threads)
            if side == "hf":
                t1, _ = hf_run(model, ids, 1)
                tn, hf_ids = hf_run(model, ids, N)
                hf_tps.append((N - 1) / (tn - t1))
            else:
                t1, _, _ = aipc_run(runner, tok, ids, 1)
                tn, ai_ids, st = aipc_run(runner, tok, ids, N)
                ai_tps.append((N - 1) / (tn - t1))
                ai_internal.append(st.decode_tokens_per_s)
        same = same and hf_ids == ai_ids
    load1 = os.getloadavg()[0]
    med_hf, med_ai = statistics.median(hf_tps), statistics.median(ai_tps)
    result = {
        "model": f"random Llama {params / 1e6:.1f}M params (hidden {args.hidden}, {args.layers} layers, "
                 f"{args.heads} heads / {args.kv_heads} KV heads, vocab {args.vocab})",
        "params": params, "dtype": args.dtype, "batch": 1, "prompt_tokens": args.prompt_tokens, "new_tokens": N,
        "reps": args.reps, "threads": hf_threads if ai_threads == hf_threads else f"HF {hf_threads} / aipc {ai_threads}",
        "threads_note": auto_note, "runner": type(runner).__name__ + (" (torch.compile)" if args.compile else ""),
        "compile_s": compile_s,
        "hf_decode_tokens_per_s": {"median": med_hf, "min": min(hf_tps), "max": max(hf_tps)},
        "aipc_decode_tokens_per_s": {"median": med_ai, "min": min(ai_tps), "max": max(ai_tps)},
        "aipc_tpot_based_tokens_per_s_median": statistics.median(ai_internal),
        "ratio": med_ai / med_hf, "greedy_tokens_identical": same,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs",
        "load_avg_1min": [round(load0, 2), round(load1, 2)],
        "torch": torch.__version__, "transformers": __import__("transformers").__version__,
        "command": command("bench_generate_vs_hf.py", argv),
    }
    return finish(result, args, _print, write_doc)


def _print(r: dict) -> None:
    hf, ai = r["hf_decode_tokens_per_s"], r["aipc_decode_tokens_per_s"]
    print(f"{r['model']}, {r['dtype']}, batch 1, prompt {r['prompt_tokens']}, {r['new_tokens']} new tokens, "
          f"{r['threads']} threads, {r['reps']} reps, load {r['load_avg_1min']}")
    print(f"  HF generate(): {hf['median']:8.1f} tok/s  (min {hf['min']:.1f}, max {hf['max']:.1f})")
    print(f"  aipc generate: {ai['median']:8.1f} tok/s  (min {ai['min']:.1f}, max {ai['max']:.1f})")
    print(f"  ratio: {r['ratio']:.2f}x   greedy tokens identical: {r['greedy_tokens_identical']}   {r['threads_note']}")


def write_doc(r: dict) -> None:
    from aipc.mdsection import append_to_section

    line = (f"| {time.strftime('%Y-%m-%d')} | {r['model']}, {r['runner']} | {r['dtype']} | {r['threads']} | "
            f"{r['hf_decode_tokens_per_s']['median']:.1f} ({r['hf_decode_tokens_per_s']['min']:.1f}–"
            f"{r['hf_decode_tokens_per_s']['max']:.1f}) | {r['aipc_decode_tokens_per_s']['median']:.1f} "
            f"({r['aipc_decode_tokens_per_s']['min']:.1f}–{r['aipc_decode_tokens_per_s']['max']:.1f}) | "
            f"**{r['ratio']:.2f}x** | {r['greedy_tokens_identical']} | {r['load_avg_1min'][0]}–{r['load_avg_1min'][1]} | "
            f"`{r['command'].strip()}` |")
    header = ("| date | model | dtype | threads | HF generate() decode tok/s, median (min–max) | aipc generate decode "
              "tok/s | ratio | same greedy tokens | load avg | command |\n|---|---|---|---|---|---|---|---|---|---|")
    intro = ("`aipc generate` (FastLM: static KV cache, fused q/k/v and gate/up, no per-step mask or logits "
             "processors) against HF `model.generate(do_sample=False)` with default settings: same random-weight "
             "Llama, precision, prompt and machine, one process, runs alternating. Decode tokens/s = (N-1) / "
             "(T(N) - T(1)) for both. Rows are appended by `benchmarks/bench_generate_vs_hf.py --write`; "
             "the machine is a shared 2-core VM, so the load average during the run is recorded.")
    append_to_section(ROOT / "docs" / "benchmarks.md", "## Generate", header, line, intro=intro)


if __name__ == "__main__":
    main()
