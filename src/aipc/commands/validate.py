"""`aipc validate`: run workloads for real on this machine and print estimate beside measurement."""

from __future__ import annotations

from typing import Optional

import typer

from aipc.bench.dburl import HELP as DB_HELP
from aipc.commands import guard_opts
from aipc.commands.workload_opts import build_workload, with_workload_options


def register(app: typer.Typer) -> None:
    @app.command("validate", help="Run a workload (or the validation set) here and compare with the estimate.")
    @with_workload_options
    def validate_cmd(
        model: Optional[str] = typer.Argument(None, help="model or workload file; omit to run a validation set"),
        set_name: str = typer.Option("small", "--set", help="validation set when no model is given: small (CI, minutes), full (docs) or unseen (held-out architectures)"),
        allocator: str = typer.Option("aipc", "--allocator", help="CPU allocator behaviour of the measured runs: aipc (what aipc's processes set and the estimate models) or default (glibc's default malloc)"),
        device: str = typer.Option("cpu", "--device", help="where the runs execute: cpu (peak RSS) or cuda (torch.cuda.max_memory_allocated)"),
        write: Optional[str] = typer.Option(None, "--write", help="write the table as Markdown to this file"),
        as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP + " Validate stores its rows (kind 'validate') "
                                         "only when --db is given or AIPC_RESULTS_DB is set."),
        allow_pickle: bool = guard_opts.ALLOW_PICKLE,
        allow_network: bool = typer.Option(False, "--allow-network", help="turn off the offline guard"),
        wopts: dict = None,
    ) -> None:
        from aipc.privacy.guard import offline_guard
        from aipc.render import console, print_json
        from aipc.validation import report, runner
        from aipc.validation.store import store_rows, wanted

        c = console()
        rdb = None
        if wanted(db):
            from aipc.bench.store import ResultsDB

            rdb = ResultsDB(db)  # a bad --db fails here, before any measuring
        device = _check(allocator, device, None if model else set_name)
        with offline_guard(allow_network=allow_network):  # the children run guarded too (run_guarded)
            if model:
                from aipc.models.live import check_ref

                w = build_workload(model, wopts)
                check_ref(w.model, allow_pickle=allow_pickle)  # a bad model fails here, before the subprocess
                d = dict(w.to_dict())
                m = runner.measure(d, allow_pickle=allow_pickle, allocator=allocator, device=device)
                rows = [runner.compare(d, m, device=device)]
            else:
                with c.status("measuring") as st:
                    rows = runner.run_set(set_name, progress=lambda s: st.update(f"measuring {s}"),
                                          allocator=allocator, device=device)
        result = report.as_dict(rows)
        result["allocator"], result["device"] = allocator, device
        if rdb is not None:
            result["stored"] = store_rows(rdb, rows)
            result["db"] = str(rdb.path)
        if write:
            cmd = "aipc validate" + ("" if model else f" --set {set_name}") + \
                (f" --allocator {allocator}" if allocator != "aipc" else "") + (f" --device {device}" if device != "cpu" else "")
            report.write_markdown(rows, write, command=cmd, allocator=allocator, device=device)
        if as_json:
            print_json(result)
        else:
            report.render(rows, c)


def _check(allocator: str, device: str, set_name: str | None) -> str:
    """Validate --allocator, --device and --set before anything runs; the normalised device."""
    from aipc.errors import AipcError
    from aipc.validation.configs import SETS
    from aipc.validation.runner import ALLOCATORS

    if allocator not in ALLOCATORS:
        raise AipcError(f"--allocator must be one of {', '.join(ALLOCATORS)} (got {allocator!r})")
    device = device.strip().lower()
    if device != "cpu" and not device.startswith("cuda"):
        raise AipcError(f"--device must be cpu or cuda[:N] (got {device!r})")
    if set_name is not None and set_name not in SETS:
        raise AipcError(f"--set must be one of {', '.join(SETS)} (got {set_name!r})")
    if device.startswith("cuda"):
        _need_cuda(device)
    return device


def _need_cuda(device: str) -> None:
    """Fail before any run when the CUDA device is not there."""
    from aipc.errors import AipcError

    import torch

    if not torch.cuda.is_available():
        raise AipcError(f"--device {device}: no CUDA device visible to torch here; run on a machine with an "
                        "NVIDIA GPU and a CUDA build of torch, or use --device cpu")
