"""The offline guard blocks every way out of the machine before a packet is sent; loopback still works.

Public targets are TEST-NET addresses (192.0.2.0/24, RFC 5737; 2001:db8::/32, RFC 3849), which are
never routed; the guard refuses them before the system call, so these tests send no traffic.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from aipc.errors import AipcError
from aipc.privacy import guard
from aipc.privacy.guard import OfflineGuardError, block_sockets, offline_guard


def _loopback(address) -> bool:
    if not isinstance(address, tuple):
        return True  # unix socket path
    host = str(address[0])
    if host == "localhost":
        return True
    try:
        import ipaddress

        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ip_literal(host) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(str(host))
        return True
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def spy(monkeypatch):
    """A tripwire beneath the guard: records every call that reaches the real socket layer and
    refuses any that would leave the machine, so even a broken guard sends nothing off-machine."""
    calls = []
    real_connect, real_sendto, real_gai = socket.socket.connect, socket.socket.sendto, socket.getaddrinfo
    real_connect_ex = socket.socket.connect_ex

    def connect(self, address):
        calls.append(("connect", address))
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address):
            raise AssertionError(f"the guard let a connection to {address} through")
        return real_connect(self, address)

    def connect_ex(self, address):
        calls.append(("connect", address))
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address):
            raise AssertionError(f"the guard let a connection to {address} through")
        return real_connect_ex(self, address)

    def sendto(self, data, *args):
        calls.append(("sendto", args[-1]))
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(args[-1]):
            raise AssertionError(f"the guard let a datagram to {args[-1]} through")
        return real_sendto(self, data, *args)

    def getaddrinfo(host, *a, **k):
        calls.append(("getaddrinfo", host))
        if host is not None and not _loopback((host,)) and not _ip_literal(host):  # literals need no DNS
            raise AssertionError(f"the guard let a name lookup for {host} through")
        return real_gai(host, *a, **k)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket.socket, "sendto", sendto)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


@pytest.fixture
def echo_server():
    """A real TCP echo server on 127.0.0.1 with a free port."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.sendall(conn.recv(64).upper())

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1]
    srv.close()


def test_connect_to_public_ip_is_blocked_before_the_system_call(spy):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with block_sockets(), pytest.raises(OfflineGuardError) as exc:
        s.connect(("192.0.2.1", 443))
    s.close()
    assert isinstance(exc.value, AipcError)
    assert str(exc.value) == (
        "aipc offline guard: blocked a connection to 192.0.2.1:443 — aipc runs offline; pass --allow-network to opt in"
    )
    assert spy == []  # the real connect was never reached
    assert guard.blocked_attempts()[-1] == ("a connection to", "192.0.2.1", 443)


def test_connect_ex_and_create_connection_by_hostname_are_blocked(spy):
    with block_sockets():
        s = socket.socket()
        with pytest.raises(OfflineGuardError, match="192.0.2.7:80"):
            s.connect_ex(("192.0.2.7", 80))
        with pytest.raises(OfflineGuardError, match="example.com:80"):
            s.connect(("example.com", 80))  # a name given straight to connect() would resolve in C
        s.close()
        with pytest.raises(OfflineGuardError, match=r"huggingface\.co:443"):
            socket.create_connection(("huggingface.co", 443), timeout=1)
        with pytest.raises(OfflineGuardError, match="name lookup for huggingface.co"):
            socket.gethostbyname("huggingface.co")
    assert spy == []  # no DNS query, no connect


def test_ipv6_public_address_is_blocked(spy):
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        pytest.skip("IPv6 sockets are not available here")
    with block_sockets(), pytest.raises(OfflineGuardError, match=r"2001:db8::1:443"):
        s.connect(("2001:db8::1", 443, 0, 0))
    s.close()
    assert spy == []


def test_udp_sendto_public_is_blocked_and_loopback_udp_works():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with block_sockets():
        with pytest.raises(OfflineGuardError, match="blocked a datagram to 192.0.2.1:53"):
            tx.sendto(b"dns?", ("192.0.2.1", 53))
        with pytest.raises(OfflineGuardError, match="192.0.2.1:53"):
            tx.sendto(b"dns?", 0, ("192.0.2.1", 53))
        tx.sendto(b"ping", rx.getsockname())
        assert rx.recv(16) == b"ping"
    tx.close()
    rx.close()


def test_loopback_localhost_and_unix_sockets_still_work(echo_server, tmp_path):
    with offline_guard():
        with socket.create_connection(("127.0.0.1", echo_server), timeout=5) as c:
            c.sendall(b"abc")
            assert c.recv(8) == b"ABC"
        with socket.create_connection(("localhost", echo_server), timeout=5) as c:
            c.sendall(b"xyz")
            assert c.recv(8) == b"XYZ"
        a, b = socket.socketpair()
        a.sendall(b"u")
        assert b.recv(1) == b"u"
        a.close()
        b.close()
        path = str(tmp_path / "s.sock")
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(path)
        srv.listen(1)
        cli = socket.socket(socket.AF_UNIX)
        cli.connect(path)
        conn, _ = srv.accept()
        cli.sendall(b"unix")
        assert conn.recv(8) == b"unix"
        for s in (conn, cli, srv):
            s.close()


