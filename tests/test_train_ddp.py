"""Data parallel through real torchrun: 2 CPU processes (gloo) match one process on the same global batch."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import run_cli
from test_train_loop import cfg, write_corpus

from aipc.train import checkpoint as ck
from aipc.train.loop import train


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus") / "data.txt", lines=120)


def _weights(run):
    from safetensors.torch import load_file

    return load_file(str(ck.find(run) / "model.safetensors"))


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_processes_match_one(tiny_llama_dir, corpus, tmp_path, mode):
    # one process: micro-batch 2, accumulate 2 -> global batch 4; two processes: micro-batch 2 each
    single = train(cfg(tiny_llama_dir, corpus, tmp_path / "one", steps=5, batch_size=2, grad_accum=2))
    args = [str(tiny_llama_dir), "--data", str(corpus), "--out", str(tmp_path / mode), "--seq-len", "64",
            "--batch-size", "2", "--steps", "5", "--lr", "3e-3", "--nproc", "2", "--threads", "1",
            "--no-mfu", "--no-preflight", "--json"]
    code, out, err = run_cli("train", *args, *(["--fsdp"] if mode == "fsdp" else []))
    assert code == 0, err
    r = json.loads(out)
    assert r["world_size"] == 2 and r["steps"] == 5
    assert r["losses"] == pytest.approx(single.losses, abs=1e-5)
    assert r["losses"][-1] < r["losses"][0]
    assert r["val_loss"] == pytest.approx(single.val_loss, abs=1e-5)
    assert _max_diff(_weights(tmp_path / mode), _weights(tmp_path / "one")) < 1e-5


def test_worker_error_reaches_the_cli(tiny_llama_dir, corpus, tmp_path):
    code, out, err = run_cli("train", str(tiny_llama_dir), "--data", str(corpus), "--seq-len", "2048",
                             "--nproc", "2", "--threads", "1", "--no-mfu", "--out", str(tmp_path / "r"))
    assert code == 2 and err.startswith("error: --seq-len 2048 is longer") and len(err.strip().splitlines()) == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
def test_two_gpus_nccl(tiny_llama_dir, corpus, tmp_path):
    code, out, err = run_cli("train", str(tiny_llama_dir), "--data", str(corpus), "--out", str(tmp_path / "g"),
                             "--seq-len", "64", "--steps", "3", "--nproc", "2", "--no-mfu", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["device"].startswith("cuda") and r["world_size"] == 2
