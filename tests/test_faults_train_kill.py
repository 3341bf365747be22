"""``aipc train`` killed with SIGKILL at random moments, several of them inside a checkpoint write, then
resumed with ``--resume`` each time. Checked after every kill: every visible checkpoint loads, the last
good one is byte-identical to what it was before the kill and to the uninterrupted run's checkpoint of
the same step; at the end the CPU loss trajectory (steps 1..N, each once) equals the uninterrupted run's,
bitwise.

Hitting the write window: the train code has one test seam (``Hooks.before_rename``), reachable only in
process. So each victim is ``aipc train`` run through a tiny wrapper (:data:`CHILD`) that, in the child
process only, wraps the file-writing calls of ``aipc.train.checkpoint`` (``_write_bytes``, ``torch.save``,
``shutil.rmtree``) so that the N-th checkpoint's chosen write stops half-way (the first half of the bytes
written and fsynced) and announces itself; the test then SIGKILLs it. Timed kills use no hook: the test
kills after a random number of logged steps plus a random delay.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fuzz_book import FULL, record, scale

from aipc.train import checkpoint as ck

# Where the victim stops: (mode, what the pause hook matches). "timed" has no hook.
MODES = {
    "timed": None,
    "weights-write": "model.safetensors",       # half of model.safetensors written in .tmp-*
    "optimizer-write": "optimizer.pt",          # half of optimizer.pt written
    "state-write": "state.json",                # the last file of the folder, half written
    "before-rename": "rename",                  # folder complete, not yet renamed into place
    "latest-write": ".latest-",                 # new folder in place, `latest` not yet switched
    "prune": ".trash-",                         # an old checkpoint renamed to .trash-*, not yet removed
}
CI_PLAN = ["weights-write", "latest-write", "timed"]
FULL_PLAN = ["timed", "weights-write", "timed", "optimizer-write", "state-write", "timed", "before-rename",
             "latest-write", "timed", "prune"]

CHILD = r'''
import io, os, shutil, sys, time
from pathlib import Path
mode, nth, marker = os.environ["AIPC_FAULT_MODE"], int(os.environ["AIPC_FAULT_NTH"]), os.environ["AIPC_FAULT_MARKER"]
seen = {"n": 0}

def pause_here(what):
    seen["n"] += 1
    if seen["n"] == nth:
        Path(marker).write_text(what)
        time.sleep(3600)

if mode != "none":
    import torch
    from aipc.train import checkpoint as ck
    real_write, real_save, real_rmtree, real_rename = ck._write_bytes, torch.save, shutil.rmtree, os.rename

    def half(path, data):
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2]); f.flush(); os.fsync(f.fileno())

    def write_bytes(path, data):
        if mode in Path(path).name and ".tmp-" in str(path) or (mode == ".latest-" and mode in Path(path).name):
            half(path, data); pause_here(str(path))
        real_write(path, data)

    def save(obj, f, *a, **k):
        target = f if isinstance(f, (str, Path)) else getattr(f, "name", "")  # a path or an open file
        if mode == "optimizer.pt" and Path(target).name == mode:
            buf = io.BytesIO(); real_save(obj, buf, *a, **k)
            half(target, buf.getvalue()); pause_here(str(target))
        return real_save(obj, f, *a, **k)

    def rmtree(path, *a, **k):
        if mode == ".trash-" and ".trash-" in str(path):
            pause_here(str(path))
        return real_rmtree(path, *a, **k)

    def rename(src, dst, *a, **k):
        if mode == "rename" and ".tmp-" in str(src):
            pause_here(str(src))
        return real_rename(src, dst, *a, **k)

    ck._write_bytes, torch.save, ck.shutil.rmtree, ck.os.rename = write_bytes, save, rmtree, rename
from aipc.cli import main
sys.exit(main(sys.argv[1:]))
'''


def _env(**extra) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
            "AIPC_FAULT_MODE": "none", "AIPC_FAULT_NTH": "0", "AIPC_FAULT_MARKER": "", **extra}


def _train(args: list[str], **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, "train", *args], env=_env(**env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def losses(run: Path) -> list[tuple[int, float]]:
    out = []
    path = run / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            rec = json.loads(line)
        except ValueError:  # a line cut by the kill
            continue
        if "loss" in rec:
            out.append((rec["step"], rec["loss"]))
    return out


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def visible_checkpoints(run: Path) -> list[Path]:
    root = ck.ckpt_root(run)
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(ck.PREFIX)) if root.is_dir() else []


def check_loadable(run: Path) -> tuple[Path, str]:
    """Every visible checkpoint loads (state, weights, optimizer, RNG); returns the one resume will use."""
    for p in visible_checkpoints(run):
        st = ck.read_state(p)
        weights, optim, rngs = ck.load_tensors(p, "cpu")
        assert st["step"] == int(p.name[len(ck.PREFIX):]) and weights and optim["state"] and rngs
    good = ck.find(run)
    return good, sha(good / "model.safetensors")


def _wait(pred, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}: {proc.stderr.read()[-2000:]}")
        time.sleep(0.005)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def kill_and_resume_cycle(model: Path, corpus: Path, root: Path, plan: list[str], steps: int, seed: int) -> dict:
    """Run the plan of kills; returns what happened (for docs/reliability.md). Asserts as it goes."""
    rnd = random.Random(seed)
    common = [str(model), "--data", str(corpus), "--seq-len", "64", "--batch-size", "4", "--steps", str(steps),
              "--lr", "3e-3", "--warmup-steps", "2", "--save-every", "2", "--threads", "1",
              "--no-mfu", "--no-preflight", "--json"]
    run, ref_dir = root / "run", root / "ref"
    ref = _train([*common, "--keep", "100000", "--out", str(ref_dir)])  # uninterrupted, runs meanwhile
    common += ["--keep", "2"]
    events = []
    for i, mode in enumerate(plan):
        resume = ["--resume"] if visible_checkpoints(run) else []
        before = len(losses(run))
        marker = root / f"paused-{i}"
        hook = MODES[mode]
        nth = rnd.randint(1, 2)
        victim = _train([*common, "--out", str(run), *resume], AIPC_FAULT_MODE=hook or "none",
                        AIPC_FAULT_NTH=str(nth), AIPC_FAULT_MARKER=str(marker))
        if hook is None:  # a random moment: after a random number of new steps, plus a random delay
            n = rnd.randint(1, 5)
            _wait(lambda: len(losses(run)) >= max(before, 2) + n and visible_checkpoints(run), victim, 240,
                  f"kill {i} ({mode})")
            time.sleep(rnd.uniform(0, 0.05))
        else:
            _wait(marker.exists, victim, 240, f"kill {i} ({mode}, save {nth})")
        good_before = check_loadable(run)[1] if hook and visible_checkpoints(run) else None  # child is paused
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait() == -signal.SIGKILL
        good, digest = check_loadable(run)
        if good_before is not None:  # paused in a write: the good one is untouched
            assert digest == good_before, f"kill {i} ({mode}) changed the last good checkpoint"
        stale = sorted(p.name for p in ck.ckpt_root(run).iterdir() if p.name.startswith("."))
        events.append({"kill": i + 1, "mode": mode, "in": marker.read_text().split("/")[-2:] if hook else
                       f"after step {len(losses(run))}", "resume_from": good.name, "sha256": digest[:16],
                       "leftovers": stale})
    final = _train([*common, "--out", str(run), "--resume"])
    assert final.wait(timeout=600) == 0, final.stderr.read()[-3000:]
    assert ref.wait(timeout=600) == 0, ref.stderr.read()[-3000:]
    got, want = losses(run), losses(ref_dir)
    assert [s for s, _ in want] == list(range(1, steps + 1))
    assert got == want, "the killed and resumed run's loss trajectory differs from the uninterrupted run"
    for e in events:  # each last good checkpoint is the same bytes the uninterrupted run wrote at that step
        ref_ckpt = ck.ckpt_root(ref_dir) / e["resume_from"]
        assert sha(ref_ckpt / "model.safetensors")[:16] == e["sha256"], e
    assert sha(ck.find(run) / "model.safetensors") == sha(ck.find(ref_dir) / "model.safetensors")
    assert not [p for p in ck.ckpt_root(run).iterdir() if p.name.startswith(".")], "leftovers after the final run"
    return {"kills": len(plan), "steps": steps, "events": events, "final_loss": got[-1][1]}


@pytest.fixture(scope="module")
def dropout_llama(tmp_path_factory):
    """Tiny Llama with attention dropout, so the RNG state matters for exactness."""
    from aipc.models.tiny import make_tiny_folder

    return make_tiny_folder(tmp_path_factory.mktemp("kill-llama"), "llama", attention_dropout=0.2)


@pytest.mark.slow
def test_sigkill_at_random_moments_and_inside_checkpoint_writes(dropout_llama, tmp_path):
    from test_train_loop import write_corpus

    corpus = write_corpus(tmp_path / "data.txt")
    seed = random.randrange(2**31) if FULL else 1234
    plan = FULL_PLAN if FULL else CI_PLAN
    t0 = time.perf_counter()
    out = kill_and_resume_cycle(dropout_llama, corpus, tmp_path, plan, steps=scale(40, 120), seed=seed)
    record("faults: train SIGKILL + --resume", seed=seed, seconds=round(time.perf_counter() - t0, 1), **out)


def test_run_killed_before_its_first_checkpoint_restarts_cleanly(tiny_llama_dir, tmp_path):
    """Killed before any checkpoint exists, the run can only start over; its metrics must then describe
    one trajectory (each step once), not the lost attempt and the new one."""
    from test_train_loop import cfg, write_corpus

    from aipc.train.loop import Hooks, train

    class Stop(Exception):
        pass

    def stop(step):
        if step == 3:
            raise Stop

    corpus = write_corpus(tmp_path / "data.txt", lines=60)
    with pytest.raises(Stop):
        train(cfg(tiny_llama_dir, corpus, tmp_path / "run", steps=6, save_every=5), Hooks(after_step=stop))
    train(cfg(tiny_llama_dir, corpus, tmp_path / "run", steps=6, save_every=5))
    assert [s for s, _ in losses(tmp_path / "run")] == list(range(1, 7))
