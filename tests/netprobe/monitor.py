"""Inside a throw-away network namespace: a fake DNS server on 127.0.0.1:53 that records every query
(and answers NXDOMAIN), and a packet monitor on the loopback device that records every packet whose
destination is not a loopback address. Routes send all traffic to ``lo``, so anything any layer of
any process in the namespace sends (C extensions and the system resolver included) is seen here, and
nothing can leave the machine.

``python monitor.py OUT_DIR``: writes ``OUT_DIR/ready`` when listening and ``OUT_DIR/monitor.json``
when it receives SIGTERM.
"""

import ipaddress
import json
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path

OUT = Path(sys.argv[1])
SEEN = {"dns_queries": [], "packets": []}
STOP = threading.Event()


def qname(msg: bytes) -> str:
    labels, i = [], 12
    while i < len(msg) and msg[i]:
        n = msg[i]
        labels.append(msg[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    qtype = struct.unpack("!H", msg[i + 1:i + 3])[0] if i + 3 <= len(msg) else 0
    return ".".join(labels) + f" (type {qtype})"


def dns() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 53))
    s.settimeout(0.2)
    while not STOP.is_set():
        try:
            msg, peer = s.recvfrom(4096)
        except socket.timeout:
            continue
        SEEN["dns_queries"].append({"name": qname(msg), "t": time.time()})
        if len(msg) >= 12:  # NXDOMAIN: QR=1, RD copied, RA=1, RCODE=3; no answers
            flags = 0x8000 | (struct.unpack("!H", msg[2:4])[0] & 0x0100) | 0x0080 | 3
            s.sendto(msg[:2] + struct.pack("!H", flags) + msg[4:6] + b"\0\0\0\0\0\0" + msg[12:], peer)


def _dst(frame: bytes) -> tuple[str, str, int] | None:
    eth = struct.unpack("!H", frame[12:14])[0]
    if eth == 0x0800 and len(frame) >= 34:
        ip = frame[14:]
        return str(ipaddress.IPv4Address(ip[16:20])), str(ipaddress.IPv4Address(ip[12:16])), ip[9]
    if eth == 0x86DD and len(frame) >= 54:
        ip = frame[14:]
        return str(ipaddress.IPv6Address(ip[24:40])), str(ipaddress.IPv6Address(ip[8:24])), ip[6]
    return None


def sniff() -> None:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind(("lo", 0))
    s.settimeout(0.2)
    while not STOP.is_set():
        try:
            frame, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        if addr[2] != socket.PACKET_OUTGOING:  # each loopback packet shows twice: count it once
            continue
        got = _dst(frame)
        if got and not ipaddress.ip_address(got[0]).is_loopback:
            SEEN["packets"].append({"dst": got[0], "src": got[1], "proto": got[2], "t": time.time()})


def main() -> None:
    threads = [threading.Thread(target=f, daemon=True) for f in (dns, sniff)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    (OUT / "ready").write_text("1")
    signal.signal(signal.SIGTERM, lambda *a: STOP.set())
    while not STOP.is_set():
        time.sleep(0.05)
    for t in threads:
        t.join(2)
    (OUT / "monitor.json").write_text(json.dumps(SEEN))


if __name__ == "__main__":
    main()
