"""The network probe in every verb that loads a model (issue 14): ``run_probe_verbs`` runs train (with two
torchrun workers), generate, serve, bench and validate with tests/netprobe loaded in every Python process,
inside a network namespace with a fake DNS server and a packet monitor where the kernel allows it;
``render_probe`` writes the section of docs/reliability.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))
from reliability_inputs import AIPC, _table  # noqa: E402


def verb_argvs(tmp: Path, port: int) -> dict[str, list[str]]:
    from test_train_loop import write_corpus

    from aipc.models.tiny import make_tiny_folder

    tiny = make_tiny_folder(tmp / "tiny", "llama")
    corpus = write_corpus(tmp / "data.txt", lines=60)
    return {
        "train (2 torchrun workers)": [*AIPC, "train", str(tiny), "--data", str(corpus), "--out", str(tmp / "run"),
                                       "--steps", "2", "--seq-len", "32", "--batch", "2", "--nproc", "2", "--threads",
                                       "1", "--no-mfu", "--no-preflight", "--json"],
        "generate": [*AIPC, "generate", str(tiny), "--prompt", "hi", "--max-tokens", "4", "--no-mbu", "--threads", "1"],
        "serve (one request)": [*AIPC, "serve", str(tiny), "--port", str(port), "--served-name", "probe", "--threads",
                                "1", "--quiet"],
        "bench": [*AIPC, "bench", str(tiny), "--device", "cpu", "--scenario", "decode", "--quick", "--no-store",
                  "--no-fit-check", "--threads", "1", "--prompt-tokens", "16", "--gen-tokens", "4", "--json"],
        "validate (1 child)": [*AIPC, "validate", str(tiny / "config.json"), "--task", "infer", "--batch", "1",
                               "--prompt-tokens", "16", "--gen-tokens", "4", "--json"],
    }


def run_probe_verbs(tmp: Path) -> dict:
    from helpers import free_port
    from sandbox import probe_verdict, run_probe

    port = free_port()
    out = {}
    for name, argv in verb_argvs(tmp, port).items():
        run = run_probe(argv, tmp / ("probe-" + name.split()[0]), serve_port=port if name.startswith("serve") else None,
                        timeout=600)
        out[name] = {**probe_verdict(run), "served": run.driver.get("served")}
    return {"verbs": out, "ok": all(v["ok"] for v in out.values())}


def render_probe(r: dict) -> str:
    rows = [[name, v["how"], f"{v['exit']}" + (f" (its request got {v['served']})" if v.get("served") else ""),
             f"{v['guard_on_in']} of {v['processes']}", v["attempts"],
             v["blocked_by_guard"], v["localhost_to_loopback"], v["python_leaks"], len(v["dns_non_loopback"]),
             v["dns_loopback_reverse"], v["packets_non_loopback"]] for name, v in r["verbs"].items()]
    return "\n".join([
        "## 8. The offline guard inside every verb that loads a model", "",
        "Each verb ran with tests/netprobe loaded into every Python process it started (the CLI, the torchrun "
        "launcher and workers, the validation child). In each, a thread tried six ways out as soon as the guard "
        "was on and again 0.5 s later: TCP to 192.0.2.1:443, a lookup of huggingface.co, `create_connection` to "
        "exfil-secret-data.localhost:443, an HTTP GET of example.com, a UDP datagram to 192.0.2.7:53, "
        "`gethostbyname('example.org')`. A tripwire beneath the guard counted every call that got past it; the whole "
        "run sat in a network namespace (only loopback, every route to `lo`) whose fake DNS server on 127.0.0.1:53 "
        "and packet monitor on `lo` saw what any layer sent, C code included. "
        f"**All promises held: {r['ok']}.**", "",
        _table(rows, ["verb", "seen by", "exit", "guard on in processes", "attempts", "blocked by the guard",
                      ".localhost → loopback", "past the guard (Python)", "DNS queries, non-loopback names",
                      "DNS PTR of 127.0.0.1 (C++ c10d)", "non-loopback packets"]), "",
        "The server is stopped with SIGTERM after one request; it shuts down gracefully and then re-raises the "
        "signal (uvicorn), hence exit -15. The PTR queries for 1.0.0.127.in-addr.arpa come from torch's C++ TCPStore (c10d socket.cpp formats a "
        "peer's IPv4-mapped loopback address with getnameinfo, which /etc/hosts does not answer): C code the "
        "Python guard cannot see. They name the loopback address, nothing else; see SECURITY.md.",
    ])
