"""The OpenVINO runner: aipc's runner interface (contract 2) over a stateful OpenVINO IR.

optimum-intel exports decoders as *stateful* models: inputs ``input_ids``, ``attention_mask``,
``position_ids``, ``beam_idx``; output ``logits``; the KV cache lives in the infer request's
variable state. One infer request per slot is one sequence's cache, so ``prefill`` resets the
slot's state and runs the prompt, ``decode1`` appends one token, ``free`` resets the state.

Like OpenVINO GenAI's own pipeline, the final projection is applied to the last position only
(a Gather before the lm_head MatMul, :func:`slice_last_token`): prefill then costs one row of
logits, not one per prompt token. Logits come back as float32 torch tensors on the CPU, so aipc's
sampling, generate loop and batching engine run unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

_DECOMPRESSION = {"Convert", "Subtract", "Multiply", "Reshape", "Unsqueeze", "Squeeze", "Transpose"}


def slice_last_token(model) -> bool:
    """Feed the logits MatMul only the last position's hidden state: (B, T, H) -> (B, 1, H).

    Walks up from the ``logits`` output through element-wise nodes to the MatMul; returns False
    (model unchanged) where the graph has another shape.
    """
    import openvino as ov
    import openvino.opset13 as ops

    node = model.output("logits").get_node()
    while node.get_type_name() != "MatMul":
        if node.get_input_size() < 1:
            return False
        node = node.input_value(0).get_node()
    hidden = node.input_value(0)
    if hidden.get_partial_shape().rank.get_length() != 3:
        return False
    last = ops.gather(hidden, ops.constant(np.array([-1], dtype=np.int64)), ops.constant(np.int64(1)))
    node.input(0).replace_source_output(last.output(0))
    model.validate_nodes_and_infer_types()
    return isinstance(model, ov.Model)


def weight_bytes(model) -> tuple[int, int]:
    """(bytes of weights read per decode step, bytes of the embedding table read one row at a time).

    Each Constant counts by the op its decompression chain (Convert/Subtract/Multiply/Reshape)
    ends in: a Gather's data input is an embedding table (one row per token), anything else is a
    weight read in full every step. A table that also feeds the lm_head (tied) counts as a weight.
    """
    per_step = embed_only = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Constant" or op.get_byte_size() < 1024:
            continue
        ends = _consumers(op)
        if ends and all(t == "Gather" for t in ends):
            embed_only += op.get_byte_size()
        elif any(t in ("MatMul", "Gather", "Convolution") for t in ends):
            per_step += op.get_byte_size()
    return per_step, embed_only


def _consumers(op) -> list[str]:
    """Type names of the first non-decompression ops fed by ``op``."""
    out, stack, seen = [], [op], set()
    while stack:
        n = stack.pop()
        for o in n.outputs():
            for t in o.get_target_inputs():
                c = t.get_node()
                if id(c) in seen:
                    continue
                seen.add(id(c))
                (stack.append(c) if c.get_type_name() in _DECOMPRESSION else out.append(c.get_type_name()))
    return out


class OVRunner:
    """prefill / decode1 / decode / free over one OpenVINO infer request per slot."""

    fast = False
    threads_fixed = True  # INFERENCE_NUM_THREADS is compiled in: chosen when the runner is built

    def __init__(self, folder: str | Path, *, device: str = "CPU", max_batch: int = 1, max_len: int | None = None,
                 threads: int | None = None, config: dict | None = None, core=None):
        import openvino as ov

        self.folder = Path(folder)
        self.ov_device = device
        self.threads_note = "set with --threads" if threads else "OpenVINO's default"
        self.core = core or ov.Core()
        model = self.core.read_model(str(self.folder / "openvino_model.xml"))
        self.sliced = slice_last_token(model)
        self.step_bytes, self.embed_bytes = weight_bytes(model)
        self.hf = json.loads((self.folder / "config.json").read_text(encoding="utf-8"))
        props = {"PERFORMANCE_HINT": "LATENCY", **(config or {})}
        if threads and device == "CPU":
            props["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = self.core.compile_model(model, device, props)
        n = self.ov_property("INFERENCE_NUM_THREADS") if device == "CPU" else None
        self.threads = int(n) if n else None
        self.device = "cpu"  # where logits land (torch side)
        self.max_batch = int(max_batch)
        ctx = int(self.hf.get("max_position_embeddings") or 2048)
        self.max_len = int(min(max_len, ctx) if max_len else ctx)
        self.vocab_size = int(model.output("logits").get_partial_shape()[2].get_length())
        self.requests = [self.compiled.create_infer_request() for _ in range(self.max_batch)]
        self.lengths = [0] * self.max_batch
        self._beam = np.zeros(1, dtype=np.int32)
        self._ones = np.ones((1, self.max_len), dtype=np.int64)  # attention masks are views of it

    # ---------------------------------------------------------------- properties for MBU
    def ov_property(self, name: str):
        try:
            return self.compiled.get_property(name)
        except RuntimeError:
            return None

    def kv_precision(self) -> str:
        t = self.ov_property("KV_CACHE_PRECISION")
        return str(t.get_type_name()) if t is not None and hasattr(t, "get_type_name") else "f16"

    def weight_bytes_per_step(self) -> int:
        """Weights read per decode step: every weight constant, plus one embedding row."""
        hidden = int(self.hf.get("hidden_size") or 0)
        row = self.embed_bytes // max(self.vocab_size, 1) if self.embed_bytes else 0
        return int(self.step_bytes + (row if hidden else 0))

    def kv_bytes_per_token(self) -> int:
        """2 · layers · kv_heads · head_dim · bytes of the compiled model's KV-cache precision."""
        c = self.hf
        heads = int(c.get("num_attention_heads") or 1)
        kv = int(c.get("num_key_value_heads") or heads)
        hd = int(c.get("head_dim") or int(c.get("hidden_size") or 0) // heads)
        size = {"u8": 1, "i8": 1, "u4": 0.5, "i4": 0.5, "f32": 4}.get(self.kv_precision(), 2)
        return int(2 * int(c.get("num_hidden_layers") or 0) * kv * hd * size)

    # ---------------------------------------------------------------- runner interface
    def _infer(self, slot: int, ids: np.ndarray, start: int) -> torch.Tensor:
        import openvino as ov

        req = self.requests[slot]
        T = ids.shape[-1]
        # tensors over the arrays' own memory, then start_async + wait: the synchronous infer() with a dict
        # of arrays copies each input and builds a dict of every output (~7 ms per call on a tiny model)
        feeds = {"input_ids": np.ascontiguousarray(ids.reshape(1, T), dtype=np.int64),
                 "attention_mask": self._ones[:, :start + T],
                 "position_ids": np.arange(start, start + T, dtype=np.int64).reshape(1, T),
                 "beam_idx": self._beam}
        for name, arr in feeds.items():
            req.set_tensor(name, ov.Tensor(arr, shared_memory=True))
        req.start_async()
        req.wait()
        self.lengths[slot] = start + T
        return torch.from_numpy(np.array(req.get_tensor("logits").data[0, -1], dtype=np.float32))  # (V,)

    def prefill(self, slot: int, ids: torch.Tensor) -> torch.Tensor:
        T = int(ids.shape[-1])
        if T > self.max_len:
            raise ValueError(f"prompt of {T} tokens does not fit the context of {self.max_len}")
        self.requests[slot].reset_state()
        return self._infer(slot, ids.detach().cpu().numpy().astype(np.int64), 0)

    def decode1(self, token, pos: int, slot: int = 0) -> torch.Tensor:
        pos = int(pos)
        if pos != self.lengths[slot]:
            raise ValueError(f"slot {slot} holds {self.lengths[slot]} tokens; cannot decode at position {pos}")
        if pos >= self.max_len:
            raise ValueError(f"position {pos} is past the context of {self.max_len}")
        return self._infer(slot, np.array([int(token)], dtype=np.int64), pos)

    def decode(self, tokens: torch.Tensor, pos: torch.Tensor, active: list[int] | None = None) -> torch.Tensor:
        """One step for each active slot (one infer request each, one after another)."""
        n = int(tokens.shape[0])
        out = torch.zeros(n, self.vocab_size, dtype=torch.float32)
        for i in (active if active is not None else range(n)):
            out[i] = self.decode1(int(tokens[i]), int(pos[i]), i)
        return out

    def free(self, slot: int) -> None:
        self.requests[slot].reset_state()
        self.lengths[slot] = 0


def pick_threads(make, candidates: list[int], steps: int = 4, rounds: int = 2):
    """(runner, {threads: median seconds per decode step}): the candidate thread count whose decode
    step is fastest, measured now (OpenVINO fixes threads at compile time: one runner per candidate,
    ``make(threads)``; the winner is returned, the others dropped)."""
    import statistics
    import time

    runners = {c: make(c) for c in candidates}
    per: dict[int, list[float]] = {c: [] for c in candidates}
    for r in runners.values():
        r.prefill(0, torch.arange(8) % r.vocab_size)
    for k in range(rounds):
        for c, r in runners.items():
            t = time.perf_counter()
            for i in range(steps):
                r.decode1(1, 8 + k * steps + i, 0)
            per[c].append((time.perf_counter() - t) / steps)
    med = {c: statistics.median(v) for c, v in per.items()}
    best = min(med, key=med.get)
    runners[best].free(0)
    return runners[best], med
