"""Training tiny real models in-process: loss goes down, LoRA export round-trips, settings behave."""

from __future__ import annotations

import json
import math
import random

import pytest

from aipc.train.config import TrainConfig
from aipc.train.loop import lr_lambda, train


def write_corpus(path, lines=300, seed=0):
    rnd = random.Random(seed)
    words = "the quick brown fox jumps over a lazy dog and then runs far away into green hills".split()
    path.write_text("\n".join(" ".join(rnd.choice(words) for _ in range(20)) for _ in range(lines)))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus") / "data.txt")


def cfg(model, data, out, **kw) -> TrainConfig:
    base = dict(model=str(model), data=[str(data)], out=str(out), seq_len=64, batch_size=4, steps=6, lr=3e-3,
                progress=False, mfu=False, preflight=False, threads=1)
    return TrainConfig(**{**base, **kw})


def test_full_finetune_loss_decreases(tiny_llama_dir, corpus, tmp_path):
    r = train(cfg(tiny_llama_dir, corpus, tmp_path / "run", steps=40, warmup_steps=4))
    first, last = r.losses[0], r.losses[-1]
    assert math.isclose(first, math.log(384), rel_tol=0.05)  # random init: about uniform over the vocab
    assert last < 0.6 * first and r.val_loss < 0.65 * first
    assert r.fused_loss and r.device == "cpu" and r.precision == "fp32"
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [x["step"] for x in recs if "loss" in x]
    assert steps == list(range(1, 41)) and any("val_loss" in x for x in recs)
    assert recs[0]["tokens"] == 4 * 64 and recs[0]["lr"] == pytest.approx(3e-3 * 2 / 4)


def test_fused_and_plain_loss_give_the_same_trajectory(tiny_llama_dir, corpus, tmp_path):
    a = train(cfg(tiny_llama_dir, corpus, tmp_path / "a", steps=4))
    b = train(cfg(tiny_llama_dir, corpus, tmp_path / "b", steps=4, fused_loss=False))
    assert not b.fused_loss
    assert a.losses == pytest.approx(b.losses, abs=2e-5)


def test_grad_ckpt_and_accumulation_keep_the_numbers(tiny_llama_dir, corpus, tmp_path):
    a = train(cfg(tiny_llama_dir, corpus, tmp_path / "a", steps=3))
    b = train(cfg(tiny_llama_dir, corpus, tmp_path / "b", steps=3, grad_ckpt=True))
    c = train(cfg(tiny_llama_dir, corpus, tmp_path / "c", steps=3, batch_size=2, grad_accum=2))
    assert a.losses == pytest.approx(b.losses, abs=1e-6)
    assert a.losses == pytest.approx(c.losses, abs=1e-5)  # same global batch, split in two


def test_bf16_autocast_trains(tiny_llama_dir, corpus, tmp_path):
    r = train(cfg(tiny_llama_dir, corpus, tmp_path / "r", steps=12, precision="bf16"))
    assert r.precision == "bf16" and r.losses[-1] < r.losses[0] - 0.5


def test_lora_export_round_trip(tiny_llama_dir, tmp_path):
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = tmp_path / "pc.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"q{i}: ", "completion": f"answer {i % 7}"}) + "\n"
                            for i in range(200)))
    out = tmp_path / "export"
    r = train(cfg(tiny_llama_dir, data, tmp_path / "run", method="lora", lora_rank=4, lr=2e-2, steps=15,
                  seq_len=32, lora_targets=["q_proj", "v_proj"], export=str(out)))
    assert r.trainable_params == 2 * 2 * 4 * (64 + 64) - 2 * 4 * (64 - 32)  # q:64->64, v:64->32 (GQA)
    assert r.losses[-1] < r.losses[0]
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and not any("lora" in k for k in keys)
    exported = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    tok = AutoTokenizer.from_pretrained(out)
    ids = torch.tensor([tok("q3: answer", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        e, b = exported(ids).logits, base(ids).logits
    assert (e - b).abs().max() > 1e-3           # the adapters changed the model...
    delta = exported.model.layers[0].self_attn.q_proj.weight - base.model.layers[0].self_attn.q_proj.weight
    assert delta.abs().max() > 0 and torch.linalg.matrix_rank(delta).item() <= 4  # ...by a rank-4 update
    k = exported.model.layers[0].self_attn.k_proj.weight
    assert torch.equal(k, base.model.layers[0].self_attn.k_proj.weight)  # untargeted modules untouched


def test_random_weights_from_config_with_byte_tokenizer(tmp_path, corpus):
    from aipc.models.tiny import tiny_config

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps(tiny_config("qwen2")))
    a = train(cfg(tmp_path / "m" / "config.json", corpus, tmp_path / "a", steps=2, seed=5))
    b = train(cfg(tmp_path / "m" / "config.json", corpus, tmp_path / "b", steps=2, seed=5))
    assert a.losses == b.losses  # the same seed builds the same random model
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["tokenizer"] == "byte-level fallback"


def test_lr_schedule():
    f = lr_lambda(warmup=4, total=14, min_ratio=0.1)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(9) == pytest.approx(0.1 + 0.9 * 0.5)   # half way through the cosine
    assert f(14) == pytest.approx(0.1) and f(100) == pytest.approx(0.1)


def test_mfu():
    from aipc.train.metrics import mfu

    assert mfu(1000.0, 6e6, 1e10) == pytest.approx(0.6)
    assert mfu(1000.0, 6e6, None) is None


def test_mfu_peak_comes_from_the_hw_profile(monkeypatch):
    # the profile object is faked (measuring takes seconds); the lookup and the n/a path are real
    import aipc.hardware.profile as profile
    from aipc.train.metrics import info_line, measured_peak_flops

    class Fake:
        source = "aipc hw quick profile (test)"

        def peak_flops(self, dtype, device=None):
            return 2e11 if (dtype, device) == ("fp32", "cpu") else None

    monkeypatch.setattr(profile, "load_or_measure", lambda quick=False, **kw: Fake())
    peak, note = measured_peak_flops("fp32", "cpu")
    assert peak == 2e11 and "200 GFLOP/s" in note and "test" in note
    peak, note = measured_peak_flops("bf16", "cpu")
    assert peak is None and note.startswith("n/a")
    assert info_line(2.5, 1234.0, None).endswith("MFU n/a (no measured peak)")
