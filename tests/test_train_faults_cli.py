"""``aipc train`` refuses bad flags and bad paths in one line before any work, and a full disk mid-run is
one line with nothing half-written — real CLI subprocesses (a real tmpfs for the full disk, see sandbox.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sandbox import run_on_small_disk
from test_train_loop import write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus") / "data.txt", lines=60)


def aipc(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aipc", *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def one_error(r, *words: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.mark.parametrize("flags,words", [
    (["--seed", "-1"], ["--seed", ">= 0"]),
    (["--seed", str(2**70)], ["--seed", "4294967295"]),
    (["--lr", "inf"], ["--lr", "finite"]),
    (["--batch-size", "0"], ["--batch-size", ">= 1"]),  # the old spelling, checked by the same rule
    (["--nnodes", "2", "--rdzv-endpoint", "192.0.2.1:29500"], ["--allow-network"]),
])
def test_bad_values_are_refused_before_any_work(flags, words, tiny_llama_dir, corpus, tmp_path):
    """A few through a real subprocess; test_cli_bad_inputs.py checks every flag's bad values in process."""
    run = tmp_path / "run"
    one_error(aipc("train", str(tiny_llama_dir), "--data", str(corpus), "--out", str(run), *flags), *words)
    assert not run.exists()  # refused at parse time: nothing was started


def test_bad_out_and_export_paths_are_refused_before_the_run(tiny_llama_dir, corpus, tmp_path):
    afile = tmp_path / "a-file"
    afile.write_text("x")
    full = tmp_path / "full"
    (full / "x").mkdir(parents=True)
    run = tmp_path / "run"
    base = ["train", str(tiny_llama_dir), "--data", str(corpus), "--steps", "2", "--seq-len", "32", "--no-preflight"]
    one_error(aipc(*base, "--out", str(afile)), "--out", "is a file")
    one_error(aipc(*base, "--out", "/proc/aipc-nope/run"), "--out", "cannot write")
    t0 = time.perf_counter()
    one_error(aipc(*base, "--out", str(run), "--export", str(afile)), "--export", "is a file")
    one_error(aipc(*base, "--out", str(run), "--export", "/proc/aipc-nope/x"), "--export", "cannot write")
    one_error(aipc(*base, "--out", str(run), "--export", str(full)), "--export", "not empty")
    assert time.perf_counter() - t0 < 60 and not run.exists()  # refused before training, not after it
    assert afile.read_text() == "x"


def test_full_disk_during_training_is_one_line_and_leaves_no_partial_checkpoint(tiny_llama_dir, corpus, tmp_path):
    mount = tmp_path / "disk"
    argv = [sys.executable, "-m", "aipc", "train", str(tiny_llama_dir), "--data", str(corpus), "--out",
            str(mount / "run"), "--steps", "2", "--seq-len", "32", "--batch", "2", "--threads", "1", "--no-mfu",
            "--no-preflight", "--json"]
    r = run_on_small_disk(mount, 64 << 10, argv, env={**os.environ, "OMP_NUM_THREADS": "1"})
    line = one_error(r, "cannot write checkpoint")
    assert ("No space left" in line) if r.how == "tmpfs" else ("too large" in line)
    assert not [x for x in r.left if "/." in "/" + x], r.left  # no .tmp-* checkpoint folder left behind
    assert "run/checkpoints/latest" not in r.left
