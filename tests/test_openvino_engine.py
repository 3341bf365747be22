"""The OpenVINO engine for real on the CPU: tiny Qwen2 models exported inside the test by optimum-intel
(weights compressed by NNCF, tokenizer converted by openvino-tokenizers), then run by aipc's runner
over OpenVINO infer requests and by OpenVINO GenAI's own LLMPipeline. Logits are compared with the
transformers model the IR came from. GPU / NPU tests run where OpenVINO sees those devices."""

from __future__ import annotations

import asyncio
import json
import pytest
import torch

ov = pytest.importorskip("openvino", reason="OpenVINO is not installed (./setup.sh installs it)")
from aipc.engines import openvino_export as ovx  # noqa: E402
from aipc.errors import AipcError  # noqa: E402

F32 = {"INFERENCE_PRECISION_HINT": "f32"}  # exact math for comparisons (this CPU may default to bf16)


@pytest.fixture(scope="session")
def hf_model(tiny_qwen_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_qwen_dir).eval()


def _ref_logits(hf_model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return hf_model(torch.tensor([ids])).logits[0, -1]


def test_export_writes_ir_tokenizer_and_nothing_else(ov_ir):
    from aipc.engines.openvino import weight_format_of

    for q, folder in ov_ir.items():
        names = {p.name for p in folder.iterdir()}
        assert {"openvino_model.xml", "openvino_model.bin", "openvino_tokenizer.xml", "openvino_detokenizer.xml",
                "config.json", "tokenizer.json"} <= names
        assert not any(n.startswith(("_", ".aipc")) for n in names), names  # no scratch files, no random mark
        assert not list(folder.parent.glob(".*aipc-tmp*"))
        assert weight_format_of(folder) == q


def test_runner_logits_match_transformers(ov_ir, hf_model):
    from aipc.engines.openvino_runner import OVRunner

    ids = [5, 17, 33, 99, 100, 3]
    tol = {"fp16": 0.01, "int8": 0.05, "int4": 0.25}  # of the logits' largest magnitude
    sizes = {}
    for q, folder in ov_ir.items():
        r = OVRunner(folder, config=F32, max_batch=2)
        assert r.sliced  # lm_head runs on the last position only
        scale = float(_ref_logits(hf_model, ids).abs().max())
        got = r.prefill(0, torch.tensor(ids))
        assert got.shape == (384,) and got.dtype == torch.float32
        assert float((got - _ref_logits(hf_model, ids)).abs().max()) < tol[q] * scale
        step = r.decode1(7, len(ids), 0)
        assert float((step - _ref_logits(hf_model, ids + [7])).abs().max()) < tol[q] * scale
        r.prefill(1, torch.tensor(ids[:3]))  # another slot, another length: its own cache
        both = r.decode(torch.tensor([8, 9]), torch.tensor([len(ids) + 1, 3]), active=[0, 1])
        assert float((both[1] - _ref_logits(hf_model, ids[:3] + [9])).abs().max()) < tol[q] * scale
        assert float((both[0] - _ref_logits(hf_model, ids + [7, 8])).abs().max()) < tol[q] * scale
        with pytest.raises(ValueError, match="cannot decode at position"):
            r.decode1(1, 99, 0)
        sizes[q] = r.weight_bytes_per_step()
    assert sizes["int4"] < sizes["int8"] < sizes["fp16"]
    short = OVRunner(ov_ir["int8"], config=F32, max_len=len(ids) + 1)
    short.prefill(0, torch.tensor(ids))
    short.decode1(7, len(ids), 0)  # the last position of the context
    with pytest.raises(ValueError, match="past the context"):
        short.decode1(8, len(ids) + 1, 0)
    # the tied embedding is read in full by the lm_head; norms and biases (< 1 KiB here) are not counted
    n_params = sum(p.numel() for n, p in hf_model.named_parameters() if "norm" not in n and "bias" not in n)
    assert sizes["fp16"] == 2 * n_params


def test_aipc_generate_equals_genai_pipeline(ov_ir):
    from aipc.engines.openvino import load
    from aipc.engines.openvino_genai import GenAIGenerator
    from aipc.engines.generate import encode_prompt, generate
    from aipc.engines.sampling import SamplingParams

    loaded = load(str(ov_ir["int8"]), config=F32)
    assert (loaded.engine, loaded.weight_format, loaded.device, loaded.random_weights) == ("openvino", "int8", "cpu", False)
    ids = encode_prompt(loaded.tokenizer, "hello world")
    params = SamplingParams(max_tokens=12, ignore_eos=True)
    ours = generate(loaded.runner, loaded.tokenizer, ids, params, model=loaded.model)
    genai = GenAIGenerator(loaded.path, config=F32)
    theirs = genai.generate(loaded.tokenizer, ids, params, weight_bytes=loaded.runner.weight_bytes_per_step())
    assert ours.token_ids == theirs.token_ids and len(ours.token_ids) == 12
    assert ours.text == theirs.text
    for s in (ours.stats, theirs.stats):
        assert s.output_tokens == 12 and s.finish_reason == "length" and s.ttft_s > 0 and s.tpot_s > 0
        assert s.bandwidth_bytes_per_s == pytest.approx(
            (s.weight_bytes_per_step + s.kv_bytes_per_step) / s.tpot_s)
    stop = theirs.text[3:5]
    cut = genai.generate(loaded.tokenizer, ids, SamplingParams(max_tokens=12, ignore_eos=True, stop=(stop,)))
    assert cut.stats.finish_reason == "stop" and cut.text == theirs.text[: theirs.text.index(stop)]


def test_batching_engine_runs_on_the_openvino_runner(ov_ir):
    """aipc's continuous-batching engine (the server's) over OVRunner: concurrent = alone."""
    from aipc.engines.openvino_runner import OVRunner
    from aipc.serve.engine import Engine, Request
    from aipc.engines.sampling import SamplingParams

    from aipc.engines.openvino import _generation_config, _tokenizer

    runner = OVRunner(ov_ir["int4"], config=F32, max_batch=3, max_len=128)
    tok = _tokenizer(ov_ir["int4"], runner.vocab_size)
    engine = Engine(runner, tok, model=_generation_config(ov_ir["int4"]))
    engine.start()
    prompts = [[5, 6, 7], [9, 10, 11, 12, 13], [20], [30, 31]]

    async def run(batch):
        loop = asyncio.get_running_loop()
        reqs = [Request(prompt_ids=p, params=SamplingParams(max_tokens=10, ignore_eos=True), loop=loop) for p in batch]
        for r in reqs:
            engine.submit(r)
        out = []
        for r in reqs:
            ids = []
            while (ev := await r.events.get())[0] != "done":
                ids.append(ev[2])
            out.append(ids)
        return out

    alone = [asyncio.run(run([p]))[0] for p in prompts]
    together = asyncio.run(run(prompts))
    engine.stop(10)
    assert together == alone and all(len(x) == 10 for x in alone)


def test_convert_from_config_builds_random_weights(tmp_path):
    from aipc.engines.openvino import load
    from aipc.models.tiny import tiny_config

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(tiny_config("llama")))
    out = ovx.convert(str(cfg), "int8", tmp_path / "ov_ir")
    assert (out / ovx.RANDOM_MARK).is_file() and not (out / "_source").exists()
    loaded = load(str(out))
    assert loaded.random_weights and loaded.weight_format == "int8"
    assert loaded.runner.vocab_size == 384


