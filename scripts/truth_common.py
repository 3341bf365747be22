"""What the truth_*.py scripts share: running `aipc ... --json` in a child process, their command line
(the docstring's first line, --write FILE) and the end of a run (the result as JSON, and with --write one
section of that Markdown file, docs/validation.md)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
VALIDATION_HEAD = "# Validation: estimates against measurements\n"  # a docs/validation.md that does not exist yet


def run_aipc(*args: str, env: dict, timeout: int) -> dict:
    """The JSON that `aipc ARGS` prints (ARGS include --json); a failed run ends the script with its stderr."""
    r = subprocess.run([sys.executable, "-m", "aipc", *args], env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise SystemExit(f"error: aipc {' '.join(args)} failed: {r.stderr.strip()[-400:]}")
    return json.loads(r.stdout)


def parser(doc: str) -> argparse.ArgumentParser:
    """A script's parser: its docstring's first line as the description, and --write FILE."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--write")
    return ap


def finish(result: dict, write: str | None, title: str, markdown: Callable[[dict], str],
           shown: dict | None = None) -> int:
    """Print ``shown`` (default: the whole result) as JSON; with --write FILE, ``markdown(result)`` becomes
    the section ``title`` of FILE. The script's exit code (0)."""
    print(json.dumps(result if shown is None else shown, indent=1))
    if write:
        sys.path.insert(0, str(ROOT / "src"))
        from aipc.mdsection import replace_section

        replace_section(write, title, markdown(result), new_file=VALIDATION_HEAD)
    return 0
