"""A TCP proxy in front of the test PostgreSQL server that can cut a client off at the worst moment.

``Proxy(server_port)`` listens on a free port of 127.0.0.1 and relays bytes both ways. With
``arm_commit_drop()`` it watches the client's messages (PostgreSQL wire protocol: an untyped startup
packet, then ``type byte + int32 length + body``); when the next simple-query ``COMMIT`` has been
forwarded and the server has answered it, the proxy closes both sockets instead of relaying the
answer: the server committed, the client never hears so. ``refuse = True`` closes new connections at once.
"""

from __future__ import annotations

import socket
import struct
import threading

_NEGOTIATE = (80877103, 80877104)  # SSLRequest, GSSENCRequest: untyped, answered with one byte


def _exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


class Proxy:
    def __init__(self, server_port: int):
        self.server_port = server_port
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.armed, self.dropped, self.refuse, self.connections = 0, 0, False, 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def arm_commit_drop(self, n: int = 1) -> None:
        with self._lock:
            self.armed += n

    def close(self) -> None:
        self.lsock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            if self.refuse:
                client.close()
                continue
            self.connections += 1
            server = socket.create_connection(("127.0.0.1", self.server_port))
            state = {"cut": False}
            threading.Thread(target=self._client_to_server, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(client, server, state), daemon=True).start()

    def _client_to_server(self, client, server, state) -> None:
        try:
            while True:  # untyped packets until the startup message
                head = _exact(client, 4)
                body = _exact(client, struct.unpack("!i", head)[0] - 4)
                server.sendall(head + body)
                if struct.unpack("!i", body[:4])[0] not in _NEGOTIATE:
                    break
            while True:
                head = _exact(client, 5)
                body = _exact(client, struct.unpack("!i", head[1:])[0] - 4)
                if head[:1] == b"Q" and body.upper().startswith(b"COMMIT"):
                    with self._lock:
                        if self.armed:
                            self.armed -= 1
                            state["cut"] = True
                server.sendall(head + body)
        except OSError:
            pass
        finally:
            for s in (client, server):
                s.close()

    def _server_to_client(self, client, server, state) -> None:
        try:
            while True:
                data = server.recv(65536)
                if not data:
                    break
                if state["cut"]:  # the server has answered the COMMIT: the client must not hear it
                    self.dropped += 1
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            for s in (client, server):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
