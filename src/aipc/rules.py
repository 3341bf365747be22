"""One rule per kind of option value: numbers finite and in range, paths of the right kind.

The CLI applies these to every flag of every verb as soon as the flags are parsed, before any work
starts (``aipc.commands.options``); config dataclasses such as ``TrainConfig`` apply the same rules in
``validate()`` for library callers. A rule raises :class:`AipcError` with one line naming the flag,
what it must be and the value it got. Import-light: no torch, no typer.
"""

from __future__ import annotations

import math
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aipc.errors import AipcError


@dataclass(frozen=True)
class Num:
    """A number: finite, of ``kind`` (int or float), within the given bounds (None: unbounded)."""

    kind: type = float
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def describe(self) -> str:
        what = "a whole number" if self.kind is int else "a finite number"
        parts = [f">= {_fmt(self.ge)}" if self.ge is not None else "", f"> {_fmt(self.gt)}" if self.gt is not None else "",
                 f"<= {_fmt(self.le)}" if self.le is not None else "", f"< {_fmt(self.lt)}" if self.lt is not None else ""]
        parts = [p for p in parts if p]
        return what + (" " + " and ".join(parts) if parts else "")

    def ok(self, v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        if self.kind is int and not isinstance(v, int):
            return False
        if isinstance(v, float) and not math.isfinite(v):
            return False
        return not ((self.ge is not None and v < self.ge) or (self.gt is not None and v <= self.gt)
                    or (self.le is not None and v > self.le) or (self.lt is not None and v >= self.lt))

    def check(self, flag: str, v: Any) -> Any:
        if v is None or self.ok(v):
            return v
        raise AipcError(f"{flag} must be {self.describe()} (got {v!r})")

    def bad_values(self) -> list[str]:
        """Command-line strings that break this rule (the reliability sweep feeds them to the CLI)."""
        out = ["nan", "inf", "-inf", "1e309"] if self.kind is float else ["1" + "0" * 25, "-" + "9" * 22]
        lo = self.ge if self.ge is not None else self.gt
        hi = self.le if self.le is not None else self.lt
        if lo is not None:
            out.append(_fmt(lo - 1 if self.ge is not None else lo))
        if hi is not None:
            out.append(_fmt(hi + 1 if self.le is not None else hi))
        return list(dict.fromkeys(out))


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else repr(float(x))


# Shared number rules: one name per concept, the same range in every verb.
COUNT = Num(int, ge=1, le=2**31 - 1)             # sizes and counts: tokens, sequences, steps, slots
COUNT0 = Num(int, ge=0, le=2**31 - 1)            # the same where 0 means "off" / "none"
SEED = Num(int, ge=0, le=2**32 - 1)              # numpy and torch both take a 32-bit seed
THREADS = Num(int, ge=1, le=4096)
PORT = Num(int, ge=0, le=65535)
RATE = Num(float, gt=0, le=1e12)                 # positive rates and limits
SECONDS = Num(float, gt=0, le=7 * 86400)         # a duration; a week at most
SECONDS0 = Num(float, ge=0, le=7 * 86400)
FRACTION = Num(float, ge=0, le=1)                # [0, 1]
FRACTION_OPEN = Num(float, ge=0, lt=1)           # [0, 1)
PROB = Num(float, gt=0, le=1)                    # (0, 1]
TEMPERATURE = Num(float, ge=0, le=100)
ANY_INT = Num(int, ge=0, le=2**53)               # default for an int flag without its own rule
ANY_FLOAT = Num(float, ge=0, le=1e300)           # default for a float flag without its own rule

@dataclass(frozen=True)
class Words:
    """A word from a fixed set (or matching ``pattern``); with ``sep``, a non-empty list of such words.

    ``choices`` may be ``"module:NAME"``, read when a value is checked (so the table stays import-light).
    """

    choices: tuple[str, ...] | str = ()
    pattern: str | None = None
    sep: str | None = None
    bad: tuple[str, ...] = ("nope9", "")  # words that break the rule (for the reliability sweep)
    names: str = ""                       # what ``pattern`` accepts, in words

    def allowed(self) -> tuple[str, ...]:
        if isinstance(self.choices, str):
            import importlib

            mod, _, name = self.choices.partition(":")
            return tuple(getattr(importlib.import_module(mod), name))
        return self.choices

    def check(self, flag: str, v: Any) -> Any:
        if v is None:
            return v
        import re

        items = [w.strip() for w in str(v).split(self.sep)] if self.sep else [str(v)]
        items = [w for w in items if w] if self.sep else items
        allowed = self.allowed()
        for w in items or [""]:
            ok = (re.fullmatch(self.pattern, w.lower()) is not None) if self.pattern else w.lower() in allowed
            if not ok:
                what = f"one of {', '.join(allowed)}" if allowed else self.names or f"a name matching {self.pattern}"
                listing = f" (a {self.sep!r}-separated list)" if self.sep else ""
                raise AipcError(f"{flag} must be {what}{listing} (got {str(v)!r})")
        return v

    def bad_values(self) -> list[str]:
        return [*self.bad, *([self.sep] if self.sep else [])]


# torch devices, and the names OpenVINO gives its devices (npu, gpu, gpu.N); whether one is present is
# checked when the verb starts
DEVICE = Words(pattern=r"auto|cpu|mps|npu|(cuda|xpu)(:\d{1,3})?|gpu(\.\d{1,3})?",
               names="auto, cpu, cuda, cuda:N, mps, xpu, npu or gpu")
DEVICES = Words(pattern=r"all|cpu|mps|npu|(cuda|xpu)(:\d{1,3})?|gpu(\.\d{1,3})?", sep=",",
                names="all, cpu, cuda, cuda:N, mps, xpu, npu or gpu")
MODULES = Words(pattern=r"[a-z0-9_.\-]+", sep=",", bad=("q proj", ""),  # names only the model can check
                names="module names such as q_proj,v_proj, or all-linear")

# Path kinds: what must be true of the path before the verb runs.
PATH_KINDS = ("file", "dir", "any", "out-file", "out-dir", "new-dir", "new-file", "out-any")


@dataclass(frozen=True)
class PathRule:
    """A path of one kind.

    file / dir / any: must exist (a regular file / a folder / either). out-file: a regular file to
    (over)write, or a new one in a writable folder. out-dir: a folder to write into (made if missing).
    new-dir: a missing or empty folder. new-file: must not exist yet. out-any: a file or folder output.
    ``dash``: ``-`` (standard input) is allowed; ``url``: so is a database URL.
    """

    kind: str = "file"
    dash: bool = False
    url: bool = False  # a postgresql:// URL is also accepted (checked by aipc.bench.dburl, not here)

    def check(self, flag: str, v: Any) -> Any:
        if v is None or (self.dash and str(v) == "-"):
            return v
        if self.url and "://" in str(v):
            return v
        text = str(v)
        if not text or "\x00" in text:
            raise AipcError(f"{flag} needs a path (got {text!r})")
        p = Path(text).expanduser()
        {"file": _existing, "dir": _existing, "any": _existing}.get(self.kind, _output)(flag, p, self.kind)
        return v

    def bad_values(self, scratch: Path) -> list[str]:
        """Paths that break this rule, made inside ``scratch`` (an existing folder)."""
        missing, afile, adir = scratch / "no-such-file", scratch / "a-file.txt", scratch / "a-dir"
        afile.write_text("x\n") if not afile.exists() else None
        adir.mkdir(exist_ok=True)
        (adir / "inside.txt").write_text("x\n")
        return {
            "file": [str(missing), str(adir), "/dev/null", ""],
            "dir": [str(missing), str(afile), ""],
            "any": [str(missing), "/dev/null", ""],
            "out-file": [str(adir), "/proc/aipc-nope/x", "/dev/null", ""],
            "out-dir": [str(afile), "/proc/aipc-nope", str(afile / "sub"), ""],
            "new-dir": [str(afile), str(adir), "/proc/aipc-nope", ""],
            "new-file": [str(afile), str(adir), str(missing / "x"), ""],
            "out-any": ["/dev/null", "/proc/aipc-nope/x", ""],
        }[self.kind]


def _existing(flag: str, p: Path, kind: str) -> None:
    try:
        st = p.stat()
    except FileNotFoundError:
        raise AipcError(f"{flag} {p}: not found; check the path") from None
    except OSError as e:
        raise AipcError(f"{flag} {p}: cannot read it ({e.strerror}); check the path") from None
    if kind == "dir" and not stat.S_ISDIR(st.st_mode):
        raise AipcError(f"{flag} {p} is not a folder; pass a folder")
    if kind == "file" and not stat.S_ISREG(st.st_mode):
        what = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise AipcError(f"{flag} {p} is {what}; pass a regular file")
    if kind == "any" and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise AipcError(f"{flag} {p} is not a regular file or folder (a device, pipe or socket); pass a file or folder")


def _output(flag: str, p: Path, kind: str) -> None:
    try:
        st = p.stat()
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise AipcError(f"{flag} {p}: cannot use it ({e.strerror}); choose another path") from None
    if st is not None:
        is_dir, is_reg = stat.S_ISDIR(st.st_mode), stat.S_ISREG(st.st_mode)
        if kind == "new-file":
            raise AipcError(f"{flag} {p} already exists; refusing to overwrite it — choose a new path")
        if not (is_dir or is_reg):
            raise AipcError(f"{flag} {p} is a device, pipe or socket, not a file or folder; choose another path")
        if kind == "out-file" and is_dir:
            raise AipcError(f"{flag} {p} is a folder; name a file")
        if kind in ("out-dir", "new-dir") and not is_dir:
            raise AipcError(f"{flag} {p} is a file; name a folder")
        if kind == "new-dir" and any(os.scandir(p)):
            raise AipcError(f"{flag} {p} exists and is not empty; choose a new or empty folder")
        _writable(flag, p if is_dir else p.parent)
        return
    if kind == "new-file" and not p.parent.is_dir():
        raise AipcError(f"{flag} {p}: folder {p.parent} does not exist; create it first")
    _writable(flag, _nearest_existing(flag, p.parent))


def _nearest_existing(flag: str, p: Path) -> Path:
    p = p.absolute()
    while not p.exists():
        if p.is_symlink():
            raise AipcError(f"{flag}: {p} is a broken symbolic link; choose another path")
        p = p.parent
    if not p.is_dir():
        raise AipcError(f"{flag}: {p} is a file, not a folder; choose another path")
    return p


def _writable(flag: str, folder: Path) -> None:
    """Prove the folder takes new files by making an anonymous one (no name appears, nothing stays)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise AipcError(f"{flag}: cannot write in {folder} ({e.strerror}); choose a writable path") from None


def flag(help: str = "", rule: Any = None, *, name: str | None = None, aliases: tuple[str, ...] = (),
         cli: bool = True, split: str | None = None, argument: bool = False) -> dict[str, Any]:
    """Metadata for a config dataclass field: its help, its rule, and how the CLI shows it.

    ``name``: the flag (default ``--field-name``); ``aliases``: older spellings kept as hidden flags;
    ``cli=False``: not a flag; ``split``: the flag is one string split on this separator into a list;
    ``argument``: a positional argument instead of a flag.
    """
    return {"help": help, "rule": rule, "name": name, "aliases": tuple(aliases), "cli": cli, "split": split,
            "argument": argument}


def check_fields(obj: Any) -> None:
    """Apply the rule in each dataclass field's metadata to the field's value (each item of a list)."""
    import dataclasses

    for f in dataclasses.fields(obj):
        rule = f.metadata.get("rule")
        if rule is None:
            continue
        v = getattr(obj, f.name)
        name = f.metadata.get("name") or "--" + f.name.replace("_", "-")
        for item in (v if isinstance(v, (list, tuple)) else [v]):
            rule.check(name, item)
