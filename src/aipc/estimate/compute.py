"""FLOPs per token and per step, and bytes moved per decode step.

Conventions (FIELD-NOTES; Kaplan et al. 2020; nanoGPT's estimate_mfu):
- N is the matmul parameter count (embedding lookups excluded, the head's V*h included); MoE counts
  only the experts a token visits.
- Training, *model* FLOPs per token (what MFU counts; PaLM appendix B): 6N plus attention
  12*L*a*d*s (score and value matmuls, non-causal count, as nanoGPT/PaLM MFU do). LoRA: the frozen
  base needs no weight gradients: 4N + 6*N_lora + attention. 'freeze': 2N for frozen blocks, 6N for
  trained ones.
- *Hardware* FLOPs add what gradient checkpointing recomputes: one more forward of the blocks
  (2*N_blocks + 4*L*a*d*s, the head is not recomputed; LoRA adapters' forward too). The estimator's
  times use hardware FLOPs; MFU (``aipc train``, ``aipc bench``) uses model FLOPs. Both come from
  :func:`train_flops_per_token`, the one place this is computed.
- Inference: 2N per token plus causal attention 4*L*a*d*ctx per token (prefill: ctx ~ p/2 on average).
"""

from __future__ import annotations

from aipc.estimate import params as P
from aipc.estimate.memory import kv_cache_bytes, weights_bytes
from aipc.estimate.weights import decode_weight_bytes
from aipc.estimate.types import Compute
from aipc.models.spec import ModelSpec
from aipc.spec import Workload, dtype_bytes


def attention_flops_per_token(m: ModelSpec, ctx: float, train: bool) -> float:
    """Score and value matmuls: forward 4*L*a*d*ctx per token; training x3 (12*L*a*d*s)."""
    fwd = 4.0 * m.num_layers * m.num_heads * m.head_dim * ctx
    return 3 * fwd if train else fwd


def head_params(m: ModelSpec) -> int:
    """The output head's matmul parameters (V*h, tied or not; 0 for encoders without one)."""
    return m.vocab_size * m.hidden_size if m.is_decoder else 0


def train_flops_per_token(m: ModelSpec, w: Workload, *, recompute: bool | None = None) -> float:
    """Training FLOPs per trained token by method (module docstring). ``recompute`` (default: the
    workload's ``grad_ckpt``) adds checkpointing's second forward of the blocks: hardware FLOPs;
    ``recompute=False`` gives model FLOPs (what MFU counts)."""
    n = P.matmul_params(m)
    blocks = max(n - head_params(m), 0)
    attn = attention_flops_per_token(m, w.seq_len, train=True)
    attn_fwd = attn / 3
    recompute = w.grad_ckpt if recompute is None else recompute
    if w.method in ("lora", "qlora"):
        lora = P.lora_params(m, w)
        return 4 * n + 6 * lora + attn + ((2 * blocks + 2 * lora + attn_fwd) if recompute else 0)
    if w.method == "freeze":
        frac = min(w.trainable_layers, m.num_layers) / m.num_layers
        frozen = blocks * (1 - frac)
        base = 2 * frozen + 6 * (n - frozen) + attn * frac + attn_fwd * (1 - frac)
        return base + ((2 * blocks * frac + attn_fwd * frac) if recompute else 0)
    return 6 * n + attn + ((2 * blocks + attn_fwd) if recompute else 0)


def _prefill_terms(m: ModelSpec, tokens: int) -> tuple[float, float, float]:
    """(the blocks' matrix FLOPs per prompt token, attention FLOPs per prompt token, the output head's
    FLOPs for the last token) of a decoder's prefill, which asks for the last token's logits only."""
    head = head_params(m)
    return 2.0 * max(P.matmul_params(m) - head, 0), attention_flops_per_token(m, tokens / 2, False), 2.0 * head


def prefill_flops_decoder(m: ModelSpec, tokens: int, batch: int = 1) -> float:
    """A decoder's prefill as every engine here runs it: every prompt token through the blocks, the
    output head for the last one only (aipc's torch runners, OpenVINO's sliced head and llama.cpp all
    ask for the last token's logits)."""
    blocks, attn, head = _prefill_terms(m, tokens)
    return batch * (tokens * (blocks + attn) + head)


def _prefill_mix(m: ModelSpec, w: Workload) -> tuple:
    """llama.cpp: (ggml type, share of the prefill's FLOPs) — the matrices by their weight types, the
    attention's score and value products (against the f16 KV cache) as F16."""
    if not _gguf_typed(m, w):
        return ()
    blocks, attn, _ = _prefill_terms(m, w.prompt_tokens)
    return _with_attention(m, w, blocks, attn, head=False)


def _decode_mix(m: ModelSpec, w: Workload, matmul: float, attn: float) -> tuple:
    """llama.cpp: (ggml type, share of a decode step's FLOPs) — every matrix with the output head by
    its weight type, the attention over the f16 KV cache as F16."""
    return _with_attention(m, w, matmul, attn, head=True) if _gguf_typed(m, w) else ()


