"""HF model -> GGUF through llama.cpp's own tools: its converter (``convert_hf_to_gguf.py``, run as a
subprocess from ``$VENV/share/aipc/llama.cpp``, put there by ./setup.sh) writes f32/f16/bf16, and
llama.cpp's quantize API (``llama_model_quantize``) makes the quantized types from that. aipc writes
no GGUF encoder or quantizer of its own.

Sources: a local HF folder with weights, or a catalog name / HF id / config.json, whose random
weights are streamed into a temporary folder first (:mod:`aipc.engines.random_folder`). Everything
is written under a temporary name beside the output and renamed at the end; on any error the
temporary files go and no output is left behind.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aipc.errors import AipcError

# GGUF weight formats `aipc convert --to gguf --quant` writes, and llama.cpp's file type for each.
QUANTS = {"f32": "ALL_F32", "f16": "MOSTLY_F16", "bf16": "MOSTLY_BF16", "q8_0": "MOSTLY_Q8_0",
          "q6_k": "MOSTLY_Q6_K", "q5_k_m": "MOSTLY_Q5_K_M", "q5_k_s": "MOSTLY_Q5_K_S", "q5_0": "MOSTLY_Q5_0",
          "q4_k_m": "MOSTLY_Q4_K_M", "q4_k_s": "MOSTLY_Q4_K_S", "q4_0": "MOSTLY_Q4_0", "q3_k_m": "MOSTLY_Q3_K_M",
          "q2_k": "MOSTLY_Q2_K"}
WRITTEN_BY_CONVERTER = ("f32", "f16", "bf16")
RANDOM_MARK = "aipc: random weights"  # general.description of GGUFs made from a config (no trained weights)
Progress = Callable[[str, float, float], None]  # (stage, done, total)


@dataclass
class Source:
    name: str
    folder: Path | None   # a local folder with weights, else None (random weights from spec)
    spec: object | None


class StageProgress:
    """A rich progress bar on stderr with one line per stage (random weights, convert, quantize);
    ``with StageProgress(quiet) as report: convert(..., progress=report)``. Silent when ``quiet``."""

    def __init__(self, quiet: bool = False):
        self.quiet, self.tasks, self.bar = quiet, {}, None

    def __enter__(self) -> Progress:
        if not self.quiet:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description:<15}"), BarColumn(), TaskProgressColumn(),
                                TimeElapsedColumn(), console=Console(stderr=True))
            self.bar.start()
        return self.report

    def report(self, stage: str, done: float, total: float) -> None:
        if self.bar is None:
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(stage, total=total)
        self.bar.update(self.tasks[stage], completed=done, total=total)

    def __exit__(self, *exc) -> bool:
        if self.bar is not None:
            self.bar.stop()
        return False


def check_quant(quant: str) -> str:
    q = str(quant).lower()
    if q not in QUANTS:
        from aipc.errors import unknown

        raise unknown("GGUF quant type", quant, QUANTS, "use one of " + ", ".join(QUANTS))
    return q


def converter_dir() -> Path:
    """llama.cpp's converter as ./setup.sh installed it ($VENV/share/aipc/llama.cpp)."""
    d = Path(sys.prefix) / "share" / "aipc" / "llama.cpp"
    if not (d / "convert_hf_to_gguf.py").is_file():
        raise AipcError(f"llama.cpp's GGUF converter is not installed ({d} is missing); run ./setup.sh")
    return d


