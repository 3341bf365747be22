"""`aipc estimate` end to end: breakdown, catalog fit list, JSON, bad input, no torch import."""

import json
import subprocess
import sys

import pytest
from helpers import run_cli

from aipc.errors import AipcError
from aipc.spec import load_workload_file


def test_llama8b_inference_8k_context_json():
    code, out, err = run_cli("estimate", "llama-3.1-8b", "--task", "infer", "--precision", "bf16", "--context", "8192", "--json")
    assert code == 0, err
    r = json.loads(out)
    est = r["estimates"][0]
    comps = est["memory"]["components"]
    assert sum(comps.values()) == est["memory"]["peak_bytes"]
    # KV cache for 8192 tokens, GQA 8x128 heads, 32 layers, bf16: exactly 1 GiB
    assert est["memory"]["phases"]["decode"] >= comps["weights"] + 2 * 32 * 8 * 128 * 2 * 8192
    assert "h100-sxm" in r["fits_on"] and "rtx-4090" in r["fits_on"]
    assert "rtx-4060-ti-16gb" not in r["fits_on"]
    assert len(r["catalog"]) >= 30


def test_qlora_70b_on_a_24gb_gpu_says_why():
    code, out, err = run_cli("estimate", "llama-3.1-70b", "--task", "train", "--method", "qlora", "--device", "rtx-4090")
    assert code == 0, err
    assert "does not fit" in out and "24.0 GiB" in out
    assert "weights" in out and "activations" in out


def test_table_output_and_search():
    code, out, err = run_cli("estimate", "qwen2.5-0.5b", "--task", "train", "--method", "lora", "--device", "rtx-4090", "--search")
    assert code == 0, err
    assert "fits:" in out and "largest batch" in out


def test_workload_file(tmp_path):
    p = tmp_path / "w.toml"
    p.write_text('[workload]\nmodel = "qwen2.5-7b"\ntask = "train"\nmethod = "lora"\nseq_len = 1024\n')
    code, out, err = run_cli("estimate", str(p), "--device", "h100-sxm", "--json")
    assert code == 0, err
    w = json.loads(out)["workload"]
    assert (w["model"], w["method"], w["seq_len"]) == ("qwen2.5-7b", "lora", 1024)


def test_bad_inputs_exit_2_one_line():
    for args in (["estimate", "llama-3.1-8b", "--batch", "0"], ["estimate", "lama-3.1-8b"],
                 ["estimate", "llama-3.1-8b", "--precision", "fp12"], ["estimate", "llama-3.1-8b", "--device", "rtx-9999"],
                 ["estimate", "gpt2", "--task", "train", "--method", "lora", "--lora-targets", "q_proj"]):
        code, out, err = run_cli(*args)
        assert code == 2, (args, out, err)
        assert err.startswith("error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, _, err = run_cli("estimate", "lama-3.1-8b")
    assert "llama-3.1-8b" in err  # closest match named


def test_estimate_does_not_import_torch():
    code = ("import sys; from aipc.cli import main; "
            "rc = main(['estimate', 'llama-3.1-8b', '--device', 'rtx-4090', '--json']); "
            "assert rc == 0; assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


def test_hf_config_under_another_file_name_is_a_model(tmp_path):
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256,
           "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2,
           "vocab_size": 32000, "max_position_embeddings": 2048, "transformers_version": "4.45.0"}
    p = tmp_path / "llama.json"
    p.write_text(json.dumps(cfg))
    code, out, err = run_cli("estimate", str(p), "--device", "rtx-4090", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["model"] == "llama" and r["estimates"][0]["fits"]
    # a workload file named like a config is still a workload; a config passed as --workload-file says what it is
    w = tmp_path / "job.json"
    w.write_text(json.dumps({"model": str(p), "task": "train", "seq_len": 128}))
    code, out, err = run_cli("estimate", str(w), "--device", "rtx-4090", "--json")
    assert code == 0, err
    assert json.loads(out)["workload"]["task"] == "train"
    with pytest.raises(AipcError, match="Hugging Face model config"):
        load_workload_file(p)


def test_extra_catalog_device_resolves_with_device_flag(tmp_path):
    lab = tmp_path / "lab.toml"
    lab.write_text('[devices.lab-box]\nlabel = "Lab box"\nvendor = "nvidia"\nkind = "gpu"\ncategory = "workstation"\n'
                   'memory_gib = {value = 48, source = "lab inventory", as_of = "2026-01-01"}\n'
                   'bandwidth_gbs = {value = 900, source = "lab inventory", as_of = "2026-01-01"}\n'
                   'peak_tflops.bf16 = {value = 150, source = "lab inventory", as_of = "2026-01-01"}\n')
    code, out, err = run_cli("estimate", "qwen2.5-0.5b", "--catalog", str(lab), "--device", "lab-box", "--json")
    assert code == 0, err
    assert json.loads(out)["estimates"][0]["device"] == "lab-box"
    code, out, err = run_cli("estimate", "qwen2.5-0.5b", "--device", "lab-box")
    assert code == 2 and "unknown device" in err.lower()
