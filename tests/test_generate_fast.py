"""The fast decode path (static KV cache, fused projections, batched slots) against HF generate()."""

from __future__ import annotations

import json

import pytest
import torch

from aipc.models.tiny import build_tiny, byte_tokenizer
from aipc.engines.fastlm import FastLM, supports
from aipc.engines.generate import generate
from aipc.engines.hfrunner import HFRunner, make_runner
from aipc.engines.sampling import SamplingParams
from helpers import run_cli


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Silent:  # a tokenizer stand-in for ids beyond the byte vocabulary; EOS never fires
    eos_token_id = None

    def decode(self, ids, skip_special_tokens=True):
        return ""


def _hf_greedy(model, ids: list[int], n: int) -> list[int]:
    out = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False)
    return out[0, len(ids):].tolist()


def _model(model_type: str, **kw):
    m = build_tiny(model_type, **kw).eval()
    m.generation_config.eos_token_id = None  # both sides produce exactly n tokens
    m.generation_config.pad_token_id = 0
    return m


PROMPT = [5, 17, 99, 260, 31, 8, 77, 140, 3, 200, 64, 12]


@pytest.mark.parametrize("model_type", ["llama", "qwen2", "qwen3", "mistral"])
def test_fast_greedy_equals_hf_generate(model_type):
    model = _model(model_type)
    assert supports(model)
    runner = FastLM(model, max_len=128)
    res = generate(runner, _Silent(), PROMPT, SamplingParams(max_tokens=40, ignore_eos=True))
    assert res.token_ids == _hf_greedy(model, PROMPT, 40)
    # the same slot again: a second prefill must fully replace the first sequence's cache
    res2 = generate(runner, _Silent(), PROMPT[:7], SamplingParams(max_tokens=20, ignore_eos=True))
    assert res2.token_ids == _hf_greedy(model, PROMPT[:7], 20)


def test_sliding_window_equals_hf_generate():
    model = _model("mistral", sliding_window=6)
    runner = FastLM(model, max_len=64)
    assert all(layer.window == 6 for layer in runner.layers)
    res = generate(runner, _Silent(), PROMPT, SamplingParams(max_tokens=24, ignore_eos=True))
    assert res.token_ids == _hf_greedy(model, PROMPT, 24)


def test_weights_are_held_once_and_the_model_still_works():
    """The fused q/k/v and gate/up tensors replace the model's own storage instead of copying it."""
    model = _model("qwen2")  # q/k/v biases too
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    with torch.inference_mode():
        ref = model(input_ids=torch.tensor([PROMPT])).logits
    runner = FastLM(model, max_len=64)
    storages = {p.untyped_storage().data_ptr(): p.untyped_storage().nbytes() for p in model.parameters()}
    for L in runner.layers:
        for t in (L.wqkv, L.bqkv, L.w13, L.b13, L.wo, L.w2):
            if t is not None:
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    assert sum(storages.values()) == nbytes  # every weight byte exactly once
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]), n
    with torch.inference_mode():
        assert torch.equal(model(input_ids=torch.tensor([PROMPT])).logits, ref)
    assert runner.layers[0].bqkv is not None


def test_batched_slots_at_different_positions_equal_single_sequences():
    """Continuous batching: three sequences of different lengths decoded in one forward per step."""
    model = _model("llama")
    runner = FastLM(model, max_batch=3, max_len=96)
    prompts = [PROMPT, PROMPT[:5], PROMPT[2:11]]
    seqs, pos = [], []
    for slot, p in enumerate(prompts):
        seqs.append([int(runner.prefill(slot, torch.tensor(p)).argmax())])
        pos.append(len(p))
    for _ in range(25):
        logits = runner.decode(torch.tensor([s[-1] for s in seqs]), torch.tensor(pos))
        for i in range(3):
            seqs[i].append(int(logits[i].argmax()))
            pos[i] += 1
    for p, s in zip(prompts, seqs):
        assert s == _hf_greedy(model, p, 26)


def test_fallback_runner_for_other_architectures():
    model = _model("gpt2")
    assert not supports(model)
    runner = make_runner(model, max_len=64)
    assert isinstance(runner, HFRunner)
    res = generate(runner, _Silent(), PROMPT, SamplingParams(max_tokens=12, ignore_eos=True))
    assert res.token_ids == _hf_greedy(model, PROMPT, 12)


