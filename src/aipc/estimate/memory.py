"""Memory of a workload on one device: one small function per component, the peak over phases.

The peak is the largest phase total (forward, backward, optimizer step; prefill, decode), never the
sum of every component. Components of the peak phase sum to the peak. Per device: sharding divides
what it shards.
"""

from __future__ import annotations

from aipc.estimate import activations as act
from aipc.estimate import params as P
from aipc.estimate.types import MemoryBreakdown
from aipc.hardware.spec import DeviceSpec
from aipc.models.spec import ModelSpec
from aipc.spec import PAGED_OPTIMIZERS, QUANTIZED, Workload, dtype_bytes

GB = 1e9

# Runtime overheads, by device kind (sources in the docstrings of runtime_bytes).
CUDA_CONTEXT_BYTES = 0.30 * GB      # PyTorch PR 86509: ~290 MB with CUDA lazy module loading
ALLOCATOR_MARGIN = 0.05             # torchtune issue 1185: fragmentation a few % with expandable segments
# CPU: measured by aipc validate on this project's 2-core x86 machine (torch 2.13 CPU, transformers 5.24):
CPU_FRAMEWORK_BYTES = 0.25 * GB     # RSS of python + torch + transformers right after import: 248 MB
CPU_WARMUP_BYTES = 0.12 * GB        # first execution: code pages, thread pools, arenas: 116-123 MB on tiny models
# Generation with eager attention in bf16 / fp16 on a CPU: each step multiplies matrices of a new length and
# oneDNN compiles and caches a kernel per shape, so the peak RSS grows with every new token (about half of it
# the primitive cache). Measured 2026-12-07 by scripts/derive_decode_growth.py on random Llamas (docs/validation.md,
# "Peak memory growth during eager generation"): 1.17-1.22 MB per token, the same at widths 256 and 512, 4 and
# 8 layers, batch 1 and 2, bf16 and fp16 (sdpa: 0.08 MB, fp32: 0.02 MB); it levels off near 512 tokens
# (oneDNN's primitive cache holds 1024 kernels): 568 MiB after 512 new tokens, 575 after 1024, 589 after 2048.
CPU_EAGER_DECODE_GROWTH = 1.20e6    # bytes per generated token
CPU_EAGER_DECODE_GROWTH_CAP = 600 * 2**20  # bytes, where the growth levels off
EAGER_ATTENTION_MODELS = ("gemma2",)  # transformers runs these eagerly whatever is asked (soft-capped attention)


def _eb(dtype: str) -> float:
    return dtype_bytes(dtype)


def weights_bytes(m: ModelSpec, w: Workload) -> float:
    """Stored weights.

    Float: P * bytes(weight dtype). Quantized (int8/int4/nf4): block linears at the quantized size
    (incl. scales), embeddings/head/norms at 16 bit — QLoRA's prepare_model_for_kbit_training upcasts
    those to fp32 (FIELD-NOTES: peft/bitsandbytes), unless the adapters are 16-bit: the QLoRA
    paper's qlora.py casts the LoRA layers, embeddings and head back to bf16 under --bf16. GGUF
    (llama.cpp): every tensor at the type llama.cpp's quantizer gives it, in ggml's exact block
    sizes, or the .gguf file's own bytes (aipc.estimate.weights). OpenVINO IR: NNCF's rules
    (aipc.estimate.openvino_weights)."""
    from aipc.estimate.weights import gguf_weight_bytes, is_gguf, is_openvino

    if is_gguf(w):
        return float(gguf_weight_bytes(m, w))
    if is_openvino(w):  # OpenVINO IR: NNCF's rules (aipc.estimate.openvino_weights)
        from aipc.estimate.openvino_weights import weight_bytes

        return float(weight_bytes(m, w.weight_dtype)["total"])
    total = P.total_params(m)
    wd = w.weight_dtype
    if wd not in QUANTIZED:
        return total * _eb(wd)
    lin = P.block_linear_params(m)
    rest_bytes = 4.0 if (w.is_train and w.method == "qlora" and w.adapter == "fp32") else _eb(w.compute)
    return lin * dtype_bytes(wd, w.int4_group_size) + (total - lin) * rest_bytes


