"""``aipc hw``: detect this machine and measure its peaks (GEMM FLOP/s per dtype, memory bandwidth).

Thin shell over :mod:`aipc.hardware.profile`; torch is imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("hw", help="Detect this machine and measure its peaks (GEMM FLOP/s per dtype, memory bandwidth).")
    def hw(
        quick: bool = typer.Option(False, "--quick", help="Shorter measurement (<= 10 s on a 2-core CPU); noisier."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
        refresh: bool = typer.Option(False, "--refresh", help="Ignore the cached profile and measure again."),
        export: Optional[Path] = typer.Option(None, "--export", metavar="FILE.toml|FILE.json",
                                              help="Also write this machine as a device catalog file."),
    ) -> None:
        from aipc.hardware import profile as prof

        if export is not None:
            export = prof.check_export_path(export)  # bad path fails before a 30 s measurement
        p = prof.load_or_measure(quick=quick, refresh=refresh)
        written = prof.export_profile(p, export) if export is not None else None
        if json_out:
            from aipc.render import print_json

            print_json(json_object(p, written))
        else:
            render(p, written)


def json_object(p, exported: Path | None) -> dict:
    """The --json object (keys documented in docs/hw.md)."""
    from aipc.hardware.catalog import device_to_dict

    d = p.to_dict()
    return {"fingerprint": p.fingerprint, "cached": p.cached, "measured_at": p.measured_at, "mode": p.mode,
            "measure_wall_s": p.measure_wall_s, "load_avg": p.load_avg, "cache_path": p.cache_path,
            "machine": d["machine"], "devices": d["devices"],
            "device_specs": [device_to_dict(s) for s in p.device_specs()],
            "exported": str(exported) if exported else None}


def _yes(flag) -> str:
    return "not available" if flag is None else ("yes" if flag else "no")


def _spread(s) -> str:
    """p10..p90 in the median's SI prefix: '44.2-44.8 G'."""
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, "")):
        if s.median >= factor:
            return f"{s.p10 / factor:.3g}-{s.p90 / factor:.3g} {prefix}".rstrip()
    return f"{s.p10:.3g}-{s.p90:.3g}"


def render(p, exported: Path | None) -> None:
    """Detection facts, then the measured-peaks table with what each number means."""
    from rich import box
    from rich.table import Table

    from aipc.render import console, gb, seconds, si

    c = console()
    m, sw = p.machine, p.machine.software
    when = f"cached from {p.measured_at}" if p.cached else f"measured {p.measured_at} in {seconds(p.measure_wall_s)}"
    c.print(f"[bold]aipc hw[/bold] — this machine (fingerprint {p.fingerprint}; {p.mode} profile {when})")
    cpu = m.cpu
    isa = " ".join(k for k, v in cpu.features.items() if v) or "not available"
    c.print(f"CPU       {cpu.model}; {cpu.physical_cores or '?'} physical / {cpu.logical_cores} logical cores; "
            f"{cpu.arch}; torch kernels {cpu.torch_capability or 'not available'}")
    c.print(f"ISA       {isa}")
    c.print(f"RAM       {gb(m.ram_total_bytes)} total, {gb(m.ram_available_bytes)} available")
    for g in m.gpus:
        c.print(f"GPU       {g.device}: {g.name} ({g.backend}), {gb(g.memory_bytes)}"
                f"{', cc ' + g.compute_capability if g.compute_capability else ''}; bf16 {g.bf16}; "
                f"flash attention {_yes(g.flash_attention)}")
    if not m.gpus:
        c.print("GPU       none visible to torch")
    c.print("NPU       " + ("; ".join(f"{n.name} ({n.driver or 'driver unknown'}, {n.path or 'no device node'})"
                              for n in m.npus) or "none exposed by the OS"))
    c.print(f"Software  Python {sw.python}; torch {sw.torch} ({sw.torch_build} build); CUDA runtime "
            f"{sw.cuda_runtime or '-'}, driver {sw.cuda_driver or '-'}, cuDNN {sw.cudnn or '-'}; "
            f"transformers {sw.transformers or 'not installed'}")
    c.print(f"          BLAS {sw.blas or '?'}; threads: torch {sw.torch_threads}, OpenMP {sw.omp_threads}, "
            f"MKL {sw.mkl_threads}; CPU bf16 {sw.cpu_bf16}; SDPA {_yes(sw.sdpa.get('available'))} "
            f"(flash kernels built: {_yes(sw.sdpa.get('flash_built'))})")
    t = Table(title="Measured peaks: median over repeated calls after warm-up", title_justify="left",
              box=box.SIMPLE_HEAD)
    for col in ("device", "what", "median", "p10..p90", "reps", "per call"):
        t.add_column(col, justify="left" if col in ("device", "what") else "right", no_wrap=True)
    footnotes = []
    for d in p.devices:
        if d.threads:
            footnotes.append(f"{d.device}: {d.threads} threads (torch default)")
        for dt, g in d.gemm.items():
            s = g.flops_s
            t.add_row(d.device, f"{dt} GEMM {g.n}x{g.n}" + (" *" if g.note else ""), si(s.median, "FLOP/s"),
                      _spread(s), str(s.samples), seconds(s.seconds_per_call))
            if g.note:
                footnotes.append(f"* {d.device} {dt}: {g.note}")
        for kind, b in d.bandwidth.items():
            s = b.bytes_s
            t.add_row(d.device, f"memory {kind} {b.buffer_bytes >> 20} MiB", si(s.median, "B/s"),
                      _spread(s), str(s.samples), seconds(s.seconds_per_call))
        footnotes += [f"{d.device} {dt} GEMM not measured: {why}" for dt, why in d.skipped.items()]
    c.print(t)
    c.print("GEMM: C = A @ B with n x n matrices, 2·n³ FLOP per call (dense). memory copy: b.copy_(a), "
            "bandwidth counts read + write bytes (2 x buffer per call); memory read: a.sum(), 1 x buffer. "
            "p10..p90: spread across samples.")
    for f in footnotes:
        c.print(f)
    cores = cpu.logical_cores
    if p.load_avg and max(p.load_avg) > 0.5 * cores:
        c.print(f"note: load average {p.load_avg[0]:.1f} before / {p.load_avg[1]:.1f} after measuring on "
                f"{cores} cores — other processes competed, so these peaks are likely low; "
                "re-run 'aipc hw --refresh' on an idle machine.")
    for n in m.notes:
        c.print(f"note: {n}")
    if exported:
        c.print(f"exported {len(p.device_specs())} device(s) to {exported} in the device catalog format "
                f"(load with 'aipc devices --catalog {exported}' or AIPC_DEVICES)")
    elif p.cache_path:
        c.print(f"profile cache: {p.cache_path}")
