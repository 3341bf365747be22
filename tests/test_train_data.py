"""Training data: formats, loss masks, packing, split, batch order, the fused loss — no model needed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aipc.errors import AipcError
from aipc.train import packing
from aipc.train.data import Fields, read_records
from aipc.train.tokenize import chat_segments, encode, encode_record


@pytest.fixture(scope="module")
def tok():
    from aipc.models.tiny import byte_tokenizer

    return byte_tokenizer(384)


def _jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_text_files_and_folder(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("alpha")
    (tmp_path / "d" / "b.md").write_text("beta")
    (tmp_path / "d" / ".hidden.txt").write_text("secret")
    (tmp_path / "d" / "skip.bin").write_bytes(b"\x00\x01")
    recs = read_records([str(tmp_path / "d")])
    assert recs == [("text", "alpha"), ("text", "beta")]


def test_jsonl_kinds(tmp_path):
    t = _jsonl(tmp_path / "t.jsonl", [{"text": "a"}, "", {"text": "b", "extra": 1}])
    pc = _jsonl(tmp_path / "pc.jsonl", [{"prompt": "p", "completion": "c"}])
    chat = _jsonl(tmp_path / "c.jsonl", [{"messages": [{"role": "user", "content": "hi"},
                                                       {"role": "assistant", "content": "yo"}]}])
    assert read_records([str(t)]) == [("text", "a"), ("text", "b")]
    assert read_records([str(pc)]) == [("pc", ("p", "c"))]
    assert read_records([str(chat)])[0][0] == "chat"
    custom = _jsonl(tmp_path / "x.jsonl", [{"q": "p", "a": "c"}])
    assert read_records([str(custom)], Fields(prompt="q", completion="a")) == [("pc", ("p", "c"))]


@pytest.mark.parametrize("rows, line, words", [
    ([{"prompt": "p", "completion": "c"}, {"prompt": "p2"}, {"prompt": "p", "completion": "c"}], 2, "completion"),
    ([{"text": "a"}, {"text": "b"}, "{not json"], 3, "not valid JSON"),
    ([{"text": "a"}, {"text": 5}], 2, "must be a string"),
    ([{"foo": "a"}], 1, "--text-field"),
    ([{"messages": [{"role": "user", "content": "x"}]}, {"messages": [{"role": "user"}]}], 2, "content"),
])
def test_jsonl_errors_name_the_line(tmp_path, rows, line, words):
    p = _jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(AipcError) as e:
        read_records([str(p)])
    msg = str(e.value)
    assert f"bad.jsonl line {line}:" in msg and words in msg and "\n" not in msg


def test_empty_unreadable_and_missing(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(AipcError, match="empty"):
        read_records([str(tmp_path / "empty.txt")])
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(AipcError, match="not UTF-8"):
        read_records([str(tmp_path / "latin.txt")])
    with pytest.raises(AipcError, match="does not exist"):
        read_records([str(tmp_path / "nope.txt")])
    (tmp_path / "none").mkdir()
    with pytest.raises(AipcError, match="has no"):
        read_records([str(tmp_path / "none")])


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"prompt": ["p1", "p2"], "completion": ["c1", "c2"]}), tmp_path / "d.parquet")
    assert read_records([str(tmp_path / "d.parquet")]) == [("pc", ("p1", "c1")), ("pc", ("p2", "c2"))]
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "bad.parquet")
    with pytest.raises(AipcError, match="no 'text'"):
        read_records([str(tmp_path / "bad.parquet")])


def test_prompt_completion_mask(tok):
    ids, mask = encode_record(tok, "pc", ("ab", "cd"))
    # <s> a b | c d </s>: targets are the completion and EOS only
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id and len(ids) == 6
    assert mask == [0, 0, 0, 1, 1, 1]
    assert tok.decode([i for i, m in zip(ids, mask) if m], skip_special_tokens=True) == "cd"


def test_chat_loss_on_assistant_turns_only(tok):
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
            {"role": "user", "content": "more"}, {"role": "assistant", "content": "ok"}]
    segs = chat_segments(tok, msgs)
    assert "".join(s for s, _ in segs) == tok.apply_chat_template(msgs, tokenize=False)
    targets = [s for s, t in segs if t]
    assert targets == ["yo<|end|>\n", "ok<|end|>\n"]  # assistant header "<|assistant|>\n" is not a target
    ids, mask = encode_record(tok, "chat", msgs)
    assert tok.decode([i for i, m in zip(ids, mask) if m]) == "yo<|end|>\nok<|end|>\n"


def test_pack_labels_are_next_tokens():
    ids = np.arange(1, 24, dtype=np.int64)        # 23 tokens -> (23 - 1) // 5 = 4 sequences
    mask = np.ones_like(ids, dtype=np.uint8)
    mask[7] = 0
    p = packing.pack(ids, mask, 5)
    assert p.inputs.shape == (4, 5) and p.labels.shape == (4, 5)
    assert p.inputs[1].tolist() == [6, 7, 8, 9, 10]
    assert p.labels[1].tolist() == [7, packing.IGNORE, 9, 10, 11]   # token 8 (index 7) is not a target
    flat = p.labels.reshape(-1)
    assert sorted(flat[flat != packing.IGNORE].tolist()) == [t for t in range(2, 22) if t != 8]
    with pytest.raises(AipcError, match="--seq-len"):
        packing.pack(ids[:5], mask[:5], 5)


def test_split_and_fingerprint():
    p = packing.Packed(np.arange(100).reshape(20, 5), np.arange(100).reshape(20, 5))
    tr, va = packing.split(p, 0.1, seed=3)
    assert len(tr) == 18 and len(va) == 2
    assert not set(va.inputs[:, 0]) & set(tr.inputs[:, 0])
    tr2, va2 = packing.split(p, 0.1, seed=3)
    assert (va2.inputs == va.inputs).all()
    assert packing.fingerprint(tr) != packing.fingerprint(tr2.subset(np.arange(17)))
    assert packing.split(p, 0.0, 0)[1] is None


def test_order_ddp_covers_the_single_process_batch():
    single = packing.Order(10, batch=2, accum=2, world=1, seed=0)
    ddp = packing.Order(10, batch=2, accum=1, world=2, seed=0)
    for step in range(6):  # crosses epoch boundaries
        one = np.concatenate([single.micro(step, a, 0) for a in range(2)])
        two = np.concatenate([ddp.micro(step, 0, r) for r in range(2)])
        assert one.tolist() == two.tolist() == single.step_entries(step).tolist()
    epoch0 = single.entries(0, 10)
    assert sorted(epoch0.tolist()) == list(range(10))
    assert single.entries(10, 10).tolist() != epoch0.tolist()  # a new permutation each epoch
    assert packing.steps_for(10, 4, None, 1.0) == 3 and packing.steps_for(10, 4, 7, None) == 7


def test_encode_rejects_ids_past_the_vocabulary(tok):
    with pytest.raises(AipcError, match="tokenizer/model mismatch"):
        encode(tok, [("text", "hello")], vocab_size=10)


def test_fused_loss_matches_plain_cross_entropy():
    import torch

    from aipc.train.loss import linear_cross_entropy, plain_cross_entropy

    torch.manual_seed(0)
    h = torch.randn(37, 16, dtype=torch.float64, requires_grad=True)
    w = torch.randn(50, 16, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 50, (37,))
    y[::5] = -100
    a = linear_cross_entropy(h, w, y, chunk=8)  # 5 chunks, the last one short
    (a * 0.5).backward()
    ga = (h.grad.clone(), w.grad.clone())
    h.grad = w.grad = None
    b = plain_cross_entropy(h @ w.t(), y)
    (b * 0.5).backward()
    assert torch.allclose(a, b, rtol=1e-6)
    assert torch.allclose(ga[0], h.grad, atol=1e-6) and torch.allclose(ga[1], w.grad, atol=1e-6)


def test_batched_encode_equals_record_by_record(tok):
    recs = [("text", "hello"), ("pc", ("q: ", "a")), ("chat", [{"role": "user", "content": "hi"},
                                                              {"role": "assistant", "content": "yo"}]),
            ("text", ""), ("pc", ("", "only completion"))]
    ids, mask = encode(tok, recs, 384, block=2)  # blocks split the records 2 + 2 + 1
    want_ids, want_mask = [], []
    for k, v in recs:
        i, m = encode_record(tok, k, v)
        want_ids += i
        want_mask += m
    assert ids.tolist() == want_ids and mask.tolist() == want_mask
