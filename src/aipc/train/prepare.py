"""Everything a run needs before its first step: data, model, tokenizer, settings identity.

Order matters for bad input: the data files are read (and JSONL lines checked) before any model is
loaded, and nothing is written to the run folder here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aipc.errors import AipcError
from aipc.train import model_io, packing
from aipc.train.config import TrainConfig, settings_hash
from aipc.train.data import Fields, read_records
from aipc.train.device import Placement
from aipc.train.tokenize import encode, load_tokenizer


@dataclass
class Prepared:
    model: Any                      # HF model (peft-wrapped for LoRA), on the device, fp32 weights
    hf: Any                         # the transformers model inside
    tokenizer: Any
    tokenizer_source: str
    train: packing.Packed
    val: packing.Packed | None
    model_fingerprint: str
    data_fingerprint: str
    total_steps: int
    params: int
    trainable_params: int
    flops_per_token: float
    settings: dict[str, Any] = field(default_factory=dict)
    settings_hash: str = ""


def fields_of(cfg: TrainConfig) -> Fields:
    return Fields(text=cfg.text_field, prompt=cfg.prompt_field, completion=cfg.completion_field,
                  messages=cfg.messages_field)


def prepare(cfg: TrainConfig, place: Placement, world: int) -> Prepared:
    """Read and pack the data, load the model (+LoRA), check they fit together."""
    from aipc.train.lora import apply_lora, load_qlora_base
    from aipc.train.metrics import model_flops_per_token

    records = read_records(cfg.data, fields_of(cfg))
    if cfg.method == "qlora":
        model = load_qlora_base(cfg.model, place, allow_pickle=cfg.allow_pickle)
    else:
        model = model_io.start_model(cfg.model, seed=cfg.seed, device=place.device, allow_pickle=cfg.allow_pickle)
    ctx = model_io.context_length(model.config)
    if ctx is not None and cfg.seq_len > ctx:
        raise AipcError(f"--seq-len {cfg.seq_len} is longer than the model's context of {ctx} tokens; "
                        f"use --seq-len {ctx} or less")
    vocab = model_io.vocab_rows(model)
    tok, tok_src = load_tokenizer(cfg.model, cfg.tokenizer, vocab)
    ids, mask = encode(tok, records, vocab)
    packed = packing.pack(ids, mask, cfg.seq_len)
    train, val = packing.split(packed, cfg.val_fraction, cfg.seed)
    if not (train.labels != packing.IGNORE).any():
        raise AipcError("the training split has no target tokens (every label is masked); "
                        "check the completion/assistant fields of the data")
    fp_model = model_io.fingerprint(model)
    if cfg.method in ("lora", "qlora"):
        model = apply_lora(model, rank=cfg.lora_rank, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                           targets=cfg.lora_targets)
    hf = model.get_base_model() if hasattr(model, "get_base_model") else model
    fpt = model_flops_per_token(cfg, hf.config, precision=place.precision, world=world)
    if cfg.grad_ckpt:  # non-reentrant: works with frozen inputs (LoRA) and keeps RNG for dropout
        if hasattr(hf, "activation_checkpointing_enable"):  # transformers >= 5.x name
            hf.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    total, trainable = model_io.count_params(model)
    global_batch = cfg.batch_size * cfg.grad_accum * world
    steps = packing.steps_for(len(train), global_batch, cfg.steps, cfg.epochs)
    p = Prepared(model=model, hf=hf, tokenizer=tok, tokenizer_source=tok_src, train=train, val=val,
                 model_fingerprint=fp_model, data_fingerprint=packing.fingerprint(packed),
                 total_steps=steps, params=total, trainable_params=trainable,
                 flops_per_token=fpt)
    p.settings = {**cfg.trajectory_settings(), "device": place.kind, "precision": place.precision,
                  "world_size": world, "data_fingerprint": p.data_fingerprint, "total_steps": steps}
    p.settings_hash = settings_hash(p.settings)
    return p
