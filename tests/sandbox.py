"""Real fault environments for subprocesses (no tests here): a full disk, and a network namespace where
every DNS query and every packet to a non-loopback address is recorded.

Both use Linux user namespaces (``unshare -r``), which need no privileges where the kernel allows them.
Where it does not, :func:`run_on_small_disk` falls back to RLIMIT_FSIZE (writes past the limit fail
with EFBIG instead of ENOSPC) and :func:`netns_available` is False (the network probe then relies on the
Python-level tripwire alone, and says so).
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

LEFT = "@@aipc-sandbox-left@@"


@functools.cache
def userns(flags: str = "-rm") -> bool:
    """Whether ``unshare <flags>`` works here (a user namespace plus mount and/or network namespaces)."""
    if shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", flags, "true"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def netns_available() -> bool:
    return userns("-rnm") and shutil.which("ip") is not None and shutil.which("mount") is not None


@dataclass
class DiskRun:
    returncode: int
    stdout: str
    stderr: str
    left: list[str]  # what the command left on the small disk (names, recursively, relative)
    how: str         # "tmpfs" (a real full disk) or "RLIMIT_FSIZE"


_SMALL_DISK = r'''
mnt="$1"; size="$2"; fill="$3"; shift 3
mount -t tmpfs -o "size=$size" tmpfs "$mnt" || exit 97
if [ "$fill" = 1 ]; then dd if=/dev/zero of="$mnt/.filler" bs=4096 2>/dev/null; fi
"$@"; rc=$?
echo "@@aipc-sandbox-left@@"
cd "$mnt" && find . -mindepth 1 ! -name .filler | sort
exit $rc
'''


def run_on_small_disk(mount: Path, size: int, argv: list[str], *, env: dict, fill: bool = False,
                      timeout: float = 300) -> DiskRun:
    """Run ``argv`` with ``mount`` (an empty folder) on a disk of ``size`` bytes (``fill``: already full)."""
    mount.mkdir(parents=True, exist_ok=True)
    if userns("-rm"):
        r = subprocess.run(["unshare", "-rm", "sh", "-c", _SMALL_DISK, "sh", str(mount), str(size), "1" if fill else "0",
                            *argv], env=env, capture_output=True, text=True, timeout=timeout)
        out, _, left = r.stdout.partition(LEFT)
        return DiskRun(r.returncode, out, r.stderr, [x[2:] for x in left.split()], "tmpfs")

    def limit():  # no user namespaces: files may not grow past `size` bytes (EFBIG, like a full disk)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0 if fill else size, resource.RLIM_INFINITY))

    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, preexec_fn=limit)
    left = sorted(str(p.relative_to(mount)) for p in mount.rglob("*"))
    return DiskRun(r.returncode, r.stdout, r.stderr, left, "RLIMIT_FSIZE")


PROBE = Path(__file__).resolve().parent / "netprobe"


@dataclass
class ProbeRun:
    driver: dict            # the verb's exit code and stderr tail (and, for serve, what the request got)
    reports: list[dict]     # one per probed Python process (the verb and its Python children)
    monitor: dict | None    # netns only: {"dns_queries": [...], "packets": [...]} seen by the kernel-side monitors
    how: str                # "network namespace + tripwire" or "tripwire only"


def run_probe(argv: list[str], out: Path, *, serve_port: int | None = None, timeout: float = 600,
              netns: bool | None = None) -> ProbeRun:
    """Run ``argv`` (an aipc command) with the network probe; inside a network namespace when possible."""
    import json
    import sys

    out.mkdir(parents=True, exist_ok=True)
    netns = netns_available() if netns is None else netns
    spec = out / "spec.json"
    spec.write_text(json.dumps({"argv": argv, "out": str(out), "timeout": timeout, "serve_port": serve_port}))
    drive = [sys.executable, str(PROBE / "drive.py"), str(spec)]
    env = {**os.environ, "AIPC_PROBE_PASS": "1" if netns else "0"}
    if netns:
        script = (
            'out="$1"; shift\n'
            'ip link set lo up && ip route add default dev lo || exit 97\n'
            'ip -6 route add default dev lo 2>/dev/null\n'
            'echo "nameserver 127.0.0.1" > "$out/resolv.conf" && mount --bind "$out/resolv.conf" /etc/resolv.conf || exit 98\n'
            f'"{sys.executable}" "{PROBE / "monitor.py"}" "$out" & mon=$!\n'
            'for i in $(seq 100); do [ -f "$out/ready" ] && break; sleep 0.1; done\n'
            '[ -f "$out/ready" ] || exit 99\n'
            '"$@"; rc=$?\n'
            'kill -TERM $mon; wait $mon\n'
            'exit $rc\n')
        r = subprocess.run(["unshare", "-rnm", "sh", "-c", script, "sh", str(out), *drive], env=env,
                           capture_output=True, text=True, timeout=timeout + 60)
        if r.returncode in (97, 98, 99):
            raise RuntimeError(f"network namespace set-up failed ({r.returncode}): {r.stderr[-2000:]}")
    else:
        subprocess.run(drive, env=env, timeout=timeout + 60)
    reports = [json.loads(p.read_text()) for p in sorted(out.glob("[0-9]*.json"))]
    monitor = json.loads((out / "monitor.json").read_text()) if netns else None
    return ProbeRun(json.loads((out / "driver.json").read_text()), reports, monitor,
                    "network namespace + tripwire" if netns else "tripwire only")


def _loopback_reverse(name: str) -> bool:
    """PTR names of loopback addresses (127.x.x.x, ::1)."""
    n = name.split(" ", 1)[0].lower().rstrip(".")
    return n.endswith(".127.in-addr.arpa") or n == "1." + "0." * 31 + "ip6.arpa"


def probe_verdict(run: ProbeRun) -> dict:
    """What a probe run shows, counted: the promise holds when ``ok`` is True (``problems`` says why not)."""
    attempts = [a for rep in run.reports for rd in rep["rounds"] for a in rd["attempts"]]
    wrong = [a for a in attempts if not (a["outcome"] == "OfflineGuardError" or (
        "localhost" in a["what"] and a["outcome"] in ("ConnectionRefusedError", "TimeoutError")))]
    dns = (run.monitor or {}).get("dns_queries", [])
    out = {
        "how": run.how, "exit": run.driver.get("returncode"), "processes": len(run.reports),
        "guard_on_in": sum(r["guard_seen"] for r in run.reports),
        "attempts": len(attempts), "blocked_by_guard": sum(a["outcome"] == "OfflineGuardError" for a in attempts),
        "localhost_to_loopback": sum("localhost" in a["what"] and a not in wrong for a in attempts),
        "python_leaks": sum(len(r["leaks"]) for r in run.reports),
        "dns_non_loopback": [q["name"] for q in dns if not _loopback_reverse(q["name"])],
        "dns_loopback_reverse": sum(_loopback_reverse(q["name"]) for q in dns),
        "packets_non_loopback": len((run.monitor or {}).get("packets", [])),
    }
    problems = []
    if out["processes"] == 0 or out["guard_on_in"] < out["processes"]:
        problems.append(f"guard on in {out['guard_on_in']} of {out['processes']} probed processes")
    if wrong:
        problems.append(f"attempts not stopped: {[(a['what'], a['outcome']) for a in wrong][:4]}")
    if out["python_leaks"] or out["dns_non_loopback"] or out["packets_non_loopback"]:
        problems.append(f"leaks: {out['python_leaks']} past the guard, DNS {out['dns_non_loopback'][:4]}, "
                        f"{out['packets_non_loopback']} non-loopback packets")
    return {**out, "ok": not problems, "problems": problems}
