"""What a busy hour of each team machine costs, and its $ per 1M tokens at the speed it measured.

The formulas of ``aipc decide`` (:mod:`aipc.cost.tco`) with its default assumptions
(:mod:`aipc.cost.defaults`), in US dollars:

    owned:   fixed per busy hour = capex·(1 − residual) / (horizon hours · u) + ops per month / (730 · u)
    rented:  fixed per busy hour = the rent per hour (power included)
    energy (owned) per token = measured joules per token where the run metered them, else the catalog
             board power / tokens per second; · PUE · $ per kWh
    $ per 1M tokens = fixed per busy hour / (tokens/s · 3600) · 1e6 + energy of 1M tokens

u is the utilization (``utilization``, default 1: every hour busy, the lowest cost a machine reaches).
The price of a machine: ``rents[machine]`` ($/h) or ``prices[machine]`` ($), else the catalog price
of its GPUs (matched by model name) plus a host PC per workstation card (``host_per_gpu_card``); a
machine with none of these gets no $ figure, and the reason. Import-light (no torch).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from aipc.cost import defaults as D
from aipc.cost import tco
from aipc.errors import AipcError

J_PER_KWH = 3.6e6


@dataclass(frozen=True, kw_only=True)
class MachineCost:
    machine: str
    kind: str                       # owned | rented | unknown
    fixed_per_hour: float | None    # USD per busy hour without energy (rent: everything)
    power_w: float | None           # catalog board power of its GPUs (None: not known)
    pue: float
    source: str


def _a(field: str):
    return D.ASSUMPTIONS[field].value


def _gpus(units: list[dict], catalog: dict) -> list:
    """The catalog entries of the machine's GPUs (matched by model name)."""
    from aipc.hardware.local import match_gpu

    found = []
    for u in units:
        if u["device"] != "cpu" and u.get("device_model"):
            spec = match_gpu(u["device_model"], None, catalog)
            if spec is not None:
                found.append(spec)
    return found


def _catalog_terms(specs: list) -> tuple[float, float, float | None, str, bool]:
    """(capex, rent per hour, power, source, datacenter) of catalog GPUs: bought at the catalog price
    (+ a host PC per workstation card), else rented at the cheapest catalog cloud offer."""
    capex, rent, power, parts = 0.0, 0.0, 0.0, []
    for spec in specs:
        power = None if power is None or spec.power_w is None else power + spec.power_w
        if spec.price_usd is not None:
            host = _a("host_per_gpu_card") if (spec.kind == "gpu" and spec.category == "workstation") else 0.0
            capex += spec.price_usd + host
            src = spec.sources.get("price_usd")
            parts.append(f"{spec.label} ${spec.price_usd:,.0f}" + (f" (catalog: {src.source}, {src.as_of})" if src else "")
                         + (f" + ${host:,.0f} host PC (host_per_gpu_card)" if host else ""))
        elif spec.cloud:
            o = min(spec.cloud, key=lambda x: x.usd_per_hour)
            rent += o.usd_per_hour
            parts.append(f"{spec.label} rented at ${o.usd_per_hour:g}/h ({o.provider}, catalog: {o.source}, {o.as_of})")
    datacenter = any(s.category == "datacenter" for s in specs)
    return capex, rent, power or None, "; ".join(parts), datacenter


