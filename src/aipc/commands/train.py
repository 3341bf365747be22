"""``aipc train MODEL --data PATH``: fine-tune locally (full or LoRA), resume exactly, scale with torchrun.

MODEL is a local HF folder (weights + tokenizer) or a catalog model / config.json with random
weights. ``--nproc N`` (and ``--nnodes``/``--rdzv-endpoint``) launches data-parallel workers through
torchrun. ``--json`` prints one object: the run summary (keys of ``aipc.train.loop.Result``).
Nothing heavy is imported at module level.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import typer


def _summary_rows(r: dict) -> list[tuple[str, str]]:
    from aipc.render import gb, seconds, si

    pred = r.get("predicted") or {}
    mfu = f"{r['mfu'] * 100:.1f}%" if r.get("mfu") is not None else r.get("mfu_note") or "n/a"
    rows = [
        ("steps", f"{r['start_step']} -> {r['steps']}"),
        ("device / precision", f"{r['device']} / {r['precision']} x{r['world_size']} process(es)"),
        ("parameters (trainable)", f"{si(r['params'])} ({si(r['trainable_params'])})"),
        ("final train loss", "-" if r["final_loss"] is None else f"{r['final_loss']:.4f}"),
        ("validation loss", "-" if r["val_loss"] is None else f"{r['val_loss']:.4f}"),
        ("tokens/s (median step)", f"{r['tokens_per_s']:,.0f}"),
        ("step time (median)", seconds(r["step_s"])),
        ("MFU (6N+attn vs measured peak)", mfu),
        ("peak memory", f"{gb(r['peak_bytes'])} ({r['peak_note']})"),
        ("predicted peak memory", gb(pred.get("predicted_peak_bytes")) if pred.get("predicted_peak_bytes")
         else f"- ({pred.get('note') or 'no estimate'})"),
        ("predicted tokens/s", f"{pred['predicted_tokens_per_s']:,.0f}" if pred.get("predicted_tokens_per_s")
         else "-"),
        ("loss", "fused linear+cross-entropy" if r["fused_loss"] else "model logits + cross-entropy"),
        ("checkpoint", r.get("checkpoint") or "-"),
        ("metrics", r["metrics"]),
    ]
    if r.get("export"):
        rows.append(("exported model", r["export"]))
    return rows


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        model: str = typer.Argument(..., help="Local HF folder, catalog model, HF id or config.json."),
        data: list[str] = typer.Option(..., "--data", help="Text file/folder, .jsonl or .parquet (repeatable)."),
        out: Optional[str] = typer.Option(None, "--out", help="Run folder (default runs/<model>)."),
        tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Tokenizer folder (default: the model's, else byte-level)."),
        allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Load pickle weights (pytorch_model*.bin) when a folder has no safetensors; pickle can run code, so only for a source you trust."),
        method: str = typer.Option("full", "--method", help="full | lora | qlora (CUDA)."),
        lora_rank: int = typer.Option(8, "--lora-rank"),
        lora_alpha: float = typer.Option(16.0, "--lora-alpha"),
        lora_dropout: float = typer.Option(0.0, "--lora-dropout"),
        lora_targets: str = typer.Option("all-linear", "--lora-targets", help="Comma list of module names or all-linear."),
        seq_len: int = typer.Option(512, "--seq-len", help="Tokens per packed sequence."),
        batch_size: int = typer.Option(4, "--batch-size", help="Sequences per micro-batch per process."),
        grad_accum: int = typer.Option(1, "--grad-accum"),
        steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps (default: one epoch)."),
        epochs: Optional[float] = typer.Option(None, "--epochs"),
        lr: float = typer.Option(2e-4, "--lr"),
        warmup_steps: int = typer.Option(0, "--warmup-steps"),
        min_lr_ratio: float = typer.Option(0.0, "--min-lr-ratio"),
        weight_decay: float = typer.Option(0.0, "--weight-decay"),
        max_grad_norm: float = typer.Option(1.0, "--max-grad-norm", help="0 disables clipping."),
        val_fraction: float = typer.Option(0.05, "--val-fraction"),
        seed: int = typer.Option(0, "--seed"),
        device: str = typer.Option("auto", "--device", help="auto (cuda > mps > xpu > cpu) | cpu | cuda | mps | xpu."),
        precision: str = typer.Option("auto", "--precision", help="auto | fp32 | bf16 (autocast) | fp16 (autocast + scaler)."),
        grad_ckpt: bool = typer.Option(False, "--grad-ckpt", help="Gradient checkpointing."),
        compile_: bool = typer.Option(False, "--compile", help="torch.compile the model."),
        fused_loss: bool = typer.Option(True, "--fused-loss/--no-fused-loss", help="Chunked linear+cross-entropy."),
        threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads per process."),
        nproc: int = typer.Option(1, "--nproc", help="Processes per node (torchrun)."),
        nnodes: int = typer.Option(1, "--nnodes"),
        rdzv_endpoint: Optional[str] = typer.Option(None, "--rdzv-endpoint", help="HOST:PORT for multi-node."),
        fsdp: bool = typer.Option(False, "--fsdp", help="Shard with FSDP instead of DDP."),
        save_every: int = typer.Option(0, "--save-every", help="Checkpoint every N steps (always at the end)."),
        keep: int = typer.Option(2, "--keep", help="Checkpoints to keep."),
        eval_every: int = typer.Option(0, "--eval-every"),
        log_every: int = typer.Option(1, "--log-every"),
        export: Optional[str] = typer.Option(None, "--export", help="Write the merged model as an HF folder here."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its latest checkpoint."),
        resume_from: Optional[str] = typer.Option(None, "--resume-from", help="Continue from this checkpoint folder."),
        text_field: str = typer.Option("text", "--text-field"),
        prompt_field: str = typer.Option("prompt", "--prompt-field"),
        completion_field: str = typer.Option("completion", "--completion-field"),
        messages_field: str = typer.Option("messages", "--messages-field"),
        no_preflight: bool = typer.Option(False, "--no-preflight", help="Skip the estimator's fit check."),
        no_mfu: bool = typer.Option(False, "--no-mfu", help="Do not look up the measured peak."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """Fine-tune a model on your data: full or LoRA, exact resume, multi-process through torchrun."""
        from aipc.train.config import TrainConfig, default_out

        cfg = TrainConfig(
            model=model, data=list(data), out=out or default_out(model), tokenizer=tokenizer,
            allow_pickle=allow_pickle, method=method,
            lora_rank=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
            lora_targets=[t.strip() for t in lora_targets.split(",") if t.strip()], seq_len=seq_len,
            batch_size=batch_size, grad_accum=grad_accum, steps=steps, epochs=epochs, lr=lr,
            warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio, weight_decay=weight_decay,
            max_grad_norm=max_grad_norm, val_fraction=val_fraction, seed=seed, device=device,
            precision=precision, grad_ckpt=grad_ckpt, compile=compile_, fused_loss=fused_loss, threads=threads,
            nproc_per_node=nproc, nnodes=nnodes, rdzv_endpoint=rdzv_endpoint, fsdp=fsdp, save_every=save_every,
            keep=keep, eval_every=eval_every, log_every=log_every, export=export, resume=resume,
            resume_from=resume_from, text_field=text_field, prompt_field=prompt_field,
            completion_field=completion_field, messages_field=messages_field, progress=not as_json,
            mfu=not no_mfu, preflight=not no_preflight,
        ).validate()
        result = run(cfg, quiet=as_json)
        if as_json:
            from aipc.render import print_json

            print_json(result)
            return
        from rich.table import Table

        from aipc.render import console

        table = Table(title=f"aipc train {model}", show_header=False)
        for k, v in _summary_rows(result):
            table.add_row(k, v)
        console().print(table)


def run(cfg, quiet: bool = False) -> dict:
    """Train in this process, or launch torchrun workers when more than one process is asked for."""
    from aipc.train.launch import in_worker, launch

    if cfg.world_size_requested > 1 and not in_worker():
        from aipc.train.data import read_records
        from aipc.train.prepare import fields_of

        read_records(cfg.data, fields_of(cfg))  # bad data: a clean error before any process starts
        return launch(cfg, quiet=quiet)
    from aipc.train.loop import train

    return dataclasses.asdict(train(cfg))
