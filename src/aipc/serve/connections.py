"""Connections of ``aipc serve``: read timeouts, a connection limit, and logs a flood cannot grow.

uvicorn's h11 protocol closes idle keep-alive connections, but it has no deadline for a client that
sends its headers or its body slowly (slow-loris), and no limit on connections: every stalled
connection holds a file descriptor until accept() fails with EMFILE. :func:`protocol_class` returns
an h11 protocol that adds

- a **header timeout**: the request headers must be complete within ``header_timeout_s`` of the
  connection opening (or of the previous response on it); else 408 and the connection is closed;
- a **body timeout**: the whole body must arrive within ``body_timeout_s`` of its headers; else 408,
  and the handler waiting for it sees the client gone;
- a **connection limit**: at ``max_connections`` a new connection evicts the oldest one that has no
  request in progress (an idle keep-alive one, or one still sending its headers); when every
  connection is busy with a request, the newcomer gets 503 with ``Retry-After`` and is closed.

:class:`RateLimitedLog` keeps repeated warnings (accept errors such as EMFILE, malformed requests,
timeouts, refusals) to a few lines per period, each later line saying how many were left out.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from dataclasses import dataclass

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("aipc.serve")
READ_TIMEOUT_KEY = "aipc.read_timeout"  # set in the ASGI scope when the body timeout cut the request off
limited = {"aipc_rate_limited": True}    # logging ``extra=``: this message is rate-limited
FD_RESERVE = 128                         # descriptors kept for everything but client connections
ACCEPT_BATCH = 128                       # connections asyncio accepts per event-loop turn (its "backlog")
LISTEN_BACKLOG = 2048                    # connections the kernel queues before refusing new ones
FOREIGN_REPEATS = ("Invalid HTTP request received.", "socket.accept() out of system resource",
                   "Unsupported upgrade request.", "No supported WebSocket library detected")
ACCEPT_ERROR = "socket.accept() out of system resource"


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 512


def raw_response(status: int, reason: str, message: str, code: str, retry_after: int | None = None) -> bytes:
    """A complete HTTP/1.1 response with an OpenAI-style error body and ``Connection: close``."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()
    head = [f"HTTP/1.1 {status} {reason}", "content-type: application/json", f"content-length: {len(body)}",
            "connection: close"] + ([f"retry-after: {retry_after}"] if retry_after else [])
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class _Book:
    """What the connections of one server share: the open ones (oldest first) and event counts."""

    def __init__(self) -> None:
        self.open: dict[LimitedH11Protocol, None] = {}
        self.counts: collections.Counter[str] = collections.Counter()


