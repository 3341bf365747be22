"""Weight bytes by engine and format, and the bytes of them one decode step reads.

- GGUF file types (llama.cpp): exact bytes per tensor from llama.cpp's own type mix and ggml's
  block sizes (:mod:`aipc.estimate.quant`), or a .gguf header's own bytes when the model is that file.
- OpenVINO IR (fp16 / int8 / int4): NNCF's compression rules as ``aipc convert --to openvino``
  applies them (:mod:`aipc.estimate.openvino_weights`, exact against real exports).
- A decode step gathers one row of the token embedding per sequence (and of learned positions), it
  does not read the table: only those rows count as read, unless the table is also the output
  matrix (tied), which every step reads whole.
"""

from __future__ import annotations

from aipc.models.spec import ModelSpec
from aipc.spec import GGUF_TYPES, Workload, dtype_bytes


def is_gguf(w: Workload) -> bool:
    """Weights stored in a GGUF file type (the llama.cpp engine)."""
    return w.engine == "llamacpp" and w.weight_dtype in GGUF_TYPES


def is_openvino(w: Workload) -> bool:
    """Weights stored in an OpenVINO IR (the openvino engine)."""
    from aipc.estimate.openvino_weights import FORMATS

    return w.engine == "openvino" and w.weight_dtype in FORMATS


def gguf_weight_bytes(m: ModelSpec, w: Workload) -> int:
    """Every tensor of the model in the workload's GGUF file type (exact)."""
    from aipc.estimate.quant import weight_parts

    return sum(weight_parts(m, w.weight_dtype).values())


def _tables(m: ModelSpec, w: Workload) -> tuple[float, float]:
    """(token table bytes, learned-position table bytes) in the format the weights are stored in.
    Outside GGUF: the weight dtype for float weights; int8 / int4 / nf4 keep embeddings at the
    compute dtype (as aipc.estimate.memory.weights_bytes counts them)."""
    if is_gguf(w):
        from aipc.estimate.quant import weight_parts

        parts = weight_parts(m, w.weight_dtype)
        return float(parts["token_embd"]), float(parts["position_embd"])
    if is_openvino(w):
        from aipc.estimate.openvino_weights import weight_bytes

        pos = m.max_position * m.hidden_size * 4.0 if m.position == "learned" else 0.0
        return float(weight_bytes(m, w.weight_dtype)["embedding"]), pos
    per = dtype_bytes(w.weight_dtype) if w.weight_dtype in ("fp32", "bf16", "fp16", "fp8") else dtype_bytes(w.compute)
    pos = m.max_position * m.hidden_size * per if m.position == "learned" else 0.0
    return m.vocab_size * m.hidden_size * per, pos


def decode_weight_bytes(m: ModelSpec, w: Workload, total: float) -> float:
    """Weight bytes one decode step of ``w.batch_size`` sequences reads, given all weights ``total``:
    everything but the embedding tables, plus the rows the batch gathers from them (the whole token
    table when it doubles as the output matrix, as tied models use it)."""
    b = w.batch_size
    tok, pos = _tables(m, w)
    read = total
    if pos:
        read -= pos * (1 - min(b, m.max_position) / m.max_position)
    if not m.tie_embeddings and m.vocab_size:
        read -= tok * (1 - min(b, m.vocab_size) / m.vocab_size)
    return read
