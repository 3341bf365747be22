"""Access control for ``aipc serve``: API keys, per-key rate limits and an audit log.

- :class:`KeyStore` reads named API keys from a file, keeps only their SHA-256 digests, compares in
  constant time and re-reads the file when it changes, so revoking a key needs no restart.
- :class:`RateLimiter` keeps two token buckets per key: requests per minute and tokens per minute.
- :class:`AuditLog` appends one JSON line per request: who (key name, never the key), when, from
  where, which endpoint, status, token counts and latency — content only if the operator opts in.

Key file formats (by suffix): ``.json`` — a list of ``{"name", "key" | "sha256", "requests_per_min",
"tokens_per_min"}`` objects, ``{"keys": [...]}`` or ``{name: key}``; ``.toml`` — ``[[keys]]`` tables with
the same fields; anything else — one ``name:key`` or ``name:sha256:<64 hex>`` per line, ``#`` comments.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aipc.datafile import parse
from aipc.errors import AipcError

MIN_KEY_CHARS = 16
_NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def hash_key(key: str) -> str:
    """'sha256:<hex>' of an API key — what a key file may hold instead of the key itself."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_api_key() -> str:
    """A fresh API key: 'aipc-' and 43 URL-safe characters (256 random bits)."""
    return "aipc-" + secrets.token_urlsafe(32)


