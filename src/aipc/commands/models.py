"""``aipc models``: list the model catalog, filter it, or show one model's full spec and breakdown.

``aipc models`` lists every catalog model; ``aipc models qwen3`` filters by substring (name, HF id or
model type); ``aipc models NAME`` (a short name, HF id, config.json or model folder) shows one model.
``--json`` prints one object: ``{"models": [...]}`` for a list, ``{"model": {...}}`` for one model.
No torch or transformers are imported.
"""

from __future__ import annotations

from typing import Any, Optional

import typer


def _count(n: int | None) -> str:
    """1_235_814_400 -> '1.24B', 124_439_808 -> '124M', 405_853_388_800 -> '406B'."""
    if n is None:
        return "-"
    if n >= 99.95e9:
        return f"{n / 1e9:.0f}B"
    if n >= 999.5e6:
        return f"{n / 1e9:.3g}B"
    return f"{n / 1e6:.3g}M" if n >= 1e6 else str(n)


def _kind(s) -> str:
    if not s.is_decoder:
        return "encoder"
    return f"moe {s.experts_per_token}/{s.num_experts}" if s.is_moe else "dense"


def row(s, entry: dict[str, Any] | None = None) -> dict[str, Any]:
    """The list view of one model (stable keys; counts in parameters, context in tokens)."""
    e = entry or {}
    return {
        "name": s.name, "hf_id": s.hf_id, "model_type": s.model_type, "kind": _kind(s),
        "params": s.param_count(), "active_params": s.active_param_count(),
        "published_params": s.published_params, "published_active_params": s.published_active_params,
        "layers": s.num_layers, "hidden_size": s.hidden_size, "heads": s.num_heads, "kv_heads": s.num_kv_heads,
        "head_dim": s.head_dim, "intermediate_size": s.intermediate_size, "vocab_size": s.vocab_size,
        "context_tokens": s.max_position, "tie_embeddings": s.tie_embeddings,
        "sliding_window": s.sliding_window, "sliding_layers": s.sliding_layers,
        "experts": s.num_experts, "experts_per_token": s.experts_per_token,
        "attention": "mla" if s.kv_lora_rank else ("mha" if s.num_kv_heads == s.num_heads else
                                                   "mqa" if s.num_kv_heads == 1 else "gqa"),
        "source": s.source, "published_source": e.get("published_source"), "as_of": e.get("as_of"),
    }


