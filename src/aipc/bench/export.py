"""Export and import of stored runs: JSON (one object), JSONL (one run per line), CSV (summary).

Exports go through a temporary file in the same folder and an atomic rename, so an interrupted
export never leaves a partial file. Imports validate every run before anything is written.
Import-light: no torch.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

from aipc.datafile import parse, read_text
from aipc.errors import AipcError

FORMATS = ("json", "jsonl", "csv")
EXPORT_FORMAT = "aipc-results-export"
WORKLOAD_COLUMNS = ("batch_size", "seq_len", "prompt_tokens", "gen_tokens", "weight_dtype", "method")


def _fmt_for(path: Path, fmt: str | None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise AipcError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    suf = path.suffix.lower().lstrip(".")
    if suf in FORMATS:
        return suf
    raise AipcError(f"cannot tell the export format of {path}; name it .json, .jsonl or .csv")


def csv_rows(runs: list[dict]) -> tuple[list[str], list[list]]:
    """(header, rows): one row per run with its identity, workload shape and every scalar metric."""
    metric_keys = sorted({k for r in runs for k, v in (r.get("metrics") or {}).items()
                          if isinstance(v, (int, float, str, bool)) or v is None})
    header = ["id", "created_at", "kind", "machine", "host", "device", "model", "scenario",
              *WORKLOAD_COLUMNS, *metric_keys]
    rows = []
    for r in runs:
        w, m = r.get("workload") or {}, r.get("metrics") or {}
        rows.append([r.get("id"), r.get("created_at"), r.get("kind"), r.get("machine"), r.get("host"), r.get("device"),
                     r.get("model"), r.get("scenario"), *(w.get(k) for k in WORKLOAD_COLUMNS),
                     *(m.get(k) for k in metric_keys)])
    return header, rows


def csv_text(runs: list[dict]) -> str:
    header, rows = csv_rows(runs)
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(header)
    wr.writerows(rows)
    return buf.getvalue()


def write_export(path: Path, runs: list[dict], fmt: str | None = None) -> None:
    """Write ``runs`` to ``path`` atomically in the given (or suffix-implied) format."""
    fmt = _fmt_for(path, fmt)
    if fmt == "json":
        text = json.dumps({"format": EXPORT_FORMAT, "version": 1, "runs": runs}, indent=1) + "\n"
    elif fmt == "jsonl":
        text = "".join(json.dumps(r) + "\n" for r in runs)
    else:
        text = csv_text(runs)
    path = path.expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    except OSError as e:
        raise AipcError(f"cannot write {path}: {e.strerror or e}; choose a writable path") from None


def _check_run(r: object, where: str) -> dict:
    if not isinstance(r, dict):
        raise AipcError(f"{where}: a run must be a JSON object")
    for f in ("id", "created_at", "kind"):
        if not isinstance(r.get(f), str) or not r.get(f):
            raise AipcError(f"{where}: run lacks its '{f}'; export runs with 'aipc results --export FILE'")
    for f in ("workload", "metrics", "context"):
        if r.get(f) is not None and not isinstance(r[f], dict):
            raise AipcError(f"{where}: run {r['id']}: '{f}' must be an object")
    known = ("id", "created_at", "kind", "scenario", "device", "model", "machine", "host",
             "workload", "metrics", "samples", "context")
    return {k: r.get(k) for k in known}


def read_export(path: Path) -> list[dict]:
    """The runs in an aipc export (JSON object with 'runs', or JSONL); every run checked first."""
    path = path.expanduser()
    text = read_text(path, what="results export", fix="pass a file written by 'aipc results --export'")
    if text.lstrip().startswith("{") and path.suffix.lower() != ".jsonl":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            data = None  # maybe JSONL after all
        if isinstance(data, dict):
            if data.get("format") != EXPORT_FORMAT or not isinstance(data.get("runs"), list):
                raise AipcError(f"{path} is not an aipc results export (no format '{EXPORT_FORMAT}')")
            return [_check_run(r, f"{path} run {i + 1}") for i, r in enumerate(data["runs"])]
    return [_check_run(parse(line, "json", f"{path} line {i + 1}"), f"{path} line {i + 1}")
            for i, line in enumerate(text.splitlines()) if line.strip()]
