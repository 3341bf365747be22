"""fp32 matrix products on the CPU through oneDNN where it beats torch's default BLAS on this machine.

PyTorch's CPU build runs fp32 ``F.linear`` / ``matmul`` through Intel MKL. On non-Intel x86 CPUs MKL
may take a slower code path than oneDNN (``torch.ops.mkldnn._linear_pointwise``, bundled with the
same torch build), both fp32 with fp32 accumulation; the measurements that led here are in
docs/benchmarks.md ("Measurements behind defaults").

Which one is faster depends on the CPU, so :func:`use_onednn` measures once per process (tens of
milliseconds): matrix-vector (``"gemv"``, decode) and matrix-matrix (``"gemm"``, prefill and training)
separately, oneDNN chosen where it is at least 10% faster. ``AIPC_CPU_GEMM=mkl`` or ``=onednn`` forces
the choice. Only fp32 CPU tensors take this path (bf16/fp16 matmuls already go through oneDNN in torch).

- :func:`linear` — ``x @ w.T + b`` without autograd (inference); :func:`matmul` — ``a @ b``.
- :func:`train_linear` — the same with a backward pass whose two GEMMs also run through oneDNN.
- :func:`patch_linears` — route a model's large fp32 ``nn.Linear`` layers (and transformers' ``Conv1D``,
  GPT-2's transposed linear) through :func:`train_linear`.
"""

from __future__ import annotations

import functools
import os
import time

import torch
import torch.nn.functional as F

MIN_WEIGHT_ELEMENTS = 1 << 16  # smaller layers stay on F.linear: oneDNN's per-call cost outweighs them (docs/benchmarks.md)
MARGIN = 1.10                  # oneDNN is chosen only when at least this much faster
_choice: dict[str, bool] = {}


def available() -> bool:
    """True when this torch build has oneDNN's linear operator."""
    return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _onednn(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")


def _best_seconds(fn, reps: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def measure(kind: str) -> tuple[float, float]:
    """(MKL seconds, oneDNN seconds) for one representative product: ``"gemv"`` a 1 x 1024 vector
    times a 8192 x 1024 weight (32 MB, streamed as in decode); ``"gemm"`` 256 x 1024 times 1024 x 1024."""
    g = torch.Generator().manual_seed(0)
    rows = 1 if kind == "gemv" else 256
    n = 8192 if kind == "gemv" else 1024
    x = torch.randn(rows, 1024, generator=g)
    w = torch.randn(n, 1024, generator=g)
    with torch.inference_mode():
        return _best_seconds(lambda: F.linear(x, w)), _best_seconds(lambda: _onednn(x, w))


def use_onednn(kind: str = "gemm") -> bool:
    """Whether fp32 products of this kind (``"gemv"`` or ``"gemm"``) should go through oneDNN here."""
    if kind not in _choice:
        forced = os.environ.get("AIPC_CPU_GEMM", "auto").strip().lower()
        if not available() or forced == "mkl":
            _choice[kind] = False
        elif forced == "onednn":
            _choice[kind] = True
        else:
            try:
                mkl_s, dnn_s = measure(kind)
            except Exception:  # noqa: BLE001 - an operator this build or CPU cannot run: keep torch's path
                _choice[kind] = False
            else:
                _choice[kind] = dnn_s * MARGIN <= mkl_s
    return _choice[kind]


def eligible(x: torch.Tensor, w: torch.Tensor) -> bool:
    """fp32 on the CPU, a weight large enough to pay for the call, no autocast, not being traced."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and w.dtype == torch.float32
            and w.dim() == 2 and w.numel() >= MIN_WEIGHT_ELEMENTS and not torch.is_autocast_enabled("cpu")
            and not torch.compiler.is_compiling())


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, kind: str | None = None) -> torch.Tensor:
    """``x @ w.T + b`` (as ``F.linear``), through oneDNN when eligible and faster here. Meant for
    inference; called with tensors that need gradients it takes :func:`train_linear`."""
    if _needs_grad(x, w, b):
        return train_linear(x, w, b)
    if eligible(x, w) and use_onednn(kind or ("gemv" if x.numel() == x.shape[-1] else "gemm")):
        return _onednn(x, w, b)
    return F.linear(x, w, b)


def _needs_grad(*ts) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in ts)


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for 2-D ``a`` (M, K) and ``b`` (K, N), through oneDNN when eligible and faster (no
    autograd: with tensors that need gradients it is ``a @ b``). Transposed views are fine on both sides."""
    if not _needs_grad(a, b) and eligible(a, b) and use_onednn("gemm"):
        return _onednn(a, b.t())
    return a @ b


class _Linear(torch.autograd.Function):
    """y = x @ W^T + b; backward: dx = dy @ W, dW = dy^T @ x, db = sum(dy), each GEMM through oneDNN."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return _onednn(x, w, b)

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        gy = gy.contiguous()
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _onednn(gy, w.t())                                  # (.., N) @ (N, K)
        if ctx.needs_input_grad[1] or (ctx.has_bias and ctx.needs_input_grad[2]):
            gy2 = gy.reshape(-1, gy.shape[-1])
            if ctx.needs_input_grad[1]:
                gw = _onednn(gy2.t(), x.reshape(-1, x.shape[-1]).t())  # (N, M) @ (M, K)
            if ctx.has_bias and ctx.needs_input_grad[2]:
                gb = gy2.sum(0)
        return gx, gw, gb


def train_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` with autograd, its forward and backward GEMMs through oneDNN when eligible and faster."""
    if eligible(x, w) and use_onednn("gemm"):
        return _Linear.apply(x, w, b)
    return F.linear(x, w, b)


def _forward(module: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return train_linear(x, module.weight, module.bias)


def _forward_conv1d(module, x: torch.Tensor) -> torch.Tensor:
    # transformers' Conv1D (GPT-2 family): y = x @ W + b with W stored (in, out)
    return train_linear(x, module.weight.t(), module.bias)


def _is_conv1d(m) -> bool:
    t = type(m)
    return t.__name__ == "Conv1D" and t.__module__.startswith("transformers.") and getattr(m, "weight", None) is not None


def patch_linears(model: torch.nn.Module) -> int:
    """Route every large fp32 CPU ``nn.Linear`` of ``model`` through :func:`train_linear` (an instance
    attribute ``forward``; the module, its parameters and state dict are unchanged). Returns how many
    layers were routed: 0 when oneDNN is not faster here for GEMMs."""
    if not available() or not use_onednn("gemm"):
        return 0
    n = 0
    for m in model.modules():
        conv1d = _is_conv1d(m)
        if (type(m) is torch.nn.Linear or conv1d) and m.weight.device.type == "cpu" \
                and m.weight.dtype == torch.float32 and m.weight.numel() >= MIN_WEIGHT_ELEMENTS:
            m.forward = functools.partial(_forward_conv1d if conv1d else _forward, m)
            n += 1
    return n
