"""Property-based fuzzing of training data readers (``aipc train --data``): text files (UTF-8, not UTF-8,
empty), JSONL (plain, prompt/completion and chat records, wrong types, junk lines, truncated, deep
nesting) and parquet (columns of any type, nulls, nested lists/structs, damaged files), with custom
field names. Only one-line AipcErrors may come out; accepted records must have the documented shape."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from fuzz_book import Book, fuzz_settings, junk, maybe, text

from aipc.errors import AipcError
from aipc.train.data import Fields, read_records

pytest.importorskip("pyarrow")  # parquet support is the 'data' extra

FIELDS = st.one_of(st.just(Fields()), st.just(Fields()), st.builds(
    Fields, text=st.sampled_from(["text", "body", ""]), prompt=st.sampled_from(["prompt", "q"]),
    completion=st.sampled_from(["completion", "a"]), messages=st.sampled_from(["messages", "conv"])))
ROLES = maybe(st.sampled_from(["user", "assistant", "system"]), bad=st.sampled_from(["", "robot", None]))
MESSAGE = st.fixed_dictionaries({"role": ROLES, "content": maybe(text(30))})
RECORD_KINDS = {
    "text": st.fixed_dictionaries({"text": maybe(text(40))}),
    "pc": st.fixed_dictionaries({"prompt": maybe(text(30)), "completion": maybe(text(30))}),
    "chat": st.fixed_dictionaries({"messages": maybe(st.lists(MESSAGE, min_size=1, max_size=4))}),
}


def _check(records: list, fields: Fields) -> None:
    assert records
    for kind, value in records:
        if kind == "text":
            assert isinstance(value, str)
        elif kind == "pc":
            assert isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value)
        else:
            assert kind == "chat" and value and all(
                isinstance(m["role"], str) and isinstance(m["content"], str) and set(m) == {"role", "content"}
                for m in value)


@st.composite
def jsonl_bytes(draw):
    kind = draw(st.sampled_from(sorted(RECORD_KINDS)))
    lines = []
    for _ in range(draw(st.integers(0, 5))):
        how = draw(maybe(st.just("record"), 2, bad=st.sampled_from(["other-kind", "junk", "not-json", "blank", "deep"])))
        if how == "record":
            lines.append(json.dumps(draw(RECORD_KINDS[kind]), ensure_ascii=draw(st.booleans())))
        elif how == "other-kind":
            lines.append(json.dumps(draw(RECORD_KINDS[draw(st.sampled_from(sorted(RECORD_KINDS)))])))
        elif how == "junk":
            lines.append(json.dumps(draw(junk(6))))
        elif how == "not-json":
            lines.append(draw(text(20)))
        elif how == "deep":
            lines.append("[" * 100_000)
        else:
            lines.append("   ")
    data = "\n".join(lines).encode("utf-8")
    cut = draw(maybe(st.just(None), bad=st.integers(0, max(0, len(data)))))
    if cut is not None:
        data = data[:cut]
    if draw(maybe(st.just(False), bad=st.just(True))):
        data += b"\n{\"text\": \"\xff\xfe\"}"
    return data


@st.composite
def text_bytes(draw):
    return draw(st.one_of(text(200).map(lambda s: s.encode("utf-8")), st.binary(max_size=200),
                          st.just(b""), st.just(b"\n \t\n"), st.just("héllo\n".encode("utf-16"))))


PA_VALUES = st.one_of(text(20), st.none(), st.integers(-5, 5), st.floats(allow_nan=True), st.booleans(),
                      st.lists(text(5), max_size=3))


@st.composite
def parquet_tables(draw):
    """Column name -> list of values for a pyarrow table; columns of one type each (or null)."""
    n = draw(st.integers(0, 4))
    kind = draw(st.sampled_from(sorted(RECORD_KINDS)))
    names = {"text": ["text"], "pc": ["prompt", "completion"], "chat": ["messages"]}[kind]
    names = draw(maybe(st.just(names), 2, bad=st.lists(st.sampled_from(["text", "prompt", "completion", "messages",
                                                                          "other"]), unique=True, max_size=3)))
    cols = {}
    for name in names:
        if name == "messages":
            plausible = st.lists(st.lists(MESSAGE, min_size=1, max_size=3), min_size=n, max_size=n)
        else:
            plausible = st.lists(text(20), min_size=n, max_size=n)
        bad = st.one_of(*[st.lists(v, min_size=n, max_size=n) for v in (st.none(), st.integers(-5, 5), text(5),
                                                                        st.lists(text(5), max_size=2))])
        cols[name] = draw(maybe(plausible, 2, bad=bad))
    return cols


def _parquet(cols: dict) -> bytes | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pa.table(cols) if cols else pa.table({"x": pa.array([], pa.int64())})
        buf = io.BytesIO()
        pq.write_table(table, buf, compression=None)  # uncompressed: a changed byte lands in the values
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError, OverflowError):
        return None  # not a table pyarrow can hold or write: nothing to test
    return buf.getvalue()


@fuzz_settings(ci=140, full=1100)
@given(fmt=st.sampled_from(["jsonl", "jsonl", "txt", "parquet", "parquet", "folder"]), data=st.data(), fields=FIELDS)
def test_training_data_files(fmt, data, fields, tmp_path_factory):
    files = BOOK.files(tmp_path_factory, "data")
    if fmt == "jsonl":
        path = files.write(".jsonl", data.draw(jsonl_bytes()))
    elif fmt == "txt":
        path = files.write(".txt", data.draw(text_bytes()))
    elif fmt == "parquet":
        blob = _parquet(data.draw(parquet_tables()))
        if blob is None:
            return
        if data.draw(maybe(st.just(False), bad=st.just(True))):  # damaged: cut or a byte changed
            i = data.draw(st.integers(0, len(blob) - 1))
            blob = blob[:i] if data.draw(st.booleans()) else blob[:i] + bytes([blob[i] ^ 0xFF]) + blob[i + 1:]
        path = files.write(".parquet", blob)
    else:  # a folder with a mix, a hidden file, and a file type that is not data
        path = files.folder()
        (path / "a.jsonl").write_bytes(data.draw(jsonl_bytes()))
        (path / "b.txt").write_bytes(data.draw(text_bytes()))
        (path / ".hidden.txt").write_bytes(b"\xff\xfe")
        (path / "notes.bin").write_bytes(b"\x00\x01")
    t = BOOK.tally("fuzz: training data (train.data.read_records: text, JSONL, parquet)")
    records = t.run(lambda: read_records([str(path)], fields), known=KNOWN_PARQUET if fmt == "parquet" else KNOWN)
    if isinstance(records, list):
        _check(records, fields)


# ------------------------------------------------------------------ regressions found by fuzzing

# Found by fuzzing and fixed in src/aipc/train/data.py (deep JSONL nesting, non-UTF-8 parquet strings):
# no exception type is tolerated any more.
KNOWN: tuple = ()
KNOWN_PARQUET: tuple = ()


def test_parquet_with_bad_utf8_in_a_string_column_is_a_one_line_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"text": ["hello world", "abc"]}), buf, compression=None)
    blob = bytearray(buf.getvalue())
    blob[blob.find(b"hello")] = 0x92  # not a UTF-8 start byte
    p = tmp_path / "bad.parquet"
    p.write_bytes(bytes(blob))
    with pytest.raises(AipcError, match="bad.parquet"):
        read_records([str(p)])


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"text": "a"}\n' + b"[" * 100_000])
def test_deeply_nested_jsonl_line_is_a_one_line_error(tmp_path, body):
    p = tmp_path / "d.jsonl"
    p.write_bytes(body)
    with pytest.raises(AipcError, match="line"):
        read_records([str(p)])


BOOK = Book()
_report = BOOK.fixture()