def lora_adapter_bytes(m: ModelSpec, w: Workload) -> float:
    """LoRA adapters r*(in+out) per target module at the adapter dtype: fp32 unless set
    (peft's default autocast_adapter_dtype; the QLoRA paper's script keeps them in bf16)."""
    return P.lora_params(m, w) * _eb(w.adapter) if w.method in ("lora", "qlora") and w.is_train else 0.0


def _param_bytes_trainable(w: Workload) -> float:
    """Bytes per trainable parameter: the adapter dtype for LoRA/QLoRA, else the weight dtype."""
    return _eb(w.adapter) if w.method in ("lora", "qlora") else _eb(w.weight_dtype)


def gradient_bytes(m: ModelSpec, w: Workload) -> float:
    """Gradients: trainable params * bytes of the trainable params' dtype (torch keeps .grad in it)."""
    return P.trainable_params(m, w) * _param_bytes_trainable(w)


def master_weight_bytes(m: ModelSpec, w: Workload) -> float:
    """fp32 master copy of trainable weights (mixed precision a la Megatron/DeepSpeed): 4 * P_t."""
    return P.trainable_params(m, w) * 4.0 if (w.master_weights and w.is_train) else 0.0


def optimizer_state_bytes(m: ModelSpec, w: Workload) -> float:
    """AdamW: 2 states (m, v) * P_t * bytes(state dtype) — torch keeps them in the param dtype unless
    told otherwise; 8-bit AdamW (bitsandbytes, paged or not): 2 * P_t * 1 byte (+ block scales,
    ~0.4%); paged AdamW (bnb PagedAdamW32bit): 2 * P_t * 4; SGD: 0; SGD+momentum: 1 state."""
    if not w.is_train:
        return 0.0
    pt = P.trainable_params(m, w)
    sb = _eb(w.optim_dtype) if w.optim_dtype else (4.0 if w.master_weights else _param_bytes_trainable(w))
    return {"adamw": 2 * pt * sb, "adamw8bit": 2 * pt * 1.004, "paged-adamw8bit": 2 * pt * 1.004,
            "paged-adamw": 2 * pt * 4.0, "sgd": 0.0, "sgd-momentum": pt * sb}[w.optimizer]


def paged_out(w: Workload, device: DeviceSpec) -> bool:
    """True when optimizer states may live in host RAM outside the optimizer step: a paged
    optimizer on a discrete GPU (CUDA unified memory pages them out while forward/backward need the
    room, and back in for the step; QLoRA sec. 3). On CPUs and unified-memory devices they stay."""
    return w.is_train and w.optimizer in PAGED_OPTIMIZERS and device.kind == "gpu"


def optimizer_temp_bytes(m: ModelSpec, w: Workload, device: DeviceSpec) -> float:
    """Temporaries of the optimizer step. torch AdamW on CPU runs per tensor (no foreach): about two
    temporaries of the largest trainable tensor (sqrt(v) and the update); on GPUs its foreach path
    allocates one temporary per parameter at once: ~P_t * bytes; bitsandbytes' optimizers (8-bit,
    paged) update in place in fused kernels: none."""
    if not w.is_train or w.optimizer == "sgd":
        return 0.0
    if w.optimizer != "adamw" and w.optimizer != "sgd-momentum" and device.kind == "gpu":
        return 0.0  # bitsandbytes' 8-bit / paged optimizers update each tensor in one fused kernel
    pb = 4.0 if w.master_weights else _param_bytes_trainable(w)
    if device.kind == "cpu":
        if w.method in ("lora", "qlora"):
            largest = max((w.lora_rank * max(i, o) for i, o, _ in P.resolve_targets(m, w.lora_targets).values()), default=0)
        else:
            largest = max(P.max_linear_params(m), m.vocab_size * m.hidden_size)
        return 2 * largest * pb
    return P.trainable_params(m, w) * pb


