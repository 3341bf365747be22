"""Sealing under faults, through the real CLI in subprocesses: nothing the user started from is ever
deleted; pipes and devices are refused; SIGTERM removes partial plaintext; a SIGKILL's leftover is
removed by the next run; a full disk is one error line and leaves nothing behind (not even an empty key).

The full disk is a real tmpfs of a few KiB in a user+mount namespace (tests/sandbox.py); where the kernel
forbids namespaces, a file-size limit (RLIMIT_FSIZE, EFBIG) stands in for it.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sandbox import run_on_small_disk

from aipc.privacy.keys import load_key, new_key_file
from aipc.privacy.seal import write_sealed_atomic


@pytest.fixture
def env(tmp_path):
    key = tmp_path / "k.key"
    new_key_file(key)
    return {**os.environ, "AIPC_HOME": str(tmp_path / "home"), "AIPC_SEAL_KEY": key.read_text().strip()}


def aipc(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aipc", *args], env=env, capture_output=True, text=True, timeout=120)


def one_error(r: subprocess.CompletedProcess, *words: str, code: int = 2) -> None:
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def test_output_holding_or_inside_the_input_is_refused_and_nothing_is_deleted(tmp_path, env):
    d = tmp_path / "dir"
    (d / "child").mkdir(parents=True)
    (d / "child" / "a.txt").write_text("secret a\n")
    (d / "sibling.txt").write_text("secret b\n")
    before = snapshot(d)
    for args in (["seal", str(d / "child"), "-o", str(d), "--force"],          # the case: output holds the input
                 ["seal", str(d / "sibling.txt"), "-o", str(d), "--force"],
                 ["seal", str(d), "-o", str(d / "child" / "x"), "--force"],    # output inside the input
                 ["seal", str(d), "-o", str(d), "--force"],
                 ["unseal", str(d / "child"), "-o", str(tmp_path), "--force"]):
        one_error(aipc(*args, env=env), "input")
        assert snapshot(d) == before, args
    keydir = tmp_path / "keys"
    keydir.mkdir()
    key = keydir / "k.key"
    new_key_file(key)
    one_error(aipc("seal", str(d / "sibling.txt"), "-o", str(key), "--key-file", str(key), "--force", env=env),
              "would delete")
    one_error(aipc("seal", str(d), "-o", str(keydir), "--key-file", str(key), "--force", env=env), "would delete")
    assert load_key(key) and snapshot(d) == before


def test_pipes_and_devices_are_refused(tmp_path, env):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    one_error(aipc("seal", str(fifo), "-o", str(tmp_path / "o1"), env=env), "not a regular file")
    one_error(aipc("seal", "/dev/null", "-o", str(tmp_path / "o2"), env=env), "not a regular file")
    one_error(aipc("unseal", "/dev/zero", "-o", str(tmp_path / "o3"), env=env), "not a regular file")
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "ok.txt").write_text("x")
    os.mkfifo(folder / "pipe")
    one_error(aipc("seal", str(folder), "-o", str(tmp_path / "o4"), env=env), "pipe")
    (folder / "pipe").unlink()
    one_error(aipc("seal", str(folder), "-o", str(fifo), "--force", env=env))  # a pipe as the output
    assert fifo.exists() and not any((tmp_path / f"o{i}").exists() for i in range(1, 5))


def _big_sealed(tmp_path: Path, env: dict, mib: int = 24) -> Path:
    """A sealed file in 4 KiB chunks: unsealing it takes long enough to be interrupted."""
    src = tmp_path / "big.sealed"
    write_sealed_atomic(src, (os.urandom(1 << 20) for _ in range(mib)), bytes.fromhex(env["AIPC_SEAL_KEY"]),
                        chunk_bytes=4096)
    return src


def _start_and_wait_for_temp(args: list[str], out_dir: Path, env: dict) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-m", "aipc", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        tmp = [p for p in out_dir.iterdir() if ".aipc-tmp-" in p.name]
        if tmp:
            return proc, tmp[0]
        if proc.poll() is not None:
            pytest.fail(f"finished before it could be interrupted: {proc.stderr.read()}")
        time.sleep(0.002)
    proc.kill()
    pytest.fail("no temporary file appeared")


def test_sigterm_during_unseal_removes_the_partial_plaintext(tmp_path, env):
    src = _big_sealed(tmp_path, env)
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    out = tmp_path / "out"
    out.mkdir()
    proc, tmp = _start_and_wait_for_temp(["unseal", str(src), "-o", str(out / "plain.bin")], out, env)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and err.strip().startswith("error: stopped by SIGTERM"), err
    assert "Traceback" not in err and list(out.iterdir()) == [] and not tmp.exists()
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before


def test_sigkill_leftover_is_removed_by_the_next_run(tmp_path, env):
    src = _big_sealed(tmp_path, env)
    out = tmp_path / "out"
    out.mkdir()
    proc, tmp = _start_and_wait_for_temp(["unseal", str(src), "-o", str(out / "plain.bin")], out, env)
    proc.kill()
    proc.wait(30)
    assert tmp.exists()  # SIGKILL cannot be caught: the partial file (mode 0600) stays until the next run
    assert tmp.stat().st_mode & 0o077 == 0
    (tmp_path / "other.txt").write_text("x")
    r = aipc("seal", str(tmp_path / "other.txt"), env=env)
    assert r.returncode == 0, r.stderr
    assert not tmp.exists() and list(out.iterdir()) == []


def test_full_disk_is_one_line_and_leaves_nothing(tmp_path, env):
    plain = tmp_path / "plain.bin"
    plain.write_bytes(os.urandom(256 << 10))
    sealed = tmp_path / "plain.bin.sealed"
    assert aipc("seal", str(plain), env=env).returncode == 0
    cmd = [sys.executable, "-m", "aipc"]
    cases = {
        "seal": ([*cmd, "seal", str(plain), "-o", "{m}/x.sealed"], False),
        "unseal": ([*cmd, "unseal", str(sealed), "-o", "{m}/x.bin"], False),
        "seal a folder": ([*cmd, "seal", str(tmp_path / "folder"), "-o", "{m}/f.sealed"], False),
        "new key": ([*cmd, "seal", "--new-key", "{m}/new.key"], True),
    }
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.bin").write_bytes(os.urandom(128 << 10))
    for name, (argv, fill) in cases.items():
        mount = tmp_path / f"disk-{name.replace(' ', '-')}"
        r = run_on_small_disk(mount, 64 << 10, [a.replace("{m}", str(mount)) for a in argv], env=env, fill=fill)
        one_error(r, "cannot")
        assert ("No space left" in r.stderr) if r.how == "tmpfs" else ("too large" in r.stderr), r.stderr
        assert r.left == [], (name, r.left)  # no partial file, no temporary file, no empty key file
