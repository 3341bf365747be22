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
        refresh: bool = typer.Option(False, "--refresh", help="Measure again; each figure keeps the best of this and earlier measurements (peaks are maxima)."),
        replace: bool = typer.Option(False, "--replace", help="With --refresh: keep only this measurement, forgetting earlier best figures."),
        wait_quiet: float = typer.Option(0.0, "--wait-quiet", metavar="SECONDS", help="Before measuring, wait up to SECONDS for a quiet machine (others using < 25% CPU, load < half the cores)."),
        export: Optional[Path] = typer.Option(None, "--export", metavar="FILE.toml|FILE.json",
                                              help="Also write this machine as a device catalog file."),
        kernels: bool = typer.Option(False, "--kernels", help="Also measure the engines' kernels, which their uncalibrated estimates start from: llama.cpp's prefill FLOP/s and decode bandwidth per weight type (Q4_K, Q8_0, ...), OpenVINO's prefill FLOP/s and decode MBU and time per layer per weight format (fp16, int8, int4); each engine where installed (5-15 minutes, about 3 GB of disk, exports cached)."),
    ) -> None:
        from aipc.hardware import profile as prof

        import math

        from aipc.errors import AipcError

        if export is not None:
            export = prof.check_export_path(export)  # bad path fails before a 30 s measurement
        if not math.isfinite(wait_quiet) or not 0 <= wait_quiet <= 3600:
            raise AipcError(f"--wait-quiet must be 0 to 3600 seconds (got {wait_quiet})")
        if replace and not refresh:
            raise AipcError("--replace forgets the kept best figures of a new measurement; use it with --refresh")
        from aipc.hardware import openvino_devices as ovd

        engines = _kernel_engines() if kernels else ()
        p = prof.load_or_measure(quick=quick, refresh=refresh, remeasure_if_quiet=True, wait_quiet_s=wait_quiet,
                                 replace=replace)
        if engines:
            _measure_kernels(p, engines, replace=replace, quiet=json_out)
        written = prof.export_profile(p, export) if export is not None else None
        ov = ovd.report(quick=quick, refresh=refresh, fingerprint=p.fingerprint)
        if json_out:
            from aipc.render import print_json

            print_json({**json_object(p, written), "openvino": ov.to_dict()})
        else:
            from aipc.render import console

            render(p, written)
            ovd.render(ov, console())


def _kernel_engines() -> tuple[str, ...]:
    """The engines --kernels measures: llama.cpp and OpenVINO (with its exporter), where installed."""
    from aipc.engines import available
    from aipc.errors import AipcError

    have = available()
    out = tuple(e for e in ("llamacpp", "openvino") if e in have)
    if "openvino" in out:
        from aipc.engines.openvino_export import check_toolchain

        try:
            check_toolchain()
        except AipcError:
            out = tuple(e for e in out if e != "openvino")
    if not out:
        raise AipcError("--kernels measures llama.cpp and OpenVINO, neither of which is installed here; run "
                        "./setup.sh (it installs llama-cpp-python, OpenVINO and its exporter)")
    return out


def _measure_kernels(p, engines: tuple[str, ...], *, replace: bool, quiet: bool) -> None:
    import sys

    def say(engine):
        return (lambda s: None) if quiet else (lambda s: print(f"{engine} kernel {s}", file=sys.stderr, flush=True))

    if "llamacpp" in engines:
        from aipc.bench.llamacpp_kernels import measure_and_save

        measure_and_save(p.fingerprint, replace=replace, progress=say("llama.cpp"))
    if "openvino" in engines:
        from aipc.bench import openvino_kernels as ovk

        cpu = next(s for s in p.device_specs() if s.kind == "cpu")
        if cpu.bandwidth_bytes_s:  # the MBU is relative to it
            ovk.measure_and_save(p.fingerprint, cpu.bandwidth_bytes_s, cpu.llc_bytes or 32 << 20, replace=replace,
                                 progress=say("OpenVINO"))