def test_stats_follow_their_definitions():
    model = _model("llama")
    runner = FastLM(model, max_len=64)
    st = generate(runner, _Silent(), PROMPT, SamplingParams(max_tokens=10, ignore_eos=True),
                  bandwidth=(1e9, "test")).stats
    assert st.output_tokens == 10 and st.finish_reason == "length"
    assert st.ttft_s > 0 and st.tpot_s > 0
    assert st.tpot_s == pytest.approx(st.decode_s / 9)  # 9 decode steps: the first token is excluded
    kv_per_token = 2 * 2 * 2 * 16 * 4  # 2 (K,V) x layers x kv heads x head_dim x fp32 bytes
    assert runner.kv_bytes_per_token() == kv_per_token
    assert st.kv_bytes_per_step == pytest.approx(kv_per_token * (len(PROMPT) + 5))  # mean of 13..21 keys
    params = sum(p.numel() for p in model.parameters())
    embed = model.model.embed_tokens.weight
    assert st.weight_bytes_per_step == 4 * (params - embed.numel() + embed.shape[1])
    assert st.bandwidth_bytes_per_s == pytest.approx((st.weight_bytes_per_step + st.kv_bytes_per_step) / st.tpot_s)
    assert st.mbu == pytest.approx(st.bandwidth_bytes_per_s / 1e9)


def test_stop_at_eos():
    model = build_tiny("llama").eval()
    runner = FastLM(model, max_len=64)
    first = _hf_greedy(_model("llama"), PROMPT, 30)
    k = next(i for i in range(1, 30) if first[i] not in first[:i])  # first greedy token not seen before

    class Tok(_Silent):
        eos_token_id = first[k]  # it ends the sequence

    res = generate(runner, Tok(), PROMPT, SamplingParams(max_tokens=30))
    assert res.token_ids == first[:k] and res.stats.finish_reason == "stop"


def test_sampling_is_seeded_and_differs_from_greedy():
    model = _model("llama")
    runner = FastLM(model, max_len=64)
    p = SamplingParams(max_tokens=20, temperature=1.0, top_p=0.95, top_k=50, seed=7, ignore_eos=True)
    a = generate(runner, _Silent(), PROMPT, p).token_ids
    b = generate(runner, _Silent(), PROMPT, p).token_ids
    c = generate(runner, _Silent(), PROMPT, SamplingParams(max_tokens=20, temperature=1.0, seed=8, ignore_eos=True)).token_ids
    greedy = _hf_greedy(model, PROMPT, 20)
    assert a == b and a != c and a != greedy


def test_cli_generate_json(tiny_llama_dir):
    code, out, err = run_cli("generate", str(tiny_llama_dir), "--prompt", "Hello", "--chat", "--max-tokens", "12",
                             "--ignore-eos", "--threads", "1", "--no-mbu", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["runner"] == "FastLM" and r["threads"] == 1
    assert r["stats"]["output_tokens"] == 12 == len(r["token_ids"])
    assert r["stats"]["mbu"] is None and r["stats"]["bandwidth_source"].startswith("n/a")
    assert "excludes the first token" in r["definitions"]["tpot_s"]
    # the chat template was applied: greedy output from the templated prompt matches HF generate
    tok = byte_tokenizer(384)
    ids = tok(tok.apply_chat_template([{"role": "user", "content": "Hello"}], tokenize=False,
                                      add_generation_prompt=True), add_special_tokens=False)["input_ids"]
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    hf.generation_config.eos_token_id = None
    assert r["token_ids"] == _hf_greedy(hf, list(ids), 12)


def test_cli_generate_streams_text_and_prints_definitions(tiny_llama_dir):
    code, out, err = run_cli("generate", str(tiny_llama_dir), "--prompt", "Hi", "--max-tokens", "6", "--threads", "1",
                             "--no-mbu")
    assert code == 0, err
    assert "TTFT" in out and "includes prefill" in out and "excludes the first" in out and "MBU" in out


@pytest.mark.parametrize("args, msg", [
    (["--temperature", "-1"], "temperature"),
    (["--top-p", "0"], "--top-p"),
    (["--max-tokens", "0"], "max-tokens"),
    (["--threads", "lots"], "--threads"),
])
def test_cli_generate_bad_input(tiny_llama_dir, args, msg):
    code, out, err = run_cli("generate", str(tiny_llama_dir), "--prompt", "x", *args)
    assert code == 2 and msg in err and "Traceback" not in err
