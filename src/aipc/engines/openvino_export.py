"""``aipc convert MODEL --to openvino --quant fp16|int8|int4``: an OpenVINO IR folder that OpenVINO
GenAI and aipc's OpenVINO runner load.

Nothing here writes IR or quantizes by hand: optimum-intel's exporter (``optimum-cli export
openvino``) traces the transformers model into a stateful IR, NNCF compresses the weights and
openvino-tokenizers converts the tokenizer. optimum-intel 2.2 supports transformers < 5.6 only (its
import fails on newer releases), so ``./setup.sh`` installs it with the transformers release it
supports into its own folder, ``$VENV/share/aipc/openvino-export`` (see
openvino-export-requirements.txt), and the export runs in a child process with that folder first on
``PYTHONPATH``; torch, OpenVINO, NNCF and openvino-tokenizers come from the project's environment.

A local HF folder is exported as it is; a catalog name, HF id or config.json is first built with
random weights (and a byte-level stand-in tokenizer) into a scratch folder. Output goes to a
temporary sibling folder renamed into place at the end: a failure leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from aipc.errors import AipcError

QUANTS = ("fp16", "int8", "int4")
IR_FILE = "openvino_model.xml"
RANDOM_MARK = ".aipc-random-weights"  # in IR folders exported from a model built with random weights
_STAGE = re.compile(r"^aipc-stage: (\d+) (.*)$")
_ERROR = re.compile(r"^(?:[\w.]+(?:Error|Exception)|RuntimeError|nncf\.\w+): (.+)$")


def toolchain_dir() -> Path:
    """Where ./setup.sh puts optimum-intel and the transformers release it supports."""
    return Path(os.environ.get("AIPC_OPENVINO_EXPORT") or Path(sys.prefix) / "share" / "aipc" / "openvino-export")


def check_toolchain() -> Path:
    """The exporter folder, or one-line error saying how to install it."""
    d = toolchain_dir()
    if not (d / "optimum" / "intel").is_dir():
        raise AipcError(f"the OpenVINO exporter (optimum-intel) is not installed in {d}; run ./setup.sh")
    try:
        import nncf  # noqa: F401
        import openvino  # noqa: F401
        import openvino_tokenizers  # noqa: F401
    except ImportError as e:
        raise AipcError(f"OpenVINO is not installed ({e.name} missing); run ./setup.sh") from None
    return d


def check_quant(quant: str) -> str:
    q = str(quant).lower()
    if q not in QUANTS:
        raise AipcError(f"unknown OpenVINO weight format '{quant}'; use one of {', '.join(QUANTS)}")
    return q


def is_ir_folder(path: str | Path) -> bool:
    p = Path(str(path)).expanduser()
    return p.is_dir() and (p / IR_FILE).is_file()


def default_output(ref: str, quant: str) -> Path:
    name = Path(str(ref).rstrip("/")).name if Path(str(ref)).expanduser().exists() else str(ref).split("/")[-1]
    return Path(f"{Path(name).stem if name.endswith('.json') else name}-openvino-{quant}")


def convert(ref: str, quant: str, out: str | Path | None = None, *, seed: int = 0, force: bool = False,
            progress=None, allow_pickle: bool = False) -> Path:
    """Export ``ref`` to an OpenVINO IR folder at ``out`` (default ``<name>-openvino-<quant>``).
    ``progress(stage, done, total)`` as in :class:`aipc.engines.gguf_convert.StageProgress`;
    ``allow_pickle``: a folder's pickle weights may be exported (aipc.models.live's rule)."""
    from aipc.privacy.atomic import atomic_dir

    quant = check_quant(quant)
    tools = check_toolchain()
    out = Path(out).expanduser() if out is not None else default_output(ref, quant)
    if out.exists() and not force:
        raise AipcError(f"{out} already exists; choose another -o or pass --force")
    src, spec = _source_folder(ref, allow_pickle)  # validates the model before anything is written
    report = progress or (lambda stage, done, total: None)
    with atomic_dir(out, replace=force) as tmp:
        random = src is None
        if random:
            from aipc.engines.random_folder import write_random_folder

            # the exporter traces in fp32 either way; bf16 above 2B parameters halves the scratch copy
            src = write_random_folder(spec, tmp / "_source", dtype="fp32" if spec.param_count() < 2e9 else "bf16",
                                      seed=seed, progress=lambda d, t: report("random weights", d, t))
        _run_child(src, tmp / "ir", quant, tools, report, log=tmp / "_export.log")
        for f in (tmp / "ir").iterdir():
            f.rename(tmp / f.name)
        for leftover in ("ir", "_source", "_export.log"):
            _remove(tmp / leftover)
        if random:
            (tmp / RANDOM_MARK).write_text("built from its config with random weights by aipc convert\n")
    return out


def _source_folder(ref: str, allow_pickle: bool = False):
    """(the HF folder to export as it is, or None when the model must be built from its config first; its spec).
    A folder passes the loader's checks first (aipc.models.live.check_ref): pickle weights only with
    ``allow_pickle``, complete safetensors. Its own Python code never runs: the exporter is not given
    trust_remote_code."""
    from aipc.models.live import check_ref, has_weights

    p = Path(str(ref)).expanduser()
    if is_ir_folder(p):
        raise AipcError(f"{p} is already an OpenVINO IR folder; convert the original HF folder instead")
    spec = check_ref(str(ref), allow_pickle=allow_pickle)  # unknown names, bad configs, bad weights: one line
    if not spec.is_decoder:
        raise AipcError(f"model '{spec.name}' is an encoder ({spec.model_type}); --to openvino exports decoder models")
    if has_weights(p):
        return p.resolve(), spec
    if p.is_dir():
        raise AipcError(f"{p} has no weights (*.safetensors); pass a folder saved with save_pretrained, "
                        "or its config.json to export with random weights")
    return None, spec


def _run_child(src: Path, dst: Path, quant: str, tools: Path, report, log: Path) -> None:
    """The export child; its stage lines advance the 'export' bar (3 stages: export, tokenizer, done)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
               PYTHONPATH=os.pathsep.join([str(tools), *filter(None, [os.environ.get("PYTHONPATH")])]))
    cmd = [sys.executable, "-m", "aipc.engines.openvino_export_child", str(src), str(dst), quant]
    report("export", 0, 3)
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=f, text=True, env=env)
        for line in proc.stdout:
            m = _STAGE.match(line.strip())
            if m:
                report("export", int(m.group(1)), 3)
            else:
                f.write(line)
        code = proc.wait()
    if code != 0 or not (dst / IR_FILE).is_file():
        raise AipcError(f"OpenVINO export of {src.name} failed: {_last_error(log)}")


def _last_error(log: Path) -> str:
    """The last 'SomethingError: message' line of the child's output (else its last line)."""
    lines = [ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    for ln in reversed(lines):
        m = _ERROR.match(ln)
        if m:
            return m.group(1)[:400]
    return (lines[-1][:400] if lines else "the exporter stopped without a message") + \
        "; check the model folder, or run with more memory"


def _remove(p: Path) -> None:
    import shutil

    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists():
        p.unlink()
