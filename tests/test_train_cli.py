"""``aipc train`` on the command line: bad input is one line and exit code 2; output is stable."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli
from test_train_loop import write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus") / "data.txt", lines=80)


def _train(*args):
    return run_cli("train", *args, "--threads", "1", "--no-mfu", "--no-preflight")


def _one_line_error(code, err, *words):
    assert code == 2, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for w in words:
        assert w in err, (w, err)


def test_json_summary_and_table(tiny_llama_dir, corpus, tmp_path):
    code, out, err = _train(str(tiny_llama_dir), "--data", str(corpus), "--out", str(tmp_path / "r"),
                            "--seq-len", "32", "--steps", "3", "--json")
    assert code == 0, err
    r = json.loads(out)
    for key in ("steps", "final_loss", "val_loss", "tokens_per_s", "mfu", "mfu_note", "peak_bytes", "checkpoint",
                "metrics", "predicted", "losses"):
        assert key in r
    assert r["steps"] == 3 and len(r["losses"]) == 3 and r["checkpoint"].endswith("step-00000003")
    code, out, err = _train(str(tiny_llama_dir), "--data", str(corpus), "--out", str(tmp_path / "t"),
                            "--seq-len", "32", "--steps", "2")
    assert code == 0, err
    assert "final train loss" in out and "validation loss" in out and "tokens/s" in out


def test_jsonl_error_names_the_line(tiny_llama_dir, tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a", "completion": "b"}\n{"prompt": "c"}\n')
    code, _, err = _train(str(tiny_llama_dir), "--data", str(p), "--out", str(tmp_path / "r"))
    _one_line_error(code, err, "d.jsonl line 3", "completion")
    assert not (tmp_path / "r").exists()  # nothing written


def test_empty_data(tiny_llama_dir, tmp_path):
    (tmp_path / "e.txt").write_text("")
    code, _, err = _train(str(tiny_llama_dir), "--data", str(tmp_path / "e.txt"), "--out", str(tmp_path / "r"))
    _one_line_error(code, err, "empty")


def test_sequence_longer_than_context(tiny_llama_dir, corpus, tmp_path):
    code, _, err = _train(str(tiny_llama_dir), "--data", str(corpus), "--seq-len", "1024", "--out", str(tmp_path / "r"))
    _one_line_error(code, err, "longer than the model's context of 512", "--seq-len 512")


def test_tokenizer_model_mismatch(tmp_path, corpus):
    from aipc.models.tiny import byte_tokenizer, make_tiny_folder

    model = make_tiny_folder(tmp_path / "m", "llama", tokenizer=False, vocab_size=300)
    tok = byte_tokenizer(384)
    tok.add_tokens([f"<extra{i}>" for i in range(60)])  # 325 tokens (the stand-in has 265) > 300 rows
    tok.save_pretrained(tmp_path / "tok")
    code, _, err = _train(str(model), "--data", str(corpus), "--tokenizer", str(tmp_path / "tok"),
                          "--out", str(tmp_path / "r"))
    _one_line_error(code, err, "tokenizer/model mismatch", "325 tokens", "300 rows")


def test_qlora_needs_cuda(tiny_llama_dir, corpus, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the CPU error path does not apply")
    code, _, err = _train(str(tiny_llama_dir), "--data", str(corpus), "--method", "qlora", "--out", str(tmp_path / "r"))
    _one_line_error(code, err, "QLoRA needs a CUDA GPU", "--method lora")


def test_unknown_lora_target_and_bad_flags(tiny_llama_dir, corpus, tmp_path):
    code, _, err = _train(str(tiny_llama_dir), "--data", str(corpus), "--method", "lora", "--lora-targets", "q_prj",
                          "--out", str(tmp_path / "r"))
    _one_line_error(code, err, "unknown LoRA target module 'q_prj'", "q_proj")
    code, _, err = _train(str(tiny_llama_dir), "--data", str(corpus), "--steps", "2", "--epochs", "1")
    _one_line_error(code, err, "--steps or --epochs")
    code, _, err = _train(str(tiny_llama_dir), "--data", str(corpus), "--nnodes", "2")
    _one_line_error(code, err, "--rdzv-endpoint")


def test_bad_data_fails_before_torchrun_starts(tiny_llama_dir, tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "a"}\nnot json\n')
    code, _, err = _train(str(tiny_llama_dir), "--data", str(p), "--nproc", "2", "--out", str(tmp_path / "r"))
    _one_line_error(code, err, "d.jsonl line 2", "not valid JSON")


def test_torchrun_command_line():
    from pathlib import Path

    from aipc.train.config import TrainConfig
    from aipc.train.launch import torchrun_argv

    one = torchrun_argv(TrainConfig(model="m", data=["d"], nproc_per_node=4), Path("c.json"))
    assert one[1:8] == ["-m", "aipc.privacy.run_guarded", "torch.distributed.run", "--nproc-per-node", "4",
                        "--nnodes", "1"]
    assert "--standalone" in one and one[-4:] == ["-m", "aipc.privacy.run_guarded", "aipc.train.worker", "c.json"]
    multi = torchrun_argv(TrainConfig(model="m", data=["d"], nproc_per_node=8, nnodes=2,
                                      rdzv_endpoint="10.0.0.1:29400"), Path("c.json"))
    i = multi.index("--rdzv-endpoint")
    assert multi[i + 1] == "10.0.0.1:29400" and "--standalone" not in multi and "c10d" in multi


def test_preflight_refuses_a_run_that_cannot_fit(corpus, tmp_path):
    # the real estimator on this machine: a 70B full fine-tune cannot fit in RAM; nothing is built
    code, _, err = run_cli("train", "llama-3.1-70b", "--data", str(corpus), "--steps", "1", "--out", str(tmp_path / "r"))
    _one_line_error(code, err, "will not fit", "--no-preflight")
    assert not (tmp_path / "r").exists()


def test_export_folder_must_be_new(tiny_llama_dir, corpus, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    code, _, err = _train(str(tiny_llama_dir), "--data", str(corpus), "--export", str(tmp_path / "x"),
                          "--out", str(tmp_path / "r"))
    _one_line_error(code, err, "not empty")
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"
