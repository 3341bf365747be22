"""resolve(): catalog names, config.json files, local folders with exact weights from safetensors headers."""

from __future__ import annotations

import json
import struct

import pytest

from aipc.errors import AipcError
from aipc.models import resolve
from aipc.models.load import read_safetensors_header
from aipc.models.tiny import build_tiny, make_tiny_folder


def _bytes_by_safetensors_library(files) -> tuple[int, int]:
    """(bytes, elements) as the safetensors library itself reports them (lazy, metadata only)."""
    from safetensors import safe_open

    nbytes = n = 0
    for f in files:
        with safe_open(str(f), framework="pt") as fh:
            for k in fh.keys():
                sl = fh.get_slice(k)
                count = 1
                for d in sl.get_shape():
                    count *= d
                n += count
                nbytes += count * {"F32": 4, "BF16": 2, "F16": 2}[sl.get_dtype()]
    return nbytes, n


def test_folder_gives_exact_weight_bytes_and_dtypes(tiny_llama_dir):
    spec = resolve(tiny_llama_dir)
    files = sorted(tiny_llama_dir.glob("*.safetensors"))
    nbytes, n = _bytes_by_safetensors_library(files)
    assert spec.weight_bytes == nbytes == 4 * spec.param_count()  # fp32, untied: every parameter saved once
    assert spec.weight_dtypes == {"F32": n} and n == spec.param_count()
    # the header length prefix: file = 8 + header + tensor bytes
    size = files[0].stat().st_size
    (hlen,) = struct.unpack("<Q", files[0].read_bytes()[:8])
    assert size == 8 + hlen + spec.weight_bytes
    assert spec.name == tiny_llama_dir.name and spec.model_type == "llama" and spec.source.endswith("config.json")


def test_sharded_bf16_folder_is_followed_through_the_index(tmp_path):
    import torch

    model = build_tiny("qwen2").to(torch.bfloat16)  # tied embeddings: saved once
    model.save_pretrained(tmp_path, max_shard_size="40KB")
    shards = sorted(tmp_path.glob("*.safetensors"))
    assert len(shards) > 1 and (tmp_path / "model.safetensors.index.json").is_file()
    spec = resolve(str(tmp_path))
    nbytes, n = _bytes_by_safetensors_library(shards)
    assert spec.weight_dtypes == {"BF16": n} and spec.weight_bytes == nbytes == 2 * n
    assert n == spec.param_count() == sum(p.numel() for p in model.parameters())


def test_config_file_and_catalog_refs(tiny_llama_dir):
    by_file = resolve(str(tiny_llama_dir / "config.json"))
    assert by_file.weight_bytes is None and by_file.param_count() == resolve(tiny_llama_dir).param_count()
    assert resolve("Qwen/Qwen2.5-7B").name == "qwen2.5-7b"
    assert resolve(" SmolLM2-135M ").hf_id == "HuggingFaceTB/SmolLM2-135M"


def test_missing_paths_say_which(tmp_path):
    with pytest.raises(AipcError, match=r"^no such file or folder: .*nope/config.json;"):
        resolve(str(tmp_path / "nope" / "config.json"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(AipcError, match=r"model folder .*empty has no config.json"):
        resolve(tmp_path / "empty")
    with pytest.raises(AipcError, match="unknown model 'org/not-a-model'"):
        resolve("org/not-a-model")


def test_index_naming_a_missing_shard(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4}))
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors"}}))
    with pytest.raises(AipcError, match="names shard files that are missing: model-00001-of-00002.safetensors"):
        resolve(tmp_path)


def test_bad_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(AipcError, match=r"config.json: not valid JSON \(line 1"):
        resolve(bad)
    bad.write_text(json.dumps({"model_type": "llama", "hidden_size": "4096"}))
    with pytest.raises(AipcError) as ei:
        resolve(tmp_path)
    assert str(ei.value) == (f"{bad}: field 'num_hidden_layers' is missing; fix the config or pass another model")
    junk = tmp_path / "model.safetensors"
    junk.write_bytes(struct.pack("<Q", 10) + b"{broken")
    with pytest.raises(AipcError, match="truncated header"):
        read_safetensors_header(junk)
    junk.write_bytes(struct.pack("<Q", 2**40))
    with pytest.raises(AipcError, match="header length .* is not plausible"):
        read_safetensors_header(junk)


def test_folder_without_tokenizer_still_loads(tmp_path):
    folder = make_tiny_folder(tmp_path / "g", "gpt2", tokenizer=False)
    spec = resolve(folder)
    assert spec.model_type == "gpt2" and spec.weight_bytes == 4 * spec.param_count()
