"""The engine seam: load a model through one inference engine and get a runner plus a tokenizer.

An engine is one module ``aipc.engines.<name>`` with a function
``load(ref, *, weight_format, device, max_batch, max_len, threads, seed, **options) -> Loaded``.
Its runner has the interface of :class:`aipc.engines.fastlm.FastLM` (``prefill``, ``decode1``,
``decode``, ``free``, ``max_batch``, ``max_len``, ``device``, ``vocab_size``,
``weight_bytes_per_step()``, ``kv_bytes_per_token()``), so ``aipc.engines.generate.generate`` and
``aipc.serve.engine.Engine`` run on any engine. Adding an engine: one module here, its name in
``aipc.spec.ENGINES``, its library and weight formats in the tables below (docs/engines.md).

Import-light: nothing here imports torch or an engine library until :func:`load` runs.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aipc.errors import AipcError
from aipc.spec import ENGINES

LIBRARIES = {"torch": "torch", "llamacpp": "llama_cpp", "openvino": "openvino"}
# Weight formats per engine (aipc.spec.Workload.weight_dtype names); the first is the CPU default.
GGUF_TYPES = ("f16", "q8_0", "q6_k", "q5_k_m", "q5_k_s", "q5_0", "q4_k_m", "q4_k_s", "q4_0", "q3_k_m", "q2_k",
              "f32", "bf16")
WEIGHT_FORMATS = {"torch": ("fp32", "bf16", "fp16"), "llamacpp": GGUF_TYPES, "openvino": ("fp16", "int8", "int4")}
FORMAT_WORDS = ("auto", *dict.fromkeys(f for fs in WEIGHT_FORMATS.values() for f in fs))  # what --dtype accepts
GGUF_SUFFIX = ".gguf"
DEFAULT_CONTEXT_CAP = 4096  # tokens per slot when max_len is not given: the model's context, at most this


@dataclass(eq=False, kw_only=True)
class Loaded:
    """A model loaded through an engine. ``runner`` is built on first use, for ``max_batch`` sequences
    of ``max_len`` tokens; :meth:`resize` changes them before (or after) that."""

    tokenizer: object
    name: str                 # what /v1/models reports
    engine: str               # torch | llamacpp | openvino
    weight_format: str        # fp32 | bf16 | fp16 (torch); f16 | q8_0 | q4_k_m ... (llamacpp)
    device: str               # where the weights live: cpu, cuda, ...
    random_weights: bool      # True when built from a config (no trained weights: text is noise)
    model: object = None      # the engine's model object; eos_ids(tokenizer, model) reads its generation_config
    context: int = 2048       # the model's trained context length
    path: Path | None = None  # the weights file or folder, when there is one
    max_batch: int = 1
    max_len: int | None = None
    make_runner: Callable = field(repr=False, default=None)  # (max_batch, max_len) -> runner
    generator: object = None  # engines that cannot expose logits there (OpenVINO on an NPU): generate(...) -> Result
    _runner: object = field(default=None, repr=False)

    @property
    def dtype(self) -> str:
        """The weight format under its torch-era name (what ``aipc serve`` prints)."""
        return self.weight_format

    @property
    def runner(self):
        if self._runner is None:
            self._runner = self.make_runner(self.max_batch, self.max_len)
        return self._runner

    def resize(self, *, max_batch: int | None = None, max_len: int | None = None) -> None:
        """Use another number of slots or context; the next ``runner`` access builds it."""
        self.max_batch = int(max_batch or self.max_batch)
        self.max_len = max_len or self.max_len
        close = getattr(self._runner, "close", None)
        if close is not None:
            close()
        self._runner = None


def available() -> list[str]:
    """Engines whose library is installed here (checked without importing them)."""
    out = []
    for name in ENGINES:
        try:
            ok = importlib.util.find_spec(LIBRARIES[name]) is not None
            ok = ok and importlib.util.find_spec(f"aipc.engines.{name}") is not None
        except (ImportError, ValueError):
            ok = False
        if ok:
            out.append(name)
    return out


def is_gguf(ref) -> bool:
    return str(ref).lower().endswith(GGUF_SUFFIX)


def is_openvino_ir(ref) -> bool:
    """An OpenVINO IR folder (``aipc convert --to openvino`` / optimum-cli's openvino_model.xml)."""
    p = Path(str(ref)).expanduser()
    return p.is_dir() and (p / "openvino_model.xml").is_file()


def default_engine(ref, weight_format: str | None = None, device: str | None = None) -> str:
    """The best installed engine for this model reference and weight format.

    A .gguf file or a GGUF quant type -> llamacpp; fp32/bf16 (and fp16 on a GPU) -> torch;
    int8/int4 -> openvino. Nothing picks an emulated bf16/fp16: the torch engine defaults to fp32 on a CPU.
    """
    have = available()
    fmt = (weight_format or "").lower()
    if is_gguf(ref) or (fmt and fmt in GGUF_TYPES and fmt not in WEIGHT_FORMATS["torch"]):
        want = "llamacpp"
    elif is_openvino_ir(ref) or (fmt and fmt in WEIGHT_FORMATS["openvino"] and fmt not in WEIGHT_FORMATS["torch"]):
        want = "openvino"
    else:
        want = "torch"
    if want not in have:
        raise AipcError(f"{'a .gguf file' if is_gguf(ref) else f'weight format {fmt!r}'} needs the {want} engine, "
                        f"which is not installed here (installed: {', '.join(have) or 'none'}); run ./setup.sh")
    return want


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        from aipc.errors import unknown

        raise unknown("engine", engine, ENGINES, "use one of " + ", ".join(ENGINES))
    if engine not in available():
        raise AipcError(f"engine '{engine}' is not installed here (installed: {', '.join(available())}); "
                        "run ./setup.sh, or choose another --engine")
    return engine


def check_weight_format(engine: str, weight_format: str | None) -> str | None:
    if weight_format is None:
        return None
    fmt = weight_format.lower()
    if fmt not in WEIGHT_FORMATS[engine]:
        others = [e for e, f in WEIGHT_FORMATS.items() if fmt in f and e != engine]
        hint = f"; {fmt} runs on --engine {others[0]}" if others else ""
        raise AipcError(f"engine {engine} has no weight format '{weight_format}' "
                        f"(it runs {', '.join(WEIGHT_FORMATS[engine])}){hint}")
    return fmt


def load(ref, *, engine: str | None = None, weight_format: str | None = None, device: str | None = None,
         max_batch: int = 1, max_len: int | None = None, threads: int | None = None, seed: int = 0,
         allow_pickle: bool = False, **options) -> Loaded:
    """Load ``ref`` (a .gguf file, a local HF folder, a catalog name / HF id / config.json) through
    ``engine`` (default: :func:`default_engine`). ``allow_pickle``: a folder's pickle weights may load
    (aipc.models.live's rule). ``options`` go to the engine (torch: ``fast``)."""
    if max_batch < 1 or (max_len is not None and max_len < 1) or (threads is not None and threads < 1):
        raise AipcError("max_batch, max_len and threads must be at least 1")
    weight_format = None if weight_format in (None, "", "auto") else weight_format
    engine = check_engine(engine) if engine else default_engine(ref, weight_format, device)
    weight_format = check_weight_format(engine, weight_format)
    if is_gguf(ref) and engine != "llamacpp":
        raise AipcError(f"{ref} is a GGUF file: run it with --engine llamacpp")
    if is_openvino_ir(ref) and engine != "openvino":
        raise AipcError(f"{ref} is an OpenVINO IR folder: run it with --engine openvino")
    mod = importlib.import_module(f"aipc.engines.{engine}")
    extra = sorted(set(options) - set(getattr(mod, "OPTIONS", {})))
    if extra:
        flags = {"fast": "--hf-forward"}  # how the CLI spells the engine options
        raise AipcError(f"{', '.join(flags.get(x, x) for x in extra)} applies to the torch engine, not {engine}; drop it")
    return mod.load(ref, weight_format=weight_format, device=device, max_batch=max_batch, max_len=max_len,
                    threads=threads, seed=seed, allow_pickle=allow_pickle, **options)


def runner_threads(runner) -> int:
    """CPU threads ``runner`` computes with (its own setting, else torch's)."""
    n = getattr(runner, "threads", None)
    if n:
        return int(n)
    import torch

    return torch.get_num_threads()


def thread_candidates(runner) -> list[int]:
    """Thread counts worth measuring for ``runner``: all it would use, and 1 (a busy CPU can favour 1).
    A runner whose threads are fixed when it is built (OpenVINO compiles them in) measured them then."""
    if getattr(runner, "threads_fixed", False):
        return [runner_threads(runner)]
    return sorted({runner_threads(runner), 1}, reverse=True)
