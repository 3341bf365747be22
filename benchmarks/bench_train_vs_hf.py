"""Training throughput: aipc's loop vs the HF Trainer, same model, data, batch, sequence length, precision.

Both run in this one process, interleaved round by round (HF, aipc, HF, aipc, ...), so machine load
hits both alike. Model: the llama2.c "stories15M" shape (karpathy/llama2.c README: dim 288, 6 layers,
6 heads, vocab 32000, hidden 768, seq 256, tied head) built as a transformers LlamaForCausalLM with
random weights — the same class and attention (sdpa) for both. fp32 on CPU.

Workloads:
  packed text   — a text corpus packed into sequences of T tokens; HF gets aipc's packed tensors
                  (input_ids = labels, default collator): identical tokens, so only the loop differs.
  prompt/completion — the same JSONL records for both, each through its own standard pipeline: HF
                  tokenizes each example (labels -100 on the prompt) and pads every batch to its longest
                  example (DataCollatorForSeq2Seq, the usual HF recipe for such data); aipc packs
                  examples into full sequences (loss still on completions only). Throughput counts
                  real (non-padding) tokens.

Timing: a step ends at the framework's step-end callback (HF ``on_step_end``, aipc ``after_step``);
tokens/s = real tokens of the timed steps / their summed step times, after ``--warmup`` steps.

    .venv/bin/python benchmarks/bench_train_vs_hf.py --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL = dict(hidden_size=288, intermediate_size=768, num_hidden_layers=6, num_attention_heads=6,
             num_key_value_heads=6, vocab_size=32000, max_position_embeddings=256, tie_word_embeddings=True,
             rms_norm_eps=1e-5)


def flops_per_token(seq: int) -> float:
    """Training FLOPs per token as MFU counts them (6N + attention), from aipc's estimator for this model."""
    from aipc.estimate.compute import train_flops_per_token
    from aipc.models.spec import ModelSpec
    from aipc.spec import Workload, precision_fields

    m = ModelSpec.from_hf_config({"model_type": "llama", **MODEL}, name="stories15m")
    return train_flops_per_token(m, Workload(model="stories15m", task="train", seq_len=seq, **precision_fields("fp32")))


WORDS = ("the quick brown fox jumps over a lazy dog and then runs far away into green hills while "
         "small birds sing songs about rivers mountains and long summer days").split()


def make_data(work: Path, seed: int = 0) -> tuple[Path, Path]:
    """A text corpus and a prompt/completion JSONL with a long-tailed length spread (log-normal)."""
    rnd = random.Random(seed)
    text = work / "corpus.txt"
    text.write_text("\n".join(" ".join(rnd.choice(WORDS) for _ in range(40)) for _ in range(4000)))
    pc = work / "pc.jsonl"
    with pc.open("w") as f:
        for _ in range(6000):
            # words: median ~12 prompt + ~8 completion; 116 tokens median, p90 227, 6% over 256
            n_p = max(4, int(rnd.lognormvariate(2.5, 0.6)))
            n_c = max(2, int(rnd.lognormvariate(2.1, 0.8)))
            f.write(json.dumps({"prompt": " ".join(rnd.choice(WORDS) for _ in range(n_p)) + "\n",
                                "completion": " ".join(rnd.choice(WORDS) for _ in range(n_c))}) + "\n")
    return text, pc


