"""``aipc loadtest URL``: load-test an OpenAI-compatible server; results go to the results database.

Loopback targets only unless ``--allow-remote``. ``--json`` prints one object: ``{"runs": [...],
"definitions": {...}, "stored": [...]}``, each run with ``scenario``, ``workload`` and ``metrics``.
Nothing heavy is imported at module level.
"""

from __future__ import annotations

from typing import Optional

import typer

from aipc.bench.dburl import HELP as DB_HELP
from aipc.errors import AipcError


def _levels(concurrency: str | None, rate: str | None) -> list[dict]:
    if concurrency and rate:
        raise AipcError("give --concurrency or --rate, not both")
    try:
        if rate:
            vals = [float(x) for x in rate.split(",") if x.strip()]
            if not vals or any(not (v > 0) or v == float("inf") for v in vals):
                raise ValueError
            return [{"rate": v} for v in vals]
        vals = [int(x) for x in (concurrency or "1").split(",") if x.strip()]
        if not vals or any(v < 1 or v > 4096 for v in vals):
            raise ValueError
        return [{"concurrency": v} for v in vals]
    except ValueError:
        raise AipcError("--concurrency takes integers 1-4096 like 1,4,16; --rate takes positive requests/s like 0.5,2")


def _fmt(p: dict | None, key: str = "p50") -> str:
    return "-" if not p else f"{p[key] * 1e3:.0f}"


def render(results: list[dict]) -> None:
    from rich.table import Table

    from aipc.render import console

    t = Table(title=f"load test of {results[0]['target']} ({results[0]['model']}, {results[0]['endpoint']})")
    for col in ("load", "ok/sent", "req/s", "out tok/s", "TTFT p50/p99 ms", "TPOT p50/p99 ms", "ITL p50/p99 ms",
                "e2e p50/p99 ms", "goodput req/s"):
        t.add_column(col, justify="right")
    for r in results:
        m = r["metrics"]
        t.add_row(r["scenario"], f"{m['requests_ok']}/{m['requests']}", f"{m['request_throughput_rps']:.2f}",
                  f"{m['output_tokens_per_s']:.1f}", f"{_fmt(m['ttft_s'])}/{_fmt(m['ttft_s'], 'p99')}",
                  f"{_fmt(m['tpot_s'])}/{_fmt(m['tpot_s'], 'p99')}", f"{_fmt(m['itl_s'])}/{_fmt(m['itl_s'], 'p99')}",
                  f"{_fmt(m['e2e_s'])}/{_fmt(m['e2e_s'], 'p99')}",
                  f"{m['goodput_rps']:.2f}" if any(v is not None for v in m["slo"].values()) else "-")
    c = console()
    c.print(t)
    c.print("TTFT includes queueing and prefill; TPOT = (last token - first token) / (tokens - 1), first token "
            "excluded; ITL = gap between streamed chunks; goodput = requests/s meeting every SLO given.")
    for r in results:
        for err, n in r["metrics"]["errors"].items():
            c.print(f"[{r['scenario']}] {n} failed: {err}")


def register(app: typer.Typer) -> None:
    @app.command("loadtest")
    def loadtest_cmd(
        url: str = typer.Argument(..., help="Server base URL, e.g. http://127.0.0.1:8000 (or .../v1)."),
        model: Optional[str] = typer.Option(None, "--model", help="Model id (default: the first of /v1/models)."),
        endpoint: str = typer.Option("completions", "--endpoint", help="completions | chat."),
        concurrency: Optional[str] = typer.Option(None, "--concurrency", "-c", help="Concurrent clients, e.g. 1,4,16."),
        rate: Optional[str] = typer.Option(None, "--rate", help="Poisson request rates per second, e.g. 1,2,4."),
        num_requests: int = typer.Option(32, "--num-requests", "-n", help="Requests per level (upper bound)."),
        duration: Optional[float] = typer.Option(None, "--duration", help="Seconds per level (upper bound)."),
        prompt: Optional[str] = typer.Option(None, "--prompt", help="Prompt text (default: --prompt-words filler)."),
        prompt_words: int = typer.Option(32, "--prompt-words", help="Words of filler prompt."),
        max_tokens: int = typer.Option(64, "--max-tokens"),
        ignore_eos: bool = typer.Option(False, "--ignore-eos", help="Ask the server to always generate max_tokens (vLLM/aipc extension)."),
        temperature: float = typer.Option(0.0, "--temperature"),
        slo_ttft: Optional[float] = typer.Option(None, "--slo-ttft", help="TTFT SLO in seconds (goodput)."),
        slo_tpot: Optional[float] = typer.Option(None, "--slo-tpot", help="TPOT SLO in seconds (goodput)."),
        slo_e2e: Optional[float] = typer.Option(None, "--slo-e2e", help="End-to-end SLO in seconds (goodput)."),
        timeout: float = typer.Option(120.0, "--timeout", help="Seconds before one request counts as failed."),
        api_key: Optional[str] = typer.Option(None, "--api-key", envvar="AIPC_API_KEY", show_envvar=True),
        allow_remote: bool = typer.Option(False, "--allow-remote", help="Allow a non-loopback target."),
        seed: int = typer.Option(0, "--seed", help="Seed of the Poisson arrivals."),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
        no_store: bool = typer.Option(False, "--no-store", help="Do not save the results."),
        json_out: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
    ) -> None:
        """Measure TTFT, TPOT, ITL, latency, throughput and goodput of an OpenAI-compatible server."""
        from aipc.serve.loadtest import DEFINITIONS, LoadConfig, base_url, run, store

        if endpoint not in ("completions", "chat"):
            raise AipcError(f"--endpoint '{endpoint}': use completions or chat")
        for name, v in (("--num-requests", num_requests), ("--max-tokens", max_tokens), ("--prompt-words", prompt_words)):
            if v < 1:
                raise AipcError(f"{name} must be at least 1, got {v}")
        for name, v in (("--duration", duration), ("--timeout", timeout), ("--slo-ttft", slo_ttft),
                        ("--slo-tpot", slo_tpot), ("--slo-e2e", slo_e2e)):
            if v is not None and not v > 0:
                raise AipcError(f"{name} must be a positive number of seconds, got {v}")
        levels = _levels(concurrency, rate)
        base_url(url, allow_remote)  # refuse a remote target before doing anything
        if not no_store:
            from aipc.bench.store import ResultsDB

            ResultsDB(db)  # a bad --db (URL, password, foreign file) fails now, before the load runs
        cfg = LoadConfig(url=url, model=model, endpoint=endpoint, prompt=prompt, prompt_words=prompt_words,
                         max_tokens=max_tokens, ignore_eos=ignore_eos, temperature=temperature,
                         num_requests=num_requests, duration_s=duration, timeout_s=timeout, api_key=api_key,
                         slo_ttft_s=slo_ttft, slo_tpot_s=slo_tpot, slo_e2e_s=slo_e2e, seed=seed)
        if allow_remote:
            results = run(cfg, levels, allow_remote=True)
        else:
            from aipc.privacy.guard import offline_guard

            with offline_guard():
                results = run(cfg, levels)
        ids = [] if no_store else store(results, db)
        if json_out:
            from aipc.render import print_json

            print_json({"runs": [{k: v for k, v in r.items() if k != "samples"} for r in results],
                        "definitions": DEFINITIONS, "stored": ids})
            return
        render(results)
        if ids:
            from aipc.render import console

            from aipc.bench.dburl import redact, target

            console().print(f"stored {len(ids)} run(s) in {redact(target(db))} (see 'aipc results')")
