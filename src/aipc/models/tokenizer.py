"""The tokenizer of a model: an override folder's, the model folder's, else a byte-level stand-in.

The stand-in is a real HF fast tokenizer (256 byte tokens + 8 specials and a chat template), so it is
saved with an exported model and loads with AutoTokenizer; with random weights its text is noise.
"""

from __future__ import annotations

from pathlib import Path

from aipc.errors import AipcError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
BYTE_LEVEL = "byte-level fallback"


def has_tokenizer(folder: str | Path) -> bool:
    p = Path(folder)
    return p.is_dir() and any((p / f).is_file() for f in TOKENIZER_FILES)


def load_tokenizer(model_ref: str | Path, override: str | None, vocab_size: int, *,
                   fix: str = "use a folder with tokenizer files"):
    """(tokenizer, source): the ``override`` folder's, else the model folder's, else byte-level.

    ``fix`` ends the errors that the caller's user can fix (``--tokenizer FOLDER`` where a verb has it)."""
    from transformers import AutoTokenizer

    for src in (override, model_ref):
        if src and has_tokenizer(src):
            try:
                tok = AutoTokenizer.from_pretrained(src)
            except Exception as e:  # transformers raises many types for broken tokenizer files
                raise AipcError(f"cannot load the tokenizer in {src}: {str(e).splitlines()[0]}; "
                                f"fix the files or {fix}") from None
            check_vocab(len(tok), vocab_size, src, fix=fix)
            return tok, str(src)
        if src and src is override:
            raise AipcError(f"--tokenizer {src} has no tokenizer files ({', '.join(TOKENIZER_FILES)})")
    from aipc.models.tiny import byte_tokenizer

    if vocab_size < 264:
        raise AipcError(f"the model has no tokenizer and its vocabulary ({vocab_size}) is too small for the "
                        f"byte-level fallback (264 tokens); {fix}")
    return byte_tokenizer(vocab_size), BYTE_LEVEL


def check_vocab(tokenizer_len: int, vocab_size: int, src: str | Path, *,
                fix: str = "use the model's own tokenizer") -> None:
    """Refuse a tokenizer whose ids would index past the model's embedding table."""
    if tokenizer_len > vocab_size:
        raise AipcError(f"tokenizer/model mismatch: the tokenizer in {src} has {tokenizer_len} tokens but the "
                        f"model's embedding has {vocab_size} rows; {fix}")
