"""How far each kind of figure is expected to be from a measurement: the one place these numbers live.

A figure of ``aipc models --here`` (and the report's "What you can run here") is one of three kinds:
- ``measured``: a stored ``aipc bench`` run of this machine, model, engine and format (the error is
  the run-to-run repeatability of the same shape);
- ``calibrated``: the estimator with factors ``aipc calibrate`` fitted from this machine's runs (the
  error is the leave-one-model-out held-out error: the model itself was not among the fitted runs);
- ``default``: the estimator with its default factors (on this machine: the uncalibrated error
  against this machine's runs; on a catalog device: the published-figures check).

Every entry carries the section of docs/validation.md it comes from and the date it was measured;
update them here when docs/validation.md is regenerated. Import-light.
"""

from __future__ import annotations

KINDS = ("measured", "calibrated", "default")
_CALIBRATION = "docs/validation.md, 'Calibration' (torch fp32, CPU, 2 threads, 78 runs)"
_PUBLISHED = "docs/validation.md, 'Published figures' (decode: 15 runs of other devices)"

# (kind, scenario) -> median |estimate / measured - 1| and where it comes from.
EXPECTED: dict[tuple[str, str], dict] = {
    ("measured", "decode"): {"median_abs_error": 0.027, "source": _CALIBRATION + ": the same shape measured twice, "
                             "median difference", "date": "2026-12-06"},
    ("measured", "prefill"): {"median_abs_error": 0.044, "source": _CALIBRATION + ": the same shape measured twice, "
                              "median difference", "date": "2026-12-06"},
    ("calibrated", "decode"): {"median_abs_error": 0.167, "source": _CALIBRATION + ": leave-one-model-out",
                               "date": "2026-12-06"},
    ("calibrated", "prefill"): {"median_abs_error": 0.151, "source": _CALIBRATION + ": leave-one-model-out",
                                "date": "2026-12-06"},
    ("default", "decode"): {"median_abs_error": 0.448, "source": _CALIBRATION + ": uncalibrated estimate",
                            "date": "2026-12-06"},
    ("default", "prefill"): {"median_abs_error": 0.268, "source": _CALIBRATION + ": uncalibrated estimate",
                             "date": "2026-12-06"},
    ("default-catalog", "decode"): {"median_abs_error": 0.05, "source": _PUBLISHED + ", median of |ratio - 1|",
                                    "date": "2026-12-06"},
    ("default-catalog", "prefill"): {"median_abs_error": 0.31, "source": _PUBLISHED + ": 5 llama.cpp pp512 rows, "
                                     "ratios 0.63-1.53", "date": "2026-12-06"},
    ("memory", "peak"): {"median_abs_error": 0.021, "source": "docs/validation.md, 'Peak memory ... (unseen set)' "
                         "(12 workloads, torch)", "date": "2026-12-06"},
}


_LLAMACPP = ("docs/validation.md, 'llama.cpp: estimates against measured runs' (held-out runs of 3 models x 5 quant "
             "types x 2 prompts, calibrated on Q4_K_M and Q8_0 at prompt 128; decode of models larger than the CPU's "
             "last-level cache)")

# (engine, kind, scenario) -> the same, where an engine's own runs on this machine were checked; these
# replace the torch figures above for that engine's rows on this machine
BY_ENGINE: dict[tuple[str, str, str], dict] = {
    # calibrated by `aipc bench --sweep` (its default plan): the table against 6 held-out models measured here
    ("llamacpp", "calibrated", "decode"): {"median_abs_error": 0.048, "source": "docs/validation.md, 'What you can run "
                                           "here: table against measured runs' (6 held-out models after the default "
                                           "sweep)", "date": "2026-12-06"},
    ("llamacpp", "calibrated", "prefill"): {"median_abs_error": 0.104, "source": _LLAMACPP + ": held-out",
                                            "date": "2026-12-06"},
    ("llamacpp", "default", "decode"): {"median_abs_error": 0.070, "source": _LLAMACPP + ": uncalibrated",
                                        "date": "2026-12-06"},
    ("llamacpp", "default", "prefill"): {"median_abs_error": 0.132, "source": _LLAMACPP + ": uncalibrated (with "
                                         "aipc hw --kernels measured)", "date": "2026-12-06"},
}


def expected(kind: str, scenario: str, this_machine: bool = True, engine: str = "torch") -> dict:
    """The expected error of a figure of ``kind`` ('measured', 'calibrated', 'default') for
    ``scenario`` ('decode', 'prefill') of ``engine``; a default estimate on a catalog device uses the
    published check; an engine's own check on this machine, where there is one, replaces torch's."""
    if this_machine and (engine, kind, scenario) in BY_ENGINE:
        return {"kind": kind, "engine": engine, **BY_ENGINE[(engine, kind, scenario)]}
    key = "default-catalog" if kind == "default" and not this_machine else kind
    return {"kind": kind, **EXPECTED[(key, scenario)]}


def table() -> list[dict]:
    """Every entry as a row (for docs and ``--json``); engine-specific rows carry ``engine``."""
    return ([{"kind": k, "scenario": s, **v} for (k, s), v in EXPECTED.items()]
            + [{"kind": k, "scenario": s, "engine": e, **v} for (e, k, s), v in BY_ENGINE.items()])
