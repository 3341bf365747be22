"""The report's one jinja2 environment (autoescaped) and the page pieces every section shares.

Templates live in ``aipc/report/templates``: ``head.html`` (charset, Content-Security-Policy,
viewport), ``report.css`` (screen and print styles), ``page.html`` (the report), ``team.html`` (the
team page), ``macros.html`` (table, facts, figure, the "not available" box, a status cell) and
``sections/*.html`` (one per report section). Every ``{{ value }}`` is escaped by jinja2; the only
markup passed through unescaped is what a template or macro rendered, and the inline SVG of
:mod:`aipc.report.charts`, which escapes every text it draws. ``None`` renders as ``-``.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader
from markupsafe import Markup


def _dash(x: Any) -> Any:
    return "-" if x is None else x


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The shared environment: autoescape on, block lines trimmed, ``None`` shown as ``-``."""
    return Environment(loader=PackageLoader("aipc.report", "templates"), autoescape=True, trim_blocks=True,
                       lstrip_blocks=True, keep_trailing_newline=True, finalize=_dash)


def render(name: str, **context: Any) -> Markup:
    """A template rendered with ``context`` (a section body, or a whole page)."""
    return Markup(environment().get_template(name).render(**context))


def _macro(name: str):
    return getattr(environment().get_template("macros.html").module, name)


def na(why: Any) -> Markup:
    """The 'not available' box every section shows when its part could not answer."""
    return Markup(_macro("na")(why))


def figure(chart_id: str, svg: Markup, caption: str) -> Markup:
    """A chart: inline SVG (from aipc.report.charts) with its caption, findable by ``data-chart``."""
    return Markup(_macro("figure")(chart_id, svg, caption))


def table(headers: list[str], rows: Iterable[list[Any]], *, numeric: Iterable[int] = (), wrap: Iterable[int] = (),
          cls: str = "") -> Markup:
    """A table; ``numeric`` columns align right, ``wrap`` columns (URLs, long sources) may break anywhere.
    A cell is a value (escaped) or a :func:`status` dict."""
    return Markup(_macro("table")(headers, list(rows), numeric=set(numeric), wrap=set(wrap), cls=cls))


def status(kind: str, word: Any, rest: Any = "") -> dict[str, Any]:
    """A table cell with a coloured word first: kind 'yes' | 'no' | 'note' (CSS classes), then ``rest``."""
    return {"status": kind, "word": word, "rest": rest}
