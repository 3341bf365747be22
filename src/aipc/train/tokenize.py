"""Records to one token stream with a loss mask; the model's tokenizer or a byte-level fallback.

The stream is the concatenation of all records. ``mask[t] = 1`` when token ``t`` is a prediction
target: every token of plain text (but the leading BOS), the completion (and EOS) of a
prompt/completion pair, the assistant turns of a chat (not the assistant header the template adds).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aipc.errors import AipcError

TRAIN_FIX = "pass --tokenizer FOLDER"


def load_tokenizer(model_ref: str, override: str | None, vocab_size: int):
    """(tokenizer, source): the --tokenizer folder, else the model folder's, else byte-level
    (``aipc.models.tokenizer``)."""
    from aipc.models.tokenizer import load_tokenizer as load

    return load(model_ref, override, vocab_size, fix=TRAIN_FIX)


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"] if text else []


def _render(tok, messages: list[dict], gen: bool = False) -> str:
    try:
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
    except Exception as e:  # jinja / missing template
        raise AipcError(f"cannot apply the chat template: {str(e).splitlines()[0]}; "
                        "use a tokenizer with a chat template or prompt/completion data") from None


def chat_segments(tok, messages: list[dict]) -> list[tuple[str, bool]]:
    """The rendered chat split into (text, is_target) pieces: assistant turns are targets.

    Renders every prefix of the conversation; a template whose prefixes are not prefixes of the
    full rendering cannot be split, and then the whole chat is a target."""
    if not getattr(tok, "chat_template", None):
        raise AipcError("chat data needs a chat template, and this tokenizer has none; "
                        "use prompt/completion data or a tokenizer with a chat template")
    pieces: list[tuple[str, bool]] = []
    done = ""
    for i, m in enumerate(messages):
        full = _render(tok, messages[: i + 1])
        if not full.startswith(done):
            return [(_render(tok, messages), True)]
        if m["role"] == "assistant":
            head = _render(tok, messages[:i], gen=True) if i else ""
            if head.startswith(done) and full.startswith(head):
                pieces += [(head[len(done):], False), (full[len(head):], True)]
            else:
                pieces.append((full[len(done):], True))
        else:
            pieces.append((full[len(done):], False))
        done = full
    return [p for p in pieces if p[0]]


def _assemble(tok, kind: str, pieces: list[list[int]]) -> tuple[list[int], list[int]]:
    """(ids, mask) of a text (one piece) or prompt/completion (two pieces) record, with BOS/EOS."""
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    if kind == "text":
        body = pieces[0] + eos
        return bos + body, [0] * len(bos) + [1] * len(body)
    p, c = pieces[0], pieces[1] + eos
    return bos + p + c, [0] * (len(bos) + len(p)) + [1] * len(c)


def encode_record(tok, kind: str, value: Any) -> tuple[list[int], list[int]]:
    """(ids, mask) of one record, with BOS/EOS around text and prompt/completion pairs."""
    if kind == "text":
        return _assemble(tok, kind, [_ids(tok, value)])
    if kind == "pc":
        return _assemble(tok, kind, [_ids(tok, value[0]), _ids(tok, value[1])])
    ids: list[int] = []
    mask: list[int] = []
    for text, target in chat_segments(tok, value):
        piece = _ids(tok, text)
        ids += piece
        mask += [int(target)] * len(piece)
    return ids, mask


def encode(tok, records: list[tuple[str, Any]], vocab_size: int, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The token stream (int64 ids) and its uint8 loss mask for all records.

    Text and prompt/completion strings are tokenized in batches of ``block`` records (the fast
    tokenizer's batch call); chats one by one (their template is rendered per prefix)."""
    ids_parts: list[np.ndarray] = []
    mask_parts: list[np.ndarray] = []
    for b in range(0, len(records), block):
        chunk = records[b: b + block]
        strings = [s for kind, v in chunk if kind != "chat" for s in ((v,) if kind == "text" else v)]
        batch = iter(tok(strings, add_special_tokens=False)["input_ids"] if strings else [])
        for kind, value in chunk:
            if kind == "chat":
                i, m = encode_record(tok, kind, value)
            else:
                i, m = _assemble(tok, kind, [next(batch) for _ in range(1 if kind == "text" else 2)])
            ids_parts.append(np.asarray(i, dtype=np.int64))
            mask_parts.append(np.asarray(m, dtype=np.uint8))
    arr = np.concatenate(ids_parts) if ids_parts else np.zeros(0, dtype=np.int64)
    if arr.size and int(arr.max()) >= vocab_size:
        raise AipcError(f"tokenizer/model mismatch: token id {int(arr.max())} is outside the model's "
                        f"vocabulary of {vocab_size}; use the model's own tokenizer (--tokenizer)")
    return arr, (np.concatenate(mask_parts) if mask_parts else np.zeros(0, dtype=np.uint8))
