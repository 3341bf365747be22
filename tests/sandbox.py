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


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
