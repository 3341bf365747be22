"""The time models ``aipc calibrate`` fits per device and scenario. Train and prefill:

    t = a * I + b * I / T + c * L + e * L * T

with I the step's ideal compute time (the estimator's FLOPs / the peak it uses), T the tokens one
forward carries (train b x s, prefill b x p) and L the layers. The first term is compute at a
sustained fraction 1/a of the peak; the second is proportional to the FLOPs per token (~2N), i.e. to
the model's weights — the time to stream them once per forward, which dominates at small T (a GEMM
over 32 rows is memory-bound); the third a fixed time per layer (operator dispatch); the fourth a time per layer and token (the
element-wise work between the products: norms, rotary, activations, residuals). Fitted by
non-negative least squares on relative error over all runs of the device and scenario, across models,
it extrapolates where size buckets could only take the nearest factor: on the calibration runs of
docs/validation.md, held-out (leave-one-shape-out) max |error| 20% train and 16% prefill against 49%
and 36% for the bucket interpolation. As an efficiency factor (what the roofline multiplies the peak
by): factor = I / t = 1 / (a + b / T + (c * L + e * L * T / 1000) / I).

Decode, one model over every batch size and context (:func:`fit_decode`):

    t = a * I + c * L + d * B * L + e * B * L * C

with I the bytes a step reads over the bandwidth, L the layers, B the sequences decoded together and C
the tokens each attends to: a per-layer time that grows with the batch (each sequence's cache update)
and with the context (its attention; on CPUs decode at 256 tokens of context ran 30-35% slower than at
32 where the bytes read differ by 2%). As the roofline's terms: MBU = 1 / a and a per-layer time
c + d * B + e * B * C. On the decode runs of
docs/validation.md, held-out max |error| 19% against 30% for per-batch fits interpolated between
batch sizes.

Import-light: pure Python (a least squares on every subset of the 3-4 features).
"""

from __future__ import annotations

import itertools
import math

MIN_POINTS = 4


def _solve(rows: list[list[float]], y: list[float]) -> list[float] | None:
    """Least squares x for rows @ x ~ y (normal equations, Gauss-Jordan); None when singular."""
    n = len(rows[0])
    ata = [[sum(r[i] * r[j] for r in rows) for j in range(n)] for i in range(n)]
    aty = [sum(r[i] * v for r, v in zip(rows, y)) for i in range(n)]
    m = [ata[i] + [aty[i]] for i in range(n)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[piv][col]) < 1e-30:
            return None
        m[col], m[piv] = m[piv], m[col]
        for r in range(n):
            if r != col:
                f = m[r][col] / m[col][col]
                m[r] = [a - f * b for a, b in zip(m[r], m[col])]
    return [m[i][n] / m[i][i] for i in range(n)]


def _nnls(rows: list[list[float]], y: list[float]) -> list[float] | None:
    """Non-negative least squares by trying every subset of the (three or four) columns."""
    n, best = len(rows[0]), None
    for k in range(1, n + 1):
        for sub in itertools.combinations(range(n), k):
            x = _solve([[r[i] for i in sub] for r in rows], y)
            if x is None or min(x) < 0:
                continue
            full = [0.0] * n
            for i, v in zip(sub, x):
                full[i] = v
            res = sum((sum(a * b for a, b in zip(r, full)) - v) ** 2 for r, v in zip(rows, y))
            if best is None or res < best[0]:
                best = (res, full)
    return best[1] if best else None


LT_UNIT = 1e-3  # the fourth feature is layers x tokens / 1000: its coefficient in seconds per 1000 token-layers


def features(ideal_s: float, tokens: float, layers: float) -> list[float]:
    return [ideal_s, ideal_s / tokens, float(layers), float(layers) * tokens * LT_UNIT]


def _varies(values: list[float]) -> bool:
    """True where the values span 2x or more (none missing): only then can a term proportional to them
    be told from the terms without them."""
    return bool(values) and min(values) > 0 and max(values) >= 2 * min(values)


def _fit(points: list[dict], feats, keep: tuple[int, ...]) -> tuple[list[float], int] | None:
    """Non-negative coefficients of ``feats(point)`` fitting each point's time (ideal_s / factor) by
    least squares on relative error, the features whose ``keep`` is 0 left out (their coefficient 0);
    None with fewer than MIN_POINTS usable points."""
    pts = [p for p in points if p.get("ideal_s") and p.get("tokens") and p.get("layers") and p.get("factor")]
    if len(pts) < MIN_POINTS:
        return None
    rows = []
    for p in pts:
        t = p["ideal_s"] / p["factor"]
        rows.append([v * k / t for v, k in zip(feats(p), keep)])  # relative error: every row's target is 1
    x = _nnls(rows, [1.0] * len(rows))
    return (x, len(pts)) if x is not None and all(math.isfinite(v) for v in x) else None


def fit(points: list[dict]) -> dict | None:
    """Train / prefill: {a, b, c, e, n} from points carrying ideal_s, tokens, layers and factor. Where the
    points' tokens per forward span less than 2x, the token-dependent terms (b, e) cannot be told from
    the others (I/T ~ I, L*T ~ L): they are left out rather than fitted to noise and extrapolated."""
    toks = [p["tokens"] for p in points if p.get("tokens")]
    keep = (1, 1, 1, 1) if _varies(toks) or not toks else (1, 0, 1, 0)
    got = _fit(points, lambda p: features(p["ideal_s"], p["tokens"], p["layers"]), keep)
    if got is None or (got[0][0] <= 0 and got[0][1] <= 0):
        return None
    (a, b, c, e), n = got
    return {"a": a, "b": b, "c": c, "e": e, "n": n}


def _decode_features(p: dict) -> list[float]:
    layers, batch = float(p["layers"]), p["tokens"]
    return [p["ideal_s"], layers, batch * layers, batch * layers * float(p.get("context") or 0.0)]


def fit_decode(points: list[dict]) -> dict | None:
    """Decode over all batch sizes and contexts: {a, c, d, e, n} of t = a*I + c*L + d*B*L + e*B*L*C
    (``tokens`` = batch B, ``context`` = C, the tokens attended per step, prompt + half the generated)."""
    keep = (1, 1, 1, 1) if _varies([float(p.get("context") or 0.0) for p in points]) else (1, 1, 1, 0)
    got = _fit(points, _decode_features, keep)
    if got is None or got[0][0] <= 0:
        return None
    (a, c, d, e), n = got
    return {"a": a, "c": c, "d": d, "e": e, "n": n}


def decode_terms(model: dict, batch: float | None, context: float | None = None) -> tuple[float, float]:
    """(MBU, seconds per layer per step) at ``batch`` sequences of ``context`` tokens from a
    :func:`fit_decode` model (a model fitted before the context term has no ``e``)."""
    b = batch or 1.0
    return 1.0 / model["a"], model["c"] + model["d"] * b + model.get("e", 0.0) * b * (context or 0.0)


def factor(model: dict, ideal_s: float, tokens: float, layers: float) -> float | None:
    """The efficiency factor I / t the fitted model gives for one step; None when it cannot."""
    if not ideal_s or not tokens or ideal_s <= 0 or tokens <= 0:
        return None
    coef = (model["a"], model["b"], model["c"], model.get("e", 0.0))  # a model fitted before e has none
    t = sum(k * v for k, v in zip(coef, features(ideal_s, tokens, layers or 0)))
    return ideal_s / t if t > 0 else None
