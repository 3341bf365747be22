"""Where aipc keeps its files: the results database, cached hardware profiles.

``AIPC_HOME`` overrides the user data directory (tests point it at a temporary folder).
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """aipc's data directory (created on demand)."""
    env = os.environ.get("AIPC_HOME")
    if env:
        p = Path(env).expanduser()
    else:
        from platformdirs import user_data_dir

        p = Path(user_data_dir("aipc", appauthor=False))
    p.mkdir(parents=True, exist_ok=True)
    return p


def default_db() -> Path:
    """The results database (SQLite)."""
    return home() / "results.sqlite"


def profiles_dir() -> Path:
    """Cached hardware profiles, one JSON per hardware+software fingerprint."""
    p = home() / "profiles"
    p.mkdir(parents=True, exist_ok=True)
    return p
