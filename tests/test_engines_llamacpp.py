"""The llama.cpp engine for real: tiny models converted inside the session (``tiny_ggufs``) run by
llama-cpp-python; compared with the torch engine on the same weights; driven by aipc's own
``generate`` and continuous-batching ``Engine`` unchanged."""

from __future__ import annotations

import asyncio

import pytest
import torch

from aipc.engines import Loaded, available, default_engine, load
from aipc.errors import AipcError
from aipc.serve.engine import Engine, Request
from aipc.engines.generate import generate
from aipc.engines.sampling import SamplingParams, eos_ids

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PROMPT = "Hello world, héllo 🦙! "


def _greedy(n: int) -> SamplingParams:
    return SamplingParams(max_tokens=n, ignore_eos=True)


@pytest.fixture(scope="module")
def torch_tiny(tiny_llama_dir):
    return load(tiny_llama_dir, engine="torch", threads=1)


@pytest.fixture(scope="module")
def gguf_f32(tiny_ggufs):
    return load(tiny_ggufs["f32"], threads=1)


def test_seam_chooses_and_refuses():
    assert {"torch", "llamacpp"} <= set(available())
    assert default_engine("m.gguf") == "llamacpp"
    assert default_engine("qwen2.5-0.5b", "q4_k_m") == "llamacpp"
    assert default_engine("qwen2.5-0.5b") == "torch" and default_engine("qwen2.5-0.5b", "bf16") == "torch"
    with pytest.raises(AipcError, match="runs on --engine llamacpp"):
        load("qwen2.5-0.5b", engine="torch", weight_format="q4_k_m")
    with pytest.raises(AipcError, match="unknown engine 'llama'"):
        load("qwen2.5-0.5b", engine="llama")
    with pytest.raises(AipcError, match="GGUF file: run it with --engine llamacpp"):
        load("x.gguf", engine="torch")
    with pytest.raises(AipcError, match="--hf-forward applies to the torch engine, not llamacpp"):
        load("x.gguf", fast=False)


def test_f32_gguf_matches_torch(torch_tiny, gguf_f32):
    """Same weights through transformers+FastLM and through llama.cpp: same tokens, same logits
    (to float32 rounding), the same greedy generation."""
    assert gguf_f32.engine == "llamacpp" and gguf_f32.weight_format == "f32" and not gguf_f32.random_weights
    ids = torch_tiny.tokenizer(PROMPT)["input_ids"]
    assert gguf_f32.tokenizer(PROMPT)["input_ids"] == ids
    assert gguf_f32.tokenizer.decode(ids) == PROMPT
    a = torch_tiny.runner.prefill(0, torch.tensor(ids)).float()
    b = gguf_f32.runner.prefill(0, torch.tensor(ids)).clone()
    assert b.shape == a.shape and torch.allclose(a, b, atol=2e-3), (a - b).abs().max()
    ra = generate(torch_tiny.runner, torch_tiny.tokenizer, ids, _greedy(24), model=torch_tiny.model)
    rb = generate(gguf_f32.runner, gguf_f32.tokenizer, ids, _greedy(24), model=gguf_f32.model)
    assert rb.token_ids == ra.token_ids and rb.text == ra.text and len(rb.token_ids) == 24


def test_f16_gguf_close_to_torch(torch_tiny, tiny_ggufs):
    f16 = load(tiny_ggufs["f16"], threads=1)
    assert f16.weight_format == "f16"
    ids = torch.tensor(torch_tiny.tokenizer(PROMPT)["input_ids"])
    a = torch_tiny.runner.prefill(0, ids).float()
    b = f16.runner.prefill(0, ids)
    assert torch.allclose(a, b, atol=5e-2) and not torch.equal(a, b)  # f16 weights: close, not equal


@pytest.mark.parametrize("quant,min_cos", [("q8_0", 0.999), ("q4_0", 0.97), ("q4_k_m", 0.97)])
def test_quantized_types_load_and_agree(tiny_ggufs, quant, min_cos):
    ref = load(tiny_ggufs["qwen_f16"], threads=1)
    q = load(tiny_ggufs[quant], threads=1)
    assert q.weight_format == quant and q.engine == "llamacpp"
    r, qr = ref.runner, q.runner
    assert qr.weight_bytes_per_step() < r.weight_bytes_per_step()  # quantized weights are smaller
    assert qr.kv_bytes_per_token() == 2 * 2 * 2 * 64 * 2  # K+V, 2 layers, 2 KV heads, head_dim 64, f16
    ids = torch.tensor(q.tokenizer("The quick brown fox")["input_ids"])
    a, b = r.prefill(0, ids).clone(), qr.prefill(0, ids).clone()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=0)
    assert cos > min_cos, cos
    res = generate(qr, q.tokenizer, ids.tolist(), _greedy(16), model=q.model)
    assert len(res.token_ids) == 16 and res.stats.tpot_s > 0