def protocol_class(limits: ConnectionLimits) -> type[LimitedH11Protocol]:
    """An h11 protocol class for one server (``uvicorn.Config(http=...)``) enforcing ``limits``."""
    return type("AipcH11Protocol", (LimitedH11Protocol,), {"limits": limits, "book": _Book()})


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with read timeouts and a connection limit (see the module docstring)."""

    limits = ConnectionLimits()
    book = _Book()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self._timer: object | None = None
        self._timer_kind = ""
        self._seen = None        # the request cycle whose headers we last saw complete
        self._served = 0
        self._refused = len(self.book.open) >= self.limits.max_connections and not self._evict_one()
        if self._refused:
            return self._refuse(transport)
        super().connection_made(transport)
        self.book.open[self] = None
        self._arm("headers")

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self._disarm()
        self.book.open.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        self._served += 1
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm("headers")  # the next request on this keep-alive connection
            self._track()         # ... which may have been pipelined already

    # ------------------------------------------------------------------ timeouts
    def _arm(self, kind: str) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        seconds = self.limits.header_timeout_s if kind == "headers" else self.limits.body_timeout_s
        self._timer, self._timer_kind = self.loop.call_later(seconds, self._timed_out, kind), kind

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_kind = None, ""

    def _track(self) -> None:
        """Follow the request: headers complete → body timer (or none); body complete → no timer."""
        c = self.cycle
        if c is None:
            return
        if c is not self._seen:
            self._seen = c
            return self._arm("body") if c.more_body and not c.response_complete else self._disarm()
        if self._timer_kind == "body" and not c.more_body:
            self._disarm()

    def _timed_out(self, kind: str) -> None:
        self._timer, self._timer_kind = None, ""
        c = self.cycle if self.cycle is not None and not self.cycle.response_complete else None
        if self.transport.is_closing() or (kind == "body" and (c is None or c.response_started)):
            return
        seconds = self.limits.header_timeout_s if kind == "headers" else self.limits.body_timeout_s
        what = "request headers" if kind == "headers" else "request body"
        self.book.counts[f"{kind} timeout"] += 1
        log.info("closed a connection: %s not received within %g s (408)", what, seconds, extra=limited)
        if c is not None:  # the handler reading the body sees the client gone
            c.scope[READ_TIMEOUT_KEY] = True  # type: ignore[typeddict-unknown-key]
            c.disconnected = True
            c.message_event.set()
        self.transport.write(raw_response(408, "Request Timeout", f"the {what} did not arrive within {seconds:g} s",
                                          "request_timeout"))
        self.transport.close()

    # ------------------------------------------------------------------ the connection limit
    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _evict_one(self) -> bool:
        """Make room by closing the oldest connection without a request in progress; False if none."""
        for p in self.book.open:
            if p.transport.is_closing() or p._idle():
                del self.book.open[p]
                if not p.transport.is_closing():
                    p._evict()
                return True
        return False

    def _evict(self) -> None:
        self._disarm()
        self.book.counts["evicted"] += 1
        log.warning("connection limit of %d reached: closed the oldest idle connection", self.limits.max_connections,
                    extra=limited)
        keep_alive_idle = self._served and self.conn.their_state is h11.IDLE and not self.conn.trailing_data[0]
        if not keep_alive_idle:  # it may be a client about to send: say why
            self.transport.write(raw_response(503, "Service Unavailable", "the server is at its connection limit "
                                              "and closed this idle connection; retry", "too_many_connections", 1))
        self.transport.close()

    def _refuse(self, transport) -> None:
        self.book.counts["refused"] += 1
        log.warning("refused a connection: all %d connections are busy with requests (--max-connections)",
                    self.limits.max_connections, extra=limited)
        transport.write(raw_response(503, "Service Unavailable", f"the server is at its limit of "
                                     f"{self.limits.max_connections} connections; retry shortly",
                                     "too_many_connections", 1))
        transport.close()


class Server(uvicorn.Server):
    """uvicorn's server with a deep kernel queue but small accept batches.

    asyncio uses one number for both ``listen()`` and how many connections it accepts per turn of the
    event loop; accepting a burst of 2,000 at once would open 2,000 descriptors before the connection
    limit can close any. Start with ``backlog=ACCEPT_BATCH``, then deepen the kernel queue on the
    same socket (``listen()`` again updates it) so a burst waits there instead of being dropped.
    """

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        for sock in sockets or []:
            try:
                sock.listen(LISTEN_BACKLOG)
            except OSError:  # a platform that does not allow it keeps ACCEPT_BATCH
                pass


class RateLimitedLog(logging.Filter):
    """At most ``burst`` records per ``period_s`` of each repeated message (those logged with
    ``extra=limited``, and uvicorn's and asyncio's per-connection warnings); the first record of the
    next period says how many were left out. Accept errors lose their traceback: one line each."""

    def __init__(self, burst: int = 5, period_s: float = 10.0, clock=time.monotonic):
        super().__init__()
        self.burst, self.period_s, self.clock = burst, period_s, clock
        self.windows: dict[str, list] = {}  # message -> [window start, passed, suppressed]

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        if not getattr(record, "aipc_rate_limited", False) and not msg.startswith(FOREIGN_REPEATS):
            return True
        if msg.startswith(ACCEPT_ERROR):
            _accept_error_line(record)
        key, now = f"{record.name}:{msg.splitlines()[0]}", self.clock()
        w = self.windows.get(key)
        if w is None or now - w[0] >= self.period_s:
            left_out = w[2] if w else 0
            w = self.windows[key] = [now, 0, 0]
            if left_out:
                record.msg = f"{record.msg} ({left_out} more like this in the previous {self.period_s:g} s not logged)"
        if w[1] >= self.burst:
            w[2] += 1
            return False
        w[1] += 1
        return True


class ShortArgs(logging.Filter):
    """Cuts long values (a 20 KB URL in an access-log line) to ``max_chars``, saying how long they were."""

    def __init__(self, max_chars: int = 200):
        super().__init__()
        self.max_chars = max_chars

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, str) and len(a) > self.max_chars for a in record.args):
            record.args = tuple(f"{a[:self.max_chars]}...({len(a)} characters)"
                                if isinstance(a, str) and len(a) > self.max_chars else a for a in record.args)
        return True


def _accept_error_line(record: logging.LogRecord) -> None:
    exc = record.exc_info[1] if record.exc_info else None
    record.msg = (f"{ACCEPT_ERROR}: cannot accept a connection ({exc}); lower --max-connections or raise the "
                  "open-file limit (ulimit -n)")
    record.args, record.exc_info, record.exc_text = (), None, None


LOGGERS = ("asyncio", "uvicorn.error", "aipc.serve")


def install_log_limits(burst: int = 5, period_s: float = 10.0) -> RateLimitedLog:
    """Put one :class:`RateLimitedLog` on the loggers that repeat per connection, and :class:`ShortArgs`
    on the access log (once per process)."""
    for f in logging.getLogger(LOGGERS[0]).filters:
        if isinstance(f, RateLimitedLog):
            return f
    f = RateLimitedLog(burst, period_s)
    for name in LOGGERS:
        logging.getLogger(name).addFilter(f)
    logging.getLogger("uvicorn.access").addFilter(ShortArgs())
    return f


def open_files_needed(max_connections: int) -> int:
    """Descriptors a server with ``max_connections`` may hold at once: the connections, two accept
    batches not yet closed by the limit, and a reserve for everything else."""
    return max_connections + 2 * ACCEPT_BATCH + FD_RESERVE


def ensure_open_files(max_connections: int) -> None:
    """Raise this process's soft open-file limit (towards 8,192, or the need if higher) when it is below
    what ``max_connections`` needs; the hard limit bounds it (checked when the options are)."""
    try:
        import resource
    except ImportError:  # Windows: no rlimits
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(open_files_needed(max_connections), 8192)
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def open_file_hard_limit() -> float:
    """The most descriptors this process may raise its limit to (inf where unlimited or unknown)."""
    try:
        import resource
    except ImportError:
        return float("inf")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return float("inf") if hard == resource.RLIM_INFINITY else float(hard)
