"""What would flip the answer: the cheapest feasible option as demand, prices and horizon change.

Each parameter is scanned over a grid (multipliers of today's value; months for the horizon); where
the cheapest option changes between two grid points, the crossing is found by bisection on the cost
difference of the two options. Costs are re-computed from the cached performance (no estimator
calls), so a scan costs milliseconds.
"""

from __future__ import annotations

import math

from aipc.cost import fmt
from aipc.cost.candidates import Candidate
from aipc.cost.costing import Scenario, cost_candidate
from aipc.cost.needs import Needs
from aipc.cost.result import Flip, SensitivityRow

# parameter -> (meaning, grid of multipliers or None for months, how to say it)
PARAMS: dict[str, tuple[str, tuple[float, ...] | None, str]] = {
    "demand": ("jobs per month and requests per day, as a multiple of the needs file's (utilization follows)",
               (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 10.0), "demand"),
    "cloud_price": ("every cloud price per hour, as a multiple of the catalog's", (0.25, 0.5, 0.75, 1.0, 1.5, 2.0),
                    "cloud prices"),
    "purchase_price": ("every purchase price, as a multiple of the catalog's", (0.5, 0.75, 1.0, 1.5, 2.0, 3.0),
                       "purchase prices"),
    "electricity": ("electricity price, as a multiple of the needs file's", (0.5, 1.0, 2.0, 4.0), "electricity prices"),
    "horizon_months": ("months over which a purchase is written off", None, "the horizon"),
}
HORIZONS = (6.0, 12.0, 24.0, 36.0, 48.0, 60.0)


def _scenario(param: str, x: float) -> Scenario:
    if param == "horizon_months":
        return Scenario(horizon_months=x)
    return Scenario(**{param: x})


class _Scanner:
    def __init__(self, cands: list[Candidate], perfs: list[list], needs: Needs):
        self.cands, self.perfs, self.needs = cands, perfs, needs

    def cost(self, i: int, param: str, x: float) -> float:
        core = cost_candidate(self.cands[i], self.perfs[i], self.needs, _scenario(param, x))
        return core.total_per_month if core.feasible else math.inf

    def cheapest(self, param: str, x: float) -> tuple[int | None, float | None]:
        best, best_cost = None, math.inf
        for i in range(len(self.cands)):
            c = self.cost(i, param, x)
            if c < best_cost:
                best, best_cost = i, c
        return best, (best_cost if best is not None else None)

    def crossing(self, param: str, lo: float, hi: float, a: int, b: int) -> float:
        """The value in (lo, hi) where option b starts to beat option a (a cheapest at lo, b at hi)."""
        geometric = param != "horizon_months"
        for _ in range(40):
            mid = math.sqrt(lo * hi) if geometric else (lo + hi) / 2
            if self.cost(b, param, mid) < self.cost(a, param, mid):
                hi = mid
            else:
                lo = mid
        return math.sqrt(lo * hi) if geometric else (lo + hi) / 2


def _sentence(param: str, at: float, base: float, to_label: str, to_cost: float | None, currency: str) -> str:
    meaning = PARAMS[param][2]
    cost = f" ({fmt.money(to_cost, currency)}/month there)" if to_cost is not None else ""
    if param == "horizon_months":
        side = "shorter than" if at < base else "longer than"
        return f"With a horizon {side} {at:.1f} months, {to_label} would be cheapest{cost}."
    verb = "fell below" if at < base else "rose above"
    return f"If {meaning} {verb} {at:.2g}x today's, {to_label} would be cheapest{cost}."


def scan(cands: list[Candidate], perfs: list[list], needs: Needs) -> tuple[list[SensitivityRow], list[Flip]]:
    """The sensitivity table and the flips nearest to today's values (one below, one above per parameter)."""
    s = _Scanner(cands, perfs, needs)
    cur = needs.assumptions.currency
    rows: list[SensitivityRow] = []
    flips: list[Flip] = []
    for param, (meaning, grid, _) in PARAMS.items():
        base = needs.assumptions.horizon_months if param == "horizon_months" else 1.0
        values = sorted(set(HORIZONS if grid is None else grid) | {base})
        winners = [s.cheapest(param, x) for x in values]
        rows.append(SensitivityRow(
            parameter=param, meaning=meaning, values=values,
            cheapest=[None if w is None else cands[w].id for w, _ in winners],
            cheapest_label=[None if w is None else cands[w].label for w, _ in winners],
            cost_per_month=[c for _, c in winners]))
        k = values.index(base)
        base_w = winners[k][0]
        if base_w is None:
            continue
        # nearest change below and above today's value
        for direction in (-1, 1):
            j = k
            while 0 <= j + direction < len(values) and winners[j + direction][0] == base_w:
                j += direction
            nxt = j + direction
            if not 0 <= nxt < len(values) or winners[nxt][0] is None:
                continue
            other = winners[nxt][0]
            lo, hi = sorted((values[j], values[nxt]))
            a, b = (other, base_w) if direction < 0 else (base_w, other)
            at = s.crossing(param, lo, hi, a, b)
            probe = at * (0.99 if direction < 0 else 1.01) if param != "horizon_months" else at + direction * 0.05
            flips.append(Flip(parameter=param, at=at, base=base, from_id=cands[base_w].id, to_id=cands[other].id,
                              to_label=cands[other].label,
                              sentence=_sentence(param, at, base, cands[other].label, s.cost(other, param, probe), cur)))
    return rows, flips
