"""The training loop: one process, or one torchrun worker of a data-parallel run.

Per optimizer step: ``grad_accum`` micro-batches of ``batch_size`` packed sequences per process;
loss = summed token cross-entropy / target tokens of the whole global batch (so every token weighs
the same however the batch is split); AdamW (fused where available), cosine schedule with warm-up,
gradient clipping. No per-step host sync except the loss read for logging.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from aipc.errors import AipcError
from aipc.train import checkpoint as ck
from aipc.train import distributed as D
from aipc.train.config import TrainConfig, changed_settings
from aipc.train.device import Placement, choose, peak_memory_bytes, seed_all, set_determinism, synchronize
from aipc.train.metrics import JsonlLog, Progress, info_line, measured_peak_flops, mfu
from aipc.train.packing import IGNORE, Order
from aipc.train.prepare import Prepared, prepare


@dataclass
class Hooks:
    """Test seams: called after each optimizer step; before a checkpoint folder is renamed."""

    after_step: Callable[[int], None] | None = None
    before_rename: Callable[[Path], None] | None = None


@dataclass
class Result:
    steps: int
    start_step: int
    final_loss: float | None
    val_loss: float | None
    tokens_per_s: float
    step_s: float
    mfu: float | None
    mfu_note: str
    peak_bytes: int | None
    peak_note: str
    device: str
    precision: str
    world_size: int
    params: int
    trainable_params: int
    fused_loss: bool
    checkpoint: str | None
    export: str | None
    metrics: str
    predicted: dict[str, Any] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    threads_note: str = ""


def lr_lambda(warmup: int, total: int, min_ratio: float) -> Callable[[int], float]:
    """Multiplier of the base lr at step s: linear warm-up (s+1)/warmup, then cosine to min_ratio."""
    def f(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        progress = (s - warmup) / max(1, total - warmup)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return f


def make_optimizer(module, cfg: TrainConfig, place: Placement):
    """AdamW over trainable parameters; no decay on vectors (norms, biases); fused kernel where it exists."""
    import torch

    params = [p for p in module.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    kw = dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    if not cfg.fsdp:
        try:
            return torch.optim.AdamW(groups, fused=True, **kw)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.AdamW(groups, foreach=True, **kw)


def train(cfg: TrainConfig, hooks: Hooks | None = None) -> Result:
    """Run (or resume) training as configured; returns the measured summary."""
    import torch

    cfg.validate()
    dist = D.from_env()
    place = choose(cfg.device, cfg.precision, dist.local_rank)
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    set_determinism(place, cfg.deterministic, cfg.threads)
    D.init(dist, place.kind)
    try:
        return _run(cfg, dist, place, hooks or Hooks())
    finally:
        D.shutdown(dist)
        torch.set_num_threads(threads)  # leave the process as it was (library callers, tests)
        torch.use_deterministic_algorithms(det)


def _check_resume(cfg: TrainConfig, prep: Prepared, run_dir: Path) -> tuple[Path | None, dict | None]:
    """The checkpoint to resume from (validated), or (None, None) for a fresh run."""
    if not (cfg.resume or cfg.resume_from):
        if ck.list_checkpoints(run_dir):
            raise AipcError(f"{run_dir} already has checkpoints of a run; pass --resume to continue it "
                            "or choose another --out (nothing was overwritten)")
        return None, None
    path = ck.find(cfg.resume_from or run_dir)
    state = ck.read_state(path)
    if state.get("model_fingerprint") != prep.model_fingerprint:
        raise AipcError(f"checkpoint {path} was written for a different model ({state.get('model')}); "
                        f"resume with that model, or start a new run with another --out")
    if state.get("settings_hash") != prep.settings_hash:
        diff = changed_settings(state.get("settings", {}), prep.settings)
        raise AipcError(f"cannot resume {path} exactly: settings changed ({'; '.join(diff[:4])}); "
                        "resume with the original settings or start a new run with another --out")
    return path, state


@dataclass(eq=False)
class _Run:
    """Everything one training run holds while it runs (built by :func:`_setup`)."""

    cfg: TrainConfig
    dist: D.Dist
    place: Placement
    hooks: Hooks
    prep: Prepared
    pred: Any
    threads_note: str
    inner: Any            # the CausalLMLoss module (weights + loss)
    wrapped: Any          # DDP / FSDP / inner itself
    module: Any           # wrapped, or its torch.compile
    opt: Any
    sched: Any
    scaler: Any
    log: JsonlLog
    order: Order
    start: int = 0
    resume_path: Path | None = None
    peak: float | None = None
    peak_src: str = "mfu off"

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.out)


def _run(cfg: TrainConfig, dist: D.Dist, place: Placement, hooks: Hooks) -> Result:
    r = _setup(cfg, dist, place, hooks)
    progress = Progress(r.prep.total_steps, r.start, enabled=cfg.progress and dist.main)
    try:
        losses, times, val_loss, last_ckpt = _loop(r, progress)
    finally:
        progress.close()
    return _finish(r, losses, times, val_loss, last_ckpt)


def _setup(cfg: TrainConfig, dist: D.Dist, place: Placement, hooks: Hooks) -> _Run:
    """Preflight, data and model, resume check, threads, optimizer; restored from the checkpoint when resuming."""
    import torch

    from aipc.train.preflight import Prediction, predict, refuse_if_unfit

    seed_all(cfg.seed)
    if cfg.export and Path(cfg.export).exists() and any(Path(cfg.export).iterdir()):
        raise AipcError(f"export folder {cfg.export} exists and is not empty; choose a new --export folder")
    pred = Prediction(None, "preflight off")
    if cfg.preflight:  # before the model is built: a run that cannot fit must not try to allocate it
        tokens = (cfg.steps or 0) * cfg.batch_size * cfg.grad_accum * dist.world * cfg.seq_len
        pred = predict(cfg, device_kind=place.kind, precision=place.precision, world=dist.world,
                       train_tokens=tokens)
        refuse_if_unfit(pred)
    prep = prepare(cfg, place, dist.world)
    resume_path, state = _check_resume(cfg, prep, Path(cfg.out))
    threads_note = choose_threads(cfg, place, dist, prep, state)
    inner, wrapped, module = _modules(cfg, dist, place, prep)
    opt = make_optimizer(inner, cfg, place)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.warmup_steps, prep.total_steps, cfg.min_lr_ratio))
    order = Order(len(prep.train), batch=cfg.batch_size, accum=cfg.grad_accum, world=dist.world, seed=cfg.seed)
    r = _Run(cfg=cfg, dist=dist, place=place, hooks=hooks, prep=prep, pred=pred, threads_note=threads_note,
             inner=inner, wrapped=wrapped, module=module, opt=opt, sched=sched, scaler=place.scaler(),
             log=JsonlLog(Path(cfg.out) / "metrics.jsonl", enabled=dist.main), order=order,
             resume_path=resume_path)
    _restore_or_start(r, state)
    if cfg.mfu and dist.main:
        r.peak, r.peak_src = measured_peak_flops(place.precision, place.device)
    return r


def _modules(cfg: TrainConfig, dist: D.Dist, place: Placement, prep: Prepared):
    """(inner, wrapped, module): the loss module on its device, its DDP/FSDP wrapper, and what runs a step."""
    import torch

    from aipc.train.loss import CausalLMLoss

    inner = CausalLMLoss(prep.model, fused=cfg.fused_loss)
    if cfg.method != "qlora":  # a 4-bit model is placed at load time and refuses .to()
        inner = inner.to(place.device)
    if place.kind == "cpu" and not cfg.compile:  # fp32 GEMMs through oneDNN where it beats MKL here
        from aipc import cpu_gemm

        cpu_gemm.patch_linears(inner)
    wrapped = D.wrap(inner, dist, fsdp=cfg.fsdp, device=place.device)  # DDP / FSDP / itself
    return inner, wrapped, (torch.compile(wrapped) if cfg.compile else wrapped)


def _restore_or_start(r: _Run, state: dict | None) -> None:
    """Load the checkpoint being resumed, or start a fresh run folder (run.json, empty metrics)."""
    cfg, dist, prep = r.cfg, r.dist, r.prep
    if r.resume_path is not None:
        weights, optim_state, rngs = ck.load_tensors(r.resume_path, r.place.device)
        D.load_full_state(r.inner, r.opt, weights, optim_state, fsdp=cfg.fsdp)
        r.sched.load_state_dict(state["scheduler"])
        if r.scaler is not None and state.get("scaler"):
            r.scaler.load_state_dict(state["scaler"])
        ck.set_rng_state(rngs[dist.rank])
        r.start = int(state["step"])
        r.log.truncate_after(r.start)
    elif dist.main:
        r.run_dir.mkdir(parents=True, exist_ok=True)
        r.log.truncate_after(0)  # a fresh start: drop metrics of an attempt killed before its first checkpoint
        _write_json(r.run_dir / "run.json", {"config": cfg.to_dict(), "settings": prep.settings,
                                             "settings_hash": prep.settings_hash, "model_fingerprint":
                                             prep.model_fingerprint, "tokenizer": prep.tokenizer_source})


def _loop(r: _Run, progress: Progress) -> tuple[list[float], list[float], float | None, str | None]:
    """Steps ``start..total``: (losses and step seconds at each log point, last val loss, last checkpoint)."""
    import torch

    cfg, dist, place, prep = r.cfg, r.dist, r.place, r.prep
    total = prep.total_steps
    inputs, labels = torch.from_numpy(prep.train.inputs), torch.from_numpy(prep.train.labels)
    targets = (prep.train.labels != IGNORE).sum(axis=1)          # target tokens per sequence
    tokens_per_step = r.order.global_batch * cfg.seq_len
    r.inner.train()
    losses: list[float] = []
    times: list[float] = []
    val_loss = last_ckpt = None
    synchronize(place)
    t_mark, n_window = time.perf_counter(), 0                    # time since the last log point
    for step in range(r.start, total):
        n_window += 1
        n_target = int(targets[r.order.step_entries(step)].sum())
        loss_acc = _step(r, step, inputs, labels, scale=dist.world / max(1, n_target))
        done = step + 1
        logged = done % cfg.log_every == 0 or done == total
        if logged:
            synchronize(place)
            dt = (time.perf_counter() - t_mark) / n_window     # per step, device work included
            loss_g, = D.all_reduce_sum([float(loss_acc)], dist, place.device)
            losses.append(loss_g / max(1, n_target))
            times.append(dt)
            _log_step(r, progress, done, losses[-1], dt, tokens_per_step)
        if prep.val is not None and cfg.eval_every and done % cfg.eval_every == 0 and done != total:
            val_loss = _evaluate(r.inner, prep, cfg, dist, place)
            r.log.write({"step": done, "val_loss": val_loss})
        if (cfg.save_every and done % cfg.save_every == 0) or done == total:
            last_ckpt = _save(r.inner, r.opt, r.sched, r.scaler, prep, cfg, dist, r.run_dir, done, r.order, r.hooks)
        if r.hooks.after_step is not None:
            r.hooks.after_step(done)
        if logged:  # evaluation and checkpoint time stay out of the step time
            t_mark, n_window = time.perf_counter(), 0
    return losses, times, val_loss, last_ckpt


def _step(r: _Run, step: int, inputs, labels, *, scale: float):
    """One optimizer step: ``grad_accum`` micro-batches (gradients synced on the last), clip, step, schedule.
    Returns the summed token loss of this process (a device tensor: no host sync here)."""
    import torch

    cfg, dist, place, scaler = r.cfg, r.dist, r.place, r.scaler
    loss_acc = torch.zeros((), dtype=torch.float32, device=place.device)
    for a in range(cfg.grad_accum):
        idx = torch.from_numpy(r.order.micro(step, a, dist.rank))
        x = inputs.index_select(0, idx).to(place.device, non_blocking=True)   # (B, T)
        y = labels.index_select(0, idx).to(place.device, non_blocking=True)   # (B, T)
        last = a == cfg.grad_accum - 1
        if cfg.fsdp and dist.enabled:  # FSDP2: reduce-scatter only after the last micro-batch
            r.wrapped.set_requires_gradient_sync(last)
        ctx = r.wrapped.no_sync() if not last and hasattr(r.wrapped, "no_sync") else nullcontext()
        with ctx:
            with place.autocast():
                loss_sum, _ = r.module(x, y)
            scaled = loss_sum * scale
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        loss_acc += loss_sum.detach().float()
    if scaler is not None:
        scaler.unscale_(r.opt)
    if cfg.max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(r.inner.parameters(), cfg.max_grad_norm)
    if scaler is not None:
        scaler.step(r.opt)
        scaler.update()
    else:
        r.opt.step()
    r.sched.step()
    r.opt.zero_grad(set_to_none=True)
    return loss_acc


def _log_step(r: _Run, progress: Progress, done: int, loss: float, dt: float, tokens_per_step: int) -> None:
    tps = tokens_per_step / dt
    m = mfu(tps, r.prep.flops_per_token, r.peak, r.dist.world)
    r.log.write({"step": done, "loss": loss, "lr": r.sched.get_last_lr()[0], "tokens": done * tokens_per_step,
                 "epoch": r.order.epoch_of(done), "step_s": dt, "tokens_per_s": tps, "mfu": m})
    progress.update(done, info_line(loss, tps, m))


def _finish(r: _Run, losses: list[float], times: list[float], val_loss: float | None,
            last_ckpt: str | None) -> Result:
    """Final validation, the steady step time (first logged window dropped), peak memory, export; the Result."""
    import numpy as np

    from aipc.train.preflight import compare

    cfg, dist, place, prep = r.cfg, r.dist, r.place, r.prep
    total = prep.total_steps
    if prep.val is not None:
        val_loss = _evaluate(r.inner, prep, cfg, dist, place)
        if r.start < total:  # a resume of a finished run logs nothing new
            r.log.write({"step": total, "val_loss": val_loss})
    if r.start == total and dist.main:  # a resume of a finished run: the checkpoint it verified
        last_ckpt = str(r.resume_path)
    steady = times[1:] if len(times) > 1 else times
    step_s = float(np.median(steady)) if steady else 0.0
    tps = r.order.global_batch * cfg.seq_len / step_s if step_s else 0.0
    peak_bytes, peak_note = peak_memory_bytes(place)
    m = mfu(tps, prep.flops_per_token, r.peak, dist.world)
    exported = _export(r.inner, prep, cfg, dist) if cfg.export else None
    r.log.close()
    return Result(steps=total, start_step=r.start, final_loss=losses[-1] if losses else None, val_loss=val_loss,
                  tokens_per_s=tps, step_s=step_s, mfu=m, mfu_note=r.peak_src, peak_bytes=peak_bytes,
                  peak_note=peak_note, device=place.device, precision=place.precision, world_size=dist.world,
                  params=prep.params, trainable_params=prep.trainable_params, fused_loss=r.inner.fused,
                  checkpoint=last_ckpt, export=exported, metrics=str(r.run_dir / "metrics.jsonl"),
                  predicted=compare(r.pred, peak_bytes=peak_bytes, tokens_per_s=tps, step_s=step_s),
                  losses=losses, threads_note=r.threads_note)


def choose_threads(cfg: TrainConfig, place: Placement, dist: D.Dist, prep: Prepared, state: dict | None) -> str:
    """The CPU thread count of a single-process CPU run without --threads: the resumed run's (so a
    resume repeats its arithmetic), else chosen by timing a training linear layer of this run's shape
    at each candidate now (``aipc.runtime.choose_threads``; all threads on a busy CPU run 4-15x slower)."""
    import torch

    if place.kind != "cpu" or dist.world > 1 or cfg.threads:
        return f"{torch.get_num_threads()} CPU threads" + (" (--threads)" if cfg.threads else "")
    if state and state.get("threads"):
        torch.set_num_threads(int(state["threads"]))
        return f"{state['threads']} CPU threads, as the run being resumed"
    from aipc.runtime import choose_threads as pick

    c = prep.hf.config
    hidden = getattr(c, "hidden_size", None) or getattr(c, "n_embd", None) or 512
    inter = getattr(c, "intermediate_size", None) or getattr(c, "n_inner", None) or 4 * hidden
    return pick(cfg.batch_size * cfg.seq_len, hidden, inter, place.precision, train=True)[2]


def _write_json(path: Path, obj: Any) -> None:
    import os

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)


def _evaluate(inner, prep: Prepared, cfg: TrainConfig, dist: D.Dist, place: Placement) -> float:
    """Mean token loss over the validation split (every rank runs the same number of batches)."""
    import torch

    val = prep.val
    mine = list(range(dist.rank, len(val), dist.world))
    per_rank = math.ceil(len(val) / dist.world)
    n_batches = math.ceil(per_rank / cfg.batch_size)
    if cfg.eval_batches:
        n_batches = min(n_batches, cfg.eval_batches)
    total = count = 0.0
    inner.eval()
    with torch.no_grad():
        for b in range(n_batches):
            idx = mine[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x = torch.from_numpy(val.inputs[idx or [0]]).to(place.device)
            y = torch.from_numpy(val.labels[idx or [0]]).to(place.device)
            if not idx:  # this rank has run out: a dummy batch that counts nothing
                y = torch.full_like(y, IGNORE)
            with place.autocast():
                s, c = inner(x, y)
            total += float(s)
            count += float(c)
    inner.train()
    total, count = D.all_reduce_sum([total, count], dist, place.device)
    return total / max(1.0, count)


def _save(inner, opt, sched, scaler, prep: Prepared, cfg: TrainConfig, dist: D.Dist, run_dir: Path,
          step: int, order: Order, hooks: Hooks) -> str | None:
    import torch

    rngs = D.gather_objects(ck.rng_state(), dist)
    weights, optim_state = D.full_state(inner, opt, fsdp=cfg.fsdp)
    path = None
    if dist.main:
        state = {"step": step, "epoch": order.epoch_of(step), "sequences_seen": step * order.global_batch,
                 "tokens_seen": step * order.global_batch * cfg.seq_len, "scheduler": sched.state_dict(),
                 "scaler": scaler.state_dict() if scaler is not None else None,
                 "settings": prep.settings, "settings_hash": prep.settings_hash,
                 "model": cfg.model, "model_fingerprint": prep.model_fingerprint,
                 "threads": torch.get_num_threads(), "world_size": dist.world}
        path = str(ck.save(run_dir, step, weights=weights, optimizer=optim_state, rngs=rngs, state=state,
                           keep=cfg.keep, before_rename=hooks.before_rename))
    D.barrier(dist)
    return path


def _export(inner, prep: Prepared, cfg: TrainConfig, dist: D.Dist) -> str | None:
    """Write the merged model on rank 0. Under FSDP the full weights are gathered and loaded into a
    fresh CPU copy of the (LoRA-wrapped) model, since the live one holds sharded DTensors."""
    from aipc.train.export import export_folder

    model = prep.model
    if cfg.fsdp and dist.enabled:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(inner, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if dist.main:
            from aipc.train import model_io
            from aipc.train.lora import apply_lora

            model = model_io.start_model(cfg.model, seed=cfg.seed, device="cpu", allow_pickle=cfg.allow_pickle)
            if cfg.method != "full":
                model = apply_lora(model, rank=cfg.lora_rank, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                                   targets=cfg.lora_targets)
            model.load_state_dict({k.removeprefix("model."): v for k, v in full.items()}, strict=True)
    out = str(export_folder(model, prep.tokenizer, cfg.export)) if dist.main else None
    D.barrier(dist)
    return out
