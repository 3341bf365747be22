"""aipc.runtime: the allocator behaviour aipc's processes run under, and threads chosen by measurement."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from aipc import runtime

torch = pytest.importorskip("torch")


def _peak_after_free(env: dict) -> dict:
    """In a fresh process: free a 30 MB tensor (glibc's default then raises its mmap threshold to
    30 MB), allocate twenty 8 MB tensors and a small one after them, free the twenty; report the RSS
    the frees left behind (glibc's default keeps them in the heap under the live small block)."""
    code = (
        "import json, re, torch\n"
        "from aipc.runtime import configure_allocator\n"
        "state = configure_allocator()\n"
        "def rss():\n"
        "    return int(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) * 1024\n"
        "x = torch.ones(7_500_000); del x\n"  # 30 MB: mmapped, and its free raises glibc's dynamic threshold
        "base = rss()\n"
        "ys = [torch.ones(2_000_000) for _ in range(20)]\n"  # 20 x 8 MB: now below the threshold (heap)
        "pin = torch.ones(1_000_000)\n"                       # a live 4 MB block above them in the heap
        "del ys\n"
        "print(json.dumps({'state': state, 'kept': rss() - base}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux only")
def test_aipc_allocator_returns_freed_blocks_and_default_keeps_them():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    ours = _peak_after_free({**env, "AIPC_MALLOC": "aipc"})
    default = _peak_after_free({**env, "AIPC_MALLOC": "default"})
    if "not glibc" in ours["state"]:
        pytest.skip("not a glibc system: " + ours["state"])
    assert "mmap threshold 64 KiB" in ours["state"] and "defaults" in default["state"]
    assert ours["kept"] < 40e6 < default["kept"], (ours, default)


def test_configure_allocator_says_what_is_in_effect():
    assert "AIPC_MALLOC=default" in runtime.configure_allocator({"AIPC_MALLOC": "default"})
    assert "MALLOC_MMAP_THRESHOLD_=131072" in runtime.configure_allocator({"MALLOC_MMAP_THRESHOLD_": "131072"})


def test_pick_threads_takes_the_fastest_and_leaves_it_set(monkeypatch):
    n = torch.get_num_threads()
    calls = []

    def fn():  # slow with more threads: as on a CPU other processes keep busy
        import time
        calls.append(torch.get_num_threads())
        time.sleep(0.002 * torch.get_num_threads())

    try:
        best, med = runtime.pick_threads(fn, [4, 2, 1])
        assert best == 1 and torch.get_num_threads() == 1
        assert med[1] < med[2] < med[4] and set(calls) == {4, 2, 1}
    finally:
        torch.set_num_threads(n)


def test_choose_threads_times_a_real_layer():
    n = torch.get_num_threads()
    try:
        best, med, note = runtime.choose_threads(64, 128, 256, "fp32", train=True)
        assert best in runtime.candidates(n) and "chosen by timing" in note or len(runtime.candidates(n)) == 1
        assert torch.get_num_threads() == best
    finally:
        torch.set_num_threads(n)
    assert runtime.candidates(2) == [2, 1] and runtime.candidates(8) == [8, 4, 1] and runtime.candidates(1) == [1]
