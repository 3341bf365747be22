"""Runs inside the OpenVINO exporter's own environment (a child process; see openvino_export.py).

``python -m aipc.engines.openvino_export_child SRC DST QUANT``: exports the HF folder SRC to an
OpenVINO IR folder DST through optimum-intel's own ``optimum-cli export openvino`` (weights
compressed by NNCF for int8 / int4; the tokenizer converted by openvino-tokenizers), then checks that
the tokenizer and detokenizer models exist, converting them directly when optimum only warned.
Stage lines ``aipc-stage: N TEXT`` on stdout (N of 3 done) let the parent draw its progress bar.
"""

from __future__ import annotations

import sys
from pathlib import Path

# optimum-cli arguments per weight format. int8: per-channel asymmetric (optimum's int8 default);
# int4: optimum's default 4-bit config (asymmetric, group 128, ratio 1.0) with group size fallback
# "adjust" so layers narrower than a group (tiny test models, odd widths) still compress.
QUANT_ARGS = {
    "fp16": ["--weight-format", "fp16"],
    "int8": ["--weight-format", "int8"],
    "int4": ["--weight-format", "int4", "--group-size", "128", "--ratio", "1.0", "--group-size-fallback", "adjust"],
}


def stage(n: int, text: str) -> None:
    print(f"aipc-stage: {n} {text}", flush=True)


def export(src: str, dst: str, quant: str) -> None:
    from optimum.commands.optimum_cli import main as optimum_cli

    sys.argv = ["optimum-cli", "export", "openvino", "--model", src, "--task", "text-generation-with-past",
                *QUANT_ARGS[quant], dst]
    optimum_cli()


def ensure_tokenizers(src: str, dst: str) -> None:
    """openvino_tokenizer.xml / openvino_detokenizer.xml in DST (GenAI needs both)."""
    out = Path(dst)
    if (out / "openvino_tokenizer.xml").is_file() and (out / "openvino_detokenizer.xml").is_file():
        return
    import openvino as ov
    from openvino_tokenizers import convert_tokenizer
    from transformers import AutoTokenizer

    tok, detok = convert_tokenizer(AutoTokenizer.from_pretrained(src), with_detokenizer=True)
    ov.save_model(tok, str(out / "openvino_tokenizer.xml"))
    ov.save_model(detok, str(out / "openvino_detokenizer.xml"))


def main(argv: list[str]) -> int:
    src, dst, quant = argv
    export(src, dst, quant)
    stage(1, "model exported")
    ensure_tokenizers(src, dst)
    stage(2, "tokenizer converted")
    stage(3, "done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
