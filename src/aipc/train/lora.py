"""LoRA through peft, and QLoRA (4-bit NF4 base through bitsandbytes, CUDA only)."""

from __future__ import annotations

from aipc.errors import AipcError
from aipc.models.live import with_lora


def _peft():
    try:
        import peft
    except ImportError:
        raise AipcError("LoRA needs peft; pip install 'aipc[lora]'") from None
    return peft


def linear_names(model) -> list[str]:
    """Leaf names of the Linear modules (candidates for --lora-targets)."""
    import torch

    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    return sorted(names)


def apply_lora(model, *, rank: int, alpha: float, dropout: float, targets: list[str]):
    """Freeze the base and add LoRA adapters (peft) to ``targets`` ('all-linear': every Linear but the head)."""
    peft = _peft()
    target = "all-linear" if targets == ["all-linear"] else list(targets)
    if target != "all-linear":
        known = linear_names(model)
        bad = [t for t in target if t not in known]
        if bad:
            from aipc.errors import unknown

            raise unknown("LoRA target module", bad[0], known, f"(Linear modules here: {', '.join(known)})")
    cfg = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=target,
                          bias="none", task_type="CAUSAL_LM")
    try:
        return with_lora(model, cfg)
    except ValueError as e:
        raise AipcError(f"cannot add LoRA adapters: {str(e).splitlines()[0]}; pick --lora-targets "
                        f"from {', '.join(linear_names(model))}") from None


def load_qlora_base(ref: str, place, *, allow_pickle: bool = False):
    """The base model quantized to NF4 with bitsandbytes on ``place.device``, ready for k-bit training."""
    if place.kind != "cuda":
        raise AipcError(f"QLoRA needs a CUDA GPU (bitsandbytes 4-bit); this run is on {place.kind} — "
                        "use --method lora")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise AipcError("QLoRA needs bitsandbytes; pip install 'aipc[qlora]'") from None
    from aipc.models.live import has_weights, load_or_build

    if not has_weights(ref):
        raise AipcError(f"QLoRA quantizes pretrained weights; {ref} has none — pass a local model folder "
                        "with weights, or use --method lora for a random-weight model")
    import torch
    from transformers import BitsAndBytesConfig

    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                           bnb_4bit_compute_dtype=torch.bfloat16)
    model = load_or_build(ref, dtype="fp32", device=place.device, allow_pickle=allow_pickle, need_decoder="training",
                          quantization_config=q).model
    return _peft().prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def merged(model):
    """The plain transformers model with LoRA weights merged in (the model itself when not LoRA)."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return model
