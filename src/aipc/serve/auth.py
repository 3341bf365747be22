"""Who may call the server: one API key (``--api-key`` / ``AIPC_API_KEY``) and/or a key file of
named, revocable keys (:class:`aipc.privacy.access.KeyStore`), per-key rate limits and an audit log.

An API key is required whenever the server binds anything other than a loopback address.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

from aipc.errors import AipcError
from aipc.privacy.access import AuditLog, KeyStore, RateLimiter, parse_bearer

SINGLE_KEY_NAME = "default"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'."""
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


@dataclass
class Access:
    """Authentication, rate limiting and audit for one server."""

    api_key: str | None = None
    keystore: KeyStore | None = None
    limiter: RateLimiter | None = None
    audit: AuditLog | None = None

    @property
    def required(self) -> bool:
        return self.api_key is not None or self.keystore is not None

    def authenticate(self, authorization: str | None) -> str | None:
        """The key name for an ``Authorization`` header, or None when it matches no key.

        Without any key configured every caller is ``anonymous``.
        """
        if not self.required:
            return "anonymous"
        token = parse_bearer(authorization)
        if token is None:
            return None
        name = None
        if self.api_key is not None:
            a = hashlib.sha256(token.encode("utf-8", "replace")).digest()
            b = hashlib.sha256(self.api_key.encode("utf-8")).digest()
            if hmac.compare_digest(a, b):
                name = SINGLE_KEY_NAME
        if name is None and self.keystore is not None:
            name = self.keystore.authenticate(token)
        return name


def build_access(*, host: str, api_key: str | None, key_file: str | None, requests_per_min: float | None,
                 tokens_per_min: float | None, audit_log: str | None, audit_content: bool) -> Access:
    """Check the flags and build the server's :class:`Access`; refuses an open non-loopback bind."""
    if api_key is not None and not api_key.strip():
        api_key = None
    if api_key is not None and len(api_key) < 8:
        raise AipcError("--api-key is too short; use at least 8 random characters (16 or more is better)")
    store = KeyStore(key_file) if key_file else None
    if not is_loopback(host) and api_key is None and store is None:
        raise AipcError(f"binding {host} exposes the model beyond this machine, so an API key is required; "
                        "pass --api-key KEY (or set AIPC_API_KEY), or --api-key-file FILE, or bind 127.0.0.1")
    limiter = None
    if requests_per_min or tokens_per_min or store is not None:
        limiter = RateLimiter(requests_per_min=requests_per_min, tokens_per_min=tokens_per_min,
                              limits_for=store.limits_for if store is not None else None)
    audit = AuditLog(audit_log, log_content=audit_content) if audit_log else None
    return Access(api_key=api_key, keystore=store, limiter=limiter, audit=audit)
