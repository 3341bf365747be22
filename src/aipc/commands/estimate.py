"""`aipc estimate MODEL|workload.toml [flags]`: memory, compute, time and fit on this machine and
on catalog devices."""

from __future__ import annotations

from typing import Optional

import typer

from aipc.commands.workload_opts import build_workload, with_workload_options


def register(app: typer.Typer) -> None:
    @app.command("estimate", help="Memory, compute, time and fit of inference or training on any device.")
    @with_workload_options
    def estimate_cmd(
        model: str = typer.Argument(..., help="catalog model, HF id, config.json, model folder, or workload .toml/.json"),
        device: Optional[list[str]] = typer.Option(None, "--device", "-d", help="device(s) to estimate on (catalog name or 'this'); repeat or comma-separate"),
        devices: bool = typer.Option(False, "--devices", help="compare across every catalog device"),
        search: bool = typer.Option(False, "--search", help="backward search: largest batch and context, fewest devices"),
        catalog: Optional[list[str]] = typer.Option(None, "--catalog", help="extra device catalog file(s) (TOML/JSON)"),
        as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
        wopts: dict = None,
    ) -> None:
        from aipc.commands import estimate_view as view

        w = build_workload(model, wopts)
        names = [n.strip() for d in (device or []) for n in d.split(",") if n.strip()]
        result = view.run(w, names, all_devices=devices, search=search, catalogs=catalog or [])
        if as_json:
            from aipc.render import print_json

            print_json(result)
        else:
            view.render(result)
