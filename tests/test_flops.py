"""FLOPs per token: one function (aipc.estimate.compute.train_flops_per_token), checked against a
count by hand for a tiny config, and the MFU of `aipc train` and `aipc bench` from it."""

from __future__ import annotations

import pytest

from aipc.estimate.compute import compute_for, train_flops_per_token
from aipc.models.spec import ModelSpec
from aipc.spec import Workload

TINY = dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, vocab_size=100, max_position_embeddings=256,
            tie_word_embeddings=False)


def _spec() -> ModelSpec:
    return ModelSpec.from_hf_config(TINY, name="tiny-llama")


# by hand: per block q 64x64, k 64x32, v 64x32 (2 KV heads x 16), o 64x64, gate/up/down 64x128 each
BLOCK = 64 * 64 + 64 * 32 + 64 * 32 + 64 * 64 + 3 * 64 * 128     # 36,864
NORMS = 2 * 2 * 64 + 64                                          # two per block + the final one
HEAD = 100 * 64
N = 2 * BLOCK + NORMS + HEAD                                     # every parameter but the embedding lookup
S = 32
ATTN_FWD = 4 * 2 * 4 * 16 * S                                    # 4 * L * a * d * s: QK^T and AV, forward
LORA = 2 * (8 * (64 + 64) * 2 + 8 * (64 + 32) * 2 + 8 * (64 + 128) * 3)  # r=8 on q,k,v,o,gate,up,down


def _w(**kw) -> Workload:
    return Workload(model="tiny", task="train", seq_len=S, batch_size=2, **kw).validate()


def test_hand_counted_full_and_checkpointing():
    m = _spec()
    assert train_flops_per_token(m, _w()) == 6 * N + 3 * ATTN_FWD
    # checkpointing recomputes the blocks' forward (not the head): hardware FLOPs only
    hw = train_flops_per_token(m, _w(grad_ckpt=True))
    assert hw == 6 * N + 3 * ATTN_FWD + 2 * (N - HEAD) + ATTN_FWD
    assert train_flops_per_token(m, _w(grad_ckpt=True), recompute=False) == 6 * N + 3 * ATTN_FWD


def test_hand_counted_lora():
    m = _spec()
    w = _w(method="lora", lora_rank=8)
    assert train_flops_per_token(m, w) == 4 * N + 6 * LORA + 3 * ATTN_FWD
    wc = _w(method="lora", lora_rank=8, grad_ckpt=True)
    assert train_flops_per_token(m, wc) == 4 * N + 6 * LORA + 3 * ATTN_FWD + 2 * (N - HEAD) + 2 * LORA + ATTN_FWD


def test_compute_carries_model_and_hardware_flops():
    c = compute_for(_spec(), _w(grad_ckpt=True))
    assert c.flops_per_token > c.model_flops_per_token == 6 * N + 3 * ATTN_FWD
    assert c.model_flops_per_step == pytest.approx(c.model_flops_per_token * 2 * S)
    assert c.flops_per_step == pytest.approx(c.flops_per_token * 2 * S)


def test_train_and_bench_report_the_same_mfu(tmp_path):
    """The MFU `aipc train` computes (train.metrics) and the one `aipc bench` stores (bench.metrics) for
    the same run: the same model FLOPs, so the same MFU for the same measured time."""
    import json

    from aipc.bench import metrics as BM
    from aipc.bench.stats import Series
    from aipc.estimate import estimate
    from aipc.hardware.spec import DeviceSpec
    from aipc.train.config import TrainConfig
    from aipc.train.metrics import mfu, model_flops_per_token

    cfg_path = tmp_path / "tiny" / "config.json"
    cfg_path.parent.mkdir()
    cfg_path.write_text(json.dumps(TINY))
    for ckpt in (False, True):
        cfg = TrainConfig(model=str(cfg_path), data=["x"], method="lora", lora_rank=8, seq_len=S, batch_size=2,
                          grad_ckpt=ckpt, lora_targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                        "up_proj", "down_proj"])

        class _Conf:
            def to_dict(self):
                return TINY

        fpt = model_flops_per_token(cfg, _Conf(), precision="fp32", world=1)
        dev = DeviceSpec(name="d", label="d", vendor="x", kind="cpu", category="this-machine", memory_bytes=1 << 40,
                         usable_memory_bytes=1 << 40, bandwidth_bytes_s=1e10, peak_flops={"fp32": 1e11}, measured=True)
        w = Workload(model=str(cfg_path), task="train", method="lora", lora_rank=8, seq_len=S, batch_size=2,
                     grad_ckpt=ckpt, weight_dtype="fp32").validate()
        est = estimate(w, dev)
        step_s = 0.05
        m = BM.scenario_metrics("train", series=Series(samples=[step_s] * 3, warmup=[]), tokens_per_sample=2 * S,
                                est=est, spec=dev, catalog=None, workload=w, precision="fp32", extra={}, joules=None)
        train_mfu = mfu(2 * S / step_s, fpt, 1e11)
        assert m["mfu_measured"] == pytest.approx(train_mfu, rel=1e-12)
        assert fpt == 4 * N + 6 * LORA + 3 * ATTN_FWD
