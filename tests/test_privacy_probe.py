"""The offline guard holds inside every verb that loads a model, and in the Python processes they start.

1. Fast, in process: train, generate, serve, bench, validate and report run their work with the guard on
   (their work functions replaced by a recorder), and without it when given --allow-network.
2. Real, in a subprocess: ``aipc train --nproc 2`` (the CLI, the torchrun launcher and both workers) with the
   network probe (tests/netprobe): in each process a thread tries six ways out while the guard is on; a
   tripwire beneath the guard records whatever gets past it; and — where user namespaces are allowed —
   the whole run sits in a network namespace whose fake DNS server and packet monitor see what any layer
   sends, C code included. scripts/reliability.py runs the same probe in all five verbs.

What the namespace shows and the guard cannot stop: torch's C++ TCPStore (c10d socket.cpp) asks DNS
for the reverse name of the loopback address (1.0.0.127.in-addr.arpa) when it logs a peer; those are
counted apart from queries for non-loopback names, which must be zero.
"""

from __future__ import annotations

import contextlib
import sys
from unittest import mock

import pytest
from helpers import run_cli
from sandbox import probe_verdict, run_probe
from test_train_loop import write_corpus

from aipc.privacy import guard

WORK = {  # verb -> the function that does its work (replaced by a recorder here)
    "train": "aipc.commands.train.run", "generate": "aipc.commands.generate._run", "serve": "aipc.serve.server.run",
    "bench": "aipc.bench.runner.run_bench", "validate": "aipc.validation.runner.measure",
    "report": "aipc.report.collect.collect",
}


class Seen(Exception):
    pass


def _args(verb: str, tiny, corpus, tmp_path) -> list[str]:
    return {
        "train": ["train", str(tiny), "--data", str(corpus), "--out", str(tmp_path / "run")],
        "generate": ["generate", str(tiny), "--prompt", "hi"],
        "serve": ["serve", str(tiny)],
        "bench": ["bench", str(tiny), "--no-store"],
        "validate": ["validate", str(tiny / "config.json"), "--task", "infer"],
        "report": ["report", "-o", str(tmp_path / "report")],
    }[verb]


@pytest.mark.parametrize("verb", sorted(WORK))
def test_every_model_loading_verb_does_its_work_under_the_guard(verb, tiny_llama_dir, tmp_path):
    corpus = write_corpus(tmp_path / "d.txt", lines=20)
    seen = []

    def work(*a, **k):
        seen.append((guard.is_active(), guard.os.environ.get("AIPC_OFFLINE_GUARD")))
        raise Seen

    args = _args(verb, tiny_llama_dir, corpus, tmp_path)
    for extra, want in (([], (True, "1")), (["--allow-network"], (False, "0"))):
        with mock.patch(WORK[verb], work), contextlib.suppress(Seen):
            code, out, err = run_cli(*args, *extra)
            pytest.fail(f"{verb} never reached its work: exit {code}: {err}")
        assert seen.pop() == want, (verb, extra)
    assert not guard.is_active()


def test_train_with_torchrun_workers_sends_nothing_off_the_machine(tiny_llama_dir, tmp_path):
    corpus = write_corpus(tmp_path / "d.txt", lines=60)
    argv = [sys.executable, "-m", "aipc", "train", str(tiny_llama_dir), "--data", str(corpus), "--out",
            str(tmp_path / "run"), "--steps", "2", "--seq-len", "32", "--batch", "2", "--nproc", "2", "--threads", "1",
            "--no-mfu", "--no-preflight", "--json"]
    run = run_probe(argv, tmp_path / "probe", timeout=400)
    v = probe_verdict(run)
    assert v["exit"] == 0, run.driver["stderr"]
    assert v["processes"] == 4, v  # the CLI, the torchrun launcher, two workers: each probed, each guarded
    assert v["ok"], v["problems"]
    assert v["attempts"] == 4 * 2 * 6 and v["blocked_by_guard"] == 4 * 2 * 5 and v["localhost_to_loopback"] == 8


def test_an_unguarded_process_is_caught_by_the_probe(tmp_path):
    """The probe can fail: a plain Python process (no guard) trying the same ways out is reported."""
    run = run_probe([sys.executable, "-c", "print('no guard here')"], tmp_path / "probe", timeout=120)
    v = probe_verdict(run)
    assert not v["ok"] and v["guard_on_in"] == 0 and v["python_leaks"] >= 5, v
    if run.monitor is not None:  # the namespace saw the queries and the packets the tripwire let through
        assert "huggingface.co (type 1)" in v["dns_non_loopback"] and v["packets_non_loopback"] >= 2, v
