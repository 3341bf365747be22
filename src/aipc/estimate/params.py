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
    """Input token embedding V*h plus learned position embeddings (max_pos*h) where used."""
    pos = m.max_position * m.hidden_size if m.position == "learned" else 0
    return m.vocab_size * m.hidden_size + pos


def lm_head_params(m: ModelSpec) -> int:
    """Output projection V*h when not tied to the input embedding, else 0."""
    return 0 if (m.tie_embeddings or not m.is_decoder) else m.vocab_size * m.hidden_size


def block_linears(m: ModelSpec) -> dict[str, tuple[int, int, int]]:
    """Linear modules inside the blocks: name -> (in, out, count over the model)."""
    return _memo(m, "lin", lambda: {k: v for k, v in m.linear_modules().items() if k not in _HEAD_NAMES})


def block_linear_params(m: ModelSpec) -> int:
    """Sum of in*out*count over the block linears: what 4-bit/8-bit quantization stores compactly."""
    return _memo(m, "linp", lambda: sum(i * o * n for i, o, n in block_linears(m).values()))


def max_linear_params(m: ModelSpec) -> int:
    """The largest single block linear (in*out): a QLoRA dequantization buffer holds one."""
    return _memo(m, "maxlin", lambda: max((i * o for i, o, _ in block_linears(m).values()), default=0))


def resolve_targets(m: ModelSpec, targets: tuple[str, ...]) -> dict[str, tuple[int, int, int]]:
    """The LoRA target modules that exist in this model; 'all-linear' means every block linear."""
    lin = block_linears(m)
    if tuple(targets) in (("all-linear",), DEFAULT_LORA_TARGETS):
        if tuple(targets) == DEFAULT_LORA_TARGETS and any(t in lin for t in targets):
            return {t: lin[t] for t in targets if t in lin}
        return lin
    missing = [t for t in targets if t not in lin]
    if missing:
        raise AipcError(f"LoRA target module(s) {', '.join(missing)} not in {m.name}; "
                        f"it has {', '.join(sorted(lin))} (or use all-linear)")
    return {t: lin[t] for t in targets}


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
