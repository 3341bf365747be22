"""A model from a GGUF file's header (llama.cpp's format), read with the ``gguf`` library's reader.

``read_header(path)`` gives the architecture facts (layers, heads, KV heads, head dim, hidden size,
FFN width, vocabulary, context, RoPE base), the file type ("q4_k_m") and every tensor's type, shape
and exact bytes (the file's own extents); ``spec_from_file(path)`` turns that into a ModelSpec whose
``weight_bytes`` / ``weight_dtypes`` / ``weight_parts`` are those exact bytes, so ``aipc estimate
model.gguf`` needs nothing else. Tensor data are never read (the reader memory-maps the file).

Import-light: the gguf library imports numpy only (no torch); it is imported when a file is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from aipc.errors import AipcError, stat_or_error

MAGIC = b"GGUF"
# general.architecture -> the HF model_type aipc describes it with (llama.cpp writes Mistral as llama,
# Mixtral as llama with experts)
ARCHITECTURES = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "qwen2moe": "qwen2_moe",
                 "qwen3moe": "qwen3_moe", "gemma2": "gemma2", "gemma3": "gemma3_text", "phi3": "phi3", "gpt2": "gpt2"}


@dataclass(frozen=True)
class Tensor:
    name: str
    type: str                # ggml type name: F32, F16, Q4_K, Q6_K, ...
    shape: tuple[int, ...]   # ggml order: shape[0] is the row length (ne0)
    n_elements: int
    n_bytes: int


@dataclass(frozen=True)
class Header:
    path: str
    architecture: str
    file_type: str                        # "q4_k_m", "q8_0", "f16", ... ("guessed: q4_k" without general.file_type)
    meta: dict[str, Any]                  # scalar metadata (arrays such as the vocabulary left out)
    tensors: tuple[Tensor, ...]
    bytes_by_type: dict[str, int] = field(default_factory=dict)
    elements_by_type: dict[str, int] = field(default_factory=dict)

    @property
    def tensor_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)

    def get(self, key: str, default: Any = None) -> Any:
        """An architecture key without its prefix: get('block_count') reads '<arch>.block_count'."""
        return self.meta.get(f"{self.architecture}.{key}", default)

    def parts(self) -> dict[str, int]:
        """Exact tensor bytes by part: token_embd, position_embd, output, blocks, other (norms, rope_freqs)."""
        out = {"token_embd": 0, "position_embd": 0, "output": 0, "blocks": 0, "other": 0}
        for t in self.tensors:
            out[part_of(t.name)] += t.n_bytes
        return out


def part_of(name: str) -> str:
    """The part of the model a GGUF tensor belongs to (for the bytes a decode step reads)."""
    if name.startswith("blk."):
        return "blocks"
    stem = name.rsplit(".", 1)[0]
    return stem if stem in ("token_embd", "position_embd", "output") else "other"


def is_gguf_path(ref: str | os.PathLike) -> bool:
    """True for an existing file that starts with the GGUF magic, or any path named *.gguf."""
    p = Path(str(ref).strip()).expanduser()
    if p.suffix.lower() == ".gguf":
        return True
    try:
        with open(p, "rb") as fh:
            return fh.read(4) == MAGIC
    except OSError:
        return False


def read_header(path: str | os.PathLike) -> Header:
    """The header of a GGUF file; anything unreadable, truncated or not GGUF is a one-line AipcError."""
    p = Path(path).expanduser()
    st = stat_or_error(p, f"no such file: {p}; pass an existing .gguf file")
    return _read_cached(str(p.resolve()), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=16)
def _read_cached(path: str, mtime_ns: int, size: int) -> Header:
    with open(path, "rb") as fh:
        if fh.read(4) != MAGIC:
            raise AipcError(f"{path}: not a GGUF file (no GGUF magic); pass a .gguf made by llama.cpp or 'aipc convert'")
    try:
        reader = _reader_class()(path, "r")
    except Exception as e:  # noqa: BLE001 - the reader raises ValueError/IndexError/struct errors on bad input
        why = " ".join(str(e).split())[:160] or type(e).__name__
        raise AipcError(f"{path}: corrupt or truncated GGUF header ({why}); re-convert or re-download the file") from None
    tensors = tuple(_tensor(t, path, size) for t in reader.tensors)
    meta = _scalars(reader)
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise AipcError(f"{path}: GGUF header has no general.architecture; the file is not a model")
    by_bytes: dict[str, int] = {}
    by_elems: dict[str, int] = {}
    for t in tensors:
        by_bytes[t.type] = by_bytes.get(t.type, 0) + t.n_bytes
        by_elems[t.type] = by_elems.get(t.type, 0) + t.n_elements
    return Header(path=path, architecture=arch, file_type=_file_type(meta, by_bytes), meta=meta, tensors=tensors,
                  bytes_by_type=by_bytes, elements_by_type=by_elems)


@lru_cache(maxsize=1)
def _reader_class():
    """The gguf library's GGUFReader, told to step over arrays of strings (the vocabulary, the BPE
    merges) and to read arrays of numbers as one numpy view, instead of building one numpy part per
    element: the library's own loop took 45 s for a 128k-token vocabulary with 280k merges on this
    project's shared 2-core machine. Everything else (scalars, tensor infos, alignment, data offsets)
    is the library's reading."""
    import struct

    from gguf import GGUFReader, GGUFValueType

    class HeaderReader(GGUFReader):
        def _get_field_parts(self, orig_offs, raw_type):
            if GGUFValueType(raw_type) != GGUFValueType.ARRAY:
                return super()._get_field_parts(orig_offs, raw_type)
            raw_itype = self._get(orig_offs, np.uint32)
            itype = GGUFValueType(int(raw_itype[0]))
            alen = self._get(orig_offs + 4, np.uint64)
            nptype = self.gguf_scalar_to_np.get(itype)
            if nptype is not None:  # an array of numbers: one part holding all of them
                vals = self._get(orig_offs + 12, nptype, int(alen[0]))
                return 12 + int(vals.nbytes), [raw_itype, alen, vals], [2], [GGUFValueType.ARRAY, itype]
            if itype != GGUFValueType.STRING:
                return super()._get_field_parts(orig_offs, raw_type)
            fmt = "<Q" if self.byte_order == "I" and sys.byteorder == "little" else ">Q"
            offs, buf = orig_offs + 12, self.data
            for _ in range(int(alen[0])):  # each string: u64 length, then its bytes
                offs += 8 + struct.unpack_from(fmt, buf, offs)[0]
            if offs > len(buf):
                raise ValueError("string array runs past the end of the file")
            return offs - orig_offs, [raw_itype, alen], [], [GGUFValueType.ARRAY, GGUFValueType.STRING]

    import sys

    import numpy as np

    return HeaderReader


