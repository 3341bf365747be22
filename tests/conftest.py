"""Shared test set-up: an isolated aipc home, no network, tiny real models."""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests: on a shared 2-core machine multi-threaded tiny ops mostly
    wait on each other (and aipc hw profiles are per thread count)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
