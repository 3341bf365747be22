"""scripts/gpu_check.sh: without CUDA it stops at once with a clear message and writes nothing; its
table writer (scripts/gpu_table.py) turns real `aipc bench` reports into the docs section. The GPU
runs themselves need a CUDA machine (none here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(_cuda(), reason="this machine has CUDA: the script would run the real GPU check")
def test_without_cuda_fails_fast_and_writes_nothing(tmp_path):
    docs = tmp_path / "validation.md"
    env = {**os.environ, "PYTHON": sys.executable, "DOCS": str(docs), "AIPC_HOME": str(tmp_path / "home")}
    r = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip()
    assert err.startswith("error: no CUDA GPU visible to torch") and len(err.splitlines()) == 1
    assert "nothing was measured or written" in err
    assert not docs.exists() and not (tmp_path / "home").exists()
    assert r.stdout == ""


def test_missing_python_is_one_line(tmp_path):
    env = {**os.environ, "PYTHON": str(tmp_path / "nope"), "DOCS": str(tmp_path / "v.md")}
    r = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("error: no Python at")


def test_table_from_real_bench_reports(tmp_path, _aipc_home):
    """A real (CPU, tiny model) bench report through the same writer the GPU check uses."""
    from helpers import run_cli, tiny_profile_home

    from aipc.models.tiny import tiny_config

    cfg = tmp_path / "llama.json"
    cfg.write_text(json.dumps(tiny_config("llama")))
    with tiny_profile_home(_aipc_home):
        code, out, err = run_cli("bench", str(cfg), "--device", "cpu", "--scenario", "train,decode", "--quick",
                                 "--threads", "1", "--seq-len", "16", "--prompt-tokens", "8", "--gen-tokens", "4",
                                 "--no-store", "--json")
    assert code == 0, err
    rep = tmp_path / "bench.json"
    rep.write_text(out)
    docs = tmp_path / "validation.md"
    docs.write_text("# Validation\n\n## Other\n\nkept\n")
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_table.py"), "--docs", str(docs), str(rep)],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    text = docs.read_text()
    assert "## Other\n\nkept" in text and "## GPU: train and decode" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| llama")]
    data = json.loads(out)
    assert len(rows) == len(data["results"]) == 2
    train = next(x for x in data["results"] if x["scenario"] == "train")
    assert f"{100 * train['mfu_measured']:.1f}%" in next(ln for ln in rows if "| train |" in ln)
