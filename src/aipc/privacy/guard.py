"""Offline guard: while it is on, any network connection that would leave this machine is an error.

aipc promises that train, generate, serve, bench and report keep data on the machine. The guard makes
that promise checkable: it wraps the Python socket layer so that an attempt to reach a non-loopback
address raises :class:`OfflineGuardError` *before* the system call, so no packet is ever sent.

Allowed: 127.0.0.0/8, ::1 (and ::ffff:127.x), the names ``localhost`` / ``*.localhost``, unix sockets
and other non-IP families, binding and listening on any address (a server on 0.0.0.0 only accepts
connections; it does not dial out). Blocked: ``connect``/``connect_ex`` and UDP ``sendto``/``sendmsg``
to any other IPv4/IPv6 address. Name lookups (``getaddrinfo``, ``gethostbyname[_ex]``,
``gethostbyaddr``, ``getnameinfo``, in ``socket`` and in ``_socket``) never reach a resolver that could
ask DNS, since a DNS query is itself traffic: localhost names are answered with 127.0.0.1 / ::1 by the
guard itself (RFC 6761), this host's name from /etc/hosts as read here (else loopback), IP literals
numerically; every other name is refused. A localhost name handed to ``connect()`` is rewritten to the
loopback address so the C layer never resolves it.

The guard also switches the Hugging Face libraries to offline mode and turns off telemetry
(environment variables plus ``huggingface_hub.constants.HF_HUB_OFFLINE`` when it is already imported).

Use it around a verb's work::

    from aipc.privacy.guard import offline_guard
    with offline_guard(allow_network=args.allow_network):
        run_the_verb()

Limits (see docs/SECURITY.md): it sees only calls made through Python's ``socket`` / ``_socket``
module functions in this process — not methods of a raw ``_socket.socket``, not functions bound before it
came on, not C code (gloo/NCCL, torch's TCPStore, a C++ HTTP client). Child processes inherit the offline
environment variables and ``AIPC_OFFLINE_GUARD=1``; aipc starts its own Python children through
``python -m aipc.privacy.run_guarded``, which switches the guard on in them (:func:`guard_from_env`).
"""

from __future__ import annotations

import collections
import contextlib
import ipaddress
import os
import socket
import sys
import threading
from collections.abc import Iterable, Iterator

from aipc.errors import AipcError

# Environment for the guarded block: hub offline, telemetry off. Restored on exit.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "DO_NOT_TRACK": "1",
    "WANDB_MODE": "disabled",
    "AIPC_OFFLINE_GUARD": "1",
}
# With --allow-network the hub may be used; telemetry stays off.
ONLINE_ENV = {
    "HF_HUB_OFFLINE": "0",
    "TRANSFORMERS_OFFLINE": "0",
    "HF_DATASETS_OFFLINE": "0",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "AIPC_OFFLINE_GUARD": "0",
}
LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


class OfflineGuardError(AipcError):
    """A connection that would leave the machine was attempted while the offline guard was on."""

    def __init__(self, host: object, port: object | None = None, what: str = "a connection to"):
        self.host, self.port = host, port
        target = f"{host}:{port}" if port not in (None, 0) else f"{host}"
        super().__init__(
            f"aipc offline guard: blocked {what} {target} — aipc runs offline; "
            "pass --allow-network to opt in"
        )


def is_local_ip(host: str) -> bool:
    """True for loopback addresses (127.0.0.0/8, ::1, ::ffff:127.x) and the unspecified address.

    The unspecified address (0.0.0.0, ::) is allowed because a connect() to it is routed to this
    machine by the kernel (Linux, macOS); it never leaves the host.
    """
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 scope id ("fe80::1%eth0")
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return True
    except ValueError:
        return False


def _text(host: object) -> str:
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("ascii", "replace")
    return str(host).strip().rstrip(".").lower()


def is_loopback_name(host: object) -> bool:
    """``localhost`` and every name under ``.localhost`` (RFC 6761: they are loopback, never asked of DNS)."""
    h = _text(host)
    return h in LOCAL_NAMES or h.endswith(".localhost")


def _own_name(host: str) -> bool:
    return host == socket.gethostname().lower()


def _hosts_file_addresses(name: str, path: str = "/etc/hosts") -> list[str]:
    """The addresses /etc/hosts gives ``name`` (read by aipc itself, so no resolver is asked)."""
    found = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                words = line.split("#", 1)[0].split()
                if len(words) >= 2 and name in (w.lower() for w in words[1:]) and _is_ip_literal(words[0]):
                    found.append(words[0])
    except OSError:
        pass
    return found


def local_addresses(host: object) -> list[str] | None:
    """The addresses of a name that must be answered on this machine, or None for any other name.

    Loopback names answer 127.0.0.1 and ::1; this machine's host name answers what /etc/hosts says
    (else loopback, as systemd's nss-myhostname does); an IP literal answers itself. None means the
    name would need DNS: the guard refuses it.
    """
    if host is None:
        return None
    h = _text(host)
    if _is_ip_literal(h):
        return [h]
    if is_loopback_name(h):
        return ["127.0.0.1", "::1"]
    if h and _own_name(h):
        return _hosts_file_addresses(h) or ["127.0.0.1", "::1"]
    return None