def json_object(p, exported: Path | None) -> dict:
    """The --json object (keys documented in docs/hw.md)."""
    from aipc.hardware.catalog import device_to_dict

    d = p.to_dict()
    from aipc.hardware import conditions as cond

    return {"fingerprint": p.fingerprint, "cached": p.cached, "measured_at": p.measured_at, "mode": p.mode,
            "measure_wall_s": p.measure_wall_s, "load_avg": p.load_avg, "busy_cpu_percent": p.busy_cpu_percent,
            "busy": p.busy, "cache_path": p.cache_path,
            "native_dtypes": {d.device: p.native_dtypes(d.device) for d in p.devices},
            "fast_dtype": {d.device: {"infer": p.fast_dtype(d.device), "train": p.fast_dtype(d.device, "train")}
                           for d in p.devices},
            "low_confidence": {d.device: cond.confidence_note(d) for d in p.devices if cond.confidence_note(d)},
            "machine": d["machine"], "devices": d["devices"],
            "device_specs": [device_to_dict(s) for s in p.device_specs()],
            "kernels": _kernels(p.fingerprint),
            "exported": str(exported) if exported else None}


def _kernels(fingerprint: str) -> dict:
    from aipc.hardware import kernels as K

    return K.load(fingerprint)


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

    from aipc.commands.bench import wide_console
    from aipc.render import gb, seconds

    c = wide_console()  # the peaks table is wider than 80 columns
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
    t.add_column("measured", justify="left", no_wrap=True)
    footnotes = []
    for d in p.devices:
        _device_rows(t, d, footnotes, p.measured_at)
    c.print(t)
    c.print("GEMM: C = A @ B with n x n matrices, 2·n³ FLOP per call (dense; CPU through F.linear, as aipc's "
            "layers run it). train: one linear layer's forward + backward, 6·n³ FLOP per call (what a training "
            "step's layers run at). memory copy: b.copy_(a), bandwidth counts read + write bytes (2 x buffer per "
            "call); memory read: a.sum(), 1 x buffer. p10..p90: spread across samples. Each figure is the best "
            "of this machine's measurements (peaks are maxima); 'measured' says when, at what load, and "
            "'busy' where others used the CPU.")
    for d in p.devices:
        if d.dtype_support:
            c.print(f"{d.device} dtypes: " + "; ".join(f"{k} {v}" for k, v in d.dtype_support.items())
                    + f" — fastest here: {p.fast_dtype(d.device)} (inference), {p.fast_dtype(d.device, 'train')} (training)")
    for f in footnotes:
        c.print(f)
    _render_kernels(c, p.fingerprint)
    from aipc.hardware import conditions as cond

    for d in p.devices:
        note = cond.confidence_note(d)
        if note:
            c.print(f"note: {d.device} {note}", style="yellow")
    for n in m.notes:
        c.print(f"note: {n}")
    if exported:
        c.print(f"exported {len(p.device_specs())} device(s) to {exported} in the device catalog format "
                f"(load with 'aipc devices --catalog {exported}' or AIPC_DEVICES)")
    elif p.cache_path:
        c.print(f"profile cache: {p.cache_path}")


def _when(r, latest: str) -> str:
    """'now, load 0.4' / '2026-01-02 10:11, load 2.3, busy' for the figure's kept measurement."""
    c = r.conditions or {}
    at = c.get("measured_at") or ""
    load = (c.get("load_avg") or [None])[0]
    when = "this run" if at == latest else at[5:16].replace("T", " ")
    return f"{when} load {load:.1f}" + (" busy" if c.get("busy") else "") if load is not None else when


