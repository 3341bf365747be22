"""Run llama.cpp's own ``convert_hf_to_gguf.py`` in this process (``python -m aipc.engines._hf_to_gguf
CONVERTER_DIR ARGS...``), with one change: aipc's byte-level stand-in tokenizer is declared a
"default" BPE pre-tokenizer.

The converter identifies a BPE pre-tokenizer by hashing how it splits a fixed text and refuses one it
does not know. The stand-in (``aipc.models.tiny.byte_tokenizer``, used for random-weight models)
splits every byte apart, so llama.cpp's default pre-tokenizer gives the same tokens. Any other
tokenizer keeps the converter's own check. Run as a subprocess: the converter imports torch and its
own ``gguf`` package and calls ``sys.exit`` on some errors.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def _is_stand_in(tokenizer, text: str) -> bool:
    from aipc.models.tiny import byte_tokenizer

    try:
        return list(tokenizer.encode(text)) == list(byte_tokenizer(len(tokenizer)).encode(text))
    except (ValueError, TypeError):
        return False


def _patch() -> None:
    from conversion.base import TextModel

    original = TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer) -> str:
        try:
            return original(self, tokenizer)
        except NotImplementedError:
            probe = "Hello world! \n\t 3.14 héllo 🦙 我想 ------ I've been"
            if _is_stand_in(tokenizer, probe):
                return "default"
            raise

    TextModel.get_vocab_base_pre = get_vocab_base_pre


def main(argv: list[str]) -> None:
    conv = Path(argv[0])
    script = conv / "convert_hf_to_gguf.py"
    sys.path[:0] = [str(conv), str(conv / "gguf-py")]
    _patch()
    sys.argv = [str(script), *argv[1:]]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