def parse_bearer(header: str | None) -> str | None:
    """The token of an 'Authorization: Bearer <token>' header value, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


@dataclass(frozen=True)
class Limits:
    """Per-key limits; None means unlimited."""

    requests_per_min: float | None = None
    tokens_per_min: float | None = None


@dataclass(frozen=True)
class _Entry:
    name: str
    digest: bytes
    limits: Limits


def _limit(value: Any, field: str, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise AipcError(f"{where}: {field} must be a positive number, got {value!r}; fix the key file")
    return float(value)


def _entry(name: Any, secret: Any, where: str, limits: Limits = Limits()) -> _Entry:
    if not isinstance(name, str) or not _NAME.match(name):
        raise AipcError(f"{where}: key name {name!r} must be 1-64 letters, digits or _.@+-; fix the key file")
    if not isinstance(secret, str) or not secret.strip():
        raise AipcError(f"{where}: key '{name}' has no key; write name:key (make a key with aipc.privacy.access.new_api_key)")
    secret = secret.strip()
    if secret.startswith("sha256:"):
        hexd = secret[len("sha256:"):]
        if not _HEX64.match(hexd):
            raise AipcError(f"{where}: key '{name}' has a malformed sha256 digest; write sha256: and 64 hex digits")
        return _Entry(name, bytes.fromhex(hexd), limits)
    if len(secret) < MIN_KEY_CHARS:
        raise AipcError(f"{where}: key '{name}' is {len(secret)} characters; use at least {MIN_KEY_CHARS} random characters")
    return _Entry(name, hashlib.sha256(secret.encode("utf-8")).digest(), limits)


def _from_record(rec: Any, where: str) -> _Entry:
    if not isinstance(rec, dict):
        raise AipcError(f"{where}: each key must be an object with name and key; fix the key file")
    unknown = set(rec) - {"name", "key", "sha256", "requests_per_min", "tokens_per_min"}
    if unknown:
        raise AipcError(f"{where}: unknown field(s) {sorted(unknown)} for key {rec.get('name')!r}; allowed: name, key, sha256, requests_per_min, tokens_per_min")
    secret = rec.get("key") if "key" in rec else ("sha256:" + str(rec["sha256"]) if "sha256" in rec else None)
    lim = Limits(_limit(rec.get("requests_per_min"), "requests_per_min", where), _limit(rec.get("tokens_per_min"), "tokens_per_min", where))
    return _entry(rec.get("name"), secret, where, lim)


def parse_keys(text: str, fmt: str, where: str = "key file") -> dict[str, _Entry]:
    """Entries by name from key-file text in format 'json', 'toml' or 'lines'."""
    if fmt == "json":
        data = parse(text, "json", where)
        if isinstance(data, dict) and "keys" in data:
            data = data["keys"]
        if isinstance(data, dict):
            data = [{"name": n, "key": k} for n, k in data.items()]
        if not isinstance(data, list):
            raise AipcError(f"{where}: expected a list of keys; fix the key file")
        entries = [_from_record(r, where) for r in data]
    elif fmt == "toml":
        data = parse(text, "toml", where)
        if not isinstance(data.get("keys"), list):
            raise AipcError(f"{where}: expected [[keys]] tables with name and key; fix the key file")
        entries = [_from_record(r, where) for r in data["keys"]]
    else:
        entries = []
        for i, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, secret = line.partition(":")
            if not sep:
                raise AipcError(f"{where} line {i}: expected name:key; fix the key file")
            entries.append(_entry(name.strip(), secret, f"{where} line {i}"))
    out: dict[str, _Entry] = {}
    for e in entries:
        if e.name in out:
            raise AipcError(f"{where}: key name '{e.name}' appears twice; give each key its own name")
        out[e.name] = e
    return out


class KeyStore:
    """Named API keys from a file, re-read when it changes (revocation without restart).

    A file that becomes unreadable or invalid after start fails closed: no key is accepted until it
    is fixed, and :attr:`last_error` says why. The first load raises :class:`AipcError` instead.
    """

    def __init__(self, path: str | os.PathLike, *, check_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.path = Path(path)
        self.check_interval_s = check_interval_s
        self.clock = clock
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._file_digest: bytes | None = None
        self._entries: dict[str, _Entry] = {}
        self._checked = -math.inf
        fmt = self.path.suffix.lower().lstrip(".")
        self._fmt = fmt if fmt in ("json", "toml") else "lines"
        self._load(first=True)

    def _load(self, first: bool = False) -> None:
        try:
            raw = self.path.read_bytes()
        except OSError as e:
            msg = f"API key file {self.path} cannot be read ({e.strerror}); check the path"
            if first:
                raise AipcError(msg) from None
            self._entries, self._file_digest, self.last_error = {}, None, msg
            return
        digest = hashlib.sha256(raw).digest()
        if digest == self._file_digest:
            return
        try:
            entries = parse_keys(raw.decode("utf-8", "replace"), self._fmt, where=f"API key file {self.path}")
        except AipcError as e:
            if first:
                raise
            self._entries, self.last_error = {}, str(e)
        else:
            self._entries, self.last_error = entries, None
        self._file_digest = digest

    def refresh(self, force: bool = False) -> None:
        """Re-read the file if ``check_interval_s`` passed since the last look (or ``force``)."""
        with self._lock:
            now = self.clock()
            if force or now - self._checked >= self.check_interval_s:
                self._checked = now
                self._load()

    def names(self) -> list[str]:
        """Names of the keys currently accepted."""
        self.refresh()
        return sorted(self._entries)

    def authenticate(self, presented: str | None) -> str | None:
        """The name of the key ``presented`` matches, or None. Constant time in the key's content."""
        self.refresh()
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode("utf-8", "replace")).digest()
        match = None
        for entry in list(self._entries.values()):  # compare against all, no early exit
            if hmac.compare_digest(entry.digest, digest):
                match = entry.name
        return match

    def limits_for(self, name: str) -> Limits:
        """The limits the key file sets for ``name`` (fields None where it sets none)."""
        entry = self._entries.get(name)
        return entry.limits if entry else Limits()


@dataclass(frozen=True)
class Decision:
    """Whether a request may proceed; if not, how long to wait and why."""

    allowed: bool
    retry_after_s: float = 0.0
    reason: str = ""


class _Bucket:
    """Token bucket: holds up to ``capacity``, refills ``capacity`` per 60 s, may go into debt."""

    def __init__(self, per_min: float, now: float):
        self.capacity, self.rate, self.level, self.t = per_min, per_min / 60.0, per_min, now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.t) * self.rate)
        self.t = now

    def wait_s(self, amount: float) -> float:
        """Seconds until ``amount`` is available: (amount - level) / rate, or 0."""
        return max(0.0, (amount - self.level) / self.rate)


