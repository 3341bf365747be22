"""``aipc convert --to gguf`` and GGUF files given to ``aipc generate``, through the real CLI in a
subprocess: what it writes, and bad input (one ``error:`` line, exit 2, nothing half-written)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aipc.models.tiny import tiny_config


def _aipc(*args, env=None, preexec=None, timeout=300):
    env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "aipc", *map(str, args)], capture_output=True, text=True,
                          env=env, preexec_fn=preexec, timeout=timeout)


def _one_error(r, *needles):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if "aipc-tmp" in p.name or p.suffix == ".gguf"]


def test_convert_folder_to_q4_k_m_and_generate(tiny_llama_dir, tmp_path):
    out = tmp_path / "tiny-q4.gguf"
    r = _aipc("convert", tiny_llama_dir, "--to", "gguf", "--quant", "q4_k_m", "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["output"] == str(out) and res["quant"] == "q4_k_m" and not res["random_weights"]
    assert out.read_bytes()[:4] == b"GGUF" and res["bytes"] == out.stat().st_size
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary files left
    g = _aipc("generate", out, "--engine", "llamacpp", "-p", "Hello", "--max-tokens", "12", "--ignore-eos",
              "--no-mbu", "--json")
    assert g.returncode == 0, g.stderr
    gen = json.loads(g.stdout)
    assert gen["engine"] == "llamacpp" and gen["runner"] == "LlamaCppRunner" and gen["weight_format"] == "q4_k_m"
    assert len(gen["token_ids"]) == 12 and gen["stats"]["output_tokens"] == 12 and gen["stats"]["tpot_s"] > 0
    assert gen["threads_note"].startswith("auto: ")  # threads chosen by measurement
    again = _aipc("convert", tiny_llama_dir, "-o", out)
    _one_error(again, "already exists", "--force")


def test_convert_config_random_weights_marked(tmp_path):
    from aipc.engines import load

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(tiny_config("qwen2", hidden_size=256, intermediate_size=512)))
    out = tmp_path / "q.gguf"
    r = _aipc("convert", cfg, "--quant", "q8_0", "-o", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "random weights" in r.stdout and out.is_file()
    lm = load(out)
    assert lm.random_weights and lm.weight_format == "q8_0" and lm.name == "q"


def test_bad_input_one_line_exit_2(tiny_llama_dir, tiny_ggufs, tmp_path):
    _one_error(_aipc("convert", "no-such-model-xyz"), "unknown model")
    _one_error(_aipc("convert", tiny_llama_dir, "--quant", "q9_k"), "unknown GGUF quant type 'q9_k'", "q4_k_m")
    _one_error(_aipc("convert", tiny_llama_dir, "--to", "onnx"), "--to must be one of gguf")
    _one_error(_aipc("convert", "bert-base-uncased"), "encoder", "decoder")
    _one_error(_aipc("convert", tiny_llama_dir, "-o", tmp_path / "missing" / "x.gguf"), "does not exist")
    _one_error(_aipc("convert", tiny_llama_dir, "-o", tmp_path), "is a folder")
    _one_error(_aipc("convert", tiny_ggufs["f32"]), "already a GGUF file")
    opt = tmp_path / "opt"
    opt.mkdir()
    (opt / "config.json").write_text(json.dumps({"model_type": "opt", "hidden_size": 64, "num_hidden_layers": 2,
                                                 "num_attention_heads": 4, "vocab_size": 384}))
    _one_error(_aipc("convert", opt / "config.json", "-o", tmp_path / "o.gguf"), "'opt' is not supported")
    pickled = tmp_path / "pickled"  # pickle weights only: refused unless --allow-pickle (aipc's loader rule)
    pickled.mkdir()
    for f in tiny_llama_dir.iterdir():
        if f.suffix != ".safetensors":
            (pickled / f.name).write_bytes(f.read_bytes())
    (pickled / "pytorch_model.bin").write_bytes(b"not read")
    _one_error(_aipc("convert", pickled, "-o", tmp_path / "p.gguf"), "pickle", "--allow-pickle")
    assert _leftovers(tmp_path) == []


def _broken_ggufs(src: Path, folder: Path) -> dict[str, Path]:
    data = src.read_bytes()
    key = b"general.architecture" + (8).to_bytes(4, "little") + (5).to_bytes(8, "little") + b"llama"
    assert data.count(key) == 1
    files = {"truncated": data[: len(data) // 2], "cut header": data[:200], "not gguf": b"hello, not a model\n",
             "bad version": b"GGUF" + bytes([0x7F] * 64), "unknown arch": data.replace(key, key[:-5] + b"llamx")}
    out = {}
    for name, content in files.items():
        out[name] = folder / (name.replace(" ", "-") + ".gguf")
        out[name].write_bytes(content)
    return out


@pytest.mark.parametrize("case,needle", [
    ("truncated", "not within the file bounds"), ("cut header", "exceeds remaining file size"),
    ("not gguf", "is not a GGUF file"), ("bad version", "only supports up to version"),
    ("unknown arch", "unknown model architecture: 'llamx'")])
def test_broken_gguf_files(tiny_ggufs, tmp_path, case, needle):
    path = _broken_ggufs(tiny_ggufs["f32"], tmp_path)[case]
    _one_error(_aipc("generate", path, "-p", "hi", "--no-mbu"), needle, str(path.name))


def _full_disk(tmp_path: Path):
    """(output folder, preexec) for a disk that fills at ~256 KiB: a real tmpfs where this user may
    mount one (root), else a file-size limit (RLIMIT_FSIZE) on the process."""
    target = tmp_path / "small-disk"
    target.mkdir()
    if os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(target)],
                                            capture_output=True).returncode == 0:
        return target, None, True

    def limit():
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    return target, limit, False


@pytest.mark.parametrize("quant,what", [("f32", "folder"), ("q4_0", "folder"), ("q8_0", "config")])
def test_full_disk_leaves_nothing(tiny_llama_dir, tmp_path, quant, what):
    """A disk that fills during the random weights, the converter or the quantizer: one line, exit 2,
    no output and no temporary files."""
    target, preexec, mounted = _full_disk(tmp_path)
    src = tiny_llama_dir
    if what == "config":
        src = tmp_path / "config.json"
        src.write_text(json.dumps(tiny_config("qwen2", hidden_size=256, intermediate_size=512)))
    try:
        r = _aipc("convert", src, "--quant", quant, "-o", target / "out.gguf", "--quiet", preexec=preexec)
        _one_error(r, "disk space")
        assert list(target.iterdir()) == []
    finally:
        if mounted:
            subprocess.run(["umount", str(target)], check=True)


def test_validate_engine_llamacpp_measures_through_the_runner(tmp_path):
    """validate --engine llamacpp: converted before measuring, run through the runner in a child,
    peak memory beside the estimate; the measured peak holds at least the weights file."""
    d = tmp_path / "small-qwen2"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(tiny_config("qwen2", hidden_size=256, intermediate_size=512,
                                                          vocab_size=4096)))
    home = {"AIPC_HOME": str(tmp_path / "home")}
    r = _aipc("validate", d / "config.json", "--engine", "llamacpp", "--precision", "q8_0", "--batch", "2",
              "--prompt-tokens", "32", "--gen-tokens", "8", "--json", env=home)
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)["rows"][0]
    m = row["measurement"]
    assert "llamacpp q8_0" in row["name"] and m["engine"] == "llamacpp" and m["weight_format"] == "q8_0"
    gguf = next((tmp_path / "home").glob("gguf/small-qwen2-q8_0-*.gguf"))
    assert m["peak_bytes"] > 0.8 * gguf.stat().st_size and m["prefill_s"] > 0 and m["generate_s"] > 0
    _one_error(_aipc("validate", d / "config.json", "--engine", "llamacpp", "--task", "train", "--precision", "q8_0"),
               "inference only")
