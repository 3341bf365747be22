"""The one reader of the TOML and JSON files aipc takes (device catalogs, needs, workloads, API key
files, model configs, results exports): a missing, unreadable or malformed file is one ``AipcError``
line that names the file and says how to fix it. Import-light.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from aipc.errors import AipcError


def format_of(path: str | Path) -> str:
    """'json' for a ``.json`` file, else 'toml'."""
    return "json" if Path(path).suffix.lower() == ".json" else "toml"


def read_text(path: str | Path, *, what: str = "file", fix: str = "check the path") -> str:
    """The UTF-8 text of ``path``; ``what`` names it in errors ('needs file'), ``fix`` ends the
    not-found error."""
    p = Path(path)
    if not p.is_file():
        raise AipcError(f"{what} not found: {p}; {fix}")
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise AipcError(f"cannot read {what} {p}: {e}; save it as UTF-8 text and check its permissions") from None


def parse(text: str, fmt: str, where: str) -> Any:
    """``text`` as ``fmt`` ('json' or 'toml'); ``where`` (a path, 'stdin') starts the error line."""
    try:
        return json.loads(text) if fmt == "json" else tomllib.loads(text)
    except json.JSONDecodeError as e:
        raise AipcError(f"{where}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); fix the file") from None
    except RecursionError:  # absurdly deep nesting
        raise AipcError(f"{where}: not valid {fmt.upper()} (nested too deeply); fix the file") from None
    except ValueError as e:  # TOMLDecodeError, and json's own limits (e.g. integers over 4300 digits)
        raise AipcError(f"{where}: not valid {fmt.upper()}: {e}; fix the file") from None


def read_data(path: str | Path, *, what: str = "file", fix: str = "check the path", fmt: str | None = None) -> Any:
    """The content of a TOML or JSON file (format from the suffix unless ``fmt``), one-line errors."""
    return parse(read_text(path, what=what, fix=fix), fmt or format_of(path), str(path))


def read_table(path: str | Path, *, what: str = "file", fix: str = "check the path") -> dict[str, Any]:
    """Like :func:`read_data`, for files whose top level must be a table / object."""
    data = read_data(path, what=what, fix=fix)
    if not isinstance(data, dict):
        raise AipcError(f"{path}: expected a table of fields at the top level, got {type(data).__name__}; fix the file")
    return data