def source(ref, *, allow_pickle: bool = False, trust_remote_code: bool = False) -> Source:
    """What to convert: a folder with weights (checked as aipc's loader checks one: complete safetensors,
    pickle weights only with ``allow_pickle``; and since llama.cpp's converter may import a folder's own
    tokenizer code, that only with ``trust_remote_code``), or a decoder spec for random weights."""
    from aipc.models.live import check_ref, has_weights
    from aipc.privacy.supply import check_model_folder

    path = Path(str(ref)).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        raise AipcError(f"{path} is already a GGUF file; to change its quant type convert the original model")
    spec = check_ref(str(ref), allow_pickle=allow_pickle)  # one-line AipcError for what is not a model
    if not spec.is_decoder:
        raise AipcError(f"model '{spec.name}' is an encoder ({spec.model_type}); GGUF conversion needs a decoder model")
    if has_weights(path):
        check_model_folder(path, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
        return Source(name=path.resolve().name, folder=path, spec=spec)
    return Source(name=spec.name.replace("/", "-"), folder=None, spec=spec)


def output_path(out, src: Source, quant: str) -> Path:
    p = Path(out).expanduser() if out else Path.cwd() / f"{src.name}-{quant}.gguf"
    if p.is_dir():
        raise AipcError(f"-o {p} is a folder; give a file name such as {p / (src.name + '-' + quant + '.gguf')}")
    if not p.parent.is_dir():
        raise AipcError(f"cannot write {p}: folder {p.parent} does not exist; create it first")
    if not os.access(p.parent, os.W_OK):
        raise AipcError(f"cannot write {p}: folder {p.parent} is not writable; choose another -o")
    return p


def convert(ref, out=None, *, quant: str = "q4_k_m", seed: int = 0, threads: int | None = None,
            progress: Progress | None = None, allow_pickle: bool = False, trust_remote_code: bool = False) -> Path:
    """Convert ``ref`` to a GGUF of type ``quant`` at ``out`` (default ./NAME-QUANT.gguf); the path."""
    quant = check_quant(quant)
    src = source(ref, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    conv = converter_dir()
    out = output_path(out, src, quant)
    report = progress or (lambda stage, done, total: None)
    tmp = out.parent / f".{out.name}.aipc-tmp-{secrets.token_hex(4)}"
    try:
        tmp.mkdir()
        folder = src.folder
        if folder is None:
            from aipc.engines.random_folder import write_random_folder

            folder = write_random_folder(src.spec, tmp / "hf", dtype="fp32" if quant == "f32" else "fp16", seed=seed,
                                         progress=lambda d, t: report("random weights", d, t))
        mid = tmp / "model.gguf"
        outtype = quant if quant in WRITTEN_BY_CONVERTER else "auto"
        run_converter(conv, folder, mid, outtype, src, random=src.folder is None, progress=report)
        if src.folder is None:
            shutil.rmtree(tmp / "hf")  # free the disk before quantizing
        final = mid
        if quant not in WRITTEN_BY_CONVERTER:
            final = tmp / "quantized.gguf"
            quantize(mid, final, quant, threads=threads, progress=report)
            mid.unlink()
        os.replace(final, out)
    except Exception as e:  # a full disk shows up in many shapes (converter, safetensors, C++ streams)
        text = str(e)
        if (_disk_full(out.parent) or (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT))
                or any(w in text for w in ("os error 28", "os error 27", "No space left", "File too large"))):
            raise AipcError(f"not enough disk space to write {out}; free space on that disk or write elsewhere "
                            "with -o") from None
        if isinstance(e, OSError):
            raise AipcError(f"cannot write {out}: {e.strerror or e}; check the folder and its permissions") from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _disk_full(folder: Path) -> bool:
    """True when the disk holding ``folder`` has (almost) no space left for this user."""
    try:
        return shutil.disk_usage(folder).free < (1 << 20)
    except OSError:
        return False


def run_converter(conv: Path, folder: Path, dest: Path, outtype: str, src: Source, *, random: bool,
                  progress: Progress) -> None:
    """llama.cpp's convert_hf_to_gguf.py on ``folder`` (through aipc's small wrapper, in a subprocess that
    keeps the verb's offline guard)."""
    import json

    args = [sys.executable, "-m", "aipc.privacy.run_guarded", "aipc.engines._hf_to_gguf", str(conv), str(folder),
            "--outtype", outtype, "--outfile", str(dest), "--model-name", src.name]
    if random:
        meta = dest.parent / "metadata.json"
        meta.write_text(json.dumps({"general.description": f"{RANDOM_MARK} (built from the config of {src.name}; "
                                                           "the text is noise, the speed is real)"}))
        args += ["--metadata", str(meta)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    tail: list[str] = []
    pct = re.compile(r"Writing:\s+(\d+)%")
    buf = b""
    for chunk in iter(lambda: proc.stderr.read1(65536), b""):
        buf += chunk
        *parts, buf = re.split(rb"[\r\n]", buf)
        for raw in parts:
            line = raw.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            m = pct.search(line)
            if m:
                progress("convert", float(m.group(1)), 100.0)
            else:
                tail = (tail + [line])[-40:]
    if proc.wait() != 0:
        raise AipcError(_converter_error(tail, src.name))
    progress("convert", 100.0, 100.0)


def _converter_error(tail: list[str], name: str) -> str:
    text = "\n".join(tail)
    if any(w in text for w in ("No space left", "Errno 28", "File too large", "Errno 27")) or re.search(
            r"\d+ requested and \d+ written", text):  # a short write: the disk (or file size limit) is full
        return "not enough disk space for the conversion; free space on the output's disk or write elsewhere with -o"
    m = re.search(r"Model (\S+) is not supported", text)
    if m:
        return (f"llama.cpp's converter does not support the architecture {m.group(1)} of '{name}'; "
                "convert a model llama.cpp supports (Llama, Qwen2/3, Mistral, Gemma, Phi-3, GPT-2, ...)")
    if "pre-tokenizer was not recognized" in text:
        return (f"llama.cpp's converter does not recognise the tokenizer of '{name}' (an unknown BPE pre-tokenizer); "
                "use a model whose tokenizer llama.cpp knows")
    last = next((ln for ln in reversed(tail) if not ln.startswith(("INFO:", "WARNING:", "Writing"))), None)
    last = last or (tail[-1] if tail else "no output")
    return f"llama.cpp's converter failed on '{name}': {last}; check the model folder (config.json, weights, tokenizer)"


def quantize(src: Path, dest: Path, quant: str, *, threads: int | None = None, progress: Progress,
             pure: bool = False) -> None:
    """llama.cpp's llama_model_quantize: ``src`` (f32/f16/bf16 GGUF) -> ``dest`` of type ``quant`` (a
    name of QUANTS, or a llama.cpp file type suffix such as MOSTLY_Q5_1); ``pure``: every tensor at the
    type's default ggml type (no mix rules), as llama-quantize --pure."""
    from aipc.engines.llamacpp_lib import clear_log, last_error, lib, recent_lines, set_listener

    ll = lib()
    params = ll.llama_model_quantize_default_params()
    params.ftype = getattr(ll, "LLAMA_FTYPE_" + QUANTS.get(quant, quant))
    params.pure = bool(pure)
    params.nthread = int(threads or 0)  # 0: all hardware threads
    step = re.compile(r"\[\s*(\d+)/\s*(\d+)\]")

    def on_line(line: str) -> None:
        m = step.search(line)
        if m:
            progress("quantize", float(m.group(1)), float(m.group(2)))

    clear_log()
    set_listener(on_line)
    try:
        rc = ll.llama_model_quantize(str(src).encode(), str(dest).encode(), ctypes.byref(params))
    finally:
        set_listener(None)
    if rc != 0:
        why = next((ln.split("failed to quantize:", 1)[1].strip() for ln in reversed(recent_lines())
                    if "failed to quantize:" in ln), None) or last_error()
        if "iostream" in why:  # the C++ output stream failed: the disk is full or the file too large
            raise OSError(errno.EFBIG, why)
        raise AipcError(f"llama.cpp could not quantize to {quant}: {why}")


def cached_gguf(ref, quant: str, *, seed: int = 0, allow_pickle: bool = False) -> Path:
    """A GGUF of ``ref`` at ``quant`` from aipc's cache, converted on first use (AIPC_HOME/gguf).

    The key names the model, its weights (a folder's path and weight-file times and sizes, or the
    random seed) and the quant type, so a changed folder converts again."""
    import hashlib

    from aipc.paths import home

    quant = check_quant(quant)
    src = source(ref, allow_pickle=allow_pickle)
    if src.folder is not None:
        files = sorted(p for p in src.folder.iterdir() if p.is_file())
        key = str(src.folder.resolve()) + "".join(f"|{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    else:
        import json

        cfg = json.dumps(src.spec.hf_config_kwargs(), sort_keys=True, default=str)
        key = f"{src.spec.name}|{src.spec.model_type}|{cfg}|random|seed={seed}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    folder = home() / "gguf"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{src.name}-{quant}-{digest}.gguf"
    if not out.is_file():
        print(f"aipc: converting {ref} to GGUF {quant} once (cached at {out})", file=sys.stderr, flush=True)
        with StageProgress(quiet=not sys.stderr.isatty()) as report:
            convert(ref, out, quant=quant, seed=seed, progress=report, allow_pickle=allow_pickle)
    return out
