"""Shared pieces of the fuzz and fault tests (no tests here).

Counts: CI runs reduced counts; ``AIPC_RELIABILITY=full`` (set by ``scripts/reliability.py``) runs the
full ones. Each test records what it did with :func:`record` — a JSON line appended to the file named
by ``AIPC_RELIABILITY_OUT`` — which the script turns into ``docs/reliability.md``.
"""

from __future__ import annotations

import functools
import json
import math
import os
import string
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from aipc.errors import AipcError

FULL = os.environ.get("AIPC_RELIABILITY") == "full"


def scale(ci: int, full: int) -> int:
    """The count for this run: ``full`` under AIPC_RELIABILITY=full, else ``ci``."""
    return full if FULL else ci


def fuzz_settings(ci: int, full: int) -> settings:
    """Hypothesis settings: a fixed seed and the reduced count in CI; random seeds and the full count
    in the reliability run. No example database (nothing written to the repository)."""
    return settings(max_examples=scale(ci, full), deadline=None, database=None, derandomize=not FULL,
                    suppress_health_check=list(HealthCheck), print_blob=True)


def record(name: str, **data: Any) -> None:
    """Append one result line for docs/reliability.md (only when the reliability script asks)."""
    out = os.environ.get("AIPC_RELIABILITY_OUT")
    if out:
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps({"name": name, "full": FULL, "time": time.time(), **data}, default=str) + "\n")


class Tally:
    """Counts generated cases and how each ended: ``ok`` or the documented ``AipcError``.

    Anything else (another exception type, a multi-line or empty message) fails the example, so
    hypothesis shrinks it and reports the input."""

    def __init__(self, name: str):
        self.name, self.cases, self.outcomes = name, 0, Counter()
        self.t0 = self.t1 = None

    def run(self, fn: Callable[[], Any], known: tuple[type[BaseException], ...] = ()) -> Any:
        """``known``: exception types of a reported bug in code this suite may not change; counted
        (and listed in docs/reliability.md) instead of failing the run."""
        self.cases += 1
        self.t0 = self.t0 or time.perf_counter()
        try:
            result = fn()
        except AipcError as e:
            msg = str(e)
            assert msg and "\n" not in msg, f"AipcError message must be one non-empty line: {msg!r}"
            self.outcomes["error"] += 1
            return e
        except known as e:
            self.outcomes[f"known bug: {type(e).__name__}"] += 1
            return e
        finally:
            self.t1 = time.perf_counter()
        self.outcomes["ok"] += 1
        return result

    def finish(self, min_cases: int = 1, **extra: Any) -> None:
        assert self.cases >= min_cases, f"{self.name}: only {self.cases} cases ran"
        record(self.name, cases=self.cases, outcomes=dict(self.outcomes),
               seconds=round((self.t1 or 0) - (self.t0 or 0), 2), **extra)


# ------------------------------------------------------------------ value strategies

EDGE_INTS = [0, 1, -1, 2, 7, 64, 2**31, 2**63, -(2**63), 10**18, 10**30]
EDGE_FLOATS = [0.0, -0.0, 0.5, 1e-300, 1e300, 1.7976931348623157e308, math.inf, -math.inf, math.nan]
WEIRD_TEXT = ["", " ", "\t", "auto", "none", "null", "true", "NaN", "inf", "-1", "0", "1e999", "💥", "ｂｆ１６",
              "a" * 300, "../../etc/passwd", "C:\\x", "\u202e", "\x7f", "ß", "İ"]


@functools.lru_cache(maxsize=None)
def text(max_size: int = 20) -> st.SearchStrategy[str]:
    """Unicode text without surrogates (which no UTF-8 file or JSON/TOML encoder can carry)."""
    return st.one_of(st.sampled_from(WEIRD_TEXT),
                     st.text(st.characters(exclude_categories=("Cs",)), max_size=max_size),
                     st.text(string.ascii_letters + string.digits + "_-.", max_size=max_size))


def numbers() -> st.SearchStrategy:
    return st.one_of(st.sampled_from(EDGE_INTS), st.integers(), st.integers(-3, 5000),
                     st.sampled_from(EDGE_FLOATS), st.floats(allow_nan=True, allow_infinity=True))


def scalars() -> st.SearchStrategy:
    return st.one_of(st.none(), st.booleans(), numbers(), text())


_JUNK: dict[int, st.SearchStrategy] = {}


def junk(max_leaves: int = 12) -> st.SearchStrategy:
    """Any JSON-like value: scalars, lists and tables, nested (strategies cached: building them is slow)."""
    if max_leaves not in _JUNK:
        _JUNK[max_leaves] = st.recursive(
            scalars(), lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(text(8), kids, max_size=4)),
            max_leaves=max_leaves)
    return _JUNK[max_leaves]


# One level per generated case, shared by every field in it: clean cases (level 0) reach the code past
# validation, dirty ones (junk in a few or many fields) reach each check.
JUNK_RATES = (0.0, 0.0, 0.02, 0.08, 0.3)
LEVEL = st.shared(st.integers(0, len(JUNK_RATES) - 1), key="aipc-junk-level")
_PERMILLE = st.integers(0, 999)
_KEY = text(10)


