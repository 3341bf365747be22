"""The network probe, loaded at interpreter start (``PYTHONPATH=tests/netprobe``) into an aipc process and
every Python child it starts, when ``AIPC_PROBE_OUT`` names a folder.

1. A tripwire *beneath* the offline guard: it wraps the socket layer before anything else is imported
   (``socket.socket.connect/connect_ex/sendto/sendmsg``, and the name lookups of both ``socket`` and
   ``_socket``), so the guard, installed later, calls it as "the real thing". Every call that reaches it is
   recorded; a *leak* is a connection or datagram to anything but a loopback IP literal (a host name
   handed to ``connect`` is resolved by C code, which may ask DNS) or a lookup of any name at all (the
   guard answers localhost names and this host's name itself, so a name that gets here goes to the
   system resolver). With ``AIPC_PROBE_PASS=1`` leaks go through (inside a network namespace, whose
   monitors then see them); otherwise they are refused here so nothing is sent.
2. A probe thread: as soon as the guard is on (and once more 0.5 s later, mid-work), it tries to leave —
   TCP to 192.0.2.1:443, a lookup of huggingface.co, ``create_connection`` to a ``.localhost`` name,
   an HTTP GET, a UDP datagram, ``gethostbyname`` — and records how each ended. If the guard never comes
   on, it tries at exit instead (so an unguarded verb shows its leaks).

Each process writes ``<pid>.json`` into ``AIPC_PROBE_OUT`` after each round and at exit. What this cannot see: sockets opened
by C code (gloo, a C HTTP client) and C-level resolver calls — the network namespace monitors
(tests/sandbox.py) see those.
"""

import atexit
import ipaddress
import json
import os
import socket
import sys
import threading
import time

import _socket

OUT = os.environ.get("AIPC_PROBE_OUT")
PASS = os.environ.get("AIPC_PROBE_PASS") == "1"
REPORT = {"pid": os.getpid(), "argv": list(getattr(sys, "argv", [])), "guard_seen": False, "rounds": [],
          "reached": [], "leaks": []}
_LOCK = threading.Lock()


def _loopback_literal(host) -> bool:
    try:
        ip = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def _literal(host) -> bool:
    try:
        ipaddress.ip_address(str(host).split("%", 1)[0])
        return True
    except ValueError:
        return False


def _note(layer: str, what: str, host, leak: bool) -> None:
    with _LOCK:
        rec = {"layer": layer, "what": what, "host": str(host), "guard_on": _guard_on(), "t": time.time()}
        REPORT["reached"].append(rec)
        if leak:
            REPORT["leaks"].append(rec)
    if leak and not PASS:
        raise OSError(f"netprobe: refused a leak ({what} {host}) beneath the guard")


def _wrap_method(name: str) -> None:
    real = getattr(socket.socket, name)

    def method(self, *args):
        addr = args[-1] if name in ("connect", "connect_ex", "sendto") else (args[2] if len(args) >= 3 else None)
        if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(addr, tuple) and addr:
            _note("socket", name, addr[0], not _loopback_literal(addr[0]))
        return real(self, *args)

    setattr(socket.socket, name, method)


def _wrap_lookup(owner, name: str, layer: str) -> None:
    real = getattr(owner, name)

    def lookup(*args, **kwargs):
        host = args[0] if args else kwargs.get("host")
        if name == "getnameinfo":
            host = host[0] if isinstance(host, tuple) and host else host
            _note(layer, name, host, not (_loopback_literal(host) or (args[1] if len(args) > 1 else 0)
                                          & socket.NI_NUMERICHOST))
        elif name == "gethostbyaddr":
            _note(layer, name, host, not _loopback_literal(host))
        elif host not in (None, "", b""):
            _note(layer, name, host, not _literal(host if not isinstance(host, bytes) else host.decode()))
        return real(*args, **kwargs)

    setattr(owner, name, lookup)


def _guard_on() -> bool:
    active = getattr(sys.modules.get("aipc.privacy.guard"), "is_active", None)  # None while it imports
    return bool(active is not None and active())


def _attempt(what: str, fn) -> dict:
    try:
        fn()
        return {"what": what, "outcome": "completed"}
    except BaseException as e:  # noqa: BLE001 - any outcome is a result here
        return {"what": what, "outcome": type(e).__name__, "guard": "offline guard" in str(e), "msg": str(e)[:200]}


def _round(when: str) -> None:
    import urllib.request

    def udp():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"probe", ("192.0.2.7", 53))

    tries = [
        ("tcp 192.0.2.1:443", lambda: socket.create_connection(("192.0.2.1", 443), timeout=0.5).close()),
        ("getaddrinfo huggingface.co", lambda: socket.getaddrinfo("huggingface.co", 443)),
        ("tcp exfil-secret-data.localhost:443",
         lambda: socket.create_connection(("exfil-secret-data.localhost", 443), timeout=0.5).close()),
        ("http GET example.com", lambda: urllib.request.urlopen("http://example.com/", timeout=0.5).close()),
        ("udp 192.0.2.7:53", udp),
        ("gethostbyname example.org", lambda: socket.gethostbyname("example.org")),
    ]
    results = [_attempt(w, f) for w, f in tries]
    with _LOCK:
        REPORT["rounds"].append({"when": when, "guard_on": _guard_on(), "attempts": results})
    _write()


def _write() -> None:
    """Write the report now (a server ended by SIGTERM re-raises the signal and skips atexit)."""
    with _LOCK:
        blob = json.dumps(REPORT)
    path = os.path.join(OUT, f"{os.getpid()}.json")
    with open(path + ".tmp", "w") as f:
        f.write(blob)
    os.replace(path + ".tmp", path)


def _watch() -> None:
    deadline = time.time() + 3600
    while time.time() < deadline:
        if _guard_on():
            REPORT["guard_seen"] = True
            _round("guard just switched on")
            time.sleep(0.5)
            if _guard_on():
                _round("mid-work")
            return
        time.sleep(0.005)


def _at_exit() -> None:
    if not REPORT["rounds"]:
        _round("at exit (the guard never came on)")
    _write()


if OUT:
    for _m in ("connect", "connect_ex", "sendto", "sendmsg"):
        _wrap_method(_m)
    for _owner, _layer in ((socket, "socket"), (_socket, "_socket")):
        for _n in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo"):
            _wrap_lookup(_owner, _n, _layer)
    threading.Thread(target=_watch, name="aipc-netprobe", daemon=True).start()
    atexit.register(_at_exit)
