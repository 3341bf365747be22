"""``aipc train --nproc N``: start the workers through torchrun (``python -m torch.distributed.run``).

The launcher writes the run's TrainConfig to a JSON file and runs
``torchrun --nproc-per-node N [--standalone | --rdzv-backend c10d --rdzv-endpoint H:P] -m aipc.train.worker CFG``,
both through :mod:`aipc.privacy.run_guarded`, so the offline guard of ``aipc train`` holds in the launcher
and in every worker.
Workers report bad input in per-rank error files and rank 0 its result in a result file, so the CLI
still prints one-line errors with exit code 2 and one JSON object for ``--json``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from aipc.errors import AipcError
from aipc.train.config import TrainConfig

ERROR_ENV = "AIPC_TRAIN_ERROR_FILE"    # a path prefix; each rank appends ".<rank>"
RESULT_ENV = "AIPC_TRAIN_RESULT_FILE"  # rank 0 writes its Result as JSON here


def in_worker() -> bool:
    """True inside a torchrun worker (torchrun sets these)."""
    return "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ


def torchrun_argv(cfg: TrainConfig, config_path: Path) -> list[str]:
    """The torchrun command line for this run."""
    guarded = [sys.executable, "-m", "aipc.privacy.run_guarded"]  # the offline guard holds in every process
    argv = [*guarded, "torch.distributed.run", "--nproc-per-node", str(cfg.nproc_per_node),
            "--nnodes", str(cfg.nnodes)]
    if cfg.rdzv_endpoint:
        argv += ["--rdzv-backend", "c10d", "--rdzv-endpoint", cfg.rdzv_endpoint, "--rdzv-id", cfg.rdzv_id]
    else:
        argv += ["--standalone"]
    return argv + ["-m", "aipc.privacy.run_guarded", "aipc.train.worker", str(config_path)]


def _cause(stderr: str) -> str:
    """The last exception line a worker printed (``[rank0]: RuntimeError: ...``), shortened."""
    for line in reversed(stderr.splitlines()):
        text = re.sub(r"^\[rank\d+\]:\s*", "", line).strip()
        if re.match(r"^[\w.]*(Error|Exception)\b.*:", text) and "ChildFailedError" not in text:
            return text[:300]
    return "a worker failed"


def _keep_log(cfg: TrainConfig, stderr: str) -> str:
    """Save torchrun's output beside the run (or in a temp file) and return where."""
    try:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        path = Path(cfg.out) / "torchrun-error.log"
    except OSError:
        path = Path(tempfile.mkstemp(prefix="aipc-torchrun-", suffix=".log")[1])
    path.write_text(stderr)
    return str(path)


def launch(cfg: TrainConfig, quiet: bool = False) -> dict[str, Any]:
    """Run torchrun and return rank 0's result (raises AipcError on a worker's bad-input error)."""
    cfg.validate()
    work = Path(tempfile.mkdtemp(prefix="aipc-launch-"))
    cfg_path = work / "config.json"
    worker_cfg = TrainConfig.from_dict({**cfg.to_dict(), "nproc_per_node": 1, "nnodes": 1})
    cfg_path.write_text(json.dumps(worker_cfg.to_dict()))
    err_prefix = work / f"error-{secrets.token_hex(3)}"
    result_path = work / "result.json"
    env = {**os.environ, ERROR_ENV: str(err_prefix), RESULT_ENV: str(result_path),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                          os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    if cfg.threads:
        env["OMP_NUM_THREADS"] = str(cfg.threads)
    try:
        proc = subprocess.run(torchrun_argv(cfg, cfg_path), env=env,
                              stdout=subprocess.DEVNULL if quiet else None,
                              stderr=subprocess.PIPE, text=True)
        errors = sorted(work.glob(err_prefix.name + ".*"))
        if errors:
            raise AipcError(errors[0].read_text().strip())
        if proc.returncode != 0:
            raise AipcError(f"torchrun failed with exit code {proc.returncode}: {_cause(proc.stderr)}; "
                            f"its full output is in {_keep_log(cfg, proc.stderr)}")
        if not result_path.is_file():
            raise AipcError("torchrun finished but rank 0 wrote no result; rerun with --debug")
        return json.loads(result_path.read_text())
    finally:
        for p in work.iterdir():
            p.unlink(missing_ok=True)
        work.rmdir()