def maybe(plausible: st.SearchStrategy, weight: float = 1.0, bad: st.SearchStrategy | None = None) -> st.SearchStrategy:
    """A ``plausible`` value, or with this case's junk rate (times ``weight``) a ``bad`` one (default: junk
    of any type)."""

    @st.composite
    def pick(draw):
        rate = JUNK_RATES[draw(LEVEL)] * weight
        if rate and draw(_PERMILLE) < rate * 1000:
            return draw(bad if bad is not None else junk(4))
        return draw(plausible)

    return pick()


def table_of(fields: dict[str, st.SearchStrategy], required: tuple[str, ...] = ()) -> st.SearchStrategy[dict]:
    """A dict with the ``required`` fields (one may go missing in dirty cases) and a random subset of the
    others, each value from its strategy; in dirty cases sometimes an unknown key too."""
    names = sorted(set(fields) - set(required))
    subsets = st.lists(st.sampled_from(names), unique=True, max_size=len(names)) if names else None

    @st.composite
    def build(draw):
        rate = JUNK_RATES[draw(LEVEL)]
        keys = [k for k in required if not rate or draw(_PERMILLE) >= rate * 300]
        keys += draw(subsets) if names else []
        d = {k: draw(fields[k]) for k in keys}
        if rate and draw(_PERMILLE) < rate * 300:
            d[draw(_KEY)] = draw(junk(3))
        return d

    return build()


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


# ------------------------------------------------------------------ file writers

def _toml_key(k: str) -> str:
    return _toml_str(k)


def _toml_str(s: str) -> str:
    out = json.dumps(s, ensure_ascii=False)
    return out.replace("\x7f", "\\u007f")


def toml_value(v: Any) -> str | None:
    """TOML for ``v`` (inline tables and arrays); None has no TOML form and is dropped."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(x for x in (toml_value(i) for i in v) if x is not None) + "]"
    if isinstance(v, dict):
        parts = [f"{_toml_key(str(k))} = {x}" for k, x in ((k, toml_value(i)) for k, i in v.items()) if x is not None]
        return "{" + ", ".join(parts) + "}"
    return _toml_str(str(v))


def toml_text(d: dict) -> str:
    """A TOML document with one ``key = value`` line per top-level field."""
    lines = []
    for k, v in d.items():
        x = toml_value(v)
        if x is not None:
            lines.append(f"{_toml_key(str(k))} = {x}")
    return "\n".join(lines) + "\n"


def json_text(d: Any) -> str:
    return json.dumps(d, ensure_ascii=False)  # NaN/Infinity as Python writes them: json.loads reads them


@st.composite
def mangled(draw, text_value: str) -> bytes:
    """A valid file's bytes, then maybe truncated, a byte flipped, binary junk appended, or BOM-prefixed."""
    data = text_value.encode("utf-8")
    how = draw(st.sampled_from(["as-is"] * 5 + ["truncate", "flip", "append", "bom", "latin1", "deep"]))
    if how == "truncate" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif how == "flip" and data:
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:]
    elif how == "append":
        data += draw(st.binary(max_size=20))
    elif how == "bom":
        data = b"\xef\xbb\xbf" + data
    elif how == "latin1":
        data = text_value.encode("latin-1", "replace") + b"\xe9\xff"
    elif how == "deep":
        data = (b"x = " if draw(st.booleans()) else b"") + deep_json(draw(st.sampled_from([50, 2000, 100_000]))).encode()
    return data


class Files:
    """Unique file names under one folder (so caches keyed by path and mtime never see stale content)."""

    def __init__(self, root: Path):
        self.root, self.n = Path(root), 0

    def write(self, suffix: str, data: bytes | str, name: str | None = None) -> Path:
        self.n += 1
        folder = self.root / f"c{self.n}"
        folder.mkdir(parents=True, exist_ok=True)
        p = folder / (name or f"f{suffix}")
        p.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return p

    def folder(self) -> Path:
        self.n += 1
        p = self.root / f"d{self.n}"
        p.mkdir(parents=True)
        return p


class Book:
    """A test module's tallies (reported when the module's tests end) and its fuzz-file folders."""

    def __init__(self) -> None:
        self.tallies: dict[str, Tally] = {}
        self.folders: dict[str, Files] = {}

    def tally(self, name: str) -> Tally:
        return self.tallies.setdefault(name, Tally(name))

    def files(self, factory, name: str) -> Files:
        if name not in self.folders:
            self.folders[name] = Files(factory.mktemp(f"fuzz-{name}"))
        return self.folders[name]

    def finish(self) -> None:
        for t in self.tallies.values():
            t.finish()

    def fixture(self):
        """A module-scoped autouse fixture reporting this book's tallies when the module's tests end:
        ``_report = BOOK.fixture()`` in the test module."""
        @pytest.fixture(scope="module", autouse=True)
        def _report():
            yield
            self.finish()
        return _report
