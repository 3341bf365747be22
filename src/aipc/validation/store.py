"""Store validation rows in the results database: one ``validate`` run per workload, with the
measured peak memory beside the estimate, so a team's shared database holds them with the benches."""

from __future__ import annotations

import os

from aipc.validation.runner import Row


def wanted(db: str | None) -> bool:
    """Validation stores only when asked: ``--db`` given or $AIPC_RESULTS_DB set."""
    return bool(db) or bool(os.environ.get("AIPC_RESULTS_DB", "").strip())


def store_rows(rdb, rows: list[Row], device: str = "cpu") -> list[str]:
    """One ``validate`` run per row in ``rdb`` (an open ResultsDB); returns the run ids."""
    import platform

    from aipc.bench.context import machine_context

    mctx = machine_context(measure=False)
    ids = []
    for r in rows:
        w = dict(r.workload)
        ids.append(rdb.add_run(
            kind="validate", scenario=w.get("task"), device=device, model=w.get("model"), workload=w,
            metrics={"measured_peak_bytes": r.measured_bytes, "estimated_peak_bytes": r.estimated_bytes,
                     "error": r.error, "weights_only_bytes": r.weights_only_bytes,
                     "weights_only_error": r.weights_only_error, "peak_phase": r.peak_phase},
            samples=[], context={"machine": mctx.to_dict(), "measurement": r.measured, "tool": "aipc validate",
                                 "host": platform.node()}))
    return ids