def machine_cost(machine: str, units: list[dict], *, price: float | None, rent: float | None, utilization: float,
                 catalog: dict) -> MachineCost:
    if rent is not None:
        return MachineCost(machine=machine, kind="rented", fixed_per_hour=rent, power_w=None, pue=_a("pue_desk"),
                           source=f"--rent {machine}={rent:g} $/h (power included)")
    capex, catalog_rent, power, src, dc = _catalog_terms(_gpus(units, catalog))
    pue = _a("pue_datacenter") if dc else _a("pue_desk")
    if price is not None:
        capex, catalog_rent, src = price, 0.0, f"--price {machine}={price:g} $"
    elif not src:
        return MachineCost(machine=machine, kind="unknown", fixed_per_hour=None, power_w=None, pue=pue,
                           source=f"no price: the catalog prices none of its devices; pass --price {machine}=USD "
                                  f"or --rent {machine}=USD_PER_HOUR")
    if capex == 0.0 and catalog_rent:
        return MachineCost(machine=machine, kind="rented", fixed_per_hour=catalog_rent, power_w=None, pue=pue,
                           source=src + " (power included)")
    fixed = tco.amortized_per_hour(capex, _a("residual_fraction"), _a("horizon_months"), utilization, 0.0,
                                   _a("ops_per_month")) + catalog_rent
    return MachineCost(machine=machine, kind="owned", fixed_per_hour=fixed, power_w=power, pue=pue,
                       source=f"{src}; over {_a('horizon_months')} months at {utilization:.0%} utilization")


def per_mtok(cost: MachineCost, tokens_per_s: float | None, energy_per_token_j: float | None) -> dict:
    """$ per 1M tokens of one cell and how its energy was counted."""
    if cost.fixed_per_hour is None or not tokens_per_s:
        return {"usd_per_mtok": None, "energy": None}
    fixed = tco.per_million(cost.fixed_per_hour, tokens_per_s * 3600.0)
    if cost.kind == "rented":
        return {"usd_per_mtok": fixed, "energy": "in the rent"}
    price_kwh = _a("electricity_per_kwh")
    if energy_per_token_j:
        energy, how = energy_per_token_j * 1e6 / J_PER_KWH * cost.pue * price_kwh, "measured"
    elif cost.power_w:
        energy = tco.per_million(tco.energy_per_hour(cost.power_w, cost.pue, price_kwh), tokens_per_s * 3600.0)
        how = "catalog board power"
    else:
        energy, how = 0.0, "not counted (power unknown)"
    return {"usd_per_mtok": fixed + energy, "energy": how}


def _check(pairs: dict[str, float] | None, flag: str, machines: list[str]) -> dict[str, float]:
    out = {}
    for m, v in (pairs or {}).items():
        if m not in machines:
            raise AipcError(f"{flag} {m}=...: no machine {m!r} in the results; machines: {', '.join(machines)}")
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise AipcError(f"{flag} {m}={v}: must be a finite number >= 0 (US dollars)")
        out[m] = float(v)
    return out


def add_costs(table: dict, *, prices: dict[str, float] | None = None, rents: dict[str, float] | None = None,
              utilization: float = 1.0, catalog: dict | None = None) -> dict:
    """``table`` (aipc.bench.team.team_table) with ``usd_per_mtok`` in every cell and ``costs`` per machine."""
    if not (isinstance(utilization, (int, float)) and 0 < utilization <= 1):
        raise AipcError(f"--utilization must be a number in (0, 1] (got {utilization}); 0.25 = busy a quarter of the time")
    prices, rents = _check(prices, "--price", table["machines"]), _check(rents, "--rent", table["machines"])
    if catalog is None:
        from aipc.hardware.catalog import load_catalog

        catalog = load_catalog()
    costs = {m: machine_cost(m, [u for u in table["units"] if u["machine"] == m], price=prices.get(m),
                             rent=rents.get(m), utilization=utilization, catalog=catalog) for m in table["machines"]}
    by_unit = {u["unit"]: u["machine"] for u in table["units"]}
    for row in table["rows"]:
        for unit, cell in row["cells"].items():
            cell.update(per_mtok(costs[by_unit[unit]], cell.get("tokens_per_s"), cell.get("energy_per_token_j")))
    assumptions = {k: {"value": _a(k), "source": D.ASSUMPTIONS[k].source} for k in
                   ("horizon_months", "residual_fraction", "electricity_per_kwh", "pue_desk", "ops_per_month",
                    "host_per_gpu_card")}
    assumptions["utilization"] = {"value": utilization, "source": "--utilization (default 1: every hour busy, "
                                                                  "the lowest cost per token a machine reaches)"}
    return {**table, "costs": {m: asdict(c) for m, c in costs.items()}, "currency": "USD", "assumptions": assumptions}
