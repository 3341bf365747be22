"""``aipc bench --sweep``: the CLI of aipc.bench.here_sweep (progress bar, summary, --json)."""

from __future__ import annotations

import sys

from aipc.errors import AipcError

DEFAULT_BUDGET_S = 600.0


def _progress():
    """(rich Progress, callback) on stderr when it is a terminal, else (None, None)."""
    if not sys.stderr.isatty():
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True)
    task = prog.add_task("sweep", total=None)

    def update(i: int, n: int, label: str) -> None:
        prog.update(task, total=n, completed=i, description=f"sweep: {label}")

    return prog, update


def run(*, sweep: bool, models: str | None, engine: str | None, budget: float | None, db, threads: int | None,
        as_json: bool, allow_network: bool, kernels: bool = False) -> None:
    from aipc.bench.dburl import hosts
    from aipc.bench.here_sweep import SweepOptions, run_sweep
    from aipc.privacy.guard import offline_guard
    from aipc.render import print_json

    if not sweep:
        raise AipcError("--kernels goes with --sweep (or measure them alone: aipc hw --kernels)" if kernels
                        else "--budget goes with --sweep")
    names = [m.strip() for m in models.split(",") if m.strip()] if models else None
    engines = [e.strip() for e in engine.split(",") if e.strip()] if engine else None
    o = SweepOptions(engines=engines, models=names, budget_s=budget or DEFAULT_BUDGET_S, db=db, threads=threads,
                     kernels=kernels)
    prog, update = (None, None) if as_json else _progress()
    with offline_guard(allow_network=allow_network, allow_hosts=hosts(db)):
        if prog is not None:
            with prog:
                res = run_sweep(o, on_progress=update)
        else:
            res = run_sweep(o)
    print_json(res) if as_json else _render(res)


def _render(res: dict) -> None:
    import typer

    from aipc.render import seconds

    if res.get("kernels") and res["kernels"] != "no llama.cpp items":
        typer.echo(f"llama.cpp kernels per weight type: {res['kernels']}")
    for m in res["measured"]:
        typer.echo(f"measured {m['item']} in {seconds(m['seconds'])}")
    for f in res.get("failed", []):
        typer.echo(f"not measured {f['item']}: {f['error']}")
    if res["already_stored"]:
        typer.echo(f"already in the results DB (skipped): {', '.join(res['already_stored'])}")
    if res["stopped"]:
        typer.echo(f"stopped: {res['stopped']}; not started: {', '.join(res['not_started']) or '-'}")
    typer.echo(f"{len(res['measured'])} of {len(res['planned'])} measured in {seconds(res['wall_s'])} "
               f"(budget {seconds(res['budget_s'])}, {res['threads']} threads); {res['calibration']}")
    typer.echo("see 'aipc models --here' for the table these runs feed")