def test_bad_input_one_line_and_nothing_written(tmp_path, tiny_qwen_dir, ov_ir):
    with pytest.raises(AipcError, match="unknown OpenVINO weight format 'q4_k_m'"):
        ovx.convert(str(tiny_qwen_dir), "q4_k_m", tmp_path / "a")
    with pytest.raises(AipcError, match="already exists"):
        ovx.convert(str(tiny_qwen_dir), "int8", ov_ir["int8"])
    with pytest.raises(AipcError, match="already an OpenVINO IR folder"):
        ovx.convert(str(ov_ir["int8"]), "int8", tmp_path / "b")
    with pytest.raises(AipcError, match="unknown model"):
        ovx.convert("no-such-model-xyz", "int8", tmp_path / "c")
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny_qwen_dir.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    weights = (tiny_qwen_dir / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(weights[: len(weights) // 2])  # header intact, tensors cut
    with pytest.raises(AipcError, match="truncated") as e:  # the loader's check, before the exporter starts
        ovx.convert(str(broken), "int8", tmp_path / "d")
    assert "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]  # nothing half-written
    from aipc.engines.openvino import load

    with pytest.raises(AipcError, match="holds int8 weights, not int4"):
        load(str(ov_ir["int8"]), weight_format="int4")
    with pytest.raises(AipcError, match="unknown OpenVINO device"):
        load(str(ov_ir["int8"]), device="TPU")


def test_pickle_weights_need_allow_pickle(tmp_path, tiny_qwen_dir):
    pickled = tmp_path / "pickled"  # pickle weights only: refused unless allowed (aipc's loader rule)
    pickled.mkdir()
    for f in tiny_qwen_dir.iterdir():
        if f.suffix != ".safetensors":
            (pickled / f.name).write_bytes(f.read_bytes())
    (pickled / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(AipcError, match="only pickle weights.*--allow-pickle"):
        ovx.convert(str(pickled), "int8", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("device", ["GPU", "NPU"])
def test_accelerator_devices(ov_ir, device):
    if device not in ov.Core().available_devices:
        pytest.skip(f"OpenVINO sees no {device} here (devices: {', '.join(ov.Core().available_devices)})")
    from aipc.engines.openvino import load
    from aipc.engines.generate import generate
    from aipc.engines.sampling import SamplingParams

    loaded = load(str(ov_ir["int4"]), device=device)
    params = SamplingParams(max_tokens=8, ignore_eos=True)
    if loaded.runner is not None:
        res = generate(loaded.runner, loaded.tokenizer, [5, 6, 7], params, model=loaded.model)
    else:
        res = loaded.generator.generate(loaded.tokenizer, [5, 6, 7], params)
    assert len(res.token_ids) == 8 and res.stats.tpot_s > 0


def test_missing_device_is_one_line(ov_ir):
    from aipc.engines.openvino import check_device

    absent = [d for d in ("GPU", "NPU") if d not in ov.Core().available_devices]
    if not absent:
        pytest.skip("OpenVINO sees a GPU and an NPU here")
    with pytest.raises(AipcError, match=f"OpenVINO device {absent[0]} is not available here"):
        check_device(absent[0].lower())


def test_threads_are_set(ov_ir):
    from aipc.engines.openvino_runner import OVRunner

    assert OVRunner(ov_ir["int8"], threads=1).threads == 1
