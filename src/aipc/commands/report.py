"""``aipc report``: profile this machine, benchmark, estimate, decide — one self-contained HTML page.

Thin shell over :mod:`aipc.report`; torch is imported only when the report measures.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from aipc.bench.dburl import HELP as DB_HELP
from aipc.commands import guard_opts, team_opts
from aipc.errors import AipcError

DEFAULT_DIR = "aipc-report"


def check_out_dir(path: Path) -> Path:
    """The output folder, usable before anything is measured: created if absent, must be writable."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise AipcError(f"-o {path}: is a file, not a folder; pass a folder for index.html and report.json")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AipcError(f"-o {path}: cannot create the folder ({e.strerror}); pick another path") from None
    if not os.access(path, os.W_OK):
        raise AipcError(f"-o {path}: folder is not writable; pick another path")
    return path


class _Progress:
    """A rich progress bar on a terminal; elsewhere one stderr line per step."""

    def __init__(self, enabled: bool):
        self.bar = self.task = None
        self.last = ""
        self.enabled = enabled
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("[bold]aipc report[/bold]"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                TimeElapsedColumn(), TextColumn("{task.description}"),
                                console=Console(stderr=True), transient=True)

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
            self.task = self.bar.add_task("starting", total=1.0)
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, what: str, frac: float) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=frac, description=what)
        elif self.enabled:
            step = what.split(":")[0].split(" sample")[0]
            if step != self.last:
                print(f"[{frac * 100:3.0f}%] {step}", file=sys.stderr, flush=True)
                self.last = step


def summary(data: dict, paths: dict) -> None:
    """The short terminal summary: the verdict and where the page is."""
    from aipc.render import console
    from aipc.report.verdict import verdict

    c = console()
    for head, lines in verdict(data):
        c.print(f"[bold]{head}[/bold]")
        for x in lines:
            c.print(f"  - {x}", soft_wrap=False)
    t = data.get("timings_s", {}).get("total")
    c.print(f"report: {paths['index']} ({paths['page_bytes'] / 1024:.0f} KiB, opens offline) and {Path(paths['json']).name}"
            + (f"; took {t:.0f} s" if t else ""))


def team_report(db, out_dir: Path, model, reference, prices: tuple[dict, dict], utilization: float, as_json: bool) -> None:
    """``aipc report --team``: the team page from the results database (nothing measured)."""
    from aipc.report.team import collect_team, write_team

    data = collect_team(db, model=model, reference=reference, prices=prices[0], rents=prices[1], utilization=utilization)
    paths = write_team(data, out_dir)
    if as_json:
        from aipc.render import print_json

        print_json({**paths, "db": data["db"], "machines": data["machines"], "reference": data["reference"],
                    "runs": data["runs"]})
    else:
        typer.echo(f"team report: {paths['index']} ({len(data['machines'])} machines, {data['runs']} runs from "
                   f"{data['db']}; opens offline) and {Path(paths['json']).name}")


def register(app: typer.Typer) -> None:
    @app.command("report", help="The one-command answer: profile this machine, benchmark, estimate workloads, "
                                "decide buy versus rent; writes a self-contained HTML page and its data as JSON.")
    def report(
        model: Optional[str] = typer.Option(None, "--model", "-m", help="Benchmark and estimate this model (catalog "
                                            "name, HF id, config.json or folder) instead of the defaults."),
        workload: Optional[Path] = typer.Option(None, "--workload", "-w", metavar="FILE",
                                                help="Estimate this workload (.toml/.json) instead of the default three."),
        needs: Optional[Path] = typer.Option(None, "--needs", "-n", metavar="FILE",
                                             help="Decide buy versus rent for this needs file (see 'aipc decide --example')."),
        out: Path = typer.Option(Path(DEFAULT_DIR), "-o", "--out", metavar="DIR", help="Folder for index.html and report.json."),
        no_bench: bool = typer.Option(False, "--no-bench", help="Skip measuring (profile from cache or quick probe only)."),
        allow_network: bool = guard_opts.ALLOW_NETWORK,
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object (paths, verdict, sections) instead of the summary."),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
        team: bool = typer.Option(False, "--team", help="Write team.html instead: every machine of the results database "
                                  "side by side (tokens/s, speedup R, $ per 1M tokens); measures nothing."),
        reference: Optional[str] = team_opts.REFERENCE,
        prices: Optional[list[str]] = team_opts.PRICE,
        rents: Optional[list[str]] = team_opts.RENT,
        utilization: float = team_opts.UTILIZATION,
    ) -> None:
        from aipc.bench.dburl import hosts, redact
        from aipc.privacy.guard import offline_guard
        from aipc.report.collect import ReportOptions, collect, write_inputs
        from aipc.report.html import write_report

        out_dir = check_out_dir(out)
        if team:
            return team_report(db, out_dir, model, reference, team_opts.machine_prices(prices, rents), utilization, as_json)
        if db:
            from aipc.bench.store import ResultsDB

            ResultsDB(db)  # a bad --db (URL, password, foreign file) fails now, before minutes of measuring
        argv = [*(["--model", model] if model else []), *(["--workload", str(workload)] if workload else []),
                *(["--needs", str(needs)] if needs else []), "-o", str(out), *(["--no-bench"] if no_bench else []),
                *(["--db", redact(db)] if db else [])]
        opts = ReportOptions(model=model, workload_file=str(workload) if workload else None,
                             needs_file=str(needs) if needs else None, bench=not no_bench, argv=argv, db=db)
        with _Progress(enabled=True) as prog:
            with offline_guard(allow_network=allow_network, allow_hosts=hosts(db)):  # the --db server, nothing else
                data = collect(opts, prog)
            write_inputs(data, out_dir)
            paths = write_report(data, out_dir)
            prog("done", 1.0)
        if as_json:
            from aipc.render import print_json
            from aipc.report.verdict import verdict

            sections = {k: {"available": bool((data.get(k) or {}).get("available")), "why": (data.get(k) or {}).get("why")}
                        for k in ("machine", "bench", "estimates", "decision")}
            print_json({**paths, "verdict": {h: lines for h, lines in verdict(data)}, "sections": sections,
                        "timings_s": data.get("timings_s")})
        else:
            summary(data, paths)
