"""Total cost of ownership and cloud rent: one small function per formula, the formula in its docstring.

Money is in one currency throughout (the needs file's); time in hours unless a name says seconds;
power in watts; energy in kWh. The central formula (FIELD-NOTES, "Cost facts"):

    amortized cost per busy hour = capex·(1 − residual) / (hours in horizon · utilization)
                                   + kW · PUE · price per kWh + ops

aipc's ``ops`` is a fixed amount per month (admin, space, support), so it is spread over busy
hours like the capex; a per-busy-hour ops cost can be folded into the electricity price.
"""

from __future__ import annotations

import math

from aipc.cost.defaults import HOURS_PER_MONTH

INF = math.inf


def horizon_hours(horizon_months: float) -> float:
    """H = months · 730 (8760 h a year over 12 months)."""
    return horizon_months * HOURS_PER_MONTH


def capex_per_month(capex: float, residual_fraction: float, horizon_months: float) -> float:
    """Straight-line write-off: capex · (1 − residual) / months."""
    return capex * (1.0 - residual_fraction) / horizon_months


def energy_per_hour(power_w: float | None, pue: float, price_per_kwh: float) -> float:
    """Electricity of one busy hour: (W / 1000) · PUE · price per kWh (0 when the power is unknown)."""
    return 0.0 if not power_w else power_w / 1000.0 * pue * price_per_kwh


def kwh(power_w: float | None, pue: float, hours: float) -> float | None:
    """Energy drawn from the grid: (W / 1000) · PUE · hours (None when the power is unknown)."""
    return None if not power_w else power_w / 1000.0 * pue * hours


def amortized_per_hour(capex: float, residual_fraction: float, horizon_months: float, utilization: float,
                       energy_per_h: float, ops_per_month: float = 0.0) -> float:
    """Cost of one busy hour of an owned device:

        capex·(1 − r) / (H · u) + energy per hour + ops_per_month / (730 · u),  H = months · 730
    """
    if utilization <= 0:
        return INF
    fixed = capex * (1.0 - residual_fraction) / horizon_hours(horizon_months) + ops_per_month / HOURS_PER_MONTH
    return fixed / utilization + energy_per_h


def break_even_utilization(capex: float, residual_fraction: float, horizon_months: float, energy_per_h: float,
                           cloud_per_hour: float, ops_per_month: float = 0.0, cloud_hours_per_owned_hour: float = 1.0
                           ) -> float:
    """The utilization u at which owning costs what renting costs for the same work:

        capex·(1 − r)/(H·u) + ops/(730·u) + e = c · k   ⇒   u = (capex·(1 − r)/H + ops/730) / (c·k − e)

    c is the cloud price per device-hour, k the cloud device-hours the same work takes per owned busy
    hour (1 for the same device; 0.5 if the cloud device is twice as fast). inf when c·k <= e
    (renting is cheaper than the electricity alone); above 1 means owning never pays within the horizon.
    """
    margin = cloud_per_hour * cloud_hours_per_owned_hour - energy_per_h
    fixed = capex * (1.0 - residual_fraction) / horizon_hours(horizon_months) + ops_per_month / HOURS_PER_MONTH
    if fixed <= 0:
        return 0.0
    return INF if margin <= 0 else fixed / margin


def payback_months(capex: float, cloud_per_month: float, owned_running_per_month: float) -> float:
    """Months until the purchase is paid back by the rent it saves:

        capex / (cloud cost per month − owned running cost per month)   (inf when nothing is saved)

    Resale value is not counted (a conservative payback)."""
    saving = cloud_per_month - owned_running_per_month
    if capex <= 0:
        return 0.0
    return INF if saving <= 0 else capex / saving


def per_million(amount: float, tokens: float) -> float | None:
    """amount · 1e6 / tokens (None for no tokens)."""
    return None if tokens <= 0 else amount * 1e6 / tokens


def rented_device_hours(devices: int, devices_per_instance: int, hours: float) -> float:
    """Device-hours paid: whole instances, ceil(n / k) · k · hours."""
    return math.ceil(devices / devices_per_instance) * devices_per_instance * hours


def replicas_needed(peak_requests_per_s: float, requests_per_s_per_replica: float) -> int:
    """ceil(peak / capacity of one replica), at least 1."""
    if requests_per_s_per_replica <= 0:
        return 0
    return max(1, math.ceil(peak_requests_per_s / requests_per_s_per_replica - 1e-9))


def requests_per_s(batch: int, request_s: float) -> float:
    """Throughput of one replica serving ``batch`` requests at a time: batch / request time."""
    return batch / request_s if request_s > 0 else 0.0