def test_batched_decode_equals_one_at_a_time(gguf_f32):
    """One llama_decode over several slots gives each slot what decoding it alone gives."""
    gguf_f32.resize(max_batch=3, max_len=64)
    r = gguf_f32.runner
    assert r.max_batch == 3 and r.max_len == 64
    prompts = [[5, 6, 7, 8], [9, 10], [11, 12, 13, 14, 15, 16]]
    alone = []
    for p in prompts:  # reference: each sequence by itself through slot 0
        r.prefill(0, torch.tensor(p))
        alone.append([r.decode1(t, len(p) + i).clone() for i, t in enumerate([40, 41, 42])])
    for s, p in enumerate(prompts):
        r.prefill(s, torch.tensor(p))
    for i, t in enumerate([40, 41, 42]):
        pos = torch.tensor([len(p) + i for p in prompts])
        out = r.decode(torch.full((3,), t), pos)
        for s in range(3):
            assert torch.allclose(out[s], alone[s][i], atol=1e-4)
    # a subset of slots (0 and 2): rows of the others are not computed
    r.free(1)
    out = r.decode(torch.tensor([50, 0, 50]), torch.tensor([len(prompts[0]) + 3, 0, len(prompts[2]) + 3]), active=[0, 2])
    r.prefill(0, torch.tensor(prompts[0] + [40, 41, 42]))
    assert torch.allclose(out[0], r.decode1(50, len(prompts[0]) + 3).clone(), atol=1e-4)
    # decoding again at an earlier position replaces what followed (as FastLM overwrites its cache)
    first = r.decode1(50, len(prompts[0]) + 3).clone()
    assert torch.allclose(first, out[0], atol=1e-4)
    with pytest.raises(ValueError, match="cannot decode at position"):
        r.decode1(1, 60)
    with pytest.raises(ValueError, match="past the context of 64"):
        r.decode1(1, 64, slot=1)
    gguf_f32.resize(max_batch=1, max_len=None)


def test_continuous_batching_engine_runs_llamacpp(tiny_ggufs):
    """The server's Engine drives the llama.cpp runner unchanged; batched results equal generate()."""
    lm = load(tiny_ggufs["f32"], max_batch=2, max_len=64, threads=1)
    prompts = [[5, 6, 7, 8], [9, 10], [11, 12, 13, 14, 15, 16], [20, 21, 22]]
    want = [generate(lm.runner, lm.tokenizer, p, _greedy(10), model=lm.model).token_ids for p in prompts]
    engine = Engine(lm.runner, lm.tokenizer, model=lm.model)
    engine.start()

    async def run():
        loop = asyncio.get_running_loop()
        reqs = [Request(prompt_ids=p, params=_greedy(10), loop=loop) for p in prompts]
        for q in reqs:
            engine.submit(q)
        got = []
        for q in reqs:
            toks = []
            while (ev := await q.events.get())[0] != "done":
                toks.append(ev[2])
            got.append(toks)
        return got

    try:
        got = asyncio.run(run())
    finally:
        engine.stop(10)
    assert got == want and engine.steps < sum(map(len, want))  # fewer steps than tokens: batched


def test_tokenizer_adapter(gguf_f32, torch_tiny):
    tok, hf = gguf_f32.tokenizer, torch_tiny.tokenizer
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi ✓"}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text == hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert tok(text, add_special_tokens=False)["input_ids"] == hf(text, add_special_tokens=False)["input_ids"]
    assert tok.eos_token_id == hf.eos_token_id == 2
    assert eos_ids(tok, gguf_f32.model) == {2, 4}  # llama.cpp also ends generation at <|end|>
    assert tok.decode([2, 79, 80], skip_special_tokens=True) == hf.decode([79, 80])
    assert "</s>" in tok.decode([2, 79], skip_special_tokens=False)


def test_weight_format_must_match_the_file(tiny_ggufs):
    with pytest.raises(AipcError, match="holds q8_0 weights, not q4_0"):
        load(tiny_ggufs["q8_0"], weight_format="q4_0")


def test_catalog_config_converts_with_random_weights(tmp_path):
    """A config with no weights: converted once (random weights, cached) and marked as random."""
    import json

    from aipc.models.tiny import tiny_config

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(tiny_config("qwen2", hidden_size=256, intermediate_size=512)))
    lm = load(str(cfg), engine="llamacpp", weight_format="q8_0", threads=1)
    assert isinstance(lm, Loaded) and lm.random_weights and lm.weight_format == "q8_0"
    assert lm.path.parent.name == "gguf" and lm.path.is_file()
    again = load(str(cfg), engine="llamacpp", weight_format="q8_0", threads=1)
    assert again.path == lm.path  # from the cache, not converted twice
    res = generate(lm.runner, lm.tokenizer, [5, 6, 7], _greedy(8), model=lm.model)
    assert len(res.token_ids) == 8