def _tensor(t, path: str, size: int) -> Tensor:
    shape = tuple(int(x) for x in t.shape)
    end = int(t.data_offset) + int(t.n_bytes)
    if end > size:
        raise AipcError(f"{path}: truncated: tensor {t.name} ends at byte {end:,} but the file has {size:,}; "
                        "re-convert or re-download the file")
    return Tensor(name=str(t.name), type=t.tensor_type.name, shape=shape, n_elements=int(t.n_elements),
                  n_bytes=int(t.n_bytes))


def _scalars(reader) -> dict[str, Any]:
    """Metadata values that are scalars or short arrays (the vocabulary and merges are skipped)."""
    from gguf import GGUFValueType

    out: dict[str, Any] = {}
    for name, f in reader.fields.items():
        if not f.types or name.startswith("tokenizer.ggml."):
            continue
        if f.types[0] == GGUFValueType.ARRAY and len(f.data) > 1024:
            continue
        try:
            out[name] = f.contents()
        except (ValueError, UnicodeDecodeError):
            continue
    return out


def _file_type(meta: dict[str, Any], by_bytes: dict[str, int]) -> str:
    """general.file_type as llama.cpp names it, lower case without MOSTLY_ ("q4_k_m", "f16", "f32")."""
    from gguf import LlamaFileType

    ft = meta.get("general.file_type")
    try:
        name = LlamaFileType(int(ft)).name
    except (TypeError, ValueError):
        name = "GUESSED"
    if name == "GUESSED":
        quant = {k: v for k, v in by_bytes.items() if k not in ("F32",)}
        main = max(quant or by_bytes, key=lambda k: (quant or by_bytes)[k], default="F32")
        return f"guessed: {main.lower()}"
    return {"ALL_F32": "f32"}.get(name, name.lower().removeprefix("mostly_"))


