"""Options shared by ``aipc results --compare`` and ``aipc report --team``: the reference machine and
what each machine costs (``--price``/``--rent`` MACHINE=USD, ``--utilization``)."""

from __future__ import annotations

from typing import Optional

import typer

from aipc.commands.decide import _pair

REFERENCE = typer.Option(None, "--reference", metavar="MACHINE",
                         help="Speedup R against this machine (host name or fingerprint prefix); "
                              "default: the machine that measured the most rows.")
PRICE = typer.Option(None, "--price", metavar="MACHINE=USD",
                     help="Purchase price of a machine, for $ per 1M tokens (default: its GPUs' catalog price); repeatable.")
RENT = typer.Option(None, "--rent", metavar="MACHINE=USD_PER_HOUR",
                    help="Rent per hour of a rented machine (power included); repeatable.")
UTILIZATION = typer.Option(1.0, "--utilization",
                           help="Share of hours an owned machine is busy, in (0, 1] (default 1: the lowest cost per token).")


def machine_prices(prices: Optional[list[str]], rents: Optional[list[str]]) -> tuple[dict, dict]:
    """--price and --rent flags as {machine: US dollars} and {machine: US dollars per hour}."""
    return (dict(_pair(p, "--price", "laptop=1800") for p in prices or []),
            dict(_pair(r, "--rent", "gpu-box=2.10") for r in rents or []))
