"""The best engine x precision for a workload on a device, and whether it meets the need.

For inference the candidates are what a user would run there: the torch engine at the device's native
16-bit type (fp32 on a CPU whose bf16 is emulated — never an emulated dtype by default), llama.cpp
at Q8_0 and Q4_K_M, and, where OpenVINO is installed, OpenVINO at int8 and int4 on CPUs and Intel
GPUs / NPUs (on an Intel NPU it is the only candidate). Among the candidates that fit, the best is
the most precise one that meets the need (TTFT and TPOT targets); where none meets it, the fastest
that fits. Training runs on torch only; on a CPU with emulated bf16 it prefers fp32 where fp32 fits.

:class:`Need` says what "meets" means: for inference the TTFT / TPOT targets (aipc.cost.defaults'
defaults: 2 s and 0.1 s), for training a job's tokens and its deadline. Import-light.
"""

from __future__ import annotations

from dataclasses import dataclass

from aipc.errors import AipcError
from aipc.hardware.spec import DeviceSpec
from aipc.models.spec import ModelSpec
from aipc.spec import Workload

# llama.cpp file types tried for inference, most precise first (f16 is never faster than q8_0 and
# never smaller: it cannot win)
LLAMACPP_TYPES = ("q8_0", "q4_k_m")
# OpenVINO weight formats tried where OpenVINO is installed, on the devices it runs: CPUs, Intel GPUs
# (integrated or not) and Intel NPUs (where it is the only engine)
OPENVINO_TYPES = ("int8", "int4")
# how a setup is named in sentences: ("llamacpp", "q4_k_m") -> "llama.cpp Q4_K_M"
ENGINE_NAMES = {"torch": "PyTorch", "llamacpp": "llama.cpp", "openvino": "OpenVINO"}


@dataclass(frozen=True)
class Need:
    """What a workload must achieve: TTFT / TPOT targets (inference) or a job's tokens and deadline (train)."""

    ttft_s: float | None = 2.0
    tpot_s: float | None = 0.1
    train_tokens: int | None = None
    deadline_s: float | None = None

    def misses(self, w: Workload, e) -> list[str]:
        """What an estimate misses of this need, in words (empty: it meets it; unknown times miss)."""
        t = e.time
        if w.is_train:
            if self.deadline_s is None or not self.train_tokens:
                return []
            if not t.train_tokens_per_s:
                return ["training time unknown"]
            job = self.train_tokens / t.train_tokens_per_s
            return [] if job <= self.deadline_s else [f"a job takes {_dur(job)} (deadline {_dur(self.deadline_s)})"]
        if t.tpot_s is None:
            return ["speed unknown (no measured peaks)"]
        out = []
        if self.tpot_s is not None and t.tpot_s > self.tpot_s:
            out.append(f"TPOT {_dur(t.tpot_s)} (need {_dur(self.tpot_s)})")
        if self.ttft_s is not None and t.ttft_s is not None and t.ttft_s > self.ttft_s:
            out.append(f"TTFT {_dur(t.ttft_s)} (need {_dur(self.ttft_s)})")
        return out


def _dur(s: float) -> str:
    from aipc.render import seconds

    if s >= 2 * 86400:
        return f"{s / 86400:.1f} days"
    if s >= 2 * 3600:
        return f"{s / 3600:.1f} h"
    return seconds(s)


def setup_name(w: Workload) -> str:
    """'llama.cpp Q4_K_M', 'PyTorch bf16'."""
    fmt = w.weight_dtype.upper() if w.engine == "llamacpp" else w.weight_dtype
    return f"{ENGINE_NAMES.get(w.engine, w.engine)} {fmt}"


def _torch_precision(d: DeviceSpec, cpu_bf16_native: bool | None) -> str:
    if d.kind == "cpu":
        return "bf16" if cpu_bf16_native else "fp32"
    return "bf16" if d.peak("bf16") or not d.peak("fp16") else "fp16"


def candidates(w: Workload, d: DeviceSpec, cpu_bf16_native: bool | None = None) -> list[Workload]:
    """The setups tried for ``w`` on ``d``, most precise first."""
    if w.is_train:
        if d.kind == "cpu" and not cpu_bf16_native and w.weight_dtype == "bf16" and w.method != "qlora":
            return [w.replace(weight_dtype="fp32", compute_dtype=None, optim_dtype=None), w]
        return [w]
    base = {"compute_dtype": None, "kv_dtype": None}
    ov = openvino_runs_on(d)
    out = [] if d.kind == "npu" and ov else [w.replace(engine="torch", weight_dtype=_torch_precision(d, cpu_bf16_native),
                                                        **base)]
    if d.kind != "npu":
        out += [w.replace(engine="llamacpp", weight_dtype=t, **base) for t in LLAMACPP_TYPES]
    if ov:
        out += [w.replace(engine="openvino", weight_dtype=t, **base) for t in OPENVINO_TYPES]
    return out


def openvino_runs_on(d: DeviceSpec) -> bool:
    """OpenVINO is installed here and ``d`` is a device it runs on (a CPU, an Intel GPU or NPU)."""
    import importlib.util

    if d.kind != "cpu" and d.vendor != "intel":
        return False
    try:
        return importlib.util.find_spec("openvino") is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class Choice:
    workload: Workload
    estimate: object          # aipc.estimate.types.Estimate
    misses: tuple[str, ...]   # what it misses of the need (empty: meets it)
    tried: tuple[tuple[Workload, object], ...]

    @property
    def meets(self) -> bool:
        return self.estimate.fits and not self.misses

    def torch(self):
        """The torch candidate's estimate (the figure shown beside the chosen engine's), or None."""
        return next((e for w, e in self.tried if w.engine == "torch"), None)


def _speed(w: Workload, e) -> float:
    t = e.time
    return (t.train_tokens_per_s if w.is_train else t.decode_tokens_per_s) or 0.0


def best_setup(w: Workload, d: DeviceSpec, m: ModelSpec, need: Need | None = None,
               cpu_bf16_native: bool | None = None) -> Choice | None:
    """The most precise setup that fits and meets the need; else the fastest that fits; else the
    smallest. None when no candidate can be estimated on this device."""
    from aipc.estimate.api import estimate

    need = need or Need()
    tried = []
    for c in candidates(w, d, cpu_bf16_native):
        try:
            tried.append((c, estimate(c, d, model=m)))
        except (AipcError, ZeroDivisionError, ValueError):
            continue
    if not tried:
        return None
    fits = [(c, e) for c, e in tried if e.fits]
    meets = [(c, e) for c, e in fits if not need.misses(c, e)]
    if meets:
        c, e = meets[0]
    elif fits:  # the fastest; among equally fast ones (compute-bound) the smallest
        c, e = max(fits, key=lambda ce: (round(_speed(*ce), 6), -ce[1].memory.peak_bytes))
    else:
        c, e = min(tried, key=lambda ce: ce[1].memory.peak_bytes)
    return Choice(workload=c, estimate=e, misses=tuple(need.misses(c, e)), tried=tuple(tried))
