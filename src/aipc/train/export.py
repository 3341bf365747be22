"""Export: the trained model (LoRA merged into the base) as a plain HF folder.

The folder loads with ``transformers.AutoModelForCausalLM.from_pretrained`` and the tokenizer with
``AutoTokenizer.from_pretrained``; nothing of peft remains in it.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from aipc.errors import AipcError


def export_folder(model, tokenizer, out: str | Path) -> Path:
    """Write ``model`` (LoRA merged) and ``tokenizer`` to ``out`` atomically (temp folder, rename)."""
    from aipc.train.lora import merged
    from aipc.models.live import quiet_hf

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise AipcError(f"export folder {out} exists and is not empty; choose a new --export folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-{out.name}-{secrets.token_hex(4)}"
    try:
        plain = merged(model)
        with quiet_hf():
            plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if out.exists():
            out.rmdir()
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
