"""Reading training data: text files or folders, JSONL, parquet — into records of one kind.

A record is one of:
  ("text", str)                         loss on every token
  ("pc", (prompt, completion))          loss on the completion only
  ("chat", [{"role", "content"}, ...])  rendered with the chat template; loss on assistant turns

Bad input raises AipcError naming the file and, for JSONL, the 1-based line number.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aipc.errors import AipcError

TEXT_SUFFIXES = (".txt", ".md", ".text", ".rst")
DATA_SUFFIXES = (*TEXT_SUFFIXES, ".jsonl", ".parquet")


@dataclass(frozen=True, kw_only=True)
class Fields:
    """Names of the record fields in JSONL and parquet data."""

    text: str = "text"
    prompt: str = "prompt"
    completion: str = "completion"
    messages: str = "messages"


def data_files(paths: list[str]) -> list[Path]:
    """Expand files and folders (recursively, sorted) into the data files to read."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in DATA_SUFFIXES
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                raise AipcError(f"data folder {p} has no {', '.join(DATA_SUFFIXES)} files; "
                                "put text, .jsonl or .parquet files in it")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise AipcError(f"data path {p} does not exist; pass a file or folder with --data")
    return files


def read_records(paths: list[str], fields: Fields = Fields()) -> list[tuple[str, Any]]:
    """All records from all data files, in file order."""
    records: list[tuple[str, Any]] = []
    for f in data_files(paths):
        suffix = f.suffix.lower()
        if suffix == ".jsonl":
            got = list(_read_jsonl(f, fields))
        elif suffix == ".parquet":
            got = _read_parquet(f, fields)
        else:
            got = _read_text(f)
        records += got
    if not records:
        raise AipcError(f"no training text in {', '.join(paths)}: the data is empty; add text or records")
    return records


def _read_text(path: Path) -> list[tuple[str, Any]]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise AipcError(f"cannot read data file {path}: {e.strerror}; check the path and permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise AipcError(f"data file {path} is not UTF-8 text (byte {e.start}); "
                        "convert it to UTF-8 or use .jsonl/.parquet") from None
    return [("text", text)] if text.strip() else []


def _kind_of(obj: dict, fields: Fields) -> str | None:
    if fields.messages in obj:
        return "chat"
    if fields.prompt in obj or fields.completion in obj:
        return "pc"
    if fields.text in obj:
        return "text"
    return None


def _need(obj: dict, key: str, where: str, expect: str) -> str:
    if key not in obj:
        raise AipcError(f"{where}: missing field '{key}' (expected {expect}); fix the line or remove it")
    v = obj[key]
    if not isinstance(v, str):
        raise AipcError(f"{where}: field '{key}' must be a string (got {type(v).__name__}); fix the line")
    return v


def _messages(v: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(v, list) or not v:
        raise AipcError(f"{where}: 'messages' must be a non-empty list of {{role, content}}; fix the line")
    out = []
    for i, m in enumerate(v):
        if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
            raise AipcError(f"{where}: message {i} needs string 'role' and 'content'; fix the line")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _record(obj: Any, kind: str, fields: Fields, where: str) -> tuple[str, Any]:
    expect = {"text": f"'{fields.text}'", "pc": f"'{fields.prompt}' and '{fields.completion}'",
              "chat": f"'{fields.messages}'"}[kind]
    if not isinstance(obj, dict):
        raise AipcError(f"{where}: expected a JSON object with {expect} (got {type(obj).__name__})")
    if kind == "text":
        return ("text", _need(obj, fields.text, where, expect))
    if kind == "pc":
        return ("pc", (_need(obj, fields.prompt, where, expect), _need(obj, fields.completion, where, expect)))
    if fields.messages not in obj:
        raise AipcError(f"{where}: missing field '{fields.messages}' (expected {expect}); fix the line or remove it")
    return ("chat", _messages(obj[fields.messages], where))


def _read_jsonl(path: Path, fields: Fields) -> Iterator[tuple[str, Any]]:
    """Records of a JSONL file; the first record decides the kind, every line must match it."""
    kind = None
    try:
        fh = path.open("r", encoding="utf-8")
    except OSError as e:
        raise AipcError(f"cannot read data file {path}: {e.strerror}; check the path and permissions") from None
    with fh:
        try:
            lines = list(fh)
        except UnicodeDecodeError as e:
            raise AipcError(f"{path} is not UTF-8 ({e.reason}); convert it to UTF-8") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path} line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise AipcError(f"{where}: not valid JSON ({e.msg} at column {e.colno}); fix the line") from None
        except RecursionError:
            raise AipcError(f"{where}: JSON nested too deeply to read; flatten the record") from None
        if kind is None:
            kind = _kind_of(obj, fields) if isinstance(obj, dict) else None
            if kind is None:
                raise AipcError(f"{where}: no '{fields.text}', '{fields.prompt}'/'{fields.completion}' or "
                                f"'{fields.messages}' field; name yours with --text-field/--prompt-field/"
                                "--completion-field/--messages-field")
        yield _record(obj, kind, fields, where)


def _read_parquet(path: Path, fields: Fields) -> list[tuple[str, Any]]:
    try:
        return _read_parquet_unchecked(path, fields)
    except UnicodeDecodeError as e:  # column names or string cells that are not UTF-8
        raise AipcError(f"{path}: holds text that is not UTF-8 ({e.reason}); re-encode it as UTF-8") from None


def _read_parquet_unchecked(path: Path, fields: Fields) -> list[tuple[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise AipcError("reading .parquet needs pyarrow; pip install 'aipc[data]'") from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for unreadable files
        raise AipcError(f"cannot read parquet file {path}: {str(e).splitlines()[0]}; check the file") from None
    cols = set(table.column_names)
    if fields.messages in cols:
        kind, keys = "chat", [fields.messages]
    elif fields.prompt in cols or fields.completion in cols:
        kind, keys = "pc", [fields.prompt, fields.completion]
    elif fields.text in cols:
        kind, keys = "text", [fields.text]
    else:
        raise AipcError(f"{path}: no '{fields.text}', '{fields.prompt}'/'{fields.completion}' or "
                        f"'{fields.messages}' column (has {', '.join(sorted(cols))}); name yours with --text-field etc.")
    missing = [k for k in keys if k not in cols]
    if missing:
        raise AipcError(f"{path}: missing column '{missing[0]}'; parquet prompt/completion data needs both columns")
    try:
        rows = table.select(keys).to_pylist()
    except UnicodeDecodeError as e:
        raise AipcError(f"{path}: a string column holds bytes that are not UTF-8 ({e.reason}); "
                        "re-encode the column as UTF-8") from None
    return [_record(r, kind, fields, f"{path} row {i}") for i, r in enumerate(rows)]