def test_ipv6_loopback_works(echo_server):
    try:
        srv = socket.socket(socket.AF_INET6)
        srv.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    srv.listen(1)
    with block_sockets():
        c = socket.socket(socket.AF_INET6)
        c.connect(("::1", srv.getsockname()[1]))
        conn, _ = srv.accept()
        c.sendall(b"6")
        assert conn.recv(1) == b"6"
    for s in (conn, c, srv):
        s.close()


def test_http_clients_are_blocked_with_the_guard_error():
    import urllib.request

    with offline_guard(), pytest.raises(OfflineGuardError, match="192.0.2.1:80"):
        urllib.request.urlopen("http://192.0.2.1/", timeout=1)
    httpx = pytest.importorskip("httpx")
    with offline_guard(), pytest.raises(Exception) as exc:
        httpx.get("https://huggingface.co/api/models", timeout=1)
    assert guard.guard_error_in(exc.value) is not None


def test_environment_is_offline_inside_and_restored_after(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    hub = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    real_connect = socket.socket.connect
    with offline_guard():
        assert os.environ["HF_HUB_OFFLINE"] == "1"
        assert os.environ["TRANSFORMERS_OFFLINE"] == "1"
        assert os.environ["HF_DATASETS_OFFLINE"] == "1"
        assert os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1"
        assert os.environ["AIPC_OFFLINE_GUARD"] == "1"
        assert hub.HF_HUB_OFFLINE is True
        assert guard.is_active()
        with offline_guard():  # nesting keeps it on
            pass
        assert guard.is_active()
    assert os.environ["HF_HUB_OFFLINE"] == "0"
    assert "HF_DATASETS_OFFLINE" not in os.environ
    assert hub.HF_HUB_OFFLINE is False
    assert not guard.is_active()
    assert socket.socket.connect is real_connect


def test_allow_network_is_an_explicit_opt_in(monkeypatch):
    with offline_guard(allow_network=True):
        assert not guard.is_active()
        assert os.environ["HF_HUB_OFFLINE"] == "0"
        assert os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1"  # telemetry stays off


def test_from_pretrained_hub_id_under_the_guard_never_reaches_the_network(monkeypatch, spy):
    transformers = pytest.importorskip("transformers")
    hub = pytest.importorskip("huggingface_hub.constants")
    # 1. the socket guard alone, with hub offline mode forced OFF: the hub client tries, the guard stops it
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    before = len(guard.blocked_attempts())
    with block_sockets(), pytest.raises(Exception) as exc:
        transformers.AutoConfig.from_pretrained("some-org/some-model")
    found = guard.guard_error_in(exc.value)
    assert found is not None and "huggingface.co" in str(found)
    assert len(guard.blocked_attempts()) > before
    assert not [c for c in spy if c[0] == "connect" or c[1] not in (None, "localhost")]
    # 2. the full guard: offline mode stops it before any socket is touched, and the guard's
    #    context surfaces a one-line error type the CLI knows (AipcError) or the hub's offline error
    before = len(guard.blocked_attempts())
    with offline_guard(), pytest.raises(Exception) as exc:
        transformers.AutoModelForCausalLM.from_pretrained("some-org/some-model")
    assert isinstance(exc.value, (AipcError, OSError))
    assert len(guard.blocked_attempts()) == before  # nothing even tried
    assert not [c for c in spy if c[0] == "connect"]


def test_a_local_model_folder_loads_under_the_guard(tiny_llama_dir):
    transformers = pytest.importorskip("transformers")
    before = len(guard.blocked_attempts())
    with offline_guard():
        tok = transformers.AutoTokenizer.from_pretrained(tiny_llama_dir)
        model = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
        out = model.generate(**tok("hi", return_tensors="pt"), max_new_tokens=2, do_sample=False)
    assert out.shape[-1] >= 3
    assert len(guard.blocked_attempts()) == before  # the normal path never trips the guard


def test_wrapped_guard_error_surfaces_as_the_guard_error():
    def library_call():
        try:
            socket.create_connection(("192.0.2.9", 443))
        except Exception as e:
            raise OSError("library could not connect") from e

    with pytest.raises(OfflineGuardError, match="192.0.2.9:443"):
        with offline_guard():
            library_call()


def test_guard_from_env(monkeypatch):
    monkeypatch.setenv("AIPC_OFFLINE_GUARD", "0")
    assert guard.guard_from_env() is False
    monkeypatch.setenv("AIPC_OFFLINE_GUARD", "1")
    assert guard.guard_from_env() is True
    try:
        with pytest.raises(OfflineGuardError):
            socket.socket().connect(("192.0.2.1", 1))
    finally:
        guard.disable()
    assert not guard.is_active()


@pytest.mark.parametrize("host,local", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("localhost", True), ("LOCALHOST.", True), ("api.localhost", True), ("0.0.0.0", True),
    ("192.0.2.1", False), ("10.0.0.1", False), ("2001:db8::1", False), ("::ffff:192.0.2.1", False),
    ("huggingface.co", False), ("localhost.evil.com", False),
])
def test_connect_allowed_table(host, local):
    assert guard._connect_allowed(host) is local