def window(ends: list[tuple[float, float]], tokens: list[int], warmup: int, steps: int) -> dict:
    """Throughput of steps warmup+1 .. warmup+steps (1-based) from (wall, process CPU) step-end clocks.

    Step k lasts ends[k-1] - ends[k-2] and trained batch k-1 (0-based); the run's extra last step (aipc
    saves its final checkpoint there) is not timed. CPU time (time.process_time: all threads of this
    process) does not count time the OS gave to other processes, so it is the steadier figure on a
    shared machine."""
    sel = slice(warmup - 1, warmup - 1 + steps)
    wall = [b[0] - a[0] for a, b in zip(ends, ends[1:])][sel]
    cpu = [b[1] - a[1] for a, b in zip(ends, ends[1:])][sel]
    toks = sum(tokens[warmup: warmup + steps])
    return {"tokens_per_s": toks / sum(wall), "cpu_tokens_per_s": toks / sum(cpu),
            "median_step_s": statistics.median(wall), "tokens_per_step": toks / steps}


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def run_aipc(work: Path, data: Path, a, tag: str) -> dict:
    from aipc.train.config import TrainConfig
    from aipc.train.loop import Hooks, train

    ends: list[tuple[float, float]] = []
    cfg = TrainConfig(model=str(work / "model" / "config.json"), data=[str(data)], out=str(work / f"aipc-{tag}"),
                      seq_len=a.seq, batch_size=a.batch, steps=a.warmup + a.steps + 1, lr=3e-4, val_fraction=0.0,
                      seed=0, progress=False, mfu=False, preflight=False, compile=a.compile,
                      device=a.device, precision=a.precision)
    r = train(cfg, Hooks(after_step=lambda s: ends.append(clock())))
    return {**window(ends, [a.batch * a.seq] * len(ends), a.warmup, a.steps), "first_loss": r.losses[0],
            "fused_loss": r.fused_loss, "padding_fraction": 0.0}


def run_hf(work: Path, kind: str, data: Path, a, tag: str) -> dict:
    import torch
    from transformers import (DataCollatorForSeq2Seq, LlamaConfig, LlamaForCausalLM, Trainer, TrainerCallback,
                              TrainingArguments, default_data_collator)

    from aipc.models.tiny import byte_tokenizer
    from aipc.train import packing
    from aipc.train.data import read_records
    from aipc.train.tokenize import encode, encode_record

    tok = byte_tokenizer(MODEL["vocab_size"])
    records = read_records([str(data)])
    real: list[int] = []     # non-padding tokens of each batch, in the order the Trainer draws them
    shaped: list[int] = []   # tokens the model computes on (batch x padded length)
    if kind == "packed":
        ids, mask = encode(tok, records, MODEL["vocab_size"])
        p = packing.pack(ids, mask, a.seq)
        rows = [{"input_ids": torch.from_numpy(x), "labels": torch.from_numpy(x)} for x in p.inputs]

        def collate(batch):
            n = sum(int(b["input_ids"].numel()) for b in batch)
            real.append(n)
            shaped.append(n)
            return default_data_collator(batch)
    else:
        rows = []
        for k, v in records:
            i, m = encode_record(tok, k, v)
            i, m = i[: a.seq], m[: a.seq]
            rows.append({"input_ids": i, "attention_mask": [1] * len(i),
                         "labels": [t if keep else -100 for t, keep in zip(i, m)]})
        pad = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)

        def collate(batch):
            real.append(sum(len(b["input_ids"]) for b in batch))
            shaped.append(len(batch) * max(len(b["input_ids"]) for b in batch))
            return pad(batch)

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            return rows[i]

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**MODEL))
    ends: list[tuple[float, float]] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            ends.append(clock())

    args = TrainingArguments(output_dir=str(work / f"hf-{tag}"), per_device_train_batch_size=a.batch,
                             max_steps=a.warmup + a.steps + 1, learning_rate=3e-4, lr_scheduler_type="cosine",
                             save_strategy="no", eval_strategy="no", report_to="none",
                             use_cpu=a.device == "cpu", bf16=a.precision == "bf16", fp16=a.precision == "fp16",
                             disable_tqdm=True, seed=0, torch_compile=a.compile)
    Trainer(model=model, args=args, train_dataset=DS(), data_collator=collate, callbacks=[Clock()]).train()
    n = a.steps
    pad_frac = 1 - sum(real[a.warmup: a.warmup + n]) / sum(shaped[a.warmup: a.warmup + n])
    return {**window(ends, real, a.warmup, a.steps), "padding_fraction": pad_frac, "attn": model.config._attn_implementation,
            "optim": str(getattr(args.optim, "value", args.optim))}


