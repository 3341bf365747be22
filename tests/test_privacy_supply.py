"""Model-folder checks: safetensors pass, pickle-only weights and custom code need an explicit opt-in."""

from __future__ import annotations

import json

import pytest

from aipc.errors import AipcError
from aipc.privacy.supply import check_model_folder, scan_model_folder


def test_tiny_safetensors_folder_passes(tiny_llama_dir):
    scan = check_model_folder(tiny_llama_dir)
    assert scan.safetensors and not scan.loads_pickle and scan.code == []


def _folder(tmp_path, files, config=None):
    tmp_path.mkdir(exist_ok=True)
    for name in files:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "config.json").write_text(json.dumps(config or {"model_type": "llama"}))
    return tmp_path


def test_pickle_only_weights_are_refused_unless_allowed(tmp_path):
    d = _folder(tmp_path, ["pytorch_model.bin"])
    with pytest.raises(AipcError, match=r"only pickle weights \(pytorch_model.bin\).*--allow-pickle"):
        check_model_folder(d)
    assert check_model_folder(d, allow_pickle=True).loads_pickle


def test_pickle_beside_safetensors_and_trainer_state_is_fine(tmp_path):
    d = _folder(tmp_path, ["model.safetensors", "pytorch_model.bin", "optimizer.pt", "training_args.bin"])
    scan = check_model_folder(d)
    assert scan.pickle == ["pytorch_model.bin"] and not scan.loads_pickle
    only_state = _folder(tmp_path / "ck", ["model.safetensors", "optimizer.pt", "rng_state.pth"])
    assert scan_model_folder(only_state).pickle == []


def test_custom_code_is_refused_unless_trusted(tmp_path):
    d = _folder(tmp_path, ["model.safetensors", "modeling_evil.py"])
    with pytest.raises(AipcError, match="modeling_evil.py.*--trust-remote-code"):
        check_model_folder(d)
    e = _folder(tmp_path / "e", ["model.safetensors"], {"auto_map": {"AutoModel": "x.Y"}})
    with pytest.raises(AipcError, match="auto_map"):
        check_model_folder(e)
    assert check_model_folder(e, trust_remote_code=True).code == ["config.json:auto_map"]


def test_missing_folder(tmp_path):
    with pytest.raises(AipcError, match="not found"):
        check_model_folder(tmp_path / "nope")
