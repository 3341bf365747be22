"""Token choice (greedy, top-k, top-p, temperature) and streaming text with stop strings."""

from __future__ import annotations

import pytest
import torch

from aipc.models.tiny import byte_tokenizer
from aipc.engines.sampling import SamplingParams, TextStream, sample


def test_greedy_is_argmax():
    logits = torch.tensor([0.1, 3.0, 2.9, -1.0])
    assert sample(logits, SamplingParams(temperature=0)) == 1
    assert sample(logits, SamplingParams(temperature=1.0, top_k=1)) == 1


def test_top_k_and_top_p_restrict_the_choice():
    logits = torch.tensor([0.0, 0.0, 5.0, 4.9, 4.8])
    g = torch.Generator().manual_seed(0)
    k2 = {sample(logits, SamplingParams(temperature=1.0, top_k=2), g) for _ in range(300)}
    assert k2 == {2, 3}
    # probabilities ~ [.0025, .0025, .34, .33, .30]: top_p=0.5 keeps the two largest
    p5 = {sample(logits, SamplingParams(temperature=1.0, top_p=0.5), g) for _ in range(300)}
    assert p5 == {2, 3}
    everything = {sample(logits, SamplingParams(temperature=5.0), g) for _ in range(600)}
    assert everything == {0, 1, 2, 3, 4}


def test_seed_repeats():
    logits = torch.randn(384)
    p = SamplingParams(temperature=1.0, seed=3)
    a = [sample(logits, p, g) for g in [p.generator()] for _ in range(10)]
    b = [sample(logits, p, g) for g in [p.generator()] for _ in range(10)]
    assert a == b


@pytest.mark.parametrize("kw", [dict(max_tokens=0), dict(temperature=-0.1), dict(top_p=0), dict(top_p=1.5),
                                dict(top_k=-2)])
def test_bad_params_rejected(kw):
    with pytest.raises(ValueError):
        SamplingParams(**kw)


def _stream(text: str, stop=()):
    tok = byte_tokenizer(384)
    ts = TextStream(tok, tuple(stop))
    pieces = []
    for i in tok(text, add_special_tokens=False)["input_ids"]:
        pieces.append(ts.push(i))
        if ts.stopped:
            break
    pieces.append(ts.finish())
    return pieces, ts


def test_stream_reassembles_text_and_waits_inside_multibyte_characters():
    pieces, ts = _stream("héllo wörld ✓")
    assert "".join(pieces) == "héllo wörld ✓" == ts.text
    assert all("\ufffd" not in p for p in pieces)  # never half a character
    assert pieces.count("") >= 4  # é, ö (2 bytes) and ✓ (3 bytes) held back a byte or two


def test_stop_string_cuts_and_is_never_shown():
    pieces, ts = _stream("hello STOP world", stop=["STOP"])
    assert ts.stopped and ts.text == "hello " and "".join(pieces) == "hello "
    assert all("S" not in p for p in pieces)  # the partial 'S', 'ST', 'STO' was held back, then dropped


def test_partial_stop_prefix_released_when_it_is_not_a_stop():
    pieces, ts = _stream("a STORY", stop=["STOP"])
    assert not ts.stopped and "".join(pieces) == "a STORY"


def test_earliest_of_several_stop_strings_wins():
    _, ts = _stream("one two three", stop=["three", "two"])
    assert ts.text == "one "
