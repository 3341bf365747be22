"""Helpers the test modules import (``from helpers import run_cli``); fixtures live in conftest.py."""

from __future__ import annotations

import contextlib
import os

import pytest


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def concurrent_completions(client, model: str, prompts: list[str], max_tokens: int, solo_n: int = 2):
    """(solo, together): greedy completions of the first ``solo_n`` prompts one at a time, then of all
    ``prompts`` streamed from one thread each, released together (what continuous batching must not change)."""
    import threading

    solo = {p: client.completions.create(model=model, prompt=p, max_tokens=max_tokens, temperature=0,
                                         extra_body={"ignore_eos": True}).choices[0].text for p in prompts[:solo_n]}
    out, errors = {}, []
    start = threading.Barrier(len(prompts))  # every request sent at once, so that they overlap on the server

    def go(p):
        try:
            start.wait(30)
            chunks = client.completions.create(model=model, prompt=p, max_tokens=max_tokens, temperature=0,
                                               stream=True, extra_body={"ignore_eos": True})
            out[p] = "".join(c.choices[0].text for c in chunks if c.choices)
        except Exception as e:  # pragma: no cover - reported by the caller's assertion
            errors.append(e)

    threads = [threading.Thread(target=go, args=(p,)) for p in prompts]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    assert not errors and len(out) == len(prompts), errors
    return solo, out


def mean_decode_batch(url: str, key: str) -> float:
    """aipc_decode_batch_size's mean from the server's /metrics."""
    import httpx

    metrics = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {key}"}).text
    total = {ln.split()[0]: float(ln.split()[1]) for ln in metrics.splitlines()
             if ln.startswith("aipc_decode_batch_size_") and " " in ln}
    return total["aipc_decode_batch_size_sum"] / total["aipc_decode_batch_size_count"]