def write_section(path: Path, rows, a, threads: int, load0: float, load1: float, torch_v: str, tf_v: str) -> None:
    """Replace (or append) the '## Training' section of ``path``."""
    cpu = _cpu_name()
    fpt = flops_per_token(a.seq)
    lines = [
        "## Training",
        "",
        "What: training throughput (real tokens/s) of aipc's loop (`aipc.train.loop.train`, what `aipc train`",
        "runs) against the HF Trainer on the same model, data, batch, sequence length and precision, both in one",
        "script run, interleaved round by round. Model: llama2.c *stories15M* shape (dim 288, 6 layers, 6 heads,",
        "vocab 32000, FFN 768, tied head; 15.2M parameters) as a random-weight `LlamaForCausalLM`, sdpa attention,",
        f"{a.precision} on {a.device}, batch {a.batch} x seq {a.seq}, AdamW (HF default `{rows[0][5]['hf'][0]['optim']}`, aipc fused AdamW),",
        "cosine schedule, grad clipping 1.0, no eval, no checkpoint saving in the timed steps for HF (aipc writes",
        "its metrics JSONL every step). tokens/s = real (non-padding) tokens of the timed steps / their wall",
        f"time, after {a.warmup} warm-up steps, {a.steps} timed steps per run, median of {a.rounds} runs each;",
        "the CPU-time ratio divides the same tokens by the process's CPU seconds (`time.process_time`), which",
        "the other jobs on a shared machine disturb far less than wall time.",
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores, torch {torch_v} (torch threads: {threads}), transformers {tf_v},",
        f"Python {platform.python_version()}; {time.strftime('%Y-%m-%d')}. The machine was shared with other",
        f"engineers' jobs: 1-minute load average {load0:.1f} before and {load1:.1f} after the run on {os.cpu_count()}",
        "cores, so absolute numbers are noisy; both frameworks ran interleaved under the same load.",
        "",
        "Command: `" + " ".join(["python", "benchmarks/bench_train_vs_hf.py", *sys.argv[1:]]) + "`",
        "",
        "| workload | HF Trainer tok/s | aipc tok/s | aipc / HF (wall) | aipc / HF (CPU time) | HF padding |"
        " per-run wall tok/s (HF; aipc) | model GFLOP/s (HF; aipc) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    names = {"packed": "packed text (identical tensors)", "pc": "prompt/completion (HF pads, aipc packs)"}
    for kind, hf, ai, hf_c, ai_c, res in rows:
        pads = [x["padding_fraction"] for x in res["hf"]]
        pad = f"{100 * statistics.median(pads):.0f}%"
        runs = ", ".join(f"{x['tokens_per_s']:,.0f}" for x in res["hf"]) + "; " + \
            ", ".join(f"{x['tokens_per_s']:,.0f}" for x in res["aipc"])
        lines.append(f"| {names.get(kind, kind)} | {hf:,.0f} | {ai:,.0f} | **{ai / hf:.2f}x** | "
                     f"**{ai_c / hf_c:.2f}x** | {pad} | {runs} | {hf * fpt / 1e9:,.0f}; {ai * fpt / 1e9:,.0f} |")
    lines += ["", *EXPLAIN, ""]
    from aipc.mdsection import replace_section

    replace_section(path, lines[0], "\n".join(lines[1:]))


EXPLAIN = [
    "Why the numbers are what they are:",
    "- *Packed text* compares the loops on the same token tensors and the same transformers model code.",
    "  On this CPU ~80% of a step is fp32 matrix multiplication, more than half of it the 32000-word output",
    "  layer. torch runs fp32 `F.linear` through MKL, which on this AMD EPYC (Zen 5) reaches 215 GFLOP/s;",
    "  oneDNN, shipped in the same torch build, reaches 454 GFLOP/s on the same cores (`aipc hw`, fp32 GEMM",
    "  2048^3, both backends measured). `aipc train` measures both once per process (`aipc.cpu_gemm`) and,",
    "  where oneDNN is at least 10% faster, routes the model's fp32 Linear layers (forward and both backward",
    "  GEMMs) and its fused linear + cross-entropy (`aipc.train.loss`: loss and logits' gradient chunk by",
    "  chunk, no full logits tensor) through oneDNN; results agree with F.linear to fp32 rounding",
    "  (`tests/test_cpu_gemm.py`: loss and every gradient of a tiny Llama within 1e-4). The HF Trainer runs",
    "  torch's default kernels. Where MKL is as fast (e.g. Intel CPUs), the loop's own gain is what remains:",
    "  the fused loss and no per-step collation or callbacks (1.02x on this CPU before oneDNN routing).",
    "- Model GFLOP/s counts 6N + 12·L·d·s FLOPs per token (N = 15.2M matmul parameters, output layer",
    "  included; 96.5 MFLOP per token at seq 256, `aipc.estimate.compute`), as MFU does.",
    "- *Prompt/completion* adds what packing saves: the HF recipe pads every batch to its longest example,",
    "  so a share of each step (the 'HF padding' column) computes on padding; aipc packs examples into full",
    "  sequences (loss still only on completions) and computes on real tokens only. The gain grows with",
    "  the spread of example lengths (here log-normal: median 116 tokens, p90 227, 6% truncated to 256 by",
    "  HF; aipc keeps them whole). Packing lets attention cross example boundaries inside a sequence (as",
    "  HF's own `group_texts` packing does); that is the usual trade for not computing on padding.",
    "- Not used to get these numbers: torch.compile (optional in both; `--compile` adds it to both, and",
    "  compiled aipc runs keep torch's kernels), lower precision, smaller batches for the peer, or skipping",
    "  any of the peer's default work. No GPU was available for this run; on a CUDA machine the script runs",
    "  both on the GPU in bf16 (`--device`, `--precision`), where `aipc.cpu_gemm` plays no part.",
]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12, help="timed optimizer steps per run")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved HF/aipc rounds per workload")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--workloads", default="packed,pc")
    ap.add_argument("--compile", action="store_true", help="run both with torch.compile")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--precision", default=None, choices=["fp32", "bf16", "fp16"],
                    help="default: fp32 on CPU, bf16 (autocast / HF --bf16) on CUDA")
    ap.add_argument("--write", default=None, help="replace the '## Training' section of this markdown file")
    a = ap.parse_args()
    import torch
    import transformers

    if a.threads:
        torch.set_num_threads(a.threads)
    from aipc.runtime import prepare_cpu

    prepare_cpu()  # flush denormals for the whole process: HF and aipc run under the same setting
    if a.device == "auto":
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    a.precision = a.precision or ("bf16" if a.device == "cuda" else "fp32")
    threads = torch.get_num_threads()
    work = Path(tempfile.mkdtemp(prefix="aipc-bench-train-"))
    (work / "model").mkdir()
    (work / "model" / "config.json").write_text(json.dumps({"model_type": "llama", **MODEL}))
    text, pc = make_data(work)
    load0 = os.getloadavg()[0]
    results: dict[str, dict[str, list[dict]]] = {}
    for kind in a.workloads.split(","):
        data = text if kind == "packed" else pc
        res = results.setdefault(kind, {"hf": [], "aipc": []})
        for r in range(a.rounds):
            for fw in ("hf", "aipc"):
                tag = f"{kind}-{r}"
                out = run_hf(work, kind, data, a, tag) if fw == "hf" else run_aipc(work, data, a, tag)
                res[fw].append(out)
                print(f"{kind:7s} round {r} {fw:5s} {out['tokens_per_s']:8,.0f} tok/s wall, "
                      f"{out['cpu_tokens_per_s']:8,.0f} tok/CPU-s (median step {out['median_step_s']:.3f} s)",
                      flush=True)
    load1 = os.getloadavg()[0]
    rows = []
    for kind, res in results.items():
        hf = statistics.median(x["tokens_per_s"] for x in res["hf"])
        ai = statistics.median(x["tokens_per_s"] for x in res["aipc"])
        hf_c = statistics.median(x["cpu_tokens_per_s"] for x in res["hf"])
        ai_c = statistics.median(x["cpu_tokens_per_s"] for x in res["aipc"])
        rows.append((kind, hf, ai, hf_c, ai_c, res))
        print(f"{kind}: HF Trainer {hf:,.0f} tok/s, aipc {ai:,.0f} tok/s, ratio {ai / hf:.2f}x wall; "
              f"{hf_c:,.0f} vs {ai_c:,.0f} tok/CPU-s, ratio {ai_c / hf_c:.2f}x CPU time")
    if a.write:
        write_section(Path(a.write), rows, a, threads, load0, load1, torch.__version__, transformers.__version__)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