def detail(s, entry: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one-model view: the list row, every spec field, the parameter breakdown and module shapes."""
    from aipc.render import to_jsonable

    fields = {k: v for k, v in to_jsonable(s).items() if k != "config"}
    return {
        **row(s, entry),
        "spec": fields,
        "param_breakdown": s.param_breakdown(),
        "linear_modules": {k: list(v) for k, v in s.linear_modules().items()},
        "expert_matrices": {k: list(v) for k, v in s.expert_matrices().items()},
        "kv_bytes_per_token_16bit": s.kv_bytes_per_token(2),
        "weight_bytes": s.weight_bytes, "weight_dtypes": s.weight_dtypes,
        "config": s.config,
    }


def _lookup(query: str):
    """(spec, catalog entry or None) when ``query`` names one model (catalog or path), else None."""
    from pathlib import Path

    from aipc.models import catalog
    from aipc.models.load import resolve

    e = catalog.find_entry(query)
    if e is not None:
        return catalog.spec_from_entry(e), e
    if Path(query).expanduser().exists() or query.endswith(".json"):
        return resolve(query), None
    return None


def _ctx(n: int) -> str:
    """131072 -> '128k' (k = 1024 tokens), 1000 -> '1000'."""
    return f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else str(n)


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich import box
    from rich.table import Table

    from aipc.render import console

    c = console()
    cols = ["name", "params", "active", "layers", "hidden", "q/kv", "vocab", "ctx", "type"]
    if c.width >= 120:
        cols.append("HF id")
    t = Table(title=f"{len(rows)} models (params from the config's formula; active = touched per token)",
              box=box.SIMPLE_HEAD, padding=(0, 0), show_edge=False)
    for col in cols:
        t.add_column(col, no_wrap=True, justify="left" if col in ("name", "type", "HF id", "q/kv") else "right")
    for r in rows:
        cells = [r["name"], _count(r["params"]), _count(r["active_params"]) if r["experts"] else "",
                 str(r["layers"]), str(r["hidden_size"]), f"{r['heads']}/{r['kv_heads']}", str(r["vocab_size"]),
                 _ctx(r["context_tokens"]), r["kind"], r["hf_id"] or "-"]
        t.add_row(*cells[: len(cols)])
    c.print(t)


def _print_detail(d: dict[str, Any]) -> None:
    from rich.table import Table

    from aipc.render import console, gb

    c = console()
    c.print(f"[bold]{d['name']}[/bold]  {d['hf_id'] or ''}  ({d['model_type']}, {d['kind']}, {d['attention']})")
    c.print(f"params {d['params']:,} (active per token {d['active_params']:,}); "
            f"published {_count(d['published_params'])} — {d['published_source'] or '-'}")
    c.print(f"config: {d['source'] or '-'}")
    spec = Table(title="architecture")
    spec.add_column("field")
    spec.add_column("value")
    for k, v in d["spec"].items():
        if v not in (None, {}, 0, False) or k in ("tie_embeddings", "is_decoder"):
            spec.add_row(k, str(v))
    c.print(spec)
    bd = Table(title="parameters by part")
    bd.add_column("part")
    bd.add_column("params", justify="right")
    bd.add_column("share", justify="right")
    total = d["param_breakdown"]["total"]
    for k, v in d["param_breakdown"].items():
        bd.add_row(k, f"{v:,}", f"{100 * v / total:.1f}%")
    c.print(bd)
    mods = Table(title="linear modules (LoRA targets): in -> out, count")
    for col in ("module", "in", "out", "count"):
        mods.add_column(col, justify="left" if col == "module" else "right")
    for k, (i, o, n) in {**d["linear_modules"], **d["expert_matrices"]}.items():
        mods.add_row(k, str(i), str(o), str(n))
    c.print(mods)
    c.print(f"KV cache per token (16-bit, all layers, whole sequence): {d['kv_bytes_per_token_16bit'] / 1024:.1f} KiB")
    if d["weight_bytes"] is not None:
        c.print(f"weights on disk (safetensors headers): {gb(d['weight_bytes'], 3)}  {d['weight_dtypes']}")


def register(app: typer.Typer) -> None:
    @app.command("models")
    def models(
        query: Optional[str] = typer.Argument(
            None, help="A model (short name, HF id, config.json or folder) to show, or a substring to filter by."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
        here: bool = typer.Option(False, "--here", help="Rank every catalog model x installed engine x weight format "
                                  "for this machine: memory, largest context, tokens/s and where each figure comes from."),
        device: Optional[str] = typer.Option(None, "--device", "-d", help="As --here, for a catalog device (see 'aipc devices')."),
        task: Optional[str] = typer.Option(None, "--task", help="With --here/--device: chat, code or embedding."),
        min_tps: Optional[float] = typer.Option(None, "--min-tps", help="With --here/--device: at least this many decode tokens/s."),
        min_context: Optional[int] = typer.Option(None, "--min-context", help="With --here/--device: a largest context of at least this many tokens."),
        engine: Optional[str] = typer.Option(None, "--engine", help="With --here/--device: only these engines (comma-separated; default every installed one)."),
        kv_dtype: Optional[str] = typer.Option(None, "--kv-dtype", help="With --here/--device: KV cache precision (default: the engine's)."),
        db: Optional[str] = typer.Option(None, "--db", help="With --here: the results database whose runs of this machine count as measured."),
    ) -> None:
        """List the model catalog, filter it, or show one model's spec and parameter breakdown; with --here
        (or --device NAME), what runs on this machine (that device), ranked."""
        from aipc.errors import unknown
        from aipc.models import catalog
        from aipc.render import print_json

        if here or device or any(v is not None for v in (task, min_tps, min_context, engine, kv_dtype, db)):
            from aipc.commands.models_here import run

            return run(query=query, here=here, device=device, task=task, min_tps=min_tps, min_context=min_context,
                       engine=engine, kv_dtype=kv_dtype, db=db, as_json=as_json)
        if query:
            one = _lookup(query)
            if one is not None:
                d = detail(*one)
                print_json({"model": d}) if as_json else _print_detail(d)
                return
        pairs = list(zip(catalog.all_specs(), catalog.entries()))
        if query:
            q = query.lower()
            pairs = [(s, e) for s, e in pairs if q in s.name.lower() or q in (s.hf_id or "").lower()
                     or q in s.model_type.lower()]
            if not pairs:
                raise unknown("model", query, catalog.names(), catalog.UNKNOWN_FIX)
        rows = [row(s, e) for s, e in pairs]
        print_json({"models": rows}) if as_json else _print_table(rows)