def autocast_copy_bytes(m: ModelSpec, w: Workload) -> float:
    """torch.autocast caches a low-precision copy of each fp32 weight it casts during a training
    forward: block linears + head at bytes(compute) (only when weights are fp32 and compute is 16-bit)."""
    if w.is_train and w.weight_dtype == "fp32" and w.compute in ("bf16", "fp16"):
        return (P.block_linear_params(m) + m.vocab_size * m.hidden_size) * _eb(w.compute)
    return 0.0


def activation_bytes(m: ModelSpec, w: Workload, *, recomputing: bool = True) -> float:
    """Saved activations of one micro-batch (derived coefficients, see estimate.activations):
    no checkpointing: b*s*(L_grad * per_layer + outside); full checkpointing keeps each block's input
    (b*s*h*bytes) — plus, while a block is recomputed in backward (``recomputing``), that block's
    activations. 'freeze' keeps activations only for the trained top blocks."""
    bs = w.batch_size * w.seq_len
    s_eff = _attended_tokens(m, w.seq_len)
    per_layer = act.per_layer_bytes_per_token(m, w.compute, w.attention, s_eff)
    outside = act.outside_bytes_per_token(m, w.compute, w.attention)
    layers = min(w.trainable_layers, m.num_layers) if w.method == "freeze" else m.num_layers
    per_layer += lora_cast_bytes_per_token(m, w)
    if w.grad_ckpt:
        return bs * (layers * m.hidden_size * _eb(w.compute) + (per_layer if recomputing else 0.0) + outside)
    return bs * (layers * per_layer + outside)


# LoRA targets that read the same input tensor (one saved copy per group in a full fine-tune)
_SHARED_INPUT = ({"q_proj", "k_proj", "v_proj", "c_attn", "query", "key", "value", "qkv_proj"},
                 {"gate_proj", "up_proj", "c_fc", "gate_up_proj", "w1", "w3"})


def lora_cast_bytes_per_token(m: ModelSpec, w: Workload) -> float:
    """LoRA on a 16-bit base: peft casts each adapted module's input to the adapters' fp32
    (``_cast_input_dtype``) and lora_A saves that copy, while the frozen base linears (and frozen
    norms) no longer save their 16-bit inputs. Per token and block:
    sum_targets in*4 - sum_unique_inputs in*e. Zero for fp32 compute (the cast is a no-op and
    lora_A saves the same tensor a full fine-tune would) and for adapters in the compute dtype."""
    if w.method not in ("lora", "qlora") or w.compute == "fp32" or not w.is_train or w.adapter != "fp32":
        return 0.0
    e = _eb(w.compute)
    per_layer = {}
    for key, (i, _o, n) in P.resolve_targets(m, w.lora_targets).items():
        per_layer[key] = (i, n / max(m.num_layers, 1))
    cast = sum(i * c for i, c in per_layer.values()) * 4
    seen_groups, unique = set(), 0.0
    for key, (i, c) in per_layer.items():
        short = key.rsplit(".", 1)[-1]
        group = next((g for g, names in enumerate(_SHARED_INPUT) if short in names), None)
        if group is None:
            unique += i * c
        elif group not in seen_groups:
            seen_groups.add(group)
            unique += i * c
    return max(cast - unique * e, 0.0)


def _attended_tokens(m: ModelSpec, ctx: int) -> float:
    """Average tokens a layer attends over: sliding-window layers see at most the window."""
    if m.sliding_window and m.sliding_layers:
        full = m.num_layers - m.sliding_layers
        return (full * ctx + m.sliding_layers * min(ctx, m.sliding_window)) / m.num_layers
    return float(ctx)


