"""fp32 CPU products through oneDNN: the same numbers as F.linear, gradients included, and the choice."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aipc import cpu_gemm

pytestmark = pytest.mark.skipif(not cpu_gemm.available(), reason="this torch build has no oneDNN linear")


@pytest.fixture
def forced(monkeypatch):
    """oneDNN forced on for every size, whatever this CPU's measurement says."""
    monkeypatch.setenv("AIPC_CPU_GEMM", "onednn")
    monkeypatch.setattr(cpu_gemm, "_choice", {})
    monkeypatch.setattr(cpu_gemm, "MIN_WEIGHT_ELEMENTS", 1)
    yield


def test_linear_matches_f_linear_for_vectors_batches_and_bias(forced):
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(300, 96, generator=g), torch.randn(300, generator=g)
    for shape in ((1, 1, 96), (3, 7, 96), (96,), (5, 96)):
        x = torch.randn(*shape, generator=g)
        for bias in (None, b):
            got = cpu_gemm.linear(x, w, bias)
            assert got.shape == F.linear(x, w, bias).shape
            torch.testing.assert_close(got, F.linear(x, w, bias), rtol=1e-5, atol=1e-4)
    # ineligible inputs take F.linear unchanged: another dtype, or autocast
    xb = torch.randn(2, 96, dtype=torch.bfloat16)
    assert torch.equal(cpu_gemm.linear(xb, w.bfloat16()), F.linear(xb, w.bfloat16()))


def test_train_linear_gradients_match_autograd_of_f_linear(forced):
    g = torch.Generator().manual_seed(1)
    x0, w0, b0 = torch.randn(4, 9, 48, generator=g), torch.randn(80, 48, generator=g), torch.randn(80, generator=g)
    up = torch.randn(4, 9, 80, generator=g)
    grads = []
    for fn in (F.linear, cpu_gemm.train_linear):
        x, w, b = (t.clone().requires_grad_() for t in (x0, w0, b0))
        (fn(x, w, b) * up).sum().backward()
        grads.append((x.grad, w.grad, b.grad))
    for ref, got in zip(*grads):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-4)
    # a frozen weight (LoRA's base layer): only the input gradient
    x = x0.clone().requires_grad_()
    cpu_gemm.train_linear(x, w0, None).sum().backward()
    torch.testing.assert_close(x.grad, (torch.ones(4, 9, 80) @ w0), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("family", ["llama", "gpt2"])  # gpt2: transformers' Conv1D layers
def test_patch_linears_routes_big_layers_and_keeps_the_model_equal(forced, monkeypatch, family):
    from aipc.models.tiny import build_tiny

    torch.manual_seed(0)
    model = build_tiny(family)
    ids = torch.randint(0, 200, (2, 12))
    torch.manual_seed(1)  # the same dropout masks in both passes (gpt2 has dropout)
    ref = model(input_ids=ids, labels=ids)
    ref.loss.backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    calls = []
    real = cpu_gemm._Linear.apply
    monkeypatch.setattr(cpu_gemm._Linear, "apply", lambda *a: calls.append(1) or real(*a))
    keys = list(model.state_dict())
    n = cpu_gemm.patch_linears(model)
    linears = sum(1 for m in model.modules() if type(m) is torch.nn.Linear or type(m).__name__ == "Conv1D")
    assert n == linears > 0
    torch.manual_seed(1)
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    assert len(calls) == linears  # every Linear went through oneDNN
    torch.testing.assert_close(out.loss, ref.loss, rtol=1e-5, atol=1e-5)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[name], rtol=1e-4, atol=1e-5, msg=name)
    assert list(model.state_dict()) == keys  # checkpoints and exports see the same model


def test_fastlm_through_onednn_gives_hf_greedy_tokens(forced):
    from aipc.models.tiny import build_tiny
    from aipc.engines.fastlm import FastLM

    model = build_tiny("llama").eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    prompt = [5, 17, 99, 260, 31, 8, 77, 140]
    runner = FastLM(model, max_len=64)
    logits = runner.prefill(0, torch.tensor(prompt))
    with torch.inference_mode():
        ref = model(input_ids=torch.tensor([prompt])).logits[0, -1]
    torch.testing.assert_close(logits, ref, rtol=1e-4, atol=1e-4)
    hf = model.generate(torch.tensor([prompt]), max_new_tokens=16, do_sample=False)[0, len(prompt):].tolist()
    toks, pos, tok = [], len(prompt), int(logits.argmax())
    for _ in range(16):
        toks.append(tok)
        tok = int(runner.decode1(tok, pos).argmax())
        pos += 1
    assert toks == hf