class RateLimiter:
    """Per-key token buckets for requests per minute and tokens per minute.

    ``acquire(name, tokens)`` admits a request and reserves ``tokens`` (e.g. prompt + max_tokens);
    ``charge(name, delta)`` settles the difference once the real count is known (negative refunds).
    Limits per key come from ``limits_for(name)`` (e.g. :meth:`KeyStore.limits_for`), falling back
    to the defaults given here. Thread-safe.
    """

    def __init__(self, *, requests_per_min: float | None = None, tokens_per_min: float | None = None,
                 limits_for: Callable[[str], Limits] | None = None, clock: Callable[[], float] = time.monotonic):
        self.default = Limits(requests_per_min, tokens_per_min)
        self.limits_for = limits_for
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def _limits(self, name: str) -> Limits:
        own = self.limits_for(name) if self.limits_for else Limits()
        return Limits(own.requests_per_min or self.default.requests_per_min, own.tokens_per_min or self.default.tokens_per_min)

    def _bucket(self, name: str, kind: str, per_min: float | None, now: float) -> _Bucket | None:
        if per_min is None:
            return None
        b = self._buckets.get((name, kind))
        if b is None or b.capacity != per_min:  # a changed limit starts a fresh bucket
            b = self._buckets[(name, kind)] = _Bucket(per_min, now)
        b.refill(now)
        return b

    def acquire(self, name: str, tokens: int = 0) -> Decision:
        """Admit one request using ``tokens`` tokens, or say how long to wait."""
        with self._lock:
            now, lim = self.clock(), self._limits(name)
            req = self._bucket(name, "requests", lim.requests_per_min, now)
            tok = self._bucket(name, "tokens", lim.tokens_per_min, now)
            if tok is not None and tokens > tok.capacity:
                return Decision(False, math.inf, f"request needs {tokens} tokens, more than the limit of {tok.capacity:.0f} tokens/min")
            waits = []
            if req is not None and req.level < 1:
                waits.append((req.wait_s(1), "requests per minute limit reached"))
            if tok is not None and tok.level < tokens:
                waits.append((tok.wait_s(tokens), "tokens per minute limit reached"))
            if waits:
                wait, reason = max(waits)
                return Decision(False, wait, reason)
            if req is not None:
                req.level -= 1
            if tok is not None:
                tok.level -= tokens
            return Decision(True)

    def charge(self, name: str, tokens: int) -> None:
        """Take ``tokens`` more from the key's token bucket (negative gives unused tokens back)."""
        with self._lock:
            now, lim = self.clock(), self._limits(name)
            tok = self._bucket(name, "tokens", lim.tokens_per_min, now)
            if tok is not None:
                tok.level = min(tok.capacity, tok.level - tokens)


AUDIT_FIELDS = ("time", "key_name", "client", "endpoint", "status", "prompt_tokens", "completion_tokens", "latency_s", "model", "request_id", "error")


class AuditLog:
    """Append-only JSON-lines audit log, one line per request, safe for concurrent writers.

    Each record is one ``write()`` on a file opened with O_APPEND, so lines from several threads or
    processes never interleave. The file is created with mode 0600. Content (prompt, completion) is
    written only when ``log_content=True``; the API key itself is never accepted.
    """

    def __init__(self, path: str | os.PathLike, *, log_content: bool = False, fsync: bool = False):
        self.path = Path(path)
        self.log_content = log_content
        self.fsync = fsync
        self._lock = threading.Lock()
        if not self.path.parent.is_dir():
            raise AipcError(f"audit log folder {self.path.parent} does not exist; create it or choose another --audit-log")

    def record(self, *, key_name: str | None, client: str | None, endpoint: str, status: int,
               prompt_tokens: int | None = None, completion_tokens: int | None = None, latency_s: float | None = None,
               model: str | None = None, request_id: str | None = None, error: str | None = None,
               prompt: Any = None, completion: Any = None) -> dict:
        """Append one record; returns what was written. ``prompt``/``completion`` are dropped unless opted in."""
        rec = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "key_name": key_name, "client": client, "endpoint": endpoint, "status": int(status),
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "latency_s": None if latency_s is None else round(float(latency_s), 6),
            "model": model, "request_id": request_id, "error": error,
        }
        if self.log_content:
            rec["prompt"], rec["completion"] = prompt, completion
        line = (json.dumps(rec, ensure_ascii=True, separators=(",", ":"), default=str) + "\n").encode("ascii")
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        return rec


def read_audit(path: str | os.PathLike) -> list[dict]:
    """All records of an audit log, oldest first."""
    with open(path, encoding="ascii") as f:
        return [json.loads(line) for line in f if line.strip()]
