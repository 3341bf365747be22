"""The llama.cpp engine: a GGUF model run through llama-cpp-python's low-level API.

:class:`LlamaCppRunner` has the runner interface of :class:`aipc.engines.fastlm.FastLM` (``prefill``,
``decode1``, ``decode``, ``free``, ``max_batch``, ``max_len``, ...), so ``aipc.engines.generate`` and
the server's continuous-batching ``aipc.serve.engine.Engine`` drive it unchanged. One llama.cpp
context holds ``max_batch`` sequences (one sequence id per slot, a KV cache of ``max_len`` tokens
each); ``decode`` sends one token per active slot in a single ``llama_decode`` call, so batched
decoding reads the weights once per step; ``free`` drops a slot's cache (``llama_memory_seq_rm``).

Logits are returned as torch views of llama.cpp's output buffer (no copy): a view is valid until
the runner's next call, which overwrites it. Take ``.clone()`` to keep one longer.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from types import SimpleNamespace

import torch

from aipc.engines import DEFAULT_CONTEXT_CAP
from aipc.engines.llamacpp_lib import check_gguf_file, lib, model_facts, open_model


def cpu_threads() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class LlamaCppRunner:
    fast = True

    def __init__(self, model, facts: dict, *, max_batch: int = 1, max_len: int | None = None,
                 threads: int | None = None, path: Path | None = None, flash_attn: bool = False):
        ll = lib()
        self._ll, self.model, self.facts, self.path = ll, model, facts, path
        self.device = torch.device("cpu")  # logits live in host memory whatever holds the weights
        self.max_batch = int(max_batch)
        self.max_len = int(max_len or min(facts["n_ctx_train"] or DEFAULT_CONTEXT_CAP, DEFAULT_CONTEXT_CAP))
        self.vocab_size = int(facts["n_vocab"])
        self.n_batch = min(self.max_len, 512)  # prompt tokens per llama_decode call
        self.threads = int(threads or cpu_threads())
        p = ll.llama_context_default_params()
        p.n_ctx = self.max_len * self.max_batch
        p.n_seq_max = self.max_batch
        p.kv_unified = False  # one KV stream per sequence: each slot holds max_len tokens
        p.n_batch = p.n_ubatch = max(self.n_batch, self.max_batch)
        p.n_threads = p.n_threads_batch = self.threads
        p.flash_attn_type = ll.LLAMA_FLASH_ATTN_TYPE_AUTO if flash_attn else ll.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self.flash_attn = bool(flash_attn)
        self.ctx = ll.llama_init_from_model(model, p)
        if not self.ctx:
            from aipc.engines.llamacpp_lib import last_error
            from aipc.errors import AipcError

            raise AipcError(f"llama.cpp cannot create a context of {self.max_batch} x {self.max_len} tokens: "
                            f"{last_error()}; lower --max-batch or --max-len")
        self.memory = ll.llama_get_memory(self.ctx)
        cap = max(self.n_batch, self.max_batch)
        self.batch = ll.llama_batch_init(cap, 0, 1)
        self._next = [0] * self.max_batch  # positions each slot's cache holds (0..next-1)
        self._rows = torch.empty(self.max_batch, self.vocab_size)

    # ------------------------------------------------------------------ facts
    def weight_bytes_per_step(self) -> int:
        """Bytes of weights one decode step reads: all tensors except the unread rows of the input
        embedding table (when the output layer has its own matrix; a tied table is read whole)."""
        size = int(self.facts["size_bytes"])
        emb = self.facts.get("token_embd_bytes")
        if not emb or self.facts.get("tied_embeddings"):
            return size
        return size - emb + emb // self.vocab_size

    def kv_bytes_per_token(self) -> int:
        """2 (K, V) · layers · kv_heads · head_dim · 2 bytes (llama.cpp's default f16 KV cache)."""
        f = self.facts
        return f["n_layer"] * f["n_head_kv"] * (f["head_dim_k"] + f["head_dim_v"]) * 2

    def set_threads(self, n: int) -> None:
        self.threads = int(n)
        self._ll.llama_set_n_threads(self.ctx, self.threads, self.threads)

    # ------------------------------------------------------------------ batches
    def _fill(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """Put (token, pos, seq, wants_logits) entries into the batch."""
        b = self.batch
        for i, (tok, pos, seq, out) in enumerate(entries):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = out
        b.n_tokens = len(entries)

    def _run(self) -> None:
        rc = self._ll.llama_decode(self.ctx, self.batch)
        if rc != 0:
            from aipc.engines.llamacpp_lib import last_error

            raise RuntimeError(f"llama_decode failed ({rc}): {last_error()}")

    def _rewind(self, slot: int, pos: int) -> None:
        """Make ``pos`` the next position of ``slot``: drop cached positions >= pos (FastLM overwrites them)."""
        if pos >= self.max_len:
            raise ValueError(f"position {pos} is past the context of {self.max_len} tokens per slot")
        if pos < self._next[slot]:
            self._ll.llama_memory_seq_rm(self.memory, slot, pos, -1)
        elif pos > self._next[slot]:
            raise ValueError(f"slot {slot} holds {self._next[slot]} positions; cannot decode at position {pos}")
        self._next[slot] = pos + 1

    def _logits(self, n_rows: int) -> torch.Tensor:
        """The last ``n_rows`` output rows of the last decode, as a (n_rows, V) view."""
        ptr = self._ll.llama_get_logits_ith(self.ctx, -n_rows)
        addr = ctypes.cast(ptr, ctypes.c_void_p).value
        arr = (ctypes.c_float * (n_rows * self.vocab_size)).from_address(addr)
        return torch.frombuffer(arr, dtype=torch.float32).view(n_rows, self.vocab_size)

    # ------------------------------------------------------------------ runner interface
    @torch.inference_mode()
    def prefill(self, slot: int, ids: torch.Tensor) -> torch.Tensor:
        """Run prompt ``ids`` (T,) into ``slot`` from position 0; logits (V,) of the last token."""
        toks = [int(t) for t in ids.reshape(-1).tolist()]
        T = len(toks)
        if T < 1 or T > self.max_len:
            raise ValueError(f"prompt of {T} tokens does not fit the cache of {self.max_len}")
        self.free(slot)
        for start in range(0, T, self.n_batch):
            chunk = toks[start:start + self.n_batch]
            last = start + len(chunk) == T
            self._fill([(t, start + i, slot, last and i == len(chunk) - 1) for i, t in enumerate(chunk)])
            self._run()
        self._next[slot] = T
        return self._logits(1)[0]

    @torch.inference_mode()
    def decode1(self, token, pos: int, slot: int = 0) -> torch.Tensor:
        """One token for one sequence at position ``pos``; logits (V,)."""
        self._rewind(slot, int(pos))
        self._fill([(int(token), int(pos), slot, True)])
        self._run()
        return self._logits(1)[0]

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor, pos: torch.Tensor, active: list[int] | None = None) -> torch.Tensor:
        """One token for each active slot (default: all of 0..n-1), in one llama_decode; logits (n, V).

        Rows of inactive slots are left as they are (ignore them)."""
        n = int(tokens.shape[0])
        rows = list(range(n)) if active is None else [int(i) for i in active]
        tl, pl = tokens.tolist(), pos.tolist()
        for i in rows:
            self._rewind(i, int(pl[i]))
        self._fill([(int(tl[i]), int(pl[i]), i, True) for i in rows])
        self._run()
        out = self._logits(len(rows))
        if rows == list(range(n)):
            return out  # the common case: a view, no copy
        dest = self._rows[:n]
        dest[rows] = out
        return dest

    def free(self, slot: int) -> None:
        """Drop everything ``slot``'s cache holds."""
        self._ll.llama_memory_seq_rm(self.memory, slot, -1, -1)
        self._next[slot] = 0

    def close(self) -> None:
        """Release the context (the model belongs to whoever opened it)."""
        if getattr(self, "ctx", None):
            self._ll.llama_batch_free(self.batch)
            self._ll.llama_free(self.ctx)
            self.ctx = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone already
            pass


class GGUFModel:
    """An opened GGUF file: the llama.cpp model (memory-mapped weights), its facts and tokenizer."""

    def __init__(self, path: Path, *, gpu_layers: int = 0):
        from aipc.engines.gguf_tokenizer import GGUFTokenizer

        check_gguf_file(path)
        self.path, self.gpu_layers = path, gpu_layers
        self.model = open_model(path, gpu_layers=gpu_layers)
        self.facts = model_facts(self.model)
        self.facts.update(_embedding_facts(path))
        self.tokenizer = GGUFTokenizer(self.model)
        # what aipc.engines.sampling.eos_ids reads: every end-of-generation token of the vocabulary
        self.generation_config = SimpleNamespace(eos_token_id=self.tokenizer.end_of_generation_ids())

    def runner(self, *, max_batch: int = 1, max_len: int | None = None, threads: int | None = None) -> LlamaCppRunner:
        # flash attention only where layers are offloaded: on the CPU, llama.cpp's flash-attention decode
        # slows with context (docs/benchmarks.md: 24.7 against 31.7 tokens/s at 512 tokens of context)
        r = LlamaCppRunner(self.model, self.facts, max_batch=max_batch, max_len=max_len, threads=threads,
                           path=self.path, flash_attn=self.gpu_layers != 0)
        r.owner = self  # the model must outlive its contexts
        return r

    def __del__(self):
        try:
            if getattr(self, "model", None):
                lib().llama_model_free(self.model)
                self.model = None
        except Exception:
            pass


def _embedding_facts(path: Path) -> dict:
    """Bytes of the token-embedding table and whether the output layer reuses it (no output.weight),
    from the GGUF header: a decode step reads one row of an untied table, all of a tied one."""
    from aipc.engines.llamacpp_lib import tensor_bytes

    t = tensor_bytes(path, ("token_embd.weight", "output.weight"))
    return {"token_embd_bytes": t.get("token_embd.weight"), "tied_embeddings": t.get("output.weight") is None}


def _gpu_layers(device: str | None) -> tuple[int, str]:
    """(layers to offload, device name) for ``device``; this build's llama.cpp may be CPU-only."""
    if device in (None, "", "auto", "cpu"):
        return 0, "cpu"
    if str(device).startswith(("cuda", "gpu", "metal", "vulkan")):
        if not lib().llama_supports_gpu_offload():
            from aipc.errors import AipcError

            raise AipcError(f"--device {device}: this llama-cpp-python build runs on the CPU only (no GPU offload); "
                            "use --device cpu, or reinstall llama-cpp-python with GPU support")
        return -1, str(device)
    from aipc.errors import AipcError

    raise AipcError(f"unknown device '{device}' for llama.cpp; use cpu, cuda or auto")


def file_type_name(code) -> str | None:
    """GGUF general.file_type number -> aipc's lower-case name (q4_k_m, ...)."""
    from aipc.engines.gguf_convert import QUANTS

    ll = lib()
    for name, suffix in QUANTS.items():
        if str(getattr(ll, "LLAMA_FTYPE_" + suffix, "")) == str(code):
            return name
    return None


def load(ref, *, weight_format=None, device=None, max_batch=1, max_len=None, threads=None, seed=0,
         allow_pickle=False):
    """A .gguf file as it is, or any other model converted to ``weight_format`` (default q4_k_m)
    once and cached (``aipc convert``'s pipeline; random weights for a catalog model / config)."""
    from aipc.engines import Loaded, is_gguf
    from aipc.engines.gguf_convert import RANDOM_MARK
    from aipc.engines.llamacpp_lib import meta
    from aipc.errors import AipcError

    gpu_layers, dev = _gpu_layers(device)
    if is_gguf(ref):
        path = Path(str(ref)).expanduser()
    else:
        from aipc.engines.gguf_convert import cached_gguf

        path = cached_gguf(ref, weight_format or "q4_k_m", seed=seed, allow_pickle=allow_pickle)
    gm = GGUFModel(path, gpu_layers=gpu_layers)
    fmt = file_type_name(gm.facts["file_type"]) or f"file type {gm.facts['file_type']}"
    if weight_format and is_gguf(ref) and weight_format != fmt:
        raise AipcError(f"{path.name} holds {fmt} weights, not {weight_format}; drop --weight-format "
                        f"or convert the model to {weight_format} with 'aipc convert'")
    random = (meta(gm.model, "general.description") or "").startswith(RANDOM_MARK)
    ctx = int(gm.facts["n_ctx_train"] or 0) or 2048
    return Loaded(tokenizer=gm.tokenizer, name=path.stem if is_gguf(ref) else str(ref), engine="llamacpp",
                  weight_format=fmt, device=dev, random_weights=random, model=gm, context=ctx, path=path,
                  max_batch=max_batch, max_len=max_len,
                  make_runner=lambda n, length: gm.runner(max_batch=n, max_len=length, threads=threads))
