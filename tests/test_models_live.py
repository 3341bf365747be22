"""The one model loader (aipc.models.live.load_or_build): each kind of reference, the dtype map, pickle
refusal and opt-in, incomplete weights; and every bad-weights case as one `error:` line through the
real CLI in a subprocess (generate, serve, train, bench, validate)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from aipc.errors import AipcError
from aipc.models.dtypes import short_name, torch_dtype
from aipc.models.live import load_or_build
from aipc.models.tiny import make_tiny_folder, tiny_config


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _pickle_only(src, dst, *, seed_model=None):
    """A copy of ``src`` whose weights are only pytorch_model.bin (optionally another model's)."""
    shutil.copytree(src, dst)
    sd = _state(seed_model) if seed_model is not None else _state(load_or_build(src).model)
    (dst / "model.safetensors").unlink()
    torch.save(sd, dst / "pytorch_model.bin")
    return dst


# ------------------------------------------------------------------ the rules, in-process

def test_folder_with_weights_loads_them_and_its_tokenizer(tiny_llama_dir):
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    live = load_or_build(tiny_llama_dir, dtype="fp32", device="cpu", tokenizer=True)
    saved = load_file(str(tiny_llama_dir / "model.safetensors"))
    assert not live.random_weights and live.weights == "local weights"
    assert live.name == tiny_llama_dir.name and live.dtype == "fp32" and live.device == "cpu"
    assert not live.model.training and live.spec.model_type == "llama"
    assert _same({k: v for k, v in _state(live.model).items() if k in saved}, saved)
    folder_tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    assert live.tokenizer("héllo")["input_ids"] == folder_tok("héllo")["input_ids"]
    assert live.tokenizer.chat_template == folder_tok.chat_template


def test_config_refs_build_random_weights_from_the_seed(tmp_path):
    folder = tmp_path / "cfg-only"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(tiny_config("qwen2")))
    by_folder = load_or_build(folder, seed=3, tokenizer=True)
    by_file = load_or_build(str(folder / "config.json"), seed=3)
    other_seed = load_or_build(folder, seed=4)
    assert by_folder.random_weights and by_folder.weights == "random weights"
    assert by_folder.name == "cfg-only" and by_file.name == str(folder / "config.json")
    assert _same(_state(by_folder.model), _state(by_file.model))  # same architecture, same seed: same start
    assert not _same(_state(by_folder.model), _state(other_seed.model))
    assert by_folder.tokenizer.decode(by_folder.tokenizer("abc", add_special_tokens=False)["input_ids"]) == "abc"


def test_catalog_name_and_hf_id_build_the_real_architecture():
    from aipc.models import resolve

    by_id = load_or_build("openai-community/gpt2", dtype="bf16", device="cpu")
    assert by_id.random_weights and by_id.dtype == "bf16" and by_id.spec.name == "gpt2"
    assert type(by_id.model).__name__ == "GPT2LMHeadModel"
    assert sum(p.numel() for p in by_id.model.parameters()) == resolve("gpt2").param_count()
    assert {p.dtype for p in by_id.model.parameters()} == {torch.bfloat16}


def test_one_dtype_map(tiny_llama_dir):
    assert torch_dtype("half") is torch.float16 and torch_dtype("BFloat16") is torch.bfloat16
    assert torch_dtype("torch.float32") is torch.float32 and torch_dtype(torch.float16) is torch.float16
    assert short_name(torch.bfloat16) == "bf16" and short_name("float16") == "fp16"
    with pytest.raises(AipcError, match="unknown dtype 'fp8'; use one of fp32, fp16, bf16"):
        torch_dtype("fp8")
    live = load_or_build(tiny_llama_dir, dtype="bfloat16", device="cpu")
    assert live.dtype == "bf16" and {p.dtype for p in live.model.parameters()} == {torch.bfloat16}
    assert load_or_build(tiny_llama_dir, device="cpu").dtype == "fp32"  # default on the CPU


def test_encoders_load_unless_the_verb_needs_a_decoder(tmp_path):
    folder = make_tiny_folder(tmp_path / "bert", "bert", tokenizer=False)
    live = load_or_build(folder)
    assert type(live.model).__name__ == "BertModel" and not live.random_weights
    with pytest.raises(AipcError, match=r"is an encoder \(bert\); generation needs a decoder"):
        load_or_build(folder, need_decoder="generation")


def test_pickle_only_weights_are_refused_unless_allowed(tiny_llama_dir, tmp_path):
    good = _state(load_or_build(tiny_llama_dir).model)
    folder = _pickle_only(tiny_llama_dir, tmp_path / "pk")
    with pytest.raises(AipcError, match=r"only pickle weights \(pytorch_model.bin\).*--allow-pickle"):
        load_or_build(folder)
    live = load_or_build(folder, allow_pickle=True)
    assert not live.random_weights and _same(_state(live.model), good)


