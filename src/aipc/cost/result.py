"""Typed results of ``aipc decide`` — the Python API returns these; ``--json`` prints them as they are.

Money is in ``Decision.currency``; times in seconds; energy in kWh; ``*_per_mtok`` is per million
tokens (training: trained tokens; inference: prompt + output tokens). ``None`` (JSON null) means not
applicable or never (e.g. a break-even that never comes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aipc.cost.costing import WorkloadCost


@dataclass(frozen=True, kw_only=True)
class BreakEven:
    """An owned candidate against one cloud offer, for the same demand."""

    vs: str                          # cloud candidate id
    vs_label: str
    cloud_per_month: float           # what the offer would cost per month for the demand
    cloud_billed_device_hours: float # per month, as billed (whole instances, always-on floor)
    cloud_work_device_hours: float   # per month, the work alone
    months: float | None             # payback: capex / (cloud per month − owned running cost); None: never
    utilization: float | None        # by the hour (FIELD-NOTES formula): owning beats renting this offer for
                                     # the same work above this utilization; None: never (>= 1)


@dataclass(frozen=True, kw_only=True)
class CandidateResult:
    id: str
    kind: str                        # buy | owned | cloud
    device: str
    label: str
    provider: str | None
    feasible: bool
    reasons: list[str]               # why not feasible (empty when feasible)
    miss: float | None               # how far from feasible (1 = feasible); None: not reachable (policy, no data)
    devices: int                     # owned: devices to own; cloud: most devices rented at once
    price_source: str
    capex: float                     # total purchase (owned); 0 for cloud
    per_hour: float | None           # cloud: price per device-hour
    capex_per_month: float
    ops_per_month: float
    energy_per_month: float
    rent_per_month: float
    cost_per_month: float | None     # total; None when infeasible
    utilization: float | None        # owned: busy hours / available hours (or the given utilization)
    amortized_per_hour: float | None # owned: FIELD-NOTES cost of one busy device-hour at that utilization
    busy_device_hours_per_month: float
    cost_per_mtok_train: float | None
    cost_per_mtok_infer: float | None
    kwh_per_month: float | None
    kwh_per_mtok_train: float | None
    kwh_per_mtok_infer: float | None
    throughput_source: str           # "estimated" | "measured (n runs)" | "mixed: ..."
    workloads: list[WorkloadCost]
    break_even: list[BreakEven] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Pick:
    role: str                        # cheapest | fastest | on_prem
    id: str
    label: str
    cost_per_month: float
    reasons: list[str]


@dataclass(frozen=True, kw_only=True)
class Flip:
    parameter: str
    at: float                        # the parameter value where the cheapest option changes
    base: float
    from_id: str
    to_id: str
    to_label: str
    sentence: str


@dataclass(frozen=True, kw_only=True)
class SensitivityRow:
    parameter: str                   # demand | cloud_price | purchase_price | electricity | horizon_months
    meaning: str
    values: list[float]
    cheapest: list[str | None]       # candidate id at each value (None: nothing feasible)
    cheapest_label: list[str | None]
    cost_per_month: list[float | None]


@dataclass(frozen=True, kw_only=True)
class Assumption:
    field: str
    value: Any
    given: bool                      # set by the needs file or a flag (else the default below)
    meaning: str
    source: str
    as_of: str


@dataclass(frozen=True, kw_only=True)
class Decision:
    currency: str
    feasible: bool                   # at least one candidate meets every need
    recommendation: str              # plain words, one paragraph per pick
    picks: dict[str, Pick]           # cheapest, fastest, on_prem (absent where none is feasible)
    candidates: list[CandidateResult]  # feasible by cost, then infeasible by closeness
    closest_misses: list[CandidateResult]  # the nearest infeasible candidates (shown when none is feasible)
    per_workload: list[dict[str, Any]]     # cheapest feasible candidate for each workload alone
    sensitivity: list[SensitivityRow]
    flips: list[Flip]
    assumptions: list[Assumption]
    throughput: str                  # how many speeds were measured vs estimated
    warnings: list[str]
    needs: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        from aipc.render import to_jsonable

        return {k: to_jsonable(v) for k, v in self.__dict__.items()}
