"""What the benchmark scripts share: the flags of a random Llama's shape and its config, the command line a
result records, and the end of a run (one JSON object or a table on stdout; with --write, a row in
docs/benchmarks.md)."""

from __future__ import annotations

import json
import sys
from typing import Callable


def add_llama_shape(ap, *, hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int,
                    vocab: int = 32000) -> None:
    """--hidden, --intermediate, --layers, --heads, --kv-heads, --vocab with these defaults."""
    for flag, default in (("--hidden", hidden), ("--intermediate", intermediate), ("--layers", layers),
                          ("--heads", heads), ("--kv-heads", kv_heads), ("--vocab", vocab)):
        ap.add_argument(flag, type=int, default=default)


def llama_config(args, **extra):
    """A LlamaConfig of the shape flags' values (``extra``: its other settings)."""
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=args.hidden, intermediate_size=args.intermediate, num_hidden_layers=args.layers,
                       num_attention_heads=args.heads, num_key_value_heads=args.kv_heads, vocab_size=args.vocab,
                       **extra)


def command(script: str, argv: list[str] | None) -> str:
    """The command line of this run, as the result records it."""
    return f"python benchmarks/{script} " + " ".join(argv if argv is not None else sys.argv[1:])


def finish(result: dict, args, show: Callable[[dict], None], write: Callable[[dict], None], **json_kw) -> dict:
    """Print ``result`` (JSON with --json, else ``show``), record it with --write, and return it."""
    if args.json:
        print(json.dumps(result, indent=2, **json_kw))
    else:
        show(result)
    if args.write:
        write(result)
    return result
