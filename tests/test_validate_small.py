"""The reduced validation set, run for real: estimate beside measured peak memory on this CPU.

Bounds from the issue: median |error| <= 5%, max <= 10%. Each workload runs in a fresh subprocess
(real transformers architectures, random weights)."""

import pytest

from aipc.validation.runner import run_set, summary


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_small_validation_set_within_bounds():
    rows = run_set("small")
    s = summary(rows)
    detail = "\n".join(f"{r.name}: measured {r.measured_bytes/1e6:.1f} MB, est {r.estimated_bytes/1e6:.1f} MB, "
                       f"{r.error:+.1%}" for r in rows)
    assert s["n"] == 9
    assert s["median_abs_error"] <= 0.05, detail
    assert s["max_abs_error"] <= 0.10, detail
    # the naive weights-only figure is far off on the same set: the test can tell good from bad
    assert s["weights_only_median_abs_error"] > 0.5
