"""``aipc calibrate``: fit per-device efficiency factors from stored bench runs of this machine."""

from __future__ import annotations

from typing import Optional

import typer

from aipc.bench.dburl import HELP as DB_HELP
from aipc.errors import AipcError


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _flat(scens: dict):
    """(label, entry) per table entry: torch's by scenario, another engine's per weight format
    ('decode@llamacpp q4_k_m')."""
    for key, e in scens.items():
        if "by_format" in e:
            yield from ((f"{key} {fmt}", sub) for fmt, sub in e["by_format"].items())
        else:
            yield key, e


def render(res: dict) -> None:
    from rich.table import Table

    from aipc.commands.bench import wide_console as console
    from aipc.render import seconds, si

    con = console()
    t = Table(title="calibrated factors: MFU for train/prefill by model size and tokens per forward; decode MBU + per-layer time by batch")
    for c in ("device", "scenario", "FLOPs/token", "factor (median)", "by tokens per forward: tokens=factor",
              "runs", "held-out |err| before → after"):
        t.add_column(c)
    for dev, scens in res["table"]["devices"].items():
        for scen, e in _flat(scens):
            err = res["errors"].get(f"{dev} {scen.split(' ')[0]}", {})
            if scen.startswith("decode"):  # MBU + a fixed time per layer, by batch
                for i, (bt, mbu, layer_s, n) in enumerate(e["by_batch"]):
                    t.add_row(dev if i == 0 else "", scen if i == 0 else "", "-", f"MBU {mbu:.3f}",
                              f"batch {int(bt)}: + {layer_s * 1e3:.3f} ms per layer", str(int(n)),
                              f"{_pct(err.get('median_abs_error_before'))} → {_pct(err.get('median_abs_error_after'))}"
                              if i == 0 else "")
                continue
            for i, b in enumerate(e["buckets"]):
                toks = ", ".join(f"{int(tk)}={f:.3f}" for tk, f, _ in b["by_tokens"])
                t.add_row(dev if i == 0 else "", scen if i == 0 else "", si(b["fpt"], "FLOP"), f"{b['factor']:.3f}",
                          toks, str(int(b["n"])),
                          f"{_pct(err.get('median_abs_error_before'))} → {_pct(err.get('median_abs_error_after'))}"
                          if i == 0 else "")
    con.print(t)
    h = Table(title="held-out runs (factors refitted without the run's shape)")
    for c in ("scenario", "model", "shape b,s|p,g", "measured", "estimate before", "err", "after", "err"):
        h.add_column(c)
    for r in res["held_out"]:
        h.add_row(r["scenario"], r["model"], ",".join(str(x) for x in r["shape"] if x is not None),
                  seconds(r["measured_s"]), seconds(r["est_before_s"]), _pct(r["error_before"]),
                  seconds(r["est_after_s"]), _pct(r["error_after"]))
    con.print(h)
    a = res["errors"]["all"]
    con.print(f"median |time error| on held-out shapes: {_pct(a['median_abs_error_before'])} uncalibrated → "
              f"{_pct(a['median_abs_error_after'])} calibrated ({a['n']} runs)")
    mo = res.get("errors_model_out") or {}
    if mo:
        parts = [f"{k.split(' ', 1)[-1]} {_pct(v['median_abs_error'])}" for k, v in mo.items() if k != "all"]
        con.print(f"leaving out every run of a model instead: {_pct(mo['all']['median_abs_error'])} "
                  f"({', '.join(parts)})")
    for s in res["skipped"]:
        con.print(f"skipped {s}")
    src = res.get("sources") or {}
    if src.get("from_team"):
        con.print(f"runs of every machine with this machine's device models: {src['runs']} runs from "
                  f"{', '.join(src['machines'])}", markup=False)
    con.print(res["saved"])


def register(app: typer.Typer) -> None:
    @app.command("calibrate")
    def calibrate(
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
        device: Optional[str] = typer.Option(None, "--device", "-d", help="Only runs on these devices (cpu,cuda:0)."),
        model: Optional[str] = typer.Option(None, "--model", help="Only runs of this model."),
        all_machines: bool = typer.Option(False, "--all-machines", help="Use runs stored by other machines too (normally only this machine's)."),
        from_team: bool = typer.Option(False, "--from-team", help="Fit from every machine in the (team) results database "
                                       "whose CPU or GPU is the same model as this machine's, not only this one."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Fit and show, do not save."),
        reset: bool = typer.Option(False, "--reset", help="Remove this machine's calibration and exit."),
        threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads of the runs to use (as 'aipc bench --threads'; the profile is per thread count)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """Fit MFU (train, prefill) and MBU (decode) per device from stored runs; later estimates use them."""
        from aipc.bench.calibration import calibrate_runs
        from aipc.bench.context import machine_context
        from aipc.bench.store import ResultsDB
        from aipc.estimate import calibrate as C
        from aipc.render import print_json

        if threads is not None:
            if threads <= 0:
                raise AipcError(f"--threads must be a positive whole number (got {threads})")
            import torch

            torch.set_num_threads(threads)
        mctx = machine_context(measure=False)
        if reset:
            removed = C.reset([s.name for s in mctx.specs.values()])
            if as_json:
                print_json({"removed": removed, "path": str(C.path())})
            else:
                typer.echo(f"removed calibration of {', '.join(removed) or 'nothing'} ({C.path()})")
            return
        if mctx.profile is None:
            raise AipcError(f"no measured peaks for this machine ({mctx.profile_source}); run 'aipc hw' first, "
                            "then 'aipc bench', then 'aipc calibrate'")
        if from_team and all_machines:
            raise AipcError("--from-team and --all-machines both choose the runs; use one")
        rdb = ResultsDB(db, create=False)
        devs = [d.strip() for d in device.split(",")] if device else None
        every = rdb.runs(kind="bench", model=model)
        if from_team:  # same device model on any machine, mapped to this machine's device of that model
            from aipc.bench.team import same_model_runs

            sw = ((mctx.profile.get("machine") or {}).get("software") or {})
            every = same_model_runs(every, mctx.profile, list(mctx.specs), threads or sw.get("torch_threads"))
        every = [r for r in every if devs is None or r["device"] in devs]
        runs = [r for r in every if from_team or all_machines or r.get("machine") == mctx.fingerprint]
        others = len(every) - len(runs)
        if len(runs) < 2 and others:
            raise AipcError(f"{len(runs)} stored bench runs match this machine's profile {mctx.fingerprint}, "
                            f"{others} were measured under another profile (another machine, or another thread count: "
                            "pass --threads N as given to 'aipc bench', or --all-machines)")
        res = calibrate_runs(runs, mctx.specs)
        res["sources"] = {"machines": sorted({r.get("host") or (r.get("machine") or "?")[:8] for r in runs}),
                          "runs": len(runs), "from_team": from_team}
        if dry_run:
            res["saved"] = "dry run: nothing saved"
        else:
            res["saved"] = f"saved to {C.save(res['table'])}; 'aipc estimate' now uses these factors for this machine"
        if as_json:
            print_json({k: v for k, v in res.items()})
        else:
            render(res)
