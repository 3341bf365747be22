"""Training metrics: FLOPs per token, MFU against the measured peak, the JSONL log, the progress bar."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from aipc.errors import AipcError


def model_flops_per_token(cfg, model_config, *, precision: str, world: int) -> float:
    """Model FLOPs per trained token of this run (what MFU counts): the estimator's
    ``aipc.estimate.compute.train_flops_per_token`` with ``recompute=False`` for the same Workload
    ``aipc bench`` and the preflight estimate use, so ``aipc train`` and ``aipc bench`` report the
    same MFU for the same run. The model is described by its catalog entry / config file, or by the
    loaded model's config when the reference does not resolve."""
    from aipc.estimate import resolve_model
    from aipc.estimate.compute import train_flops_per_token
    from aipc.models.spec import ModelSpec
    from aipc.spec import Workload
    from aipc.train.preflight import workload_fields

    w = Workload(**workload_fields(cfg, precision=precision, world=world, train_tokens=0)).validate()
    try:
        spec = resolve_model(cfg.model)
    except AipcError:
        spec = ModelSpec.from_hf_config(model_config.to_dict(), name=str(cfg.model), source="loaded model config")
    return train_flops_per_token(spec, w, recompute=False)


def mfu(tokens_per_s: float, flops_per_token: float, peak_flops: float | None, devices: int = 1) -> float | None:
    """Model FLOPs utilization: tokens/s · FLOPs/token / (measured peak · devices)."""
    if not peak_flops or peak_flops <= 0:
        return None
    return tokens_per_s * flops_per_token / (peak_flops * devices)


def measured_peak_flops(precision: str, device: str = "cpu") -> tuple[float | None, str]:
    """(peak FLOP/s, where it came from): the dense GEMM peak ``aipc hw`` measured on ``device`` for the
    run's compute dtype (cached profile, else a quick measurement); None when there is none."""
    from aipc.hardware.profile import load_or_measure

    try:
        prof = load_or_measure(quick=True)
        peak = prof.peak_flops(precision, device=device)
    except Exception as e:  # a failed measurement must not stop training
        return None, f"n/a (peak measurement failed: {type(e).__name__})"
    if not peak:
        return None, f"n/a (no measured {precision} peak for {device})"
    return float(peak), f"{precision} GEMM peak {peak / 1e9:,.0f} GFLOP/s ({prof.source})"


class JsonlLog:
    """Append-only JSONL metrics (rank 0). ``truncate_after(step)`` drops lines of a lost tail."""

    def __init__(self, path: str | Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        self._fh = None

    def truncate_after(self, step: int) -> None:
        """Keep only records with step <= ``step`` (after a resume); atomic rewrite."""
        if not self.enabled or not self.path.is_file():
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill
            if rec.get("step", 0) <= step:
                keep.append(line)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(k + "\n" for k in keep))
        os.replace(tmp, self.path)

    def write(self, rec: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", encoding="utf-8")
        self._fh.write(json.dumps(rec) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class Progress:
    """A rich progress bar: step, loss, tokens/s, MFU, ETA (silent when disabled)."""

    def __init__(self, total: int, start: int, enabled: bool):
        self.enabled = enabled
        self._p = None
        self._t0 = time.perf_counter()
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as RP, TextColumn, TimeRemainingColumn

        self._p = RP(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                     TextColumn("ETA"), TimeRemainingColumn(), transient=False)
        self._task = self._p.add_task("train", total=total, completed=start, info="")
        self._p.start()

    def update(self, step: int, info: str) -> None:
        if self._p is not None:
            self._p.update(self._task, completed=step, info=info)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()
            self._p = None


def info_line(loss: float, tokens_per_s: float, mfu_value: float | None) -> str:
    m = f"{mfu_value * 100:.1f}%" if mfu_value is not None else "n/a (no measured peak)"
    return f"loss {loss:.4f}  {tokens_per_s:,.0f} tok/s  MFU {m}"