def test_asyncio_connections_are_blocked_and_loopback_works(echo_server):
    import asyncio

    async def main():
        with pytest.raises(OfflineGuardError, match="192.0.2.3:443"):
            await asyncio.open_connection("192.0.2.3", 443)
        with pytest.raises(OfflineGuardError, match="example.org"):
            await asyncio.open_connection("example.org", 443)
        reader, writer = await asyncio.open_connection("127.0.0.1", echo_server)
        writer.write(b"aio")
        await writer.drain()
        got = await reader.read(8)
        writer.close()
        return got

    with offline_guard():
        assert asyncio.run(main()) == b"AIO"


def test_localhost_names_resolve_to_loopback_without_asking_a_resolver(spy, echo_server):
    """RFC 6761: names under .localhost are loopback. The name never reaches the real resolver (the spy
    beneath the guard sees only the numeric loopback address), so no DNS query can carry it out."""
    with offline_guard():
        with socket.create_connection(("exfil-secret-data.localhost", echo_server), timeout=5) as c:
            c.sendall(b"rfc")
            assert c.recv(8) == b"RFC"
        infos = socket.getaddrinfo("a.b.LOCALHOST.", 80, type=socket.SOCK_STREAM)
        assert {i[4][0] for i in infos} <= {"127.0.0.1", "::1"} and infos
        assert socket.gethostbyname("x.localhost") == "127.0.0.1"
        assert socket.gethostbyname_ex("localhost")[2] == ["127.0.0.1"]
        s = socket.socket()
        s.settimeout(5)
        s.connect(("api.localhost", echo_server))  # a name handed to connect() itself
        s.close()
    names = [h for kind, h in spy if kind == "getaddrinfo"]
    assert names and all(h in ("127.0.0.1", "::1") for h in names), names
    assert all(not str(a[0]).endswith("localhost") for kind, a in spy if kind == "connect")


def test_this_hosts_name_is_answered_from_the_hosts_file_or_loopback(spy):
    name = socket.gethostname()
    with offline_guard():
        addrs = {i[4][0] for i in socket.getaddrinfo(name, 80)}
        fqdn = socket.getfqdn()
    assert addrs and fqdn
    assert not [h for kind, h in spy if kind == "getaddrinfo" and h not in addrs], spy


def test_reverse_lookups_and_raw_socket_module_lookups_are_blocked():
    import _socket

    with offline_guard():
        for call in (lambda: socket.gethostbyaddr("192.0.2.9"), lambda: socket.getnameinfo(("192.0.2.9", 80), 0),
                     lambda: _socket.getaddrinfo("example.com", 80), lambda: _socket.gethostbyname("example.com")):
            with pytest.raises(OfflineGuardError):
                call()
        assert socket.getnameinfo(("192.0.2.9", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV) == ("192.0.2.9", "80")
        assert socket.gethostbyaddr("127.0.0.1")[2] == ["127.0.0.1"]
    assert type(_socket.getaddrinfo).__name__ == "builtin_function_or_method"  # restored after the block


def test_a_host_the_user_named_is_the_one_exception(spy):
    """`--db postgresql://HOST/...`: the results server the user named may be reached, nothing else."""
    with offline_guard(allow_hosts=["192.0.2.5"]):
        with pytest.raises(AssertionError, match="let a connection to"):  # past the guard; the spy does not send
            socket.socket().connect(("192.0.2.5", 5432))
        with pytest.raises(OfflineGuardError):
            socket.socket().connect(("192.0.2.6", 5432))
        with pytest.raises(OfflineGuardError):
            socket.getaddrinfo("huggingface.co", 443)
    with offline_guard(), pytest.raises(OfflineGuardError):
        socket.socket().connect(("192.0.2.5", 5432))  # only for the block that named it
    from aipc.bench.dburl import hosts

    assert hosts("postgresql://ann:pw@db.team:5432,db2:5433/team?host=db3") == ["db.team", "db2", "db3"]
    assert hosts(str(Path("/tmp/r.sqlite"))) == []
