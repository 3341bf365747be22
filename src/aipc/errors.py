"""One error type for bad input: a one-line message that says what is wrong and how to fix it.

The CLI prints it as ``error: <message>`` and exits with code 2, without a traceback (``--debug``
shows it). Library callers catch :class:`AipcError`.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable


class AipcError(Exception):
    """Bad input or an unmet precondition; ``str(err)`` is the one-line message for the user."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always one line


def closest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The ``n`` choices closest to ``name`` (case-insensitive), best first."""
    choices = list(choices)
    lower = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.5)
    if len(hits) < n:  # substring matches help for short names ("llama" -> "llama-3.1-8b")
        hits += [k for k in lower if name.lower() in k and k not in hits][: n - len(hits)]
    return [lower[h] for h in hits]


def unknown(kind: str, name: str, choices: Iterable[str], fix: str) -> AipcError:
    """An AipcError for an unknown name, naming the closest matches."""
    near = closest(name, choices)
    hint = f"; did you mean {', '.join(near)}?" if near else ";"
    return AipcError(f"unknown {kind} '{name}'{hint} {fix}")


def stat_or_error(path: os.PathLike, missing: str) -> os.stat_result:
    """``os.stat`` of ``path``; an AipcError(``missing``) where it cannot be read (no such file, no access)."""
    try:
        return os.stat(path)
    except OSError:
        raise AipcError(missing) from None