def test_safetensors_win_over_pickle_beside_them(tiny_llama_dir, tmp_path):
    from aipc.models.tiny import build_tiny

    folder = tmp_path / "both"
    shutil.copytree(tiny_llama_dir, folder)
    torch.save(_state(build_tiny("llama", seed=7)), folder / "pytorch_model.bin")  # other weights, as pickle
    live = load_or_build(folder)  # no --allow-pickle needed: the pickle file is never read
    assert _same(_state(live.model), _state(load_or_build(tiny_llama_dir).model))


def test_incomplete_weights_are_refused_not_filled_with_random_values(tiny_llama_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "part"
    shutil.copytree(tiny_llama_dir, folder)
    saved = load_file(str(folder / "model.safetensors"))
    save_file({k: v for k, v in saved.items() if "layers.1." not in k}, str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    with pytest.raises(AipcError, match=r"lack \d+ of the model's tensors \(model\.layers\.1\."):
        load_or_build(folder)


# ------------------------------------------------------------------ bad weights through the CLI

@pytest.fixture(scope="module")
def bad_folders(tmp_path_factory, tiny_llama_dir):
    root = tmp_path_factory.mktemp("bad-models")
    out = {}

    def copy(name):
        out[name] = dst = root / name
        shutil.copytree(tiny_llama_dir, dst)
        return dst

    st = copy("truncated") / "model.safetensors"
    st.write_bytes(st.read_bytes()[: st.stat().st_size // 2])
    st = copy("bad-header") / "model.safetensors"
    st.write_bytes(struct.pack("<Q", 40) + b"{this is not json" + st.read_bytes()[25:])
    cfg = copy("negative-layers") / "config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "num_hidden_layers": -3}))
    out["pickle-only"] = _pickle_only(tiny_llama_dir, root / "pickle-only")
    out["corrupt-pickle"] = _pickle_only(tiny_llama_dir, root / "corrupt-pickle")
    binf = out["corrupt-pickle"] / "pytorch_model.bin"
    binf.write_bytes(binf.read_bytes()[:-2000])  # a cut-off download: the zip's directory is gone
    (root / "data.txt").write_text("one line of training text, long enough to pack a sequence or two.\n" * 8)
    return root


def _argv(verb: str, folder, root) -> list[str]:
    return {"generate": ["generate", str(folder), "-p", "hi", "--max-tokens", "2", "--no-mbu", "--threads", "1"],
            "serve": ["serve", str(folder), "--port", "0"],
            "train": ["train", str(folder), "--data", str(root / "data.txt"), "--out", str(root / f"run-{folder.name}"),
                      "--steps", "1", "--seq-len", "16", "--device", "cpu", "--no-preflight", "--no-mfu"],
            "bench": ["bench", str(folder), "--quick", "--no-store", "--device", "cpu", "--scenario", "prefill"],
            "validate": ["validate", str(folder), "--task", "infer", "--prompt-tokens", "8", "--gen-tokens", "2"]}[verb]


CASES = [  # (verb, folder, extra flags, what the one line must say)
    ("generate", "truncated", [], "truncated: the header describes"),
    ("serve", "truncated", [], "truncated: the header describes"),
    ("train", "truncated", [], "truncated: the header describes"),
    ("generate", "bad-header", [], "header is not valid JSON"),
    ("serve", "bad-header", [], "header is not valid JSON"),
    ("train", "bad-header", [], "header is not valid JSON"),
    ("generate", "negative-layers", [], "field 'num_hidden_layers' must be a positive integer (got -3)"),
    ("generate", "corrupt-pickle", ["--allow-pickle"], "cannot load the weights in"),
    *[(verb, "pickle-only", [], "--allow-pickle if you trust the source")
      for verb in ("generate", "serve", "train", "bench", "validate")],
]


def test_bad_weights_are_one_error_line_on_every_verb(bad_folders):
    def run(case):
        verb, name, extra, _ = case
        cmd = [sys.executable, "-m", "aipc.cli", *_argv(verb, bad_folders / name, bad_folders), *extra]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(3) as pool:  # each run is mostly imports; 3 at a time on 2 cores
        results = list(pool.map(run, CASES))
    for (verb, name, extra, want), r in zip(CASES, results):
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        where = f"aipc {verb} {name} {' '.join(extra)}: rc {r.returncode}, stderr {r.stderr[-2000:]!r}"
        assert r.returncode == 2 and "Traceback" not in r.stderr, where
        assert len(lines) == 1 and lines[0].startswith("error: ") and want in lines[0], where


def test_pickle_opt_in_generates_and_trains(bad_folders, tmp_path):
    """--allow-pickle: the same pickle-only folder generates (subprocess) and trains (in-process)."""
    from helpers import run_cli

    folder = bad_folders / "pickle-only"
    r = subprocess.run([sys.executable, "-m", "aipc.cli", *_argv("generate", folder, bad_folders), "--allow-pickle",
                        "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["random_weights"] is False and out["stats"]["output_tokens"] >= 1
    code, out, err = run_cli(*_argv("train", folder, bad_folders)[:4], "--out", str(tmp_path / "run"), "--steps", "1",
                             "--seq-len", "16", "--device", "cpu", "--no-preflight", "--no-mfu", "--allow-pickle",
                             "--json")
    assert code == 0, err
    assert json.loads(out)["steps"] == 1
