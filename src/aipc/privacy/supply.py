"""Model-file supply chain: check a local model folder before loading it.

Pickle files (``pytorch_model.bin``, ``*.pt``, ``*.ckpt`` ...) can run code when unpickled; torch's
``weights_only=True`` loader narrows that but has had bypasses (CVE-2025-32434, fixed in torch 2.6).
safetensors files hold only tensors and a JSON header. Custom modelling code (``*.py`` files,
``auto_map`` in config.json) runs arbitrary Python when ``trust_remote_code=True``.

:func:`check_model_folder` refuses a folder whose weights are pickle-only, or that carries custom code,
unless the caller opts in; loaders call it before ``from_pretrained``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from aipc.errors import AipcError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# Trainer state files that sit in checkpoints but are not loaded with the model.
NOT_MODEL_WEIGHTS = {"training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth", "scaler.pt"}


@dataclass(frozen=True)
class ModelFolderCheck:
    """What a model folder holds, by kind of file."""

    safetensors: list[str] = field(default_factory=list)
    pickle: list[str] = field(default_factory=list)
    code: list[str] = field(default_factory=list)

    @property
    def loads_pickle(self) -> bool:
        """True when weights would come from pickle (no safetensors weights present)."""
        return bool(self.pickle) and not self.safetensors


def scan_model_folder(path: str | os.PathLike) -> ModelFolderCheck:
    """Classify the files of a local model folder (top level, as from_pretrained reads it)."""
    p = Path(path)
    if not p.is_dir():
        raise AipcError(f"model folder {p} not found; pass a local folder with config.json and weights")
    names = sorted(f.name for f in p.iterdir() if f.is_file())
    code = [n for n in names if n.endswith(".py")]
    cfg = p / "config.json"
    if cfg.is_file():
        try:
            if isinstance(auto := json.loads(cfg.read_text(encoding="utf-8")).get("auto_map"), dict) and auto:
                code.append("config.json:auto_map")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            pass  # the loader reports a broken config with its own error
    return ModelFolderCheck(
        safetensors=[n for n in names if n.endswith(".safetensors")],
        pickle=[n for n in names if n.endswith(PICKLE_SUFFIXES) and n not in NOT_MODEL_WEIGHTS],
        code=code,
    )


def check_model_folder(path: str | os.PathLike, *, allow_pickle: bool = False, trust_remote_code: bool = False) -> ModelFolderCheck:
    """Raise :class:`AipcError` for pickle-only weights or custom code unless opted in; else the scan."""
    scan = scan_model_folder(path)
    if scan.loads_pickle and not allow_pickle:
        raise AipcError(
            f"model folder {path} has only pickle weights ({', '.join(scan.pickle[:3])}); pickle can run code "
            "when loaded — convert them to safetensors, or pass --allow-pickle if you trust the source"
        )
    if scan.code and not trust_remote_code:
        raise AipcError(
            f"model folder {path} ships its own Python code ({', '.join(scan.code[:3])}), which would run on load; "
            "use a folder without it, or pass --trust-remote-code if you trust the source"
        )
    return scan
