"""``aipc bench MODEL``: measure train / prefill / decode / generate on each local device."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from aipc.bench.dburl import HELP as DB_HELP
from aipc.commands import guard_opts
from aipc.errors import AipcError


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def wide_console():
    """A rich console; when stdout is not a terminal (pipes, files, tests) 160 columns wide, so the
    summary table is not squeezed to 80."""
    import sys as _sys

    from rich.console import Console

    return Console(highlight=False, width=None if _sys.stdout.isatty() else 160)


def _progress(enabled: bool):
    """A rich progress display on stderr (None when stderr is not a terminal)."""
    if not enabled or not sys.stderr.isatty():
        return None, None
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    prog = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True)
    tasks: dict[str, int] = {}

    def update(label: str, n: int, total_s: float) -> None:
        if label not in tasks:
            tasks[label] = prog.add_task(label, total=None)
        prog.update(tasks[label], description=f"measuring {label}: {n} samples, {total_s:.1f} s timed")

    return prog, update


def render(report: dict) -> None:
    """The one-screen summary."""
    from rich.table import Table

    from aipc.render import gb, seconds, si

    con = wide_console()
    con.print(f"[bold]aipc bench[/bold] {report['model']} ({si(report['params'], digits=3)} params) on "
              f"{report['machine']['host']} ({report['machine']['fingerprint']}); peaks: {report['machine']['peaks']}; "
              f"CPU threads {report['cpu_threads']}")
    if report.get("cpu_threads_note"):
        con.print(f"threads: {report['cpu_threads_note']}")
    t = Table(show_lines=False, pad_edge=False)
    for col in ("device", "scenario", "median", "p10–p90", "95% CI", "n", "tokens/s", "FLOP/s", "MFU meas|spec",
                "MBU meas|spec", "peak mem", "est mem", "J/token", "estimate (err)"):
        t.add_column(col, justify="left" if col in ("device", "scenario") else "right")
    for r in report["results"]:
        est = "-" if r.get("est_s") is None else f"{seconds(r['est_s'])} ({r['est_error']:+.0%})"
        t.add_row(
            f"{r['device']} {r['precision']}", r["scenario"], seconds(r["median_s"]),
            f"{seconds(r['p10_s'])}–{seconds(r['p90_s'])}", f"{seconds(r['ci95_low_s'])}–{seconds(r['ci95_high_s'])}",
            str(r["n"]), f"{r['tokens_per_s']:.1f}", si(r.get("achieved_flops_s"), "FLOP/s"),
            f"{_pct(r.get('mfu_measured'))}|{_pct(r.get('mfu_spec'))}",
            f"{_pct(r.get('mbu_measured'))}|{_pct(r.get('mbu_spec'))}" if "mbu_measured" in r else "",
            gb(r.get("peak_rss_above_base_bytes", r.get("peak_mem_bytes")), 2), gb(r.get("est_peak_mem_bytes"), 2), "-" if r.get("energy_per_token_j") is None else f"{r['energy_per_token_j']:.3g}",
            est)
    con.print(t)
    for r in report["results"]:
        if r["scenario"] == "generate" and r.get("ttft_median_s") is not None:
            con.print(f"{r['device']} generate: TTFT {seconds(r['ttft_median_s'])} (p10 {seconds(r['ttft_p10_s'])}, "
                      f"p90 {seconds(r['ttft_p90_s'])}), TPOT {seconds(r['tpot_median_s'])}, "
                      f"decode {r['decode_tokens_per_s']:.1f} tokens/s per request stream"
                      + (f"; estimate TTFT {seconds(r.get('est_ttft_s'))}, TPOT {seconds(r.get('est_tpot_s'))}"
                         if r.get("est_ttft_s") else ""))
    for sp in report["speedup"]:
        rs = ", ".join(f"{d} R = {v:.2f}x" for d, v in sp["r"].items())
        con.print(f"speedup {sp['scenario']} (vs {sp['reference']}): {rs}  [precision: "
                  + ", ".join(f"{d} {p}" for d, p in sp["precision"].items()) + "]")
    if len(report["devices"]) < 2:
        con.print("speedup R: one device measured (R = t_cpu / t_accel needs two or more)")
    first = report["results"][0] if report["results"] else {}
    notes = {r.get("estimate_note") for r in report["results"] if r.get("estimate_note")}
    for n in notes:
        con.print(f"estimate: {n}")
    if first:
        for r in {r["device"]: r for r in report["results"]}.values():
            how = r.get("peak_mem_method")
            if "peak_rss_above_base_bytes" in r:
                how += " minus the RSS before the model was built (whole-process peak: " + gb(r["peak_mem_bytes"], 2) + ")"
            con.print(f"{r['device']} peak mem: {how}; energy: {r.get('energy_source')}")
        src = first.get("est_efficiency_source")
        if src:
            con.print(f"estimate efficiency: {src[:160]}{'…' if len(src) > 160 else ''}")
    con.print("definitions: " + " | ".join(report["definitions"].values()))
    con.print(f"statistics: {report['ci_method']}; MFU = achieved FLOP/s / peak (meas: aipc hw on this device; "
              "spec: catalog); MBU = bytes/s / bandwidth")
    if report.get("db"):
        con.print(f"stored {len(report['results'])} runs in {report['db']}  (aipc results; aipc calibrate)")
    for w in report.get("warnings", []):
        con.print(f"warning: {w}")
    con.print(f"wall time {seconds(report['wall_s'])}")


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench(
        model: Optional[str] = typer.Argument(None, help="Catalog name, HF id, config.json or model folder (default smollm2-135m, random weights)."),
        device: Optional[str] = typer.Option(None, "--device", "-d", help="Devices, comma-separated: cpu,cuda:0,mps (default: all present)."),
        scenario: str = typer.Option("train,prefill,decode,generate", "--scenario", "-s", help="Scenarios, comma-separated."),
        precision: str = typer.Option("auto", "--precision", help="auto (torch: fp32 on CPU, bf16 on CUDA; llama.cpp: q4_k_m; OpenVINO: int8), fp32, bf16, fp16; llama.cpp: GGUF types (q8_0, q4_k_m, f16, ...); OpenVINO: int8, int4, fp16."),
        engine: Optional[str] = typer.Option(None, "--engine", help="torch (default), llamacpp or openvino (prefill/decode/generate of a .gguf / an OpenVINO IR folder, or of the model converted to --precision); with --sweep, the engines to sweep (comma-separated; default every installed one)."),
        batch: int = typer.Option(1, "--batch", help="Sequences per step."),
        seq_len: int = typer.Option(128, "--seq-len", help="Training sequence length."),
        prompt_tokens: int = typer.Option(128, "--prompt-tokens", help="Prompt length (prefill, decode context)."),
        gen_tokens: int = typer.Option(32, "--gen-tokens", help="Generated tokens per request (decode, generate)."),
        method: str = typer.Option("full", "--method", help="Training: full or lora."),
        lora_rank: int = typer.Option(16, "--lora-rank", help="LoRA rank r."),
        lora_targets: Optional[str] = typer.Option(None, "--lora-targets", help="LoRA target modules, comma-separated (default q,k,v,o,gate,up,down_proj)."),
        quick: bool = typer.Option(False, "--quick", help="Fewer repetitions: 1 warm-up, >= 3 samples, >= 0.3 s."),
        warmup: Optional[int] = typer.Option(None, "--warmup", help="Untimed warm-up calls per scenario."),
        min_reps: Optional[int] = typer.Option(None, "--min-reps", help="Minimum timed samples."),
        min_time: Optional[float] = typer.Option(None, "--min-time", help="Minimum timed seconds per scenario."),
        max_time: Optional[float] = typer.Option(None, "--max-time", help="Stop adding samples after this many seconds."),
        threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch (default: chosen by timing a layer of the run's shape at each count)."),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
        no_store: bool = typer.Option(False, "--no-store", help="Do not store the runs."),
        no_fit_check: bool = typer.Option(False, "--no-fit-check", help="Run even when the estimate says it will not fit."),
        allow_pickle: bool = guard_opts.ALLOW_PICKLE,
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
        allow_network: bool = guard_opts.ALLOW_NETWORK,
        sweep: bool = typer.Option(False, "--sweep", help="Measure a few representative models per installed engine, "
                                   "smallest first, within --budget; resumable; refits this machine's calibration "
                                   "(MODEL: the models to sweep instead, comma-separated)."),
        budget: Optional[float] = typer.Option(None, "--budget", help="With --sweep: seconds to spend at most (default 600)."),
        kernels: bool = typer.Option(False, "--kernels", help="With --sweep: first measure llama.cpp's prefill FLOP/s per weight type where not measured yet (2-10 minutes, once per machine; as aipc hw --kernels)."),
    ) -> None:
        """Measure training and inference on each local device (or inference through llama.cpp with --engine
        llamacpp): statistics, MFU/MBU, R, estimate beside measurement."""
        from aipc.bench.runner import DEFAULT_MODEL, BenchOptions, run_bench
        from aipc.bench.stats import LoopConfig
        from aipc.privacy.guard import offline_guard

        if sweep or budget is not None or kernels:
            from aipc.commands.bench_sweep import run

            return run(sweep=sweep, models=model, engine=engine, budget=budget, db=db, threads=threads,
                       as_json=as_json, allow_network=allow_network, kernels=kernels)
        if engine and "," in engine:
            raise AipcError(f"--engine takes one engine without --sweep (got {engine!r})")
        engine = engine or "torch"

        scen = tuple(s.strip().lower() for s in scenario.split(",") if s.strip())
        if not scen:
            raise AipcError("no scenario given; use --scenario train,prefill,decode,generate")
        base = LoopConfig.quick() if quick else LoopConfig()
        over = {k: v for k, v in (("warmup", warmup), ("min_reps", min_reps), ("min_s", min_time),
                                  ("max_s", max_time)) if v is not None}
        for k, v in over.items():
            if v < 0 or (k == "min_reps" and v < 1):
                raise AipcError(f"--{k.replace('_s', '-time').replace('_', '-')} must be positive (got {v})")
        loop = LoopConfig(**{**base.__dict__, **over})
        targets = tuple(t.strip() for t in lora_targets.split(",") if t.strip()) if lora_targets else None
        opts = BenchOptions(model=model or DEFAULT_MODEL, devices=device, scenarios=scen, precision=precision.lower(),
                            batch=batch, seq=seq_len, prompt=prompt_tokens, gen=gen_tokens, method=method.lower(),
                            lora_rank=lora_rank, lora_targets=targets, quick=quick, loop=loop, db=db,
                            store=not no_store, fit_check=not no_fit_check, threads=threads,
                            allow_pickle=allow_pickle, engine=engine.lower())
        prog, update = _progress(not as_json)
        from aipc.bench.dburl import hosts

        with offline_guard(allow_network=allow_network, allow_hosts=hosts(db)):  # the --db server, nothing else
            if prog is not None:
                with prog:
                    report = run_bench(opts, on_progress=update)
            else:
                report = run_bench(opts)
        if as_json:
            from aipc.render import print_json

            print_json(report)
        else:
            render(report)
