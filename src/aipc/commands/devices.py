"""``aipc devices``: list the device catalog, filter it, or show one device with every source."""

from __future__ import annotations

from pathlib import Path

import typer

from aipc.errors import AipcError, unknown

UNITS = {
    "memory_bytes": "bytes", "usable_memory_bytes": "bytes", "bandwidth_bytes_s": "bytes/s",
    "peak_flops": "dense FLOP/s per dtype (OP/s for int)", "power_w": "W", "price_usd": "USD",
    "cloud.usd_per_hour": "USD per device-hour, on demand",
}


def _gib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**30:g} GiB"


def _tflops(x: float | None) -> str:
    return "-" if x is None else f"{x / 1e12:.1f}"


def _cost(spec) -> str:
    if spec.price_usd is not None:
        return f"${spec.price_usd:,.0f}"
    if spec.cloud:
        return f"${min(o.usd_per_hour for o in spec.cloud):.2f}/h"
    return "-"


def _select(catalog: dict, query: str | None, category: str | None, kind: str | None) -> list:
    from aipc.hardware.catalog import CATEGORIES, KINDS

    if category and category not in CATEGORIES:
        raise unknown("category", category, CATEGORIES, "(use --category ai-pc | workstation | datacenter)")
    if kind and kind not in KINDS:
        raise unknown("kind", kind, KINDS, "(use --kind gpu | apu | npu | cpu)")
    specs = [s for s in catalog.values()
             if (not category or s.category == category) and (not kind or s.kind == kind)]
    if query:
        q = query.lower()
        specs = [s for s in specs if q in s.name.lower() or q in s.label.lower() or q in s.vendor.lower()]
    return specs


def _console():
    from aipc.render import console

    con = console()
    if not con.is_terminal:
        con.width = 200  # files and pipes: do not wrap ids and labels at 80 columns
    return con


def _print_table(specs: list) -> None:
    from rich.table import Table

    table = Table(title=f"{len(specs)} devices (dense peaks; memory in GiB; sources: aipc devices NAME)")
    for col, just in [("name", "left"), ("label", "left"), ("kind", "left"), ("memory", "right"),
                      ("GB/s", "right"), ("bf16 TFLOP/s", "right"), ("fp32 TFLOP/s", "right"),
                      ("int8 TOPS", "right"), ("power W", "right"), ("price or $/h", "right")]:
        table.add_column(col, justify=just, no_wrap=col == "name")
    for s in specs:
        table.add_row(s.name, s.label, s.kind, _gib(s.memory_bytes), f"{s.bandwidth_bytes_s / 1e9:g}",
                      _tflops(s.peak("bf16")), _tflops(s.peak_flops.get("fp32")),
                      _tflops(s.peak_flops.get("int8")), "-" if s.power_w is None else f"{s.power_w:g}",
                      _cost(s))
    _console().print(table)


def _print_one(spec) -> None:
    from rich.table import Table

    con = _console()
    con.print(f"[bold]{spec.label}[/bold]  ({spec.name}; {spec.vendor} {spec.kind}, {spec.category})")
    table = Table(show_lines=False)
    for col in ("field", "value", "source", "as_of"):
        table.add_column(col, overflow="fold")
    rows = [("memory", _gib(spec.memory_bytes), "memory_bytes"),
            ("usable memory", _gib(spec.usable_memory_bytes), "usable_memory_bytes"),
            ("bandwidth", f"{spec.bandwidth_bytes_s / 1e9:g} GB/s", "bandwidth_bytes_s")]
    rows += [(f"peak {d}", f"{v / 1e12:g} T{'OP' if d.startswith('int') else 'FLOP'}/s dense", f"peak_flops.{d}")
             for d, v in spec.peak_flops.items()]
    if spec.power_w is not None:
        rows.append(("power", f"{spec.power_w:g} W", "power_w"))
    if spec.price_usd is not None:
        rows.append(("price", f"${spec.price_usd:,.0f}", "price_usd"))
    for label, value, field in rows:
        src = spec.sources.get(field)
        table.add_row(label, value, src.source if src else "-", src.as_of if src else "-")
    con.print(table)
    if spec.cloud:
        offers = Table(title="cloud, on demand")
        for col in ("provider", "instance", "$/device-hour", "source", "as_of"):
            offers.add_column(col, overflow="fold")
        for o in sorted(spec.cloud, key=lambda o: o.usd_per_hour):
            inst = f"{o.instance or '-'}" + (f" ({o.devices_per_instance} devices)" if o.devices_per_instance > 1 else "")
            offers.add_row(o.provider, inst, f"{o.usd_per_hour:.3f}", o.source, o.as_of)
        con.print(offers)
    if spec.notes:
        con.print(f"notes: {spec.notes}")


def register(app: typer.Typer) -> None:
    @app.command("devices", help="Device catalog: memory, bandwidth, dense peaks, power and price, each with its source.")
    def devices(
        query: str = typer.Argument(None, help="A device id or label to show with all sources, or a substring to filter by."),
        category: str = typer.Option(None, "--category", help="ai-pc | workstation | datacenter | this-machine"),
        kind: str = typer.Option(None, "--kind", help="gpu | apu | npu | cpu"),
        catalog: list[Path] = typer.Option(None, "--catalog", help="Extra device file (TOML or JSON, catalog schema); repeatable. Also read from AIPC_DEVICES."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object: every number with its source and as_of."),
    ) -> None:
        from aipc.hardware.catalog import device_to_dict, load_catalog, match_device
        from aipc.render import print_json

        cat = load_catalog(catalog)
        one = match_device(cat, query) if query else None
        if one is not None:
            if as_json:
                print_json({"device": device_to_dict(one), "units": UNITS})
            else:
                _print_one(one)
            return
        specs = _select(cat, query, category, kind)
        if query and not specs:
            raise unknown("device", query, list(cat), "(see 'aipc devices' for the list, or add it with --catalog FILE)")
        if not specs:
            raise AipcError("no device matches these filters; drop --category/--kind to see the whole catalog")
        if as_json:
            print_json({"devices": [device_to_dict(s) for s in specs], "count": len(specs), "units": UNITS})
        else:
            _print_table(specs)
