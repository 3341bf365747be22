"""`aipc validate`: run workloads for real on this machine and print estimate beside measurement."""

from __future__ import annotations

from typing import Optional

import typer

from aipc.bench.dburl import HELP as DB_HELP
from aipc.commands.workload_opts import build_workload, with_workload_options


def register(app: typer.Typer) -> None:
    @app.command("validate", help="Run a workload (or the validation set) here and compare with the estimate.")
    @with_workload_options
    def validate_cmd(
        model: Optional[str] = typer.Argument(None, help="model or workload file; omit to run a validation set"),
        set_name: str = typer.Option("small", "--set", help="validation set when no model is given: small (CI, minutes) or full (docs)"),
        write: Optional[str] = typer.Option(None, "--write", help="write the table as Markdown to this file"),
        as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP + " Validate stores its rows (kind 'validate') "
                                         "only when --db is given or AIPC_RESULTS_DB is set."),
        allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Load pickle weights (pytorch_model*.bin) when a folder has no safetensors; pickle can run code, so only for a source you trust."),
        allow_network: bool = typer.Option(False, "--allow-network", help="turn off the offline guard"),
        wopts: dict = None,
    ) -> None:
        from aipc.errors import AipcError
        from aipc.privacy.guard import offline_guard
        from aipc.render import console, print_json
        from aipc.validation import report, runner
        from aipc.validation.store import store_rows, wanted

        c = console()
        rdb = None
        if wanted(db):
            from aipc.bench.store import ResultsDB

            rdb = ResultsDB(db)  # a bad --db fails here, before any measuring
        if not model and set_name not in ("small", "full"):
            raise AipcError(f"--set must be small or full (got {set_name!r})")
        with offline_guard(allow_network=allow_network):  # the children run guarded too (run_guarded)
            if model:
                from aipc.models.live import check_ref

                w = build_workload(model, wopts)
                check_ref(w.model, allow_pickle=allow_pickle)  # a bad model fails here, before the subprocess
                d = dict(w.to_dict())
                rows = [runner.compare(d, runner.measure(d, allow_pickle=allow_pickle))]
            else:
                with c.status("measuring") as st:
                    rows = runner.run_set(set_name, progress=lambda s: st.update(f"measuring {s}"))
        result = report.as_dict(rows)
        if rdb is not None:
            result["stored"] = store_rows(rdb, rows)
            result["db"] = str(rdb.path)
        if write:
            report.write_markdown(rows, write, command="aipc validate" + ("" if model else f" --set {set_name}"))
        if as_json:
            print_json(result)
        else:
            report.render(rows, c)
