"""Money, percentages and durations in words, for the recommendation and the table."""

from __future__ import annotations

import math

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CNY": "¥", "INR": "₹"}


def money(x: float | None, currency: str = "USD", digits: int | None = None) -> str:
    """'$1,999', '$0.69', '€12.3k'-free plain form; '-' for None, 'never' for inf."""
    if x is None:
        return "-"
    if not math.isfinite(x):
        return "never"
    sym = SYMBOLS.get(currency.upper())
    if digits is None:
        digits = 2 if abs(x) < 100 else 0
    body = f"{abs(x):,.{digits}f}"
    sign = "-" if x < 0 else ""
    return f"{sign}{sym}{body}" if sym else f"{sign}{body} {currency}"


def pct(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "-"
    if not math.isfinite(x):
        return "never"
    return f"{x * 100:.{digits}f}%"


def months(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "never"
    return f"{x:.1f} months" if x < 24 else f"{x / 12:.1f} years"


def factor(x: float) -> str:
    """1.0 -> 'x1', 0.37 -> 'x0.37'."""
    return f"x{x:.3g}"
