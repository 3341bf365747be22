"""Measure how a CPU process's peak RSS grows per generated token when attention runs eagerly in a
16-bit dtype (what aipc.estimate.memory.CPU_EAGER_DECODE_GROWTH describes). One command:

    .venv/bin/python scripts/derive_decode_growth.py

Each row is a fresh process under aipc's allocator setting: a random-weight Llama (not one of the
validation sets' models) prefills 128 tokens, then HF generate() (greedy, dynamic cache) makes N new
tokens; the row is VmHWM after generate minus VmHWM after the prefill. With eager attention every
step multiplies matrices of a new length; in bf16 / fp16 oneDNN compiles and caches a kernel for each
new shape, so the peak grows with every token. sdpa and fp32 rows are the controls.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys
from aipc.runtime import configure_allocator
configure_allocator()
import torch, transformers
attn, dtype, gen, hidden, layers, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
def hwm():
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM"))
torch.manual_seed(0)
cfg = transformers.LlamaConfig(hidden_size=hidden, intermediate_size=3 * hidden, num_hidden_layers=layers,
                               num_attention_heads=8, num_key_value_heads=4, vocab_size=32000)
cfg._attn_implementation = attn
dt = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
m = transformers.AutoModelForCausalLM.from_config(cfg, dtype=dt).eval()
ids = torch.randint(0, 32000, (batch, 128))
with torch.inference_mode():
    m(input_ids=ids, use_cache=True, logits_to_keep=1)
    h0 = hwm()
    m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=gen, min_new_tokens=gen, do_sample=False)
print(json.dumps({"growth": hwm() - h0}))
"""

ROWS = [  # attention, dtype, new tokens, hidden, layers, batch
    ("eager", "bf16", 1, 256, 4, 1), ("eager", "bf16", 64, 256, 4, 1), ("eager", "bf16", 128, 256, 4, 1),
    ("eager", "bf16", 64, 512, 4, 1), ("eager", "bf16", 64, 256, 8, 1), ("eager", "bf16", 64, 256, 4, 2),
    ("eager", "fp16", 64, 256, 4, 1), ("sdpa", "bf16", 64, 256, 4, 1), ("eager", "fp32", 64, 256, 4, 1),
    ("eager", "bf16", 512, 256, 4, 1), ("eager", "bf16", 1024, 256, 4, 1), ("eager", "bf16", 2048, 256, 4, 1),
]


def main() -> int:
    per_token = []
    print("| attention | dtype | new tokens | hidden | layers | batch | peak growth | per token |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for attn, dtype, gen, hidden, layers, batch in ROWS:
        out = subprocess.run([sys.executable, "-c", CHILD, attn, dtype, str(gen), str(hidden), str(layers), str(batch)],
                             capture_output=True, text=True, check=True).stdout
        growth = json.loads(out.strip().splitlines()[-1])["growth"]
        print(f"| {attn} | {dtype} | {gen} | {hidden} | {layers} | {batch} | {growth / 2**20:.1f} MiB | "
              f"{growth / gen / 1e6:.2f} MB |", flush=True)
        if attn == "eager" and dtype != "fp32" and 1 < gen <= 128:  # longer runs: where it levels off
            per_token.append(growth / gen)
    print(f"eager 16-bit rows: median {statistics.median(per_token) / 1e6:.2f} MB per generated token "
          f"(min {min(per_token) / 1e6:.2f}, max {max(per_token) / 1e6:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
