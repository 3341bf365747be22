"""The estimator before and after training: refuse runs that will not fit, then predicted vs measured.

One small seam: :func:`predict` builds the :class:`aipc.spec.Workload` for a TrainConfig and asks
``aipc.estimate.estimate``; when the estimator cannot model the run (it says why with an AipcError),
the prediction is None and training goes on (the reason is kept in ``note``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aipc.errors import AipcError


@dataclass
class Prediction:
    estimate: Any | None                 # aipc.estimate.types.Estimate
    note: str = ""


def workload_fields(cfg, *, precision: str, world: int, train_tokens: int) -> dict[str, Any]:
    """The Workload fields that describe this training run (see aipc.spec.Workload)."""
    preset = {"fp32": "fp32", "bf16": "amp-bf16", "fp16": "amp-fp16"}[precision]
    from aipc.spec import precision_fields

    fields = dict(model=cfg.model, task="train", method=cfg.method, batch_size=cfg.batch_size,
                  seq_len=cfg.seq_len, grad_accum=cfg.grad_accum, grad_ckpt=cfg.grad_ckpt,
                  optimizer="adamw", lora_rank=cfg.lora_rank, num_devices=world, nodes=cfg.nnodes,
                  sharding=("fsdp" if cfg.fsdp else "ddp") if world > 1 else "none",
                  train_tokens=train_tokens, attention="sdpa",
                  fused_loss=cfg.fused_loss)  # the fused loss never holds full fp32 logits
    if cfg.lora_targets != ["all-linear"]:
        fields["lora_targets"] = tuple(cfg.lora_targets)
    fields.update(precision_fields(preset if cfg.method != "qlora" else "nf4", task="train"))
    return fields


def predict(cfg, *, device_kind: str, precision: str, world: int, train_tokens: int) -> Prediction:
    """The estimate for this run on this machine, or None with the reason."""
    from aipc.estimate import estimate
    from aipc.spec import Workload

    try:
        w = Workload(**workload_fields(cfg, precision=precision, world=world, train_tokens=train_tokens))
        w = w.validate()
        est = estimate(w, local_device(device_kind))
    except AipcError as e:
        return Prediction(None, f"estimator could not model this run ({e})")
    return Prediction(est)


def local_device(device_kind: str) -> str:
    """The estimator's name for the device this run uses (its cached ``aipc hw`` profile when present)."""
    return "this:cpu" if device_kind == "cpu" else "this"


def refuse_if_unfit(pred: Prediction) -> None:
    """Raise with the estimate and its suggestions when the run will not fit."""
    est = pred.estimate
    if est is None or est.fits:
        return
    from aipc.render import gb

    tips = "; ".join(est.suggestions) or "lower --batch-size or --seq-len, or use --method lora"
    raise AipcError(f"will not fit: needs {gb(est.memory.peak_bytes)} per device, "
                    f"{est.device_label} has {gb(est.capacity_bytes)}; try {tips} (or --no-preflight to try anyway)")


def compare(pred: Prediction, *, peak_bytes: int | None, tokens_per_s: float, step_s: float) -> dict[str, Any]:
    """Predicted beside measured, for the summary."""
    est = pred.estimate
    out: dict[str, Any] = {"note": pred.note, "measured_peak_bytes": peak_bytes,
                           "measured_tokens_per_s": tokens_per_s, "measured_step_s": step_s,
                           "predicted_peak_bytes": None, "predicted_tokens_per_s": None, "predicted_step_s": None}
    if est is not None:
        out["predicted_peak_bytes"] = est.memory.peak_bytes
        out["predicted_tokens_per_s"] = est.time.train_tokens_per_s
        out["predicted_step_s"] = est.time.step_s
    return out
