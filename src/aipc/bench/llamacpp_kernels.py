"""Measure llama.cpp's prefill FLOP/s per weight type on this machine (``aipc hw --kernels``,
``aipc bench --sweep``).

Three probes of Llama layers with random weights (PROBE_SHAPES: layer widths from a 135M-class model's
to a 1B-class model's; converted once to f16 by llama.cpp's converter and cached) are quantized by
llama.cpp's quantize API with ``pure`` (every matrix at the type, no mix rules) to each type, then a
prompt of each length is prefilled through aipc's llama.cpp runner: one warm-up, then the best of the
timings (peaks are maxima). FLOP/s = the estimator's prefill FLOPs of the probe (2 x matmul parameters
per token, the output head for the last token only, causal attention) over that time. llama.cpp's
kernels ran faster per FLOP on wider layers here (docs/validation.md), so each type is stored per layer
width (aipc.hardware.kernels) and the estimator interpolates a model's own width between the probes.
Every probe's hidden size and FFN are multiples of 256, so the K-quant types are what they say (rows
of another length fall back to other types in llama.cpp).

Decode (one token after 128 of context) is timed too, on every probe whose quantized file fits in the
last-level cache, and stored as ``decode:<type>@<width>`` at 1 token: the FLOP/s of llama.cpp's
matrix-vector kernels on weights that stay in cache, the floor of a decode step where the weights do not
bound it (a small model whose bytes fit in the cache; aipc.estimate.kernels.decode_mix_flops). On every
probe whose quantized file is at least READ_CACHE_MULTIPLE times the cache, the same step's bytes (the
estimator's decode bytes of that file: every tensor but the embedding table's unread rows, plus the KV
cache) over its time are stored as ``read:<type>@<width>`` in bytes/s: the bandwidth llama.cpp's decode
reaches from memory on this machine, which the estimator's uncalibrated llama.cpp decode MBU is read from
(aipc.estimate.kernels.decode_read).

The decode attention over the f16 KV cache grows with the context, not with the model's bytes: two more
probes with a small FFN (ATTN_PROBES: 8 and 32 query heads, weights and cache within 32 MiB) time a decode
step after 128 and after 1152 tokens, and the attention FLOPs between the two over the time gained are
stored as ``attn:F16@<query heads>``. The estimator adds a step's attention FLOPs at that speed to the
bytes it reads (aipc.estimate.roofline), and the decode figures above are stored without the attention
of their own 128 tokens.

A probe holds more layers than the CPU's last-level cache can keep (about 1.3x its size at 4.5 bits
per weight, and at least MIN_PROBE_BYTES; 2 to 24 layers): llama.cpp's CPU kernels read the weights again for every few prompt
tokens, so a model that stays in cache can run faster per FLOP than one that streams from memory
(measured here: one layer of Q4_0 at 752 GFLOP/s, sixteen at 257, a whole Llama-3.2-1B at 260). The
estimator turns these into a model's prefill time through the type of each of its tensors.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# ggml type -> the llama.cpp file type whose default type it is (quantized with pure=True)
TYPE_FTYPE = {"F16": "MOSTLY_F16", "Q8_0": "MOSTLY_Q8_0", "Q6_K": "MOSTLY_Q6_K", "Q5_K": "MOSTLY_Q5_K_M",
              "Q5_1": "MOSTLY_Q5_1", "Q5_0": "MOSTLY_Q5_0", "Q4_K": "MOSTLY_Q4_K_M", "Q4_1": "MOSTLY_Q4_1",
              "Q4_0": "MOSTLY_Q4_0", "Q3_K": "MOSTLY_Q3_K_M", "Q2_K": "MOSTLY_Q2_K", "BF16": "MOSTLY_BF16"}
# measured by default: the types of the file types aipc converts to (Q3_K, Q2_K, Q4_1, BF16 then take
# default shares, aipc.estimate.kernels)
DEFAULT_TYPES = ("Q4_K", "Q6_K", "Q8_0", "Q4_0", "Q5_K", "Q5_0", "Q5_1", "F16")
TOKENS = (128, 512)
# a probe's 4.5-bit weights at the least (its layers permitting): a probe of a few layers prefills much faster
# per FLOP than a whole model of the same layers (2-core AMD EPYC, 32 MiB L3, 2026-12-07: Llama-3.2-1B's layer
# shape at Q8_0, 512 tokens: 2 layers 467 GFLOP/s, 8 layers 325, 16 layers 298, Llama-3.2-1B itself 307)
MIN_PROBE_BYTES = 512 << 20
# the probes' layer shapes: (hidden, FFN, query heads, KV heads); layer widths 5888, 22016 and 29696
PROBE_SHAPES = ((512, 1536, 8, 2), (2048, 5632, 32, 8), (2048, 8192, 32, 8))
PROBE_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 512,
    "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
    "torch_dtype": "float16", "bos_token_id": 1, "eos_token_id": 2,
}  # + each of PROBE_SHAPES and num_hidden_layers: probe_layers()
METHOD = ("prefill of Llama layers ({probes}) quantized with pure types, best of {reps} after a warm-up, "
          "at {tokens} prompt tokens")


def probe_config(shape: tuple[int, int, int, int], layers: int) -> dict:
    """The HF config of a probe of ``layers`` layers of ``shape`` (one of PROBE_SHAPES)."""
    h, ffn, heads, kv = shape
    return {**PROBE_CONFIG, "hidden_size": h, "intermediate_size": ffn, "num_attention_heads": heads,
            "num_key_value_heads": kv, "num_hidden_layers": layers}


def _layer_params(shape: tuple[int, int, int, int]) -> int:
    """One probe layer's matrix elements: q and o (h x h), k and v (h x kv), gate, up and down (h x ffn)."""
    h, ffn, heads, kv_heads = shape
    return 2 * h * h + 2 * h * (h // heads * kv_heads) + 3 * h * ffn


def probe_layers(cache_bytes: int | None = None, shape: tuple[int, int, int, int] = PROBE_SHAPES[1]) -> int:
    """Layers whose 4.5-bit weights hold 1.3x the last-level cache and at least MIN_PROBE_BYTES (2 to 24;
    32 MiB where the cache size cannot be read)."""
    from aipc.hardware.detect import llc_bytes

    per_layer = _layer_params(shape) * 4.5 / 8
    want = max(1.3 * (cache_bytes or llc_bytes() or 32 << 20), MIN_PROBE_BYTES)
    return max(2, min(24, math.ceil(want / per_layer)))


def probe_folder(layers: int, shape: tuple[int, int, int, int] = PROBE_SHAPES[1]) -> Path:
    """The probe's config folder in aipc's home (a stable path, so its f16 GGUF is converted once)."""
    from aipc.paths import home

    (h, ffn), (h0, ffn0) = shape[:2], PROBE_SHAPES[1][:2]  # the first probe's folder name has neither suffix
    folder = home() / (f"kernel-probe-{layers}" + ("" if ffn == ffn0 else f"-ffn{ffn}") + ("" if h == h0 else f"-h{h}"))
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "config.json"
    text = json.dumps(probe_config(shape, layers), indent=1, sort_keys=True)
    if not cfg.is_file() or cfg.read_text(encoding="utf-8") != text:
        cfg.write_text(text, encoding="utf-8")
    return folder


def probe_width(ref: Path) -> int:
    """The layer width (aipc.estimate.compute.layer_width) of a probe folder or GGUF, rounded."""
    from aipc.estimate.compute import layer_width
    from aipc.models.load import resolve

    return round(layer_width(resolve(str(ref))) or 0)


def probe_flops(ref: Path, tokens: int) -> float:
    """The estimator's prefill FLOPs of the probe (a config folder or a GGUF file) for one prompt (the
    output head for the last token only)."""
    from aipc.estimate.compute import prefill_flops_decoder
    from aipc.models.load import resolve

    return prefill_flops_decoder(resolve(str(ref)), tokens, batch=1)


DECODE_CONTEXT, DECODE_STEPS = 128, 16  # a decode's context and how many steps one timing takes
READ_CACHE_MULTIPLE = 2  # a probe file this many times the last-level cache is read from memory at decode


def decode_flops(ref: Path) -> float:
    """The estimator's FLOPs of one decode step of the probe at DECODE_CONTEXT (matmuls and attention)."""
    from aipc.estimate.compute import compute_for
    from aipc.models.load import resolve

    return compute_for(resolve(str(ref)), _decode_workload(ref, "f16")).decode_flops_per_step


def decode_bytes(path: Path) -> float:
    """The estimator's bytes of one decode step at DECODE_CONTEXT of the GGUF at ``path`` (its own tensors)."""
    from aipc.estimate.compute import compute_for
    from aipc.models.load import resolve

    m = resolve(str(path))
    return compute_for(m, _decode_workload(path, m.weight_format)).decode_bytes_per_step


def _decode_workload(ref: Path, weight_dtype: str):
    """One decode step after DECODE_CONTEXT tokens of the model at ``ref`` through llama.cpp."""
    from aipc.spec import Workload

    return Workload(model=str(ref), task="infer", prompt_tokens=DECODE_CONTEXT, gen_tokens=1, engine="llamacpp",
                    weight_dtype=weight_dtype)


def _time_decode(runner, vocab: int, reps: int, context: int = DECODE_CONTEXT) -> float:
    """Best (over ``reps``) median seconds of one decode step after a prompt of ``context`` tokens."""
    import torch

    ids = torch.randint(3, vocab, (context,), generator=torch.Generator().manual_seed(1))
    best = float("inf")
    for r in range(reps + 1):
        s = decode_median(runner, ids)
        if r:  # the first round warms up
            best = min(best, s)
    return best


def decode_median(runner, ids) -> float:
    """Median seconds of DECODE_STEPS decode steps after prefilling ``ids`` into slot 0 of an engine runner."""
    import statistics

    runner.prefill(0, ids)
    steps = []
    for i in range(DECODE_STEPS):
        t0 = time.perf_counter()
        runner.decode1(5, len(ids) + i)
        steps.append(time.perf_counter() - t0)
    return statistics.median(steps)


# decode attention over the KV cache: probes of (hidden, FFN, query heads, KV heads, layers) with a small FFN,
# so that a step is mostly attention and dispatch on weights in cache; decode timed at both contexts
ATTN_PROBES = ((512, 256, 8, 2, 16), (2048, 256, 32, 8, 3))  # weights and KV cache at 1152 tokens: 19 and 27 MiB
ATTN_CONTEXTS = (128, 1152)
ATTN_TYPE = "Q4_0"


def _attention_rate(path: Path, reps: int, threads: int) -> tuple[int, float] | None:
    """(query heads, FLOP/s) of the GGUF's decode attention: the attention FLOPs between ATTN_CONTEXTS over
    the time a decode step gained; None where the longer context did not take longer (noise)."""
    from aipc.engines.llamacpp import GGUFModel
    from aipc.estimate.compute import attention_flops_per_token
    from aipc.models.load import resolve

    gm = GGUFModel(path)
    runner = gm.runner(max_len=ATTN_CONTEXTS[-1] + DECODE_STEPS, threads=threads)
    try:
        secs = [_time_decode(runner, int(gm.facts["n_vocab"]), reps, n) for n in ATTN_CONTEXTS]
    finally:
        runner.close()
    if secs[1] <= secs[0]:
        return None
    m = resolve(str(path))
    lo, hi = (attention_flops_per_token(m, n, train=False) for n in ATTN_CONTEXTS)
    return m.num_heads, (hi - lo) / (secs[1] - secs[0])


def measure_attention(reps: int, threads: int, say, source: Path | None = None) -> dict[str, list[list[float]]]:
    """``attn:F16@<query heads>``: [[1, FLOP/s]] of llama.cpp's decode attention over an f16 KV cache, per
    attention probe (``source``: that f16/f32 GGUF instead)."""
    from aipc.engines.gguf_convert import cached_gguf, quantize

    sources = [Path(source)] if source else [
        cached_gguf(str(probe_folder(n, (h, ffn, heads, kv))), "f16") for h, ffn, heads, kv, n in ATTN_PROBES]
    table: dict[str, list[list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="aipc-attn-") as tmp:
        for f16 in sources:
            path = Path(tmp) / "attn.gguf"
            quantize(f16, path, TYPE_FTYPE[ATTN_TYPE], progress=lambda *a: None, pure=True)
            got = _attention_rate(path, reps, threads)
            path.unlink()
            if got:
                table[f"attn:F16@{got[0]}"] = [[1, got[1]]]
                say(f"decode attention, {got[0]} heads: {got[1] / 1e9:.1f} GFLOP/s")
    return table


def _time_phases(path: Path, tokens: tuple[int, ...], reps: int, threads: int,
                 decode: bool) -> dict[int, float]:
    """Best prefill seconds per prompt length of the GGUF at ``path`` (one warm-up, at the shortest); with
    ``decode``, also a decode step's seconds under key 1."""
    import torch

    from aipc.engines.llamacpp import GGUFModel

    gm = GGUFModel(path)
    runner = gm.runner(max_len=max(*tokens, DECODE_CONTEXT + DECODE_STEPS), threads=threads)
    g = torch.Generator().manual_seed(0)
    out = {}
    try:
        for i, n in enumerate(tokens):
            ids = torch.randint(3, int(gm.facts["n_vocab"]), (n,), generator=g)
            if i == 0:
                runner.prefill(0, ids)  # warm-up
            best = float("inf")
            for _ in range(reps):
                t0 = time.perf_counter()
                runner.prefill(0, ids)
                best = min(best, time.perf_counter() - t0)
            out[n] = best
        if decode:
            out[1] = _time_decode(runner, int(gm.facts["n_vocab"]), reps)
    finally:
        runner.close()
    return out


def measure(types: tuple[str, ...] = DEFAULT_TYPES, tokens: tuple[int, ...] = TOKENS, reps: int = 2,
            threads: int | None = None, layers: int | None = None, source: Path | None = None,
            progress: Callable[[str], None] | None = None) -> dict:
    """The record aipc.hardware.kernels stores: per type and probe width, [[tokens, FLOP/s], ...]
    (keys 'Q4_K@22016'). ``source``: an f16/f32 GGUF to quantize instead of the probes (tests: a tiny
    model); ``layers``: the probes' layer count instead of 1.3x the last-level cache."""
    from aipc.engines.llamacpp import cpu_threads
    from aipc.engines.llamacpp_lib import lib

    threads = int(threads or cpu_threads())
    say = progress or (lambda s: None)
    before = os.getloadavg()[0]
    probes = [(Path(source), Path(source))] if source else _probes(layers)
    table: dict[str, list[list[float]]] = {}
    try:
        table.update(measure_attention(reps, threads, say, source))
        for ref, f16 in probes:
            width, flops = probe_width(ref), {**{n: probe_flops(ref, n) for n in tokens}, 1: decode_flops(ref)}
            attn = _attention_at_decode(ref, table)
            flops[1] -= attn[0]
            got = _measure_types(f16, types, tokens, reps, threads, flops, quantize_each=bool(source),
                                 say=lambda m, w=width: say(f"width {w} {m}"), attention_s=attn[1])
            table.update({f"{t}@{width}": pts for t, pts in got.items()})
    except OSError as e:  # the quantized copy did not fit on the disk (or /tmp is not writable)
        from aipc.errors import AipcError

        raise AipcError(f"cannot write the quantized probe: {e.strerror or e}; free about 2 GB of disk "
                        "(or point TMPDIR at a disk with room) and run again") from None
    names = f"{Path(source).name}" if source else "; ".join(
        f"{probe_layers(shape=s) if layers is None else layers} layers of hidden {s[0]}, FFN {s[1]}" for s in PROBE_SHAPES)
    return {"version": getattr(lib(), "__version__", "?"), "threads": threads,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load_avg": [before, os.getloadavg()[0]],
            "method": (f"prefill of {names}" if source else METHOD.format(probes=names, reps=reps,
                       tokens=" and ".join(map(str, tokens)))), "types": table}


def _attention_at_decode(ref: Path, table: dict) -> tuple[float, float]:
    """(attention FLOPs, seconds at the measured attention FLOP/s) of the probe's decode step at
    DECODE_CONTEXT: what the decode figures leave out, since the estimator adds the attention apart
    (aipc.estimate.roofline); (0, 0) where the attention was not measured."""
    from aipc.estimate.compute import attention_flops_per_token
    from aipc.estimate.kernels import attention_at
    from aipc.models.load import resolve

    m = resolve(str(ref))
    rate = attention_at(table, m.num_heads)
    flops = attention_flops_per_token(m, DECODE_CONTEXT + DECODE_STEPS / 2, train=False)
    return (flops, flops / rate) if rate else (0.0, 0.0)


def _probes(layers: int | None) -> list[tuple[Path, Path]]:
    """(config folder, its cached f16 GGUF) of each probe width."""
    from aipc.engines.gguf_convert import cached_gguf

    out = []
    for shape in PROBE_SHAPES:
        folder = probe_folder(layers or probe_layers(shape=shape), shape)
        out.append((folder, cached_gguf(str(folder), "f16")))
    return out


def _measure_types(f16: Path, types, tokens, reps: int, threads: int, flops: dict, *, quantize_each: bool,
                   say, attention_s: float = 0.0) -> dict[str, list[list[float]]]:
    """Per type: quantize ``f16`` (pure) into a temporary file, time its prefills and (kept where it says
    something: weights in cache or well beyond it) a decode step less ``attention_s``, remove it."""
    from aipc.engines.gguf_convert import quantize
    from aipc.hardware.detect import llc_bytes

    table: dict[str, list[list[float]]] = {}
    cache = llc_bytes() or 0
    with tempfile.TemporaryDirectory(prefix="aipc-kernels-") as tmp:
        for t in types:
            path = f16
            if t != "F16" or quantize_each:
                path = Path(tmp) / f"probe-{t}.gguf"
                quantize(f16, path, TYPE_FTYPE[t], progress=lambda *a: None, pure=True)
            size, note = path.stat().st_size, ""
            in_cache, beyond = size < cache, size >= READ_CACHE_MULTIPLE * cache  # else decode is not kept
            secs = _time_phases(path, tokens, reps, threads, decode=in_cache or beyond)
            if 1 in secs:  # the step without its attention over the KV cache (at most half of it)
                secs[1] = max(secs[1] - attention_s, secs[1] / 2)
            table[t] = [[n, flops[n] / s] for n, s in secs.items() if n != 1]
            if in_cache:  # weights in cache: the matrix-vector kernels' FLOP/s
                table[f"decode:{t}"] = [[1, flops[1] / secs[1]]]
                note = f", decode {flops[1] / secs[1] / 1e9:.0f} GFLOP/s"
            elif beyond:  # weights from memory: the bandwidth decode reaches
                table[f"read:{t}"] = [[1, decode_bytes(path) / secs[1]]]
                note = f", decode reads {table[f'read:{t}'][0][1] / 1e9:.1f} GB/s"
            say(f"{t}: " + ", ".join(f"{f / 1e9:.0f} GFLOP/s at {n}" for n, f in table[t]) + note)
            if path != f16:
                path.unlink()
    return table


def measure_and_save(fingerprint: str, *, replace: bool = False, **kw) -> dict:
    """Measure and store for this machine (aipc.hardware.kernels: best of this and earlier measurements
    unless ``replace``); the stored record."""
    from aipc.hardware import kernels as K

    K.save(fingerprint, "llamacpp", measure(**kw), replace=replace)
    return K.load(fingerprint)["llamacpp"]