def test_choice_is_measured_once_and_can_be_forced(monkeypatch):
    monkeypatch.setattr(cpu_gemm, "_choice", {})
    monkeypatch.delenv("AIPC_CPU_GEMM", raising=False)
    mkl_s, dnn_s = cpu_gemm.measure("gemv")
    assert 0 < mkl_s < 1 and 0 < dnn_s < 1
    seen = []
    monkeypatch.setattr(cpu_gemm, "measure", lambda kind: seen.append(kind) or (1.0, 0.5))
    assert cpu_gemm.use_onednn("gemm") and cpu_gemm.use_onednn("gemm") and seen == ["gemm"]
    monkeypatch.setattr(cpu_gemm, "measure", lambda kind: (1.0, 0.95))  # < 10% faster: keep MKL
    assert not cpu_gemm.use_onednn("gemv")
    monkeypatch.setattr(cpu_gemm, "_choice", {})
    monkeypatch.setenv("AIPC_CPU_GEMM", "mkl")
    assert not cpu_gemm.use_onednn("gemm")
    model = torch.nn.Sequential(torch.nn.Linear(512, 512))
    assert cpu_gemm.patch_linears(model) == 0 and "forward" not in vars(model[0])


def test_bench_scenarios_run_the_model_as_aipc_train_does(forced):
    from aipc.bench.scenarios import prepare
    from aipc.models.tiny import build_tiny

    model = build_tiny("llama")
    prep = prepare(torch, "train", model, shape={"batch": 1, "seq": 8}, device="cpu", is_decoder=True,
                   vocab=model.config.vocab_size, sync=lambda: None)
    assert "oneDNN" in prep.note and any("forward" in vars(m) for m in model.modules())
    prep.fn()  # one real optimizer step through the routed layers


def test_training_through_onednn_matches_mkl_and_resumes_bitwise(tiny_llama_dir, tmp_path, monkeypatch):
    from test_train_loop import cfg, write_corpus
    from test_train_resume import Stop, losses, stop_at

    from aipc.train.loop import Hooks, train

    data = write_corpus(tmp_path / "data.txt")
    monkeypatch.setenv("AIPC_CPU_GEMM", "mkl")
    monkeypatch.setattr(cpu_gemm, "_choice", {})
    mkl = train(cfg(tiny_llama_dir, data, tmp_path / "mkl", steps=6, save_every=2))
    monkeypatch.setenv("AIPC_CPU_GEMM", "onednn")
    monkeypatch.setattr(cpu_gemm, "_choice", {})
    monkeypatch.setattr(cpu_gemm, "MIN_WEIGHT_ELEMENTS", 1)
    calls = []
    real = cpu_gemm._Linear.apply
    monkeypatch.setattr(cpu_gemm._Linear, "apply", lambda *a: calls.append(1) or real(*a))
    ref = train(cfg(tiny_llama_dir, data, tmp_path / "ref", steps=6, save_every=2))
    assert calls, "the Linear layers did not go through oneDNN"
    assert ref.losses == pytest.approx(mkl.losses, abs=1e-4)  # the same training, to fp32 rounding
    run = tmp_path / "run"
    with pytest.raises(Stop):
        train(cfg(tiny_llama_dir, data, run, steps=6, save_every=2), Hooks(after_step=stop_at(3)))
    train(cfg(tiny_llama_dir, data, run, steps=6, save_every=2, resume=True))
    assert losses(run) == losses(tmp_path / "ref")  # exact resume holds on the oneDNN path too


def test_fused_loss_through_onednn_matches_plain_cross_entropy(forced, monkeypatch):
    from aipc.train.loss import IGNORE, linear_cross_entropy

    calls = []
    real = cpu_gemm._onednn
    monkeypatch.setattr(cpu_gemm, "_onednn", lambda *a: calls.append(1) or real(*a))
    g = torch.Generator().manual_seed(2)
    h0, w0 = torch.randn(300, 32, generator=g), torch.randn(500, 32, generator=g) * 0.1
    y = torch.randint(0, 500, (300,), generator=g)
    y[::7] = IGNORE
    out = []
    for fused in (True, False):
        h, w = h0.clone().requires_grad_(), w0.clone().requires_grad_()
        loss = linear_cross_entropy(h, w, y, chunk=64) if fused else \
            F.cross_entropy(h @ w.t(), y, ignore_index=IGNORE, reduction="sum")
        loss.backward()
        out.append((loss.detach(), h.grad, w.grad))
    assert calls  # the fused loss's products went through oneDNN
    for got, ref in zip(*out):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-4)


def test_inference_helpers_keep_gradients_correct_when_asked_for_them(forced):
    g = torch.Generator().manual_seed(3)
    w0, x0 = torch.randn(40, 24, generator=g), torch.randn(5, 24, generator=g)
    for fn, ref_fn in ((cpu_gemm.linear, F.linear), (lambda a, b: cpu_gemm.matmul(a, b.t()), lambda a, b: a @ b.t())):
        grads = []
        for f in (fn, ref_fn):
            x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
            f(x, w).pow(2).sum().backward()
            grads.append((x.grad, w.grad))
        for got, ref in zip(*grads):
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-4)
