"""``aipc train MODEL --data PATH``: fine-tune locally (full or LoRA), resume exactly, scale with torchrun.

MODEL is a local HF folder (weights + tokenizer) or a catalog model / config.json with random
weights. ``--nproc N`` (and ``--nnodes``/``--rdzv-endpoint``) launches data-parallel workers through
torchrun. ``--json`` prints one object: the run summary (keys of ``aipc.train.loop.Result``).
Nothing heavy is imported at module level.
"""

from __future__ import annotations

import dataclasses

import typer


def _summary_rows(r: dict) -> list[tuple[str, str]]:
    from aipc.render import gb, seconds, si

    pred = r.get("predicted") or {}
    mfu = f"{r['mfu'] * 100:.1f}%" if r.get("mfu") is not None else r.get("mfu_note") or "n/a"
    rows = [
        ("steps", f"{r['start_step']} -> {r['steps']}"),
        ("device / precision", f"{r['device']} / {r['precision']} x{r['world_size']} process(es)"),
        ("threads", r.get("threads_note") or "-"),
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
    from aipc.commands.config_opts import config_command
    from aipc.train.config import TrainConfig

    @app.command("train")
    @config_command("train", TrainConfig)
    def train_cmd(values: dict, as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
        """Fine-tune a model on your data: full or LoRA, exact resume, multi-process through torchrun.

        Every flag but --json is a field of aipc.train.TrainConfig (same name, default and rule)."""
        from aipc.privacy.guard import offline_guard

        cfg = TrainConfig(**values, progress=not as_json).validate()
        with offline_guard(allow_network=cfg.allow_network):
            result = run(cfg, quiet=as_json)
        if as_json:
            from aipc.render import print_json

            print_json(result)
            return
        from rich.table import Table

        from aipc.render import console

        table = Table(title=f"aipc train {cfg.model}", show_header=False)
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