def _gguf_typed(m: ModelSpec, w: Workload) -> bool:
    """True for a llama.cpp workload at a GGUF file type of a decoder (its tensors' types are known)."""
    from aipc.estimate.quant import FTYPE_DEFAULT

    return w.engine == "llamacpp" and w.weight_dtype in FTYPE_DEFAULT and m.is_decoder


def _with_attention(m: ModelSpec, w: Workload, matmul: float, attn: float, *, head: bool) -> tuple:
    """The matrices' type mix (aipc.estimate.quant.matmul_mix) scaled to their share of ``matmul + attn``
    FLOPs, the attention's share added as F16; largest first."""
    from aipc.estimate.quant import matmul_mix

    if matmul + attn <= 0:
        return ()
    a = attn / (matmul + attn)
    out = {t: share * (1 - a) for t, share in matmul_mix(m, w.weight_dtype, head=head)}
    out["F16"] = out.get("F16", 0.0) + a
    return tuple(sorted(out.items(), key=lambda kv: -kv[1]))


def layer_width(m: ModelSpec) -> float | None:
    """A block's matrix elements over the hidden size (2h + 2kv + 3ffn for a Llama layer): the width
    llama.cpp's CPU prefill kernels speed up with (aipc.estimate.kernels); None for MoE models."""
    if m.is_moe or not m.num_layers or not m.hidden_size:
        return None
    elems = sum(i * o * n for i, o, n in m.linear_modules().values())
    return elems / m.num_layers / m.hidden_size


def decode_context(w: Workload) -> float:
    """Tokens one decode step attends to on average: the prompt and half the generated tokens."""
    return w.prompt_tokens + w.gen_tokens / 2


def compute_for(m: ModelSpec, w: Workload) -> Compute:
    """FLOPs and bytes for the workload (per step: all devices; decode bytes: per device)."""
    n = P.matmul_params(m)
    total = P.total_params(m)
    active = P.active_params(m)
    b = w.batch_size
    if m.is_decoder:
        prefill = prefill_flops_decoder(m, w.prompt_tokens, b)
    else:
        prefill = b * w.prompt_tokens * (2 * n + attention_flops_per_token(m, w.prompt_tokens / 2, False))
    ctx_mid = decode_context(w)
    attn_mid = attention_flops_per_token(m, ctx_mid, False)  # per token of a decode step
    decode_flops = b * (2 * n + attn_mid)
    # bytes read per decode step: the weights a step touches (embedding rows gathered, not the table)
    # + the KV cache read once
    wbytes = decode_weight_bytes(m, w, weights_bytes(m, w))
    if m.is_moe and total:
        # experts visited by the batch: each of b tokens picks k of E; expected distinct experts
        E, k = m.num_experts, m.experts_per_token
        frac_visited = 1 - (1 - k / E) ** b
        expert_share = 1 - active / total  # share of weights that are routed experts not used per token
        routed_total = expert_share * total * E / max(E - k, 1)
        dense_part = total - routed_total
        wbytes = wbytes * (dense_part + routed_total * frac_visited) / total
    tp = w.num_devices if w.sharding == "tp" else 1
    decode_bytes = (wbytes + kv_cache_bytes(m, w, int(ctx_mid))) / tp
    if w.is_train:
        fpt = train_flops_per_token(m, w)
        model_fpt = train_flops_per_token(m, w, recompute=False)
        fps = fpt * w.tokens_per_step
        comm = comm_bytes_per_step(m, w)
    else:
        fpt = model_fpt = 2 * n + attn_mid
        fps = prefill
        comm = 0.0
    return Compute(
        params=total, active_params=active, trainable_params=P.trainable_params(m, w),
        flops_per_token=fpt, flops_per_step=fps, model_flops_per_token=model_fpt, prefill_flops=prefill,
        decode_flops_per_step=decode_flops, decode_bytes_per_step=decode_bytes, comm_bytes_per_step=comm,
        layers=m.num_layers, prefill_mix=_prefill_mix(m, w), prefill_width=layer_width(m) if w.engine in ("llamacpp", "openvino") else None,
        decode_mix=_decode_mix(m, w, 2 * n, attn_mid), decode_attention_flops=b * attn_mid,
        heads=m.num_heads,
    )


def comm_bytes_per_step(m: ModelSpec, w: Workload) -> float:
    """Bytes each device sends (= receives) per optimizer step, ring collectives over n devices:
    DDP / ZeRO-1: all-reduce of gradients 2*(n-1)/n * G; ZeRO-2: reduce-scatter of gradients
    (n-1)/n * G plus all-gather of updated weights (n-1)/n * W; ZeRO-3 / FSDP: all-gather of weights
    in forward and again in backward plus reduce-scatter of gradients: 3*(n-1)/n * W
    (ZeRO paper, Rajbhandari et al. 2020, sec. 7: 2x / 2x / 3x the model size)."""
    n = w.num_devices
    if not w.is_train or n <= 1:
        return 0.0
    g = P.trainable_params(m, w) * (2.0 if w.compute != "fp32" else 4.0)  # grads communicated in compute dtype
    wb = P.trainable_params(m, w) * dtype_bytes(w.compute)
    r = (n - 1) / n
    if w.sharding in ("ddp", "zero1"):
        return 2 * r * g
    if w.sharding == "zero2":
        return r * g + r * wb
    return 3 * r * wb