# ---- ModelSpec ---------------------------------------------------------------------------------
def spec_from_file(path: str | os.PathLike):
    """A ModelSpec of the model in a GGUF file, with its exact tensor bytes and file type."""
    from aipc.models.spec import ModelSpec

    h = read_header(path)
    cfg = hf_config(h)
    return ModelSpec.from_hf_config(
        cfg, name=Path(h.path).stem, source=h.path, weight_bytes=h.tensor_bytes,
        weight_dtypes=dict(h.elements_by_type), weight_format=h.file_type, weight_parts=h.parts())


def _tensor_shape(h: Header, name: str) -> tuple[int, ...] | None:
    return next((t.shape for t in h.tensors if t.name == name), None)


def _int(h: Header, key: str, required: bool = True) -> int | None:
    """An architecture key as a positive int (a per-layer array must hold one value)."""
    v = h.get(key)
    if isinstance(v, list) and v:
        if len(set(v)) != 1:
            raise AipcError(f"{h.path}: {h.architecture}.{key} differs between layers ({min(v)}..{max(v)}); "
                            "aipc models one value for all layers")
        v = v[0]
    if v is None and not required:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise AipcError(f"{h.path}: GGUF key {h.architecture}.{key} is missing or not a positive integer "
                        f"(got {v!r}); the file is incomplete")
    return v


def hf_config(h: Header) -> dict[str, Any]:
    """The HF-style config the header describes (ModelSpec.from_hf_config validates it)."""
    mt = ARCHITECTURES.get(h.architecture)
    if mt is None:
        raise AipcError(f"{h.path}: GGUF architecture {h.architecture!r} is not supported; aipc reads "
                        f"{', '.join(ARCHITECTURES)}")
    emb = _tensor_shape(h, "token_embd.weight")
    if not emb or len(emb) != 2:
        raise AipcError(f"{h.path}: no 2-D token_embd.weight tensor; the file is not a complete model")
    L, H, nh = _int(h, "block_count"), _int(h, "embedding_length"), _int(h, "attention.head_count")
    ctx, ffn = _int(h, "context_length"), _int(h, "feed_forward_length", required=mt not in ("qwen3_moe",))
    tied = _tensor_shape(h, "output.weight") is None
    if mt == "gpt2":
        return {"model_type": mt, "n_layer": L, "n_embd": H, "n_head": nh, "n_positions": ctx, "n_inner": ffn,
                "vocab_size": emb[1], "tie_word_embeddings": tied}
    cfg: dict[str, Any] = {
        "model_type": mt, "num_hidden_layers": L, "hidden_size": H, "num_attention_heads": nh,
        "num_key_value_heads": _int(h, "attention.head_count_kv", required=False) or nh,
        "intermediate_size": ffn or _int(h, "expert_feed_forward_length"), "vocab_size": emb[1],
        "max_position_embeddings": ctx, "tie_word_embeddings": tied,
    }
    hd = _int(h, "attention.key_length", required=False)
    if hd:
        cfg["head_dim"] = hd
    if h.get("rope.freq_base") is not None:
        cfg["rope_theta"] = float(h.get("rope.freq_base"))
    cfg.update(_variant_fields(h, mt))
    return cfg


def _variant_fields(h: Header, mt: str) -> dict[str, Any]:
    """Sliding windows, experts and biases where the architecture has them."""
    out: dict[str, Any] = {}
    window = _int(h, "attention.sliding_window", required=False)
    if mt in ("gemma2", "gemma3_text"):
        out["sliding_window"] = window or 4096
    experts = _int(h, "expert_count", required=False)
    if experts:
        used = _int(h, "expert_used_count")
        if mt == "llama":
            out.update(model_type="mixtral", num_local_experts=experts, num_experts_per_tok=used)
        else:
            out.update(num_experts=experts, num_experts_per_tok=used,
                       moe_intermediate_size=_int(h, "expert_feed_forward_length"))
            shared = _int(h, "expert_shared_feed_forward_length", required=False)
            if mt == "qwen2_moe":
                out["shared_expert_intermediate_size"] = shared or 0
    if mt == "llama" and _tensor_shape(h, "blk.0.attn_q.bias") is not None:
        out["attention_bias"] = True
    return out
