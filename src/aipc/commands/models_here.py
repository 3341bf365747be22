"""``aipc models --here`` / ``--device NAME``: every catalog model x installed engine x weight format,
ranked for one device, with where each figure comes from (aipc.bench.here). No torch import."""

from __future__ import annotations

from typing import Any

from aipc.errors import AipcError

KIND_MARK = {"measured": "m", "calibrated": "c", "default": "d"}
SHOWN = 40  # rows printed in the terminal (--json has them all)


def _check(query, here: bool, device: str | None, engine: str | None) -> list[str] | None:
    """Refuse contradictory or unknown choices before any work; returns the engines asked for."""
    if query:
        raise AipcError(f"--here / --device rank the whole catalog; drop {query!r} (or filter with --task, "
                        "--min-tps, --min-context)")
    if here and device:
        raise AipcError("--here is this machine and --device names another device; use one")
    if not here and not device:
        raise AipcError("--task, --min-tps, --min-context, --engine, --kv-dtype and --db go with --here or "
                        "--device NAME")
    if device:
        from aipc.hardware.local import resolve_device

        resolve_device(device)  # an unknown name: one error line naming the known ones
    if not engine:
        return None
    from aipc.engines import available

    names = [e.strip() for e in engine.split(",") if e.strip()]
    missing = [e for e in names if e not in available()]
    if missing:
        raise AipcError(f"engine {', '.join(missing)} is not installed here (installed: {', '.join(available())}); "
                        "run ./setup.sh or drop it from --engine")
    return names


def run(*, query, here: bool, device: str | None, task: str | None, min_tps: float | None,
        min_context: int | None, engine: str | None, kv_dtype: str | None, db, as_json: bool) -> None:
    from aipc.bench.here import here_table
    from aipc.estimate.here import Row, keep
    from aipc.render import print_json

    engines = _check(query, here, device, engine)
    out = here_table(device or "this", db=db, engines=engines, kv_dtype=kv_dtype)
    rows = [r for r in out["rows"] if keep(Row(**r), task=task, min_tps=min_tps, min_context=min_context)]
    out.update(rows=rows, filters={"task": task, "min_tps": min_tps, "min_context": min_context})
    print_json(out) if as_json else render(out)


def _tps(r: dict[str, Any], scen: str) -> str:
    v = r[f"{scen}_tokens_per_s"]
    if v is None:
        return "-"
    return f"{v:.3g} {KIND_MARK[r[f'{scen}_kind']]}"


def _ctx(n: int | None) -> str:
    if n is None:
        return "no"
    return f"{n // 1024}k" if n >= 1024 else str(n)


def render(out: dict[str, Any]) -> None:
    from rich import box
    from rich.table import Table

    from aipc.commands.bench import wide_console
    from aipc.render import gb

    c = wide_console()
    shape = out["shape"]
    t = Table(title=f"What runs on {out['device_label']} ({gb(out['usable_memory_bytes'])} usable): "
                    f"{len(out['rows'])} model x engine x format, best first",
              box=box.SIMPLE_HEAD, padding=(0, 1), show_edge=False)
    for col in ("model", "engine", "format", "mem @4k", "max ctx", "prefill tok/s", "decode tok/s"):
        t.add_column(col, no_wrap=True, justify="left" if col in ("model", "engine", "format") else "right")
    for r in out["rows"][:SHOWN]:
        t.add_row(r["model"], r["engine"], r["format"], gb(r["memory_4k_bytes"]), _ctx(r["max_context"]),
                  _tps(r, "prefill"), _tps(r, "decode"))
    c.print(t)
    if len(out["rows"]) > SHOWN:
        c.print(f"... {len(out['rows']) - SHOWN} more (filter with --task / --min-tps / --min-context / --engine, "
                "or --json for all)", markup=False)
    errs = {(e["kind"], e["scenario"]): e["median_abs_error"] for e in out["expected_errors"]}
    this = out["device"].startswith("this-machine")
    dflt = "default" if this else "default-catalog"
    c.print(f"speeds at batch 1, {shape['prompt_tokens']}-token prompt, {shape['gen_tokens']} generated; "
            f"KV cache at each row's KV precision. m = measured here (expected error: decode "
            f"{errs[('measured', 'decode')]:.0%}, prefill {errs[('measured', 'prefill')]:.0%}), c = calibrated "
            f"from this machine's runs ({errs[('calibrated', 'decode')]:.0%}, {errs[('calibrated', 'prefill')]:.0%}), "
            f"d = default estimate ({errs[(dflt, 'decode')]:.0%}, {errs[(dflt, 'prefill')]:.0%}); "
            "sources: docs/validation.md (aipc.estimate.expected_errors)", markup=False, soft_wrap=True)
    if not out["measured_peaks"]:
        c.print("no measured peaks for this device: run 'aipc hw' for speeds", markup=False)
    elif this and {r[f"{s}_kind"] for r in out["rows"] for s in ("decode", "prefill")} <= {"default"}:
        c.print("every speed is a default estimate: 'aipc bench --sweep' measures this machine and calibrates them",
                markup=False)
    if out["skipped"]:
        c.print(f"not modelled ({len(out['skipped'])}): " + "; ".join(out["skipped"][:3])
                + (" ..." if len(out["skipped"]) > 3 else ""), markup=False, soft_wrap=True)