def _device_rows(t, d, footnotes: list[str], latest: str) -> None:
    """The table rows of one measured device: GEMM and train per dtype, then bandwidth."""
    from aipc.render import seconds, si

    if d.threads:
        footnotes.append(f"{d.device}: {d.threads} threads (torch default)")
    for label, table in (("GEMM", d.gemm), ("train", d.train_gemm)):
        for dt, g in table.items():
            s = g.flops_s
            t.add_row(d.device, f"{dt} {label} {g.n}x{g.n}" + (" *" if g.note else ""), si(s.median, "FLOP/s"),
                      _spread(s), str(s.samples), seconds(s.seconds_per_call), _when(g, latest))
            if g.note:
                footnotes.append(f"* {d.device} {dt} {label}: {g.note}")
    for kind, b in d.bandwidth.items():
        s = b.bytes_s
        t.add_row(d.device, f"memory {kind} {b.buffer_bytes >> 20} MiB", si(s.median, "B/s"),
                  _spread(s), str(s.samples), seconds(s.seconds_per_call), _when(b, latest))
    footnotes += [f"{d.device} {dt} not measured: {why}" for dt, why in d.skipped.items()]


def _render_openvino(c, rec: dict) -> None:
    """OpenVINO's decode terms and prefill FLOP/s per weight format, as aipc hw --kernels measured them."""
    from aipc.hardware.kernels import split_key

    types = rec["types"]
    fmts = [k.partition(":")[2] for k in types if k.startswith("mbu:")]
    terms = ", ".join(f"{f} MBU {types[f'mbu:{f}'][0][1]:.2f} + {types[f'layer_us:{f}'][0][1] / 1e3:.3f} ms"
                      for f in fmts if f"layer_us:{f}" in types)
    c.print(f"openvino decode per weight format (bytes at MBU x bandwidth + time per layer; "
            f"{str(rec.get('measured_at', ''))[:16]}): {terms}")
    pre = [(split_key(k), pts) for k, pts in types.items() if k.startswith("prefill:")]
    if pre:
        c.print("openvino prefill GFLOP/s per weight format at " + "/".join(str(int(n)) for n, _ in pre[0][1])
                + " prompt tokens: " + "; ".join(f"{t.partition(':')[2]} at layer width {w:.0f} "
                                                 + "/".join(f"{f / 1e9:.0f}" for _, f in pts) for (t, w), pts in pre))


def _render_kernels(c, fingerprint: str) -> None:
    """One line per engine with measured kernels: FLOP/s per weight type at each prompt length."""
    measured = _kernels(fingerprint)
    from aipc.hardware.kernels import split_key

    for engine, rec in measured.items():
        if engine == "openvino":
            _render_openvino(c, rec)
            continue
        by_width: dict = {"prefill": {}, "decode": {}, "read": {}}
        attn = []
        for key, pts in rec["types"].items():
            t, w = split_key(key)
            phase, _, t = t.rpartition(":")
            if phase == "attn":  # keyed by query heads, not by layer width
                attn.append((w or 0, f"{w or 0:.0f} heads {pts[0][1] / 1e9:.1f}"))
                continue
            by_width[phase or "prefill"].setdefault(w, []).append(
                f"{t} " + "/".join(f"{f / 1e9:.{1 if phase == 'read' else 0}f}" for _, f in pts))
        rows = {ph: "; ".join((f"layer width {w:.0f}: " if w else "") + ", ".join(v)
                              for w, v in sorted(tbl.items(), key=lambda wv: wv[0] or 0)) for ph, tbl in by_width.items()}
        tokens = "/".join(str(int(a)) for a, _ in next(v for k, v in rec["types"].items() if ":" not in k))
        c.print(f"{engine} prefill GFLOP/s per weight type at {tokens} prompt tokens "
                f"({str(rec.get('measured_at', ''))[:16]}): {rows['prefill']}")
        if rows["decode"]:
            c.print(f"{engine} decode GFLOP/s per weight type (one token after 128, weights in the cache): "
                    f"{rows['decode']}")
        if rows["read"]:
            c.print(f"{engine} decode GB/s per weight type (weights from memory; the uncalibrated decode MBU): "
                    f"{rows['read']}")
        if attn:
            c.print(f"{engine} decode attention GFLOP/s over the f16 KV cache (timed at two contexts; added per "
                    f"token of context): {', '.join(v for _, v in sorted(attn))}")
    if not measured:
        c.print("llama.cpp kernels: not measured here (aipc hw --kernels); llama.cpp prefill estimates use "
                "default shares of the fp32 peak")
