"""``aipc models``: list, filter, one model, JSON, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import run_cli

ROW_KEYS = {"name", "hf_id", "model_type", "kind", "params", "active_params", "published_params",
            "published_active_params", "layers", "hidden_size", "heads", "kv_heads", "head_dim", "intermediate_size",
            "vocab_size", "context_tokens", "tie_embeddings", "sliding_window", "sliding_layers", "experts",
            "experts_per_token", "attention", "source", "published_source", "as_of"}


def test_json_lists_at_least_30_with_stable_keys():
    code, out, err = run_cli("models", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert list(data) == ["models"] and len(data["models"]) >= 30
    for r in data["models"]:
        assert set(r) == ROW_KEYS
        assert isinstance(r["params"], int) and r["params"] >= r["active_params"] > 0
    by = {r["name"]: r for r in data["models"]}
    assert by["llama-3.1-8b"]["params"] == 8_030_261_248 and by["llama-3.1-8b"]["attention"] == "gqa"
    assert by["deepseek-v2-lite"]["attention"] == "mla" and by["mixtral-8x7b"]["kind"] == "moe 2/8"


def test_filter_by_substring():
    code, out, _ = run_cli("models", "qwen3", "--json")
    names = [r["name"] for r in json.loads(out)["models"]]
    assert code == 0 and names and all("qwen3" in n for n in names) and "qwen3-30b-a3b" in names
    code, out, _ = run_cli("models", "gemma2", "--json")  # matches the model_type
    assert {r["name"] for r in json.loads(out)["models"]} == {"gemma-2-2b", "gemma-2-9b", "gemma-2-27b"}


def test_one_model_shows_spec_and_breakdown():
    code, out, _ = run_cli("models", "Qwen/Qwen3-30B-A3B", "--json")
    m = json.loads(out)["model"]
    assert code == 0 and m["name"] == "qwen3-30b-a3b"
    assert m["param_breakdown"]["total"] == m["params"] and m["param_breakdown"]["experts"] > 0.9 * m["params"]
    assert m["spec"]["num_experts"] == 128 and m["linear_modules"]["q_proj"] == [2048, 4096, 48]
    assert m["expert_matrices"]["experts.down_proj"] == [768, 2048, 48 * 128]
    code, out, _ = run_cli("models", "llama-3.2-1b")
    assert code == 0 and "parameters by part" in out and "1,235,814,400" in out


def test_table_for_people():
    code, out, _ = run_cli("models")
    assert code == 0 and "llama-3.1-8b" in out and "deepseek-v2-lite" in out and "moe 8/128" in out


def test_local_folder(tiny_llama_dir):
    code, out, _ = run_cli("models", str(tiny_llama_dir), "--json")
    m = json.loads(out)["model"]
    assert code == 0 and m["weight_bytes"] == 4 * m["params"] and m["weight_dtypes"] == {"F32": m["params"]}


def test_unknown_model_is_one_line_exit_2():
    code, out, err = run_cli("models", "lamma-3.1-8b")
    assert code == 2 and out == ""
    assert err.startswith("error: unknown model 'lamma-3.1-8b'; did you mean llama-3.1-8b")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, _, err = run_cli("models", "/no/such/config.json")
    assert code == 2 and err.startswith("error: no such file or folder: /no/such/config.json")


def test_models_does_not_import_torch():
    code = ("import sys, io, contextlib; from aipc.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): rc = main(['models', '--json'])\n"
            "assert rc == 0 and 'torch' not in sys.modules and 'transformers' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
