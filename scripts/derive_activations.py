"""Derive per-architecture activation coefficients from real transformers models.

For each architecture family, compute dtype and attention kernel, build tiny real models of
several shapes, run one training forward (labels given, use_cache=False) and sum the bytes of the
distinct storages autograd saves for backward (torch.autograd.graph.saved_tensors_hooks), excluding
parameters. A least-squares fit over the shapes gives bytes per token as

    L * (c_h*h + c_q*a*d + c_kv*k*d + c_i*i_eff + c_a*a + c_s*a*s) + c_out*h + c_v*V

(h hidden, a heads, k KV heads, d head dim, i_eff FFN width touched per token, L layers,
V vocab, s sequence length). The estimator reads the result from
src/aipc/estimate/data/activations.json. Re-run after a transformers upgrade:

    .venv/bin/python scripts/derive_activations.py
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

OUT = Path(__file__).resolve().parents[1] / "src/aipc/estimate/data/activations.json"
FEATURES = ["L*h", "L*q", "L*kv", "L*i", "L*a", "L*a*s", "h", "V"]

FAMILIES = {
    "llama": dict(base={}, ffn="intermediate_size"),
    "qwen2": dict(base={}, ffn="intermediate_size"),
    "qwen3": dict(base={}, ffn="intermediate_size", head_dim=True),
    "mistral": dict(base={"sliding_window": None}, ffn="intermediate_size"),
    "gemma2": dict(base={"sliding_window": 4096}, ffn="intermediate_size", head_dim=True),
    "gemma3_text": dict(base={"sliding_window": 4096}, ffn="intermediate_size", head_dim=True),
    "phi3": dict(base={"pad_token_id": 0}, ffn="intermediate_size"),
    "gpt2": dict(base={}, ffn=None),
    "mixtral": dict(base={"num_local_experts": 4, "num_experts_per_tok": 2}, ffn="intermediate_size", moe=True),
    "qwen3_moe": dict(base={"num_experts": 4, "num_experts_per_tok": 2, "decoder_sparse_step": 1,
                            "mlp_only_layers": []}, ffn="moe_intermediate_size", head_dim=True, moe=True),
}


def build(mt: str, fam: dict, *, h: int, a: int, k: int, d: int, i: int, L: int, V: int, attn: str):
    if mt == "gpt2":
        # GPT-2's configs train with dropout 0.1 (embd/resid/attn): its masks and outputs are saved too
        cfg = dict(n_embd=h, n_layer=L, n_head=a, vocab_size=V, n_positions=1024, n_inner=i)
    else:
        cfg = dict(hidden_size=h, num_hidden_layers=L, num_attention_heads=a, num_key_value_heads=k,
                   vocab_size=V, max_position_embeddings=1024, **fam["base"])
        cfg[fam["ffn"]] = i
        if fam.get("moe"):
            cfg.setdefault("intermediate_size", i)
        if mt != "phi3":
            cfg["head_dim"] = d  # decoupled from h/a so the fit can tell h from a*d
        if mt == "phi3":
            cfg["original_max_position_embeddings"] = 1024
    config = AutoConfig.for_model(mt, **cfg)
    config._attn_implementation = attn
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation=attn)
    d = getattr(model.config, "head_dim", None) or h // a  # what the architecture really uses
    return model, d


def saved_bytes(model, dtype, b: int, s: int, V: int) -> int:
    model.to(dtype).train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        ptr = st.data_ptr()
        if ptr not in params and ptr != 0:
            seen[ptr] = max(seen.get(ptr, 0), st.nbytes())
        return t

    ids = torch.randint(0, V, (b, s))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(input_ids=ids, labels=ids, use_cache=False)
    del out
    return sum(seen.values())


def fit(mt: str, dtype, attn: str) -> dict:
    fam = FAMILIES[mt]
    rows, ys = [], []
    shapes = [(64, 4, 2, 16, 128), (96, 4, 4, 32, 160), (64, 8, 2, 16, 256), (128, 8, 8, 8, 192),
              (128, 4, 1, 24, 320), (96, 2, 2, 64, 128)]
    if mt in ("gpt2", "phi3"):  # head_dim is tied to hidden/heads there
        shapes = [(h, a, a if mt == "gpt2" else k, h // a, i) for h, a, k, _, i in shapes]
    b = 2
    for (h, a, k, d, i), L, s, V in itertools.product(shapes, (1, 2), (16, 48), (384, 640)):
        if (L, V) == (2, 640) and s == 16:
            continue
        model, d = build(mt, fam, h=h, a=a, k=k, d=d, i=i, L=L, V=V, attn=attn)
        y = saved_bytes(model, dtype, b, s, V) / (b * s)
        i_eff = i * (fam["base"].get("num_experts_per_tok", 1) if fam.get("moe") else 1)
        rows.append([L * h, L * a * d, L * k * d, L * i_eff, L * a, L * a * s, h, V])
        ys.append(y)
    X, Y = np.array(rows, float), np.array(ys, float)
    coef, *_ = np.linalg.lstsq(X, Y, rcond=None)
    pred = X @ coef
    err = float(np.max(np.abs(pred - Y) / Y))
    return {"coef": {f: round(float(c), 4) for f, c in zip(FEATURES, coef)}, "max_rel_err": round(err, 5),
            "samples": len(ys)}


def main() -> None:
    fams = sys.argv[1:] or list(FAMILIES)
    table = json.loads(OUT.read_text()) if OUT.exists() else {}
    table["_meta"] = {
        "features": FEATURES,
        "unit": "bytes of saved activations per token (batch*seq) of a training forward",
        "source": f"derived by scripts/derive_activations.py on transformers {transformers.__version__}, "
                  f"torch {torch.__version__}",
    }
    for mt in fams:
        for dt_name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            for attn in ("eager", "sdpa"):
                try:
                    r = fit(mt, dt, attn)
                except ValueError as e:  # e.g. gemma2 has no SDPA path: transformers runs eager
                    if "does not support" not in str(e):
                        raise
                    r = dict(table[mt][f"{dt_name}/eager"], note=f"{attn} unsupported; eager used")
                table.setdefault(mt, {})[f"{dt_name}/{attn}"] = r
                print(mt, dt_name, attn, r, flush=True)
        OUT.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