def logits_bytes(m: ModelSpec, w: Workload, phase: str) -> float:
    """Logits and loss, b*s*V values — often the peak for 128k-150k vocabularies (FIELD-NOTES).

    forward (in the loss): logits at bytes(compute) + their fp32 upcast + the saved fp32 log-softmax
    output: b*s*V*(e + 4 + 4) (8 when compute is fp32: the upcast is the same tensor);
    backward (loss grad): the saved output, the incoming gradient and the input gradient, all fp32:
    12*b*s*V. Without fp32 upcast, 3*e*b*s*V in backward. Heads that save more per logit (soft-capping:
    see _extra_logit_bytes) add that in both phases. A fused chunked loss (aipc train) holds one chunk
    of logits (chunk*V*(e+8)), the head's fp32 gradient (V*h*4) and the hidden gradient."""
    bsv = w.batch_size * w.seq_len * m.vocab_size
    e = _eb(w.compute)
    if w.fused_loss:  # aipc train's LinearCrossEntropy: a chunk of logits at a time, grads made in forward
        chunk = min(w.batch_size * w.seq_len, max(256, (1 << 23) // m.vocab_size))
        return (chunk * m.vocab_size * (e + 8) + m.vocab_size * m.hidden_size * 4
                + w.batch_size * w.seq_len * m.hidden_size * e)
    extra = _extra_logit_bytes(m, w) if w.is_train else 0.0
    if not w.logits_fp32:
        return bsv * ((2 * e if phase == "forward" else 3 * e) + extra)
    if phase == "forward":
        return bsv * ((8.0 if e == 4 else e + 8.0) + extra)
    return bsv * (12.0 + extra)


def _extra_logit_bytes(m: ModelSpec, w: Workload) -> float:
    """Bytes per logit a model's output head saves beyond the loss's fp32 log-softmax output (4 B):
    the derived activation table's c_V - 4 — e.g. Gemma-2's final logit soft-capping keeps
    tanh(logits / cap) for backward (c_V = 6 in bf16, 8 in fp32); 0 for plain heads."""
    return max(act.loss_saved_bytes_per_token(m, w.compute, w.attention) / max(m.vocab_size, 1) - 4.0, 0.0)


def kv_cache_bytes(m: ModelSpec, w: Workload, tokens: int) -> float:
    """KV cache = batch * sum over layers of tokens_l * kv_bytes(layer): 2 * kv_heads * head_dim * bytes
    per token and layer (GQA-aware), MLA: (kv_lora_rank + rope dim) * bytes; sliding-window layers
    hold at most the window (unsloth PR 4757 shows naive formulas off +682% / -81%)."""
    if not m.is_decoder:
        return 0.0
    per_token_all_layers = m.kv_bytes_per_token(_eb(w.kv))
    return w.batch_size * per_token_all_layers * _attended_tokens(m, tokens)


def prefill_work_bytes(m: ModelSpec, w: Workload) -> float:
    """Transient working set of one block during prefill (no grad): residual + normed input,
    q/k/v/attention output, the MLP's gate/up/product: b*p*(2h + 2ad + 2kd + 3 i_eff)*e, plus
    b*a*p^2*(4 + e) scores with eager attention; and the last position's logits b*V*(e + 4)."""
    b, p, e = w.batch_size, w.prompt_tokens, _eb(w.compute)
    h, a, k, d = m.hidden_size, m.num_heads, m.num_kv_heads, m.head_dim
    ffn = (3 if m.ffn_gated else 2) * act.ffn_width_per_token(m)  # gate, up, product / fc, activation
    work = b * p * (2 * h + 2 * a * d + 2 * k * d + ffn) * e
    if w.attention == "eager":
        work += b * a * p * min(p, m.sliding_window or p) * (4 + e)
    return work + (b * m.vocab_size * (e + 4) if m.is_decoder else 0)


def eager_decode_growth_bytes(m: ModelSpec, w: Workload, device: DeviceSpec) -> float:
    """Peak growth over a generation on a CPU where attention runs eagerly in a 16-bit dtype (torch):
    new tokens x CPU_EAGER_DECODE_GROWTH, at most CPU_EAGER_DECODE_GROWTH_CAP; 0 elsewhere."""
    eager = w.attention == "eager" or m.model_type in EAGER_ATTENTION_MODELS
    if device.kind != "cpu" or w.engine != "torch" or not eager or w.compute not in ("bf16", "fp16"):
        return 0.0
    return min(w.gen_tokens * CPU_EAGER_DECODE_GROWTH, CPU_EAGER_DECODE_GROWTH_CAP)


def runtime_bytes(device: DeviceSpec, tensors: float) -> float:
    """Runtime overhead beyond tensors: CUDA context (~0.3 GB, PyTorch PR 86509) + allocator margin
    5% (torchtune issue 1185) on GPUs; on CPUs the first execution's warm-up (code pages, thread
    pools, allocator arenas; 0.12 GB measured); unified-memory APUs: warm-up + margin."""
    if device.kind == "gpu":
        return CUDA_CONTEXT_BYTES + ALLOCATOR_MARGIN * tensors
    if device.kind == "cpu":
        return CPU_WARMUP_BYTES
    return CPU_WARMUP_BYTES + ALLOCATOR_MARGIN * tensors


def framework_bytes(device: DeviceSpec) -> float:
    """Resident memory of python + torch + transformers after import, before any model: 0.25 GB
    measured on CPU (host RAM on every device kind; on a GPU it is host memory, not device memory)."""
    return CPU_FRAMEWORK_BYTES if device.kind in ("cpu", "apu") else 0.0


def allocator_behaviour(device: DeviceSpec) -> str:
    """What the peak describes, by device kind. CPU: a process whose glibc malloc returns large
    blocks on free (mmap threshold 64 KiB), as aipc's own processes set it (aipc.runtime); under
    glibc's default other programs can peak higher (docs/validation.md measures both). GPU: torch's
    caching allocator (max_memory_allocated) plus the CUDA context and a 5% margin."""
    if device.kind == "gpu":
        return ("PyTorch CUDA caching allocator: tensors at their peak (torch.cuda.max_memory_allocated) "
                "+ CUDA context + 5% fragmentation margin")
    if device.kind == "cpu":
        return ("peak RSS with glibc malloc's mmap threshold at 64 KiB (freed large blocks return to the OS), "
                "as aipc train/generate/serve/bench set it; under glibc's default malloc other programs can "
                "peak higher (docs/validation.md)")
    return "unified memory: tensors at their peak + warm-up + 5% margin"


def _shard(w: Workload) -> dict[str, float]:
    """Fraction of each model-state component one device holds under the sharding scheme."""
    n = w.num_devices
    s = w.sharding
    one = {"weights": 1.0, "grads": 1.0, "optimizer": 1.0, "master": 1.0, "act": 1.0}
    if n == 1 or s in ("none", "ddp"):
        return one
    if s == "zero1":
        return {**one, "optimizer": 1 / n, "master": 1 / n}
    if s == "zero2":
        return {**one, "optimizer": 1 / n, "master": 1 / n, "grads": 1 / n}
    if s in ("zero3", "fsdp"):
        return {"weights": 1 / n, "grads": 1 / n, "optimizer": 1 / n, "master": 1 / n, "act": 1.0}
    if s == "tp":
        return {**one, "weights": 1 / n, "act": 1 / n}
    return one


def memory_breakdown(m: ModelSpec, w: Workload, device: DeviceSpec) -> MemoryBreakdown:
    """All components and phases for one device; the peak phase's components sum to the peak."""
    f = _shard(w)
    notes: list[str] = []
    weights = weights_bytes(m, w) * f["weights"]
    if f["weights"] < 1 and w.sharding in ("zero3", "fsdp"):  # one block's full weights gathered at a time
        weights += weights_bytes(m, w) / max(m.num_layers, 1) * 2
    base = {"weights": weights}
    phases: dict[str, dict[str, float]] = {}
    if w.is_train:
        base.update({
            "lora_adapters": lora_adapter_bytes(m, w),
            "master_weights": master_weight_bytes(m, w) * f["master"],
            "optimizer_states": optimizer_state_bytes(m, w) * f["optimizer"],
        })
        grads = gradient_bytes(m, w) * f["grads"]
        acts = activation_bytes(m, w)
        casts = autocast_copy_bytes(m, w)
        carried = grads if w.grad_accum > 1 else 0.0  # accumulated grads live through later micro-steps
        states = base["optimizer_states"]
        if paged_out(w, device):  # paged to host RAM while forward/backward need the room
            base["optimizer_states"] = 0.0
            notes.append(f"paged optimizer: {states / GB:.2f} GB of states page out to host RAM outside the "
                         "optimizer step (CUDA unified memory)")
        if w.method == "qlora":
            base["dequant_buffer"] = P.max_linear_params(m) * _eb(w.compute)
        phases["forward"] = {**base, "gradients": carried, "activations": acts, "autocast_copies": casts,
                             "logits_loss": logits_bytes(m, w, "forward")}
        # backward starts in the loss; with checkpointing, blocks are recomputed only after it
        phases["backward"] = {**base, "gradients": carried, "autocast_copies": casts,
                              "activations": activation_bytes(m, w, recomputing=False) if w.grad_ckpt else acts,
                              "logits_loss": logits_bytes(m, w, "backward")}
        if w.grad_ckpt:  # the top block recomputed: its activations + the grads so far (head, one block)
            head = (m.vocab_size * m.hidden_size if w.method in ("full", "freeze") else 0) * _param_bytes_trainable(w)
            phases["recompute"] = {**base, "gradients": max(carried, head * f["grads"] + grads / max(m.num_layers, 1)),
                                   "activations": acts, "autocast_copies": casts}
        phases["optimizer"] = {**base, "optimizer_states": states, "gradients": grads,
                               "optimizer_temp": optimizer_temp_bytes(m, w, device) * f["optimizer"]}
    else:
        kv_f = f["act"]
        phases["prefill"] = {**base, "kv_cache": kv_cache_bytes(m, w, w.prompt_tokens) * kv_f,
                             "activations": prefill_work_bytes(m, w) * kv_f}
        if m.is_decoder:
            phases["decode"] = {**base, "kv_cache": kv_cache_bytes(m, w, w.context) * kv_f,
                                "activations": w.batch_size * (m.vocab_size * (_eb(w.compute) + 4)
                                                               + 4 * m.hidden_size * _eb(w.compute)),
                                "eager_kernels": eager_decode_growth_bytes(m, w, device)}
            if phases["decode"]["eager_kernels"]:
                notes.append("eager attention in a 16-bit dtype on a CPU: oneDNN caches a kernel for every new "
                             f"sequence length, so the peak grows by ~{CPU_EAGER_DECODE_GROWTH / 1e6:.1f} MB per "
                             f"generated token (up to ~{CPU_EAGER_DECODE_GROWTH_CAP / 2**30:.1f} GiB)")
    totals = {}
    for name, comp in phases.items():
        comp["runtime"] = runtime_bytes(device, sum(comp.values()))
        comp["framework"] = framework_bytes(device)
        totals[name] = sum(comp.values())
    peak_phase = max(totals, key=totals.get)
    comps = {k: int(round(v)) for k, v in phases[peak_phase].items() if v > 0}
    if w.attention == "eager" and w.is_train:
        notes.append("eager attention keeps b*a*s^2 scores per layer; sdpa/flash does not")
    _, coef_note = act.coefficients(m, w.compute, w.attention)
    if coef_note:
        notes.append(coef_note)
    return MemoryBreakdown(
        peak_bytes=sum(comps.values()),
        peak_phase=peak_phase,
        components=comps,
        phases={k: int(round(v)) for k, v in totals.items()},
        weights_only_bytes=int(round(weights_bytes(m, w))),
        notes=tuple(notes),
        allocator=allocator_behaviour(device),
    )
