"""Checkpoints prove themselves: every file's digest is checked on resume; a damaged checkpoint is refused
with its path and the newest intact one named; the next save replaces a damaged folder atomically.

The 19 damage kinds of tests/checkpoint_damage.py are checked against the resume lookup here (fast);
the CLI refuses a flipped weight and an empty rng.pt in a real ``aipc train --resume`` subprocess, and
``--resume-from`` the named checkpoint brings back the same bytes as the undamaged run.
scripts/reliability.py runs all 20 kinds through the CLI.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from checkpoint_damage import CORRUPTIONS, exponent_flip
from test_train_loop import write_corpus

from aipc.errors import AipcError
from aipc.train import checkpoint as ck


def train_args(model: Path, corpus: Path, run: Path) -> list[str]:
    return [str(model), "--data", str(corpus), "--out", str(run), "--seq-len", "32", "--batch", "2", "--steps", "4",
            "--save-every", "2", "--keep", "3", "--threads", "1", "--no-mfu", "--no-preflight", "--json"]


def aipc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aipc", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, tiny_llama_dir):
    """A finished 4-step run with checkpoints at steps 2 and 4 (never modified; tests copy it)."""
    root = tmp_path_factory.mktemp("pristine")
    corpus = write_corpus(root / "data.txt", lines=60)
    r = aipc("train", *train_args(tiny_llama_dir, corpus, root / "run"))
    assert r.returncode == 0, r.stderr
    return root / "run", corpus


def copy_run(pristine, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(pristine[0], run)
    return run


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_a_saved_checkpoint_verifies(pristine):
    run = pristine[0]
    assert [p.name for p in ck.list_checkpoints(run)] == ["step-00000002", "step-00000004"]
    for p in ck.list_checkpoints(run):
        assert ck.damage(p) is None and sorted(x.name for x in p.iterdir()) == sorted([*ck.FILES, ck.MANIFEST])
    assert ck.find(run) == ck.ckpt_root(run) / "step-00000004"


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_every_damage_is_refused_naming_the_newest_intact_checkpoint(kind, pristine, tmp_path):
    run = copy_run(pristine, tmp_path)
    bad, good = ck.ckpt_root(run) / "step-00000004", ck.ckpt_root(run) / "step-00000002"
    CORRUPTIONS[kind](bad, random.Random(kind))
    with pytest.raises(AipcError) as e:
        ck.find(run)
    msg = str(e.value)
    assert f"checkpoint {bad} is damaged" in msg and f"--resume-from {good}" in msg, msg
    with pytest.raises(AipcError, match="is damaged"):
        ck.find(bad)  # --resume-from the damaged folder itself
    assert ck.find(good) == good


def test_no_intact_checkpoint_left(pristine, tmp_path):
    run = copy_run(pristine, tmp_path)
    for p in ck.list_checkpoints(run):
        (p / "rng.pt").write_bytes(b"")
    with pytest.raises(AipcError, match="no intact checkpoint is left"):
        ck.find(run)


def test_cli_refuses_damage_then_resume_from_replaces_it_with_the_same_bytes(pristine, tmp_path, tiny_llama_dir):
    run = copy_run(pristine, tmp_path)
    root = ck.ckpt_root(run)
    want = sha(root / "step-00000004" / "model.safetensors")
    exponent_flip(root / "step-00000004", random.Random(1))
    args = train_args(tiny_llama_dir, pristine[1], run)
    r = aipc("train", *args, "--resume")
    assert r.returncode == 2 and r.stdout == "", r.stderr
    line = r.stderr.strip()
    assert line.count("\n") == 0 and line.startswith(f"error: checkpoint {root / 'step-00000004'} is damaged")
    assert "model.safetensors does not match its SHA-256 digest" in line and str(root / "step-00000002") in line
    r = aipc("train", *args, "--resume-from", str(root / "step-00000002"))
    assert r.returncode == 0, r.stderr
    assert (root / "latest").read_text().strip() == "step-00000004"
    assert ck.damage(root / "step-00000004") is None  # the damaged folder was replaced, not kept
    assert sha(root / "step-00000004" / "model.safetensors") == want  # exact resume: the undamaged bytes
    assert not [p.name for p in root.iterdir() if p.name.startswith(".")]


def test_cli_empty_rng_state_is_one_error_line(pristine, tmp_path, tiny_llama_dir):
    run = copy_run(pristine, tmp_path)
    (ck.ckpt_root(run) / "step-00000004" / "rng.pt").write_bytes(b"")
    r = aipc("train", *train_args(tiny_llama_dir, pristine[1], run), "--resume")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "rng.pt is 0 bytes" in r.stderr


def test_load_error_with_an_empty_message_is_still_one_line(tmp_path, monkeypatch):
    """The issue's IndexError: a loader exception whose message is empty."""
    import safetensors.torch

    def boom(*a, **k):
        raise ValueError("")

    monkeypatch.setattr(safetensors.torch, "load_file", boom)  # mocked: a real empty-message error is rare
    with pytest.raises(AipcError, match=r"is damaged \(ValueError\)"):
        ck.load_tensors(tmp_path, "cpu")
