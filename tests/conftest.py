"""Shared test set-up: an isolated aipc home, no network, tiny real models."""

from __future__ import annotations

import contextlib
import os

import pytest
from pg_fixtures import pg_server, pg_url  # noqa: F401  (a real PostgreSQL server for the results-DB tests)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _aipc_home(tmp_path_factory, monkeypatch):
    """Each test gets its own AIPC_HOME so the results DB and profile cache never leak between tests."""
    home = tmp_path_factory.mktemp("aipc-home")
    monkeypatch.setenv("AIPC_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def _normal_floats():
    """aipc.runtime.prepare_cpu() flushes denormals for the process (right for a CLI run); in the one
    pytest process that would leak into later tests (hypothesis refuses to draw floats then)."""
    yield
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_flush_denormal(False)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    """A complete local HF folder of a tiny Llama (weights + byte tokenizer + chat template)."""
    from aipc.models.tiny import make_tiny_folder

    return make_tiny_folder(tmp_path_factory.mktemp("tiny-llama"), "llama")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests: on a shared 2-core machine multi-threaded tiny ops mostly
    wait on each other (and aipc hw profiles are per thread count)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@contextlib.contextmanager
def tiny_profile_home(home):
    """Inside the block ``AIPC_HOME`` is ``home``, torch runs 1 thread and ``home`` holds this machine's
    aipc hw profile, measured with tiny probe settings (seconds, not a benchmark); both restored after.
    The profile is per thread count: runs inside benchmark with 1 thread (``--threads 1``)."""
    import torch

    from aipc.hardware import profile
    from aipc.hardware.probe import ProbeSettings

    old, threads = os.environ.get("AIPC_HOME"), torch.get_num_threads()
    os.environ["AIPC_HOME"] = str(home)
    torch.set_num_threads(1)
    try:
        s = ProbeSettings(warmup=1, min_reps=3, min_time_s=0.02, max_time_s=0.2, max_call_s=0.01, min_gemm_n=128,
                          sample_s=0.005, cpu_copy_min_bytes=16 << 20, gpu_copy_bytes=64 << 20, llc_factor=1)
        profile.load_or_measure(quick=True, settings=s)
        yield home
    finally:
        torch.set_num_threads(threads)
        if old is None:
            os.environ.pop("AIPC_HOME", None)
        else:
            os.environ["AIPC_HOME"] = old


@contextlib.contextmanager
def serving(cmd: list[str], env: dict, log, port: int, *, start_timeout: float):
    """Run ``aipc serve`` (``cmd``) in a subprocess until /health answers; yield (url, process);
    stop it with SIGTERM (graceful), killing it if it does not exit within 30 s."""
    import signal
    import subprocess
    import time

    import httpx

    proc = subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + start_timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited early: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("server did not start")
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def run_cli(*args: str):
    """Run the aipc CLI in-process; returns (exit_code, stdout, stderr) via capsys-free capture."""
    import contextlib
    import io

    from aipc.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()