def is_local_name(host: object) -> bool:
    """True for names whose lookup stays on this machine: localhost names, this host's name, IP literals."""
    return host is None or _text(host) == "" or local_addresses(host) is not None


def _connect_allowed(host: object) -> bool:
    """May a connection go to ``host``? Only loopback addresses and localhost names."""
    h = _text(host)
    return is_loopback_name(h) or is_local_ip(h)


class _Guard:
    """Process-wide socket patches, reference-counted so guarded blocks may nest."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.saved: dict[tuple[object, str], object] = {}
        self.blocked: list[tuple[str, object, object]] = []  # (what, host, port), newest last
        self.allowed: collections.Counter[str] = collections.Counter()  # hosts the user named (e.g. --db's)
        self.allowed_ips: set[str] = set()  # what those names resolved to

    def allows(self, host: object) -> bool:
        """A host the user named explicitly for this block (a results database server), or its address."""
        h = _text(host)
        return self.allowed[h] > 0 or h in self.allowed_ips

    def _block(self, what: str, host: object, port: object | None) -> OfflineGuardError:
        self.blocked.append((what, host, port))
        del self.blocked[:-100]  # keep the last 100
        return OfflineGuardError(host, port, what)

    def _check_inet(self, sock: socket.socket, address: object, what: str) -> object:
        """The address to really use (a localhost name becomes its loopback address), or raise."""
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return address  # unix sockets, netlink, ... never leave the machine through this call
        if not isinstance(address, tuple) or not address:
            return address  # let the real call raise its own TypeError
        host, port = address[0], address[1] if len(address) > 1 else None
        if not (_connect_allowed(host) or self.allows(host)):
            raise self._block(what, host, port)
        if is_loopback_name(host):  # never let the C layer resolve the name (it would ask DNS)
            loop = "127.0.0.1" if sock.family == socket.AF_INET else "::1"
            return (loop, *address[1:])
        return address

    def _patched_socket_methods(self) -> dict[tuple[object, str], object]:
        guard = self
        orig = {n: getattr(socket.socket, n) for n in ("connect", "connect_ex", "sendto", "sendmsg")}

        def connect(self, address):
            return orig["connect"](self, guard._check_inet(self, address, "a connection to"))

        def connect_ex(self, address):
            return orig["connect_ex"](self, guard._check_inet(self, address, "a connection to"))

        def sendto(self, data, *args):
            if args:  # sendto(data, address) or sendto(data, flags, address)
                args = (*args[:-1], guard._check_inet(self, args[-1], "a datagram to"))
            return orig["sendto"](self, data, *args)

        def sendmsg(self, buffers, *args):
            if len(args) >= 3 and args[2] is not None:  # sendmsg(buffers, ancdata, flags, address)
                args = (*args[:2], guard._check_inet(self, args[2], "a datagram to"), *args[3:])
            return orig["sendmsg"](self, buffers, *args)

        return {(socket.socket, "connect"): connect, (socket.socket, "connect_ex"): connect_ex,
                (socket.socket, "sendto"): sendto, (socket.socket, "sendmsg"): sendmsg}

    def _patched_resolvers(self, owner: object) -> dict[tuple[object, str], object]:
        """Name lookups answered on this machine or refused: nothing reaches a resolver that could ask DNS."""
        guard = self
        real = {n: getattr(owner, n) for n in ("getaddrinfo", "gethostbyname", "gethostbyname_ex",
                                                "gethostbyaddr", "getnameinfo")}

        def addresses(host, port, what="a name lookup for"):
            found = local_addresses(host)
            if found is None and guard.allowed[_text(host)] > 0:  # named by the user: the one name DNS may see
                found = sorted({i[4][0] for i in real["getaddrinfo"](host, None)})
                guard.allowed_ips.update(found)
            if found is None:
                raise guard._block(what, host, port)
            return found

        def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
            if host is None or _text(host) == "":
                return real["getaddrinfo"](host, port, family, type, proto, flags)
            out = []
            for addr in addresses(host, port):
                fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
                if family in (0, socket.AF_UNSPEC, fam):
                    out += real["getaddrinfo"](addr, port, fam, type, proto, flags | socket.AI_NUMERICHOST)
            if not out:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return out

        def gethostbyname(host):
            v4 = [a for a in addresses(host, None) if ":" not in a]
            if not v4:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return v4[0]

        def gethostbyname_ex(host):
            v4 = [a for a in addresses(host, None) if ":" not in a]
            return (_text(host), [], v4)

        def gethostbyaddr(host):
            ips = addresses(host, None, "a reverse lookup of")  # reverse DNS is traffic too
            if _is_ip_literal(_text(host)) and not (is_local_ip(_text(host)) or _own_address(_text(host))
                                                    or guard.allows(host)):
                raise guard._block("a reverse lookup of", host, None)
            name = socket.gethostname() if _own_address(ips[0]) else "localhost"
            return (name if _is_ip_literal(_text(host)) else _text(host), [], ips)

        def getnameinfo(sockaddr, flags):
            host = sockaddr[0] if isinstance(sockaddr, tuple) and sockaddr else None
            if not (flags & socket.NI_NUMERICHOST) and not is_local_ip(_text(host)):
                raise guard._block("a reverse lookup of", host, None)
            return real["getnameinfo"](sockaddr, flags | socket.NI_NUMERICHOST)

        fns = {"getaddrinfo": getaddrinfo, "gethostbyname": gethostbyname, "gethostbyname_ex": gethostbyname_ex,
               "gethostbyaddr": gethostbyaddr, "getnameinfo": getnameinfo}
        return {(owner, n): fn for n, fn in fns.items()}

    def install(self) -> None:
        import _socket

        patches = {**self._patched_socket_methods(), **self._patched_resolvers(socket),
                   **self._patched_resolvers(_socket)}
        for (owner, name), fn in patches.items():
            self.saved[(owner, name)] = getattr(owner, name)
            fn.__wrapped__ = self.saved[(owner, name)]
            setattr(owner, name, fn)

    def uninstall(self) -> None:
        for (owner, name), fn in self.saved.items():
            setattr(owner, name, fn)
        self.saved.clear()


def _own_address(ip: str) -> bool:
    return ip in _hosts_file_addresses(socket.gethostname().lower())


_GUARD = _Guard()


def is_active() -> bool:
    """Whether the socket guard is on in this process."""
    return _GUARD.depth > 0


def blocked_attempts() -> list[tuple[str, object, object]]:
    """The last blocked attempts as (what, host, port), oldest first (for tests and reports)."""
    return list(_GUARD.blocked)


def enable() -> None:
    """Switch the socket guard on (process-wide; pair each call with :func:`disable`)."""
    with _GUARD.lock:
        if _GUARD.depth == 0:
            _GUARD.install()
        _GUARD.depth += 1


def disable() -> None:
    """Undo one :func:`enable`; the patches come off when the last one is undone."""
    with _GUARD.lock:
        if _GUARD.depth == 0:
            return
        _GUARD.depth -= 1
        if _GUARD.depth == 0:
            _GUARD.uninstall()


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables (and the already-imported hub constant); restore both on exit."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    hub = sys.modules.get("huggingface_hub.constants")
    old_hub = getattr(hub, "HF_HUB_OFFLINE", None) if hub is not None else None
    if hub is not None:  # read once at import time, so the env var alone is too late
        hub.HF_HUB_OFFLINE = values["HF_HUB_OFFLINE"] == "1"
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if hub is not None:
            hub.HF_HUB_OFFLINE = old_hub


@contextlib.contextmanager
def _allowing(hosts: list[str]) -> Iterator[None]:
    with _GUARD.lock:
        _GUARD.allowed.update(hosts)
    try:
        yield
    finally:
        with _GUARD.lock:
            _GUARD.allowed.subtract(hosts)
            _GUARD.allowed = +_GUARD.allowed
            if not _GUARD.allowed:
                _GUARD.allowed_ips.clear()


@contextlib.contextmanager
def block_sockets() -> Iterator[None]:
    """Only the socket guard, without touching the environment (tests use it to probe the guard)."""
    enable()
    try:
        yield
    finally:
        disable()


@contextlib.contextmanager
def offline_guard(allow_network: bool = False, allow_hosts: Iterable[str] = ()) -> Iterator[None]:
    """Run a block offline: hub offline, telemetry off, non-loopback connections raise.

    ``allow_network=True`` is the explicit opt-in: the hub may be reached and no socket is blocked
    (telemetry stays off). ``allow_hosts``: hosts the user named for this block (the server of a
    ``--db postgresql://...`` URL) may be looked up and reached; nothing else. An outer guard that is
    already on stays on.
    """
    if allow_network:
        with _environment(ONLINE_ENV):
            yield
        return
    with _environment(OFFLINE_ENV), block_sockets(), _allowing([_text(h) for h in allow_hosts]):
        try:
            yield
        except Exception as e:  # surface a block that a library wrapped (transformers -> OSError)
            found = guard_error_in(e)
            if found is not None and found is not e:
                raise found from e
            raise


def guard_error_in(exc: BaseException | None) -> OfflineGuardError | None:
    """The :class:`OfflineGuardError` behind ``exc``, if any (libraries wrap it, e.g. transformers in OSError).

    A verb can turn a wrapped block back into aipc's one-line error::

        except Exception as e:
            if (g := guard_error_in(e)) is not None:
                raise g from e
            raise
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OfflineGuardError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def guard_from_env() -> bool:
    """Switch the guard on for the rest of this process if ``AIPC_OFFLINE_GUARD=1`` (child processes).

    Returns whether it was switched on. Meant for worker entry points (e.g. torchrun workers) whose
    parent ran under :func:`offline_guard`.
    """
    if os.environ.get("AIPC_OFFLINE_GUARD") == "1":
        enable()
        return True
    return False
