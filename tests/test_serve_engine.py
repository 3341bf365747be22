"""The batching engine without HTTP: queueing beyond the slots, cancellation, the fallback runner."""

from __future__ import annotations

import asyncio

import pytest
import torch

from aipc.models.tiny import build_tiny, byte_tokenizer
from aipc.serve.engine import Engine, Overloaded, Request
from aipc.engines.hfrunner import HFRunner, make_runner
from aipc.serve.metrics import ServerMetrics
from aipc.engines.sampling import SamplingParams


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(model_type):
    m = build_tiny(model_type).eval()
    m.generation_config.eos_token_id = None
    return m


async def _run(engine, prompts, n, cancel_first=False):
    loop = asyncio.get_running_loop()
    reqs = [Request(prompt_ids=p, params=SamplingParams(max_tokens=n, ignore_eos=True), loop=loop) for p in prompts]
    for r in reqs:
        engine.submit(r)
    if cancel_first:
        reqs[0].cancel()
    ids = []
    for r in reqs:
        got = []
        while True:
            kind, _, tok = await r.events.get()
            if kind == "done":
                break
            if tok is not None:
                got.append(tok)
        ids.append(got)
    return reqs, ids


def _hf(model, p, n):
    return model.generate(torch.tensor([p]), max_new_tokens=n, do_sample=False)[0, len(p):].tolist()


@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_more_requests_than_slots_all_correct(model_type):
    model = _model(model_type)
    runner = make_runner(model, max_batch=2, max_len=64)
    assert isinstance(runner, HFRunner) == (model_type == "gpt2")
    metrics = ServerMetrics()
    engine = Engine(runner, byte_tokenizer(), model=model, metrics=metrics)
    engine.start()
    prompts = [[5, 6, 7, 8], [9, 10], [11, 12, 13, 14, 15, 16], [20, 21, 22]]
    try:
        reqs, ids = asyncio.run(_run(engine, prompts, 12))
    finally:
        engine.stop(10)
    for p, got, r in zip(prompts, ids, reqs):
        assert got == _hf(model, p, 12)
        assert r.finish_reason == "length" and r.output_tokens == 12 and r.t_first <= r.t_done
    assert metrics.value("aipc_generation_tokens_total") == 48
    assert metrics.value("aipc_prompt_tokens_total") == sum(map(len, prompts))
    batches = metrics.value("aipc_decode_batch_size_sum") / metrics.value("aipc_decode_batch_size_count")
    assert batches > 1  # requests were decoded together
    assert engine.load() == (0, 0)


def test_cancelled_request_frees_its_slot():
    model = _model("llama")
    engine = Engine(make_runner(model, max_batch=1, max_len=64), byte_tokenizer(), model=model)
    engine.start()
    try:
        reqs, ids = asyncio.run(_run(engine, [[5, 6, 7], [8, 9]], 40, cancel_first=True))
    finally:
        engine.stop(10)
    assert reqs[0].finish_reason == "cancelled" and len(ids[0]) < 40
    assert reqs[1].finish_reason == "length" and ids[1] == _hf(model, [8, 9], 40)


def test_queue_limit_and_stopping():
    model = _model("llama")
    engine = Engine(make_runner(model, max_batch=1, max_len=32), byte_tokenizer(), model=model, max_queue=1)

    async def go():
        loop = asyncio.get_running_loop()
        p = SamplingParams(max_tokens=4)
        engine.submit(Request(prompt_ids=[1, 2], params=p, loop=loop))  # not started: stays queued
        with pytest.raises(Overloaded):
            engine.submit(Request(prompt_ids=[1, 2], params=p, loop=loop))

    asyncio.run(go())
    engine.stop(0)
    with pytest.raises(RuntimeError):
        engine.submit(Request(prompt_ids=[1], params=SamplingParams(), loop=None))
