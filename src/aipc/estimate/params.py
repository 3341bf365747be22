"""Parameter groups the estimator needs: embeddings, head, quantizable block linears, LoRA adapters,
trainable parameters per method. Built on ModelSpec's formula counts (no model is instantiated)."""

from __future__ import annotations

from aipc.errors import AipcError
from aipc.models.spec import ModelSpec
from aipc.spec import DEFAULT_LORA_TARGETS, Workload

_HEAD_NAMES = ("lm_head", "embed_tokens", "wte", "wpe", "word_embeddings")

# Model-level facts are pure functions of the (frozen) spec: memoized per spec object, so a sweep
# of thousands of workloads over one model computes them once.
_CACHE: dict[int, tuple[ModelSpec, dict]] = {}


def _memo(m: ModelSpec, key: object, fn):
    entry = _CACHE.get(id(m))
    if entry is None or entry[0] is not m:
        if len(_CACHE) > 512:
            _CACHE.clear()
        entry = _CACHE[id(m)] = (m, {})
    store = entry[1]
    if key not in store:
        store[key] = fn()
    return store[key]


def total_params(m: ModelSpec) -> int:
    """m.param_count(), memoized."""
    return _memo(m, "total", m.param_count)


def active_params(m: ModelSpec) -> int:
    """m.active_param_count(), memoized."""
    return _memo(m, "active", m.active_param_count)


def embedding_params(m: ModelSpec) -> int:
    """Input token embedding V*h plus learned position embeddings (max_pos*h) where used
    (ModelSpec.param_breakdown's 'embedding' + 'position')."""
    def f() -> int:
        bd = m.param_breakdown()
        return bd.get("embedding", 0) + bd.get("position", 0)
    return _memo(m, "emb", f)


def lm_head_params(m: ModelSpec) -> int:
    """Output projection V*h when not tied to the input embedding, else 0."""
    return _memo(m, "head", lambda: m.param_breakdown().get("lm_head", 0))


def block_linears(m: ModelSpec) -> dict[str, tuple[int, int, int]]:
    """Matrices inside the blocks: name -> (in, out, count over the model); MoE experts (fused
    tensors in transformers 5, not nn.Linear) included, since quantization stores them compactly too."""
    def f() -> dict[str, tuple[int, int, int]]:
        lin = {k: v for k, v in m.linear_modules().items() if k.rsplit(".", 1)[-1] not in _HEAD_NAMES}
        return {**lin, **m.expert_matrices()}
    return _memo(m, "lin", f)


def lora_candidates(m: ModelSpec) -> dict[str, tuple[int, int, int]]:
    """nn.Linear modules LoRA can wrap (fused expert tensors are not nn.Linear: not targetable)."""
    return _memo(m, "loracand", lambda: {k: v for k, v in m.linear_modules().items()
                                         if k.rsplit(".", 1)[-1] not in _HEAD_NAMES and not k.startswith("pooler")})


def block_linear_params(m: ModelSpec) -> int:
    """Sum of in*out*count over the block linears: what 4-bit/8-bit quantization stores compactly."""
    return _memo(m, "linp", lambda: sum(i * o * n for i, o, n in block_linears(m).values()))


def max_linear_params(m: ModelSpec) -> int:
    """The largest single block linear (in*out): a QLoRA dequantization buffer holds one."""
    return _memo(m, "maxlin", lambda: max((i * o for i, o, _ in block_linears(m).values()), default=0))


def resolve_targets(m: ModelSpec, targets: tuple[str, ...]) -> dict[str, tuple[int, int, int]]:
    """The LoRA target modules that exist in this model, matched as peft does on the module name's
    last part ('c_proj' matches attn.c_proj and mlp.c_proj); 'all-linear' means every block linear.
    The default list (q/k/v/o/gate/up/down) falls back to all-linear for models that lack those names."""
    lin = lora_candidates(m)

    def hits(t: str) -> dict[str, tuple[int, int, int]]:
        return {k: v for k, v in lin.items() if k == t or k.rsplit(".", 1)[-1] == t}

    if tuple(targets) in (("all-linear",), DEFAULT_LORA_TARGETS):
        found = {k: v for t in targets for k, v in hits(t).items()}
        return found if (tuple(targets) == DEFAULT_LORA_TARGETS and found) else lin
    missing = [t for t in targets if not hits(t)]
    if missing:
        names = sorted({k.rsplit(".", 1)[-1] for k in lin})
        raise AipcError(f"LoRA target module(s) {', '.join(missing)} not in {m.name}; "
                        f"it has {', '.join(names)} (or use all-linear)")
    return {k: v for t in targets for k, v in hits(t).items()}


def lora_params(m: ModelSpec, w: Workload) -> int:
    """LoRA adapter parameters: sum over targets of r*(in + out)*count (Hu et al. 2021)."""
    return _memo(m, ("lora", w.lora_targets, w.lora_rank), lambda: _lora_params(m, w))


def _lora_params(m: ModelSpec, w: Workload) -> int:
    targets = resolve_targets(m, w.lora_targets)
    for name, (i, o, _) in targets.items():
        if w.lora_rank > min(i, o):
            raise AipcError(f"LoRA rank {w.lora_rank} is larger than {name} ({i}x{o}); "
                            f"use --lora-rank <= {min(i, o)}")
    return sum(w.lora_rank * (i + o) * n for i, o, n in targets.values())


def freeze_trainable_params(m: ModelSpec, w: Workload) -> int:
    """Method 'freeze': the top N blocks plus the final norm and the (untied) head are trained."""
    blocks = total_params(m) - embedding_params(m) - lm_head_params(m)
    n = min(w.trainable_layers, m.num_layers)
    return int(blocks * n / m.num_layers) + lm_head_params(m)


def trainable_params(m: ModelSpec, w: Workload) -> int:
    """Parameters that get gradients and optimizer states."""
    if not w.is_train:
        return 0
    if w.method in ("lora", "qlora"):
        return lora_params(m, w)
    if w.method == "freeze":
        return freeze_trainable_params(m, w)
    return total_params(m)


def matmul_params(m: ModelSpec, active: bool = True) -> int:
    """Parameters that take part in matmuls per token (the N of 2N/6N): all but the embedding
    lookup and norms, plus the head's V*h even when tied. MoE: only the experts a token visits."""
    total = active_params(m) if active else total_params(m)
    return max(total - embedding_params(m), 0) + (m.vocab_size * m.hidden_size if m.is_decoder and m.tie_embeddings else 0)
