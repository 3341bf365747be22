"""Entry point of one torchrun worker: ``python -m aipc.train.worker CONFIG.json``."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from aipc.errors import AipcError


def main(argv: list[str] | None = None) -> int:
    from aipc.train.config import TrainConfig
    from aipc.train.launch import ERROR_ENV, RESULT_ENV
    from aipc.train.loop import train

    from aipc.runtime import configure_allocator

    configure_allocator()  # the allocator behaviour aipc estimate models (aipc.runtime)
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    rank = os.environ.get("RANK", "0")
    cfg = TrainConfig.from_dict(json.loads(Path(argv[0]).read_text()))
    try:
        result = train(cfg)
    except AipcError as e:
        if os.environ.get(ERROR_ENV):
            Path(f"{os.environ[ERROR_ENV]}.{rank}").write_text(str(e))
        print(f"error: {e}", file=sys.stderr)
        return 2
    if rank == "0" and os.environ.get(RESULT_ENV):
        Path(os.environ[RESULT_ENV]).write_text(json.dumps(dataclasses.asdict(result), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
