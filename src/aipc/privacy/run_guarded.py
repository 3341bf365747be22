"""``python -m aipc.privacy.run_guarded MODULE ARGS...``: run a module as ``python -m MODULE ARGS...``
with the offline guard switched on first when the parent ran under it (``AIPC_OFFLINE_GUARD=1``).

aipc starts its own child processes this way — the torchrun launcher and its workers, the validation
children — so the guard a verb switched on holds in every Python process of that verb.
"""

from __future__ import annotations

import runpy
import sys

from aipc.privacy.guard import guard_from_env


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m aipc.privacy.run_guarded MODULE [ARGS...]")
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    guard_from_env()
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
