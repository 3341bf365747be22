"""The needs file: what a team runs (training jobs, inference demand) and its cost assumptions.

TOML (or JSON), every field optional except the demand itself; defaults and their sources live in
:mod:`aipc.cost.defaults`. ``load_needs(path_or_text)`` -> :class:`Needs` (validated); bad input is
one :class:`~aipc.errors.AipcError` line naming the field and the fix. Overrides (``--set``,
``--price``, ``--rate``, ``--overrides FILE``) are merged into the raw dict before validation, so
they obey the same rules. Import-light: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aipc.cost import defaults as D
from aipc.cost.checks import bool_ as _bool
from aipc.cost.checks import names as _names
from aipc.cost.checks import num as _num
from aipc.cost.checks import table as _table
from aipc.cost.checks import text as _text
from aipc.cost.checks import unknown_key as _unknown_key
from aipc.datafile import format_of, parse, read_text, tomllib
from aipc.errors import AipcError
from aipc.spec import Workload, workload_from_dict

TOP_KEYS = {"currency", "usd_per_unit", "on_prem_required", "assumptions", "jobs", "inference", "prices",
            "cloud", "candidates"}
CANDIDATE_KEYS = {"devices", "exclude", "buy", "owned", "cloud", "replace_cloud"}
CLOUD_KEYS = {"device", "provider", "per_hour", "per_instance_hour", "devices_per_instance", "instance"}
DAYS_PER_MONTH = 365 / 12
USD_DEFAULTS = ("electricity_per_kwh", "host_per_gpu_card")  # defaults quoted in US dollars


@dataclass(frozen=True, kw_only=True)
class TrainJob:
    name: str
    model: str
    method: str
    train_tokens: int
    jobs_per_month: float
    deadline_hours: float | None
    seq_len: int
    batch_size: int
    precision: str | None
    grad_ckpt: bool | None            # None: 'auto' (only where it would not fit without)
    extra: dict[str, Any] = field(default_factory=dict)  # any other Workload field

    def workload(self, **changes: Any) -> Workload:
        d = {"model": self.model, "task": "train", "method": self.method, "seq_len": self.seq_len,
             "batch_size": self.batch_size, "train_tokens": self.train_tokens,
             "grad_ckpt": bool(self.grad_ckpt), **self.extra, **changes}
        if self.precision:
            d["precision"] = self.precision
        return workload_from_dict(d, where=f"jobs '{self.name}'")

    @property
    def tokens_per_month(self) -> float:
        return self.train_tokens * self.jobs_per_month


@dataclass(frozen=True, kw_only=True)
class InferenceDemand:
    name: str
    model: str
    requests_per_day: float
    peak_requests_per_s: float
    prompt_tokens: int
    output_tokens: int
    ttft_s: float
    tpot_s: float
    precision: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    def workload(self, batch_size: int = 1, **changes: Any) -> Workload:
        d = {"model": self.model, "task": "infer", "prompt_tokens": self.prompt_tokens,
             "gen_tokens": self.output_tokens, "batch_size": batch_size, **self.extra, **changes}
        if self.precision:
            d["precision"] = self.precision
        return workload_from_dict(d, where=f"inference '{self.name}'")

    @property
    def requests_per_month(self) -> float:
        return self.requests_per_day * DAYS_PER_MONTH

    @property
    def tokens_per_month(self) -> float:
        return self.requests_per_month * (self.prompt_tokens + self.output_tokens)


@dataclass(frozen=True, kw_only=True)
class CloudOverride:
    device: str
    provider: str
    per_hour: float                 # per device, in the needs file's currency
    devices_per_instance: int = 1
    instance: str | None = None


@dataclass(frozen=True, kw_only=True)
class Assumptions:
    currency: str
    usd_per_unit: float
    on_prem_required: bool
    horizon_months: float
    residual_fraction: float
    utilization: float | None       # None: 'auto'
    electricity_per_kwh: float
    pue_desk: float
    pue_datacenter: float
    ops_per_month: float
    extra_capex_per_device: float
    host_per_gpu_card: float
    max_devices: int
    always_on: bool
    peak_to_average: float
    max_batch: int


@dataclass(frozen=True, kw_only=True)
class Needs:
    jobs: tuple[TrainJob, ...]
    inference: tuple[InferenceDemand, ...]
    assumptions: Assumptions
    prices: dict[str, float] = field(default_factory=dict)   # device -> purchase price (currency)
    cloud: tuple[CloudOverride, ...] = ()
    replace_cloud: bool = False     # True: only the offers in [[cloud]] (catalog offers dropped)
    devices: tuple[str, ...] = ()   # restrict candidates to these devices (empty: all)
    exclude: tuple[str, ...] = ()
    buy: bool = True                # consider buying catalog devices
    owned: bool = True              # consider this machine
    rent: bool = True               # consider cloud offers
    given: frozenset[str] = frozenset()  # assumption fields the file or a flag set to a non-default value

    def to_dict(self) -> dict[str, Any]:
        from aipc.render import to_jsonable

        return {k: to_jsonable(v) for k, v in self.__dict__.items()}


# ------------------------------------------------------------------------------------ parsing

def _assumptions(raw: dict) -> tuple[Assumptions, frozenset[str]]:
    """Top-level and [assumptions] fields merged (a field may sit in either, not both)."""
    section = _table(raw.get("assumptions", {}), "[assumptions]")
    for k in section:
        if k not in D.ASSUMPTIONS:
            raise _unknown_key(k, D.ASSUMPTIONS, "[assumptions]")
    vals: dict[str, Any] = {}
    given = set()
    for k in D.ASSUMPTIONS:
        if k in raw and k in section:
            raise AipcError(f"'{k}' is given both at the top level and under [assumptions]; keep one")
        vals[k] = raw.get(k, section.get(k, D.ASSUMPTIONS[k].value))
        if (k in raw or k in section) and vals[k] != D.ASSUMPTIONS[k].value:
            given.add(k)
    usd_rate = vals["usd_per_unit"]
    for k in USD_DEFAULTS:  # a default quoted in US dollars, converted to the file's currency
        if k not in raw and k not in section and isinstance(usd_rate, (int, float)) and usd_rate > 0:
            vals[k] = D.ASSUMPTIONS[k].value / usd_rate
    u = vals["utilization"]
    if isinstance(u, str) and u.strip().lower() == "auto":
        util = None
    else:
        util = _num(u, "utilization", lo=0, lo_open=True, hi=1, fix="use a fraction such as 0.6, or \"auto\"")
    a = Assumptions(
        currency=_text(vals["currency"], "currency").upper(),
        usd_per_unit=_num(vals["usd_per_unit"], "usd_per_unit", lo=0, lo_open=True,
                          fix="give US dollars per 1 unit of your currency, e.g. 1.08 for EUR"),
        on_prem_required=_bool(vals["on_prem_required"], "on_prem_required"),
        horizon_months=_num(vals["horizon_months"], "horizon_months", lo=0, lo_open=True,
                            fix="a purchase is written off over at least part of a month; 36 is common"),
        residual_fraction=_num(vals["residual_fraction"], "residual_fraction", lo=0, hi=1, hi_open=True,
                               fix="resale value as a fraction of the price, e.g. 0.2"),
        utilization=util,
        electricity_per_kwh=_num(vals["electricity_per_kwh"], "electricity_per_kwh", lo=0,
                                 fix="price per kWh in your currency, e.g. 0.13"),
        pue_desk=_num(vals["pue_desk"], "pue_desk", lo=1, fix="1.0 for a machine on a desk"),
        pue_datacenter=_num(vals["pue_datacenter"], "pue_datacenter", lo=1, fix="~1.56 (Uptime Institute 2024)"),
        ops_per_month=_num(vals["ops_per_month"], "ops_per_month", lo=0),
        extra_capex_per_device=_num(vals["extra_capex_per_device"], "extra_capex_per_device", lo=0),
        host_per_gpu_card=_num(vals["host_per_gpu_card"], "host_per_gpu_card", lo=0,
                               fix="the price of the PC around a GPU card in your currency, 0 if you have one"),
        max_devices=_num(vals["max_devices"], "max_devices", lo=1, whole=True),
        always_on=_bool(vals["always_on"], "always_on"),
        peak_to_average=_num(vals["peak_to_average"], "peak_to_average", lo=1),
        max_batch=_num(vals["max_batch"], "max_batch", lo=1, whole=True),
    )
    return a, frozenset(given)


def _split_known(entry: dict, known: dict[str, D.Default], where: str) -> tuple[dict, dict]:
    """(known needs fields, other keys) — the others must be Workload fields (checked later)."""
    mine = {k: v for k, v in entry.items() if k in known}
    extra = {k: v for k, v in entry.items() if k not in known}
    for k in ("task", "train_tokens", "gen_tokens", "num_devices", "sharding"):
        if k in extra:
            raise AipcError(f"{where}: '{k}' is set by decide; remove it")
    return mine, extra


def _entry(entry: Any, where: str, known: dict[str, D.Default], required: str, why: str) -> tuple[dict, dict, str]:
    """(known needs fields, Workload fields, model) of one jobs/inference entry; ``required`` must be set
    (``why`` follows the 'is required' of the error)."""
    mine, extra = _split_known(_table(entry, where), known, where)
    model = _text(mine.get("model"), f"{where}.model")
    if required not in mine:
        raise AipcError(f"{where}.{required} is required{why}")
    return mine, extra, model


def _job(entry: Any, i: int, a: Assumptions) -> TrainJob:
    where = f"jobs[{i}]"
    mine, extra, model = _entry(entry, where, D.JOB, "train_tokens",
                                ": tokens one job processes (dataset tokens x epochs)")
    name = _text(mine.get("name", f"{model} {mine.get('method', D.JOB['method'].value)}"), f"{where}.name")
    gc = mine.get("grad_ckpt", "auto")
    grad_ckpt = None if isinstance(gc, str) and gc.strip().lower() == "auto" else _bool(gc, f"{where}.grad_ckpt")
    deadline = mine.get("deadline_hours")
    job = TrainJob(
        name=name, model=model, method=_text(mine.get("method", D.JOB["method"].value), f"{where}.method").lower(),
        train_tokens=_num(mine["train_tokens"], f"{where}.train_tokens", lo=0, lo_open=True, whole=True, hi=1e18,
                          fix="zero demand: remove the job if it does not run"),
        jobs_per_month=_num(mine.get("jobs_per_month", 1.0), f"{where}.jobs_per_month", lo=0, lo_open=True, hi=1e6,
                            fix="zero demand: remove the job if it does not run"),
        deadline_hours=None if deadline is None else _num(deadline, f"{where}.deadline_hours", lo=0, lo_open=True),
        seq_len=_num(mine.get("seq_len", D.JOB["seq_len"].value), f"{where}.seq_len", lo=1, whole=True, hi=1e8),
        batch_size=_num(mine.get("batch_size", D.JOB["batch_size"].value), f"{where}.batch_size", lo=1, whole=True, hi=1e6),
        precision=None if mine.get("precision") is None else _text(mine["precision"], f"{where}.precision").lower(),
        grad_ckpt=grad_ckpt, extra=extra,
    )
    job.workload()  # validate the Workload fields now (unknown fields, bad methods) with a one-line error
    return job


def _inference(entry: Any, i: int, a: Assumptions) -> InferenceDemand:
    where = f"inference[{i}]"
    mine, extra, model = _entry(entry, where, D.INFERENCE, "requests_per_day", " (requests on an average day, > 0)")
    rpd = _num(mine["requests_per_day"], f"{where}.requests_per_day", lo=0, lo_open=True, hi=1e13,
               fix="zero demand: remove the entry if nothing is served")
    avg = rpd / 86400
    peak = mine.get("peak_requests_per_s")
    peak_rps = avg * a.peak_to_average if peak is None else _num(peak, f"{where}.peak_requests_per_s", lo=0, lo_open=True, hi=1e9)
    if peak_rps < avg * (1 - 1e-9):
        raise AipcError(f"{where}.peak_requests_per_s {peak_rps:g} is below the daily average "
                        f"{avg:.4g}/s ({rpd:g} per day); raise it or lower requests_per_day")
    d = D.INFERENCE
    inf = InferenceDemand(
        name=_text(mine.get("name", model), f"{where}.name"), model=model, requests_per_day=rpd,
        peak_requests_per_s=peak_rps,
        prompt_tokens=_num(mine.get("prompt_tokens", d["prompt_tokens"].value), f"{where}.prompt_tokens", lo=1, whole=True, hi=1e8),
        output_tokens=_num(mine.get("output_tokens", d["output_tokens"].value), f"{where}.output_tokens", lo=1, whole=True, hi=1e8),
        ttft_s=_num(mine.get("ttft_s", d["ttft_s"].value), f"{where}.ttft_s", lo=0, lo_open=True),
        tpot_s=_num(mine.get("tpot_s", d["tpot_s"].value), f"{where}.tpot_s", lo=0, lo_open=True),
        precision=None if mine.get("precision") is None else _text(mine["precision"], f"{where}.precision").lower(),
        extra=extra,
    )
    inf.workload()
    return inf


def _cloud(entry: Any, i: int, a: Assumptions) -> CloudOverride:
    where = f"cloud[{i}]"
    e = _table(entry, where)
    for k in e:
        if k not in CLOUD_KEYS:
            raise _unknown_key(k, CLOUD_KEYS, where)
    n = _num(e.get("devices_per_instance", 1), f"{where}.devices_per_instance", lo=1, whole=True)
    if ("per_hour" in e) == ("per_instance_hour" in e):
        raise AipcError(f"{where} needs exactly one of per_hour (per device) or per_instance_hour, in {a.currency}")
    if "per_hour" in e:
        rate = _num(e["per_hour"], f"{where}.per_hour", lo=0, lo_open=True, fix=f"an hourly price in {a.currency}")
    else:
        rate = _num(e["per_instance_hour"], f"{where}.per_instance_hour", lo=0, lo_open=True) / n
    inst = e.get("instance")
    return CloudOverride(device=_text(e.get("device"), f"{where}.device"),
                         provider=_text(e.get("provider", "user"), f"{where}.provider"), per_hour=rate,
                         devices_per_instance=n, instance=None if inst is None else _text(inst, f"{where}.instance"))


def needs_from_dict(raw: dict) -> Needs:
    """A validated :class:`Needs` from the parsed TOML/JSON dict."""
    if not isinstance(raw, dict):
        raise AipcError("a needs file must be a table of fields; see 'aipc decide --example'")
    for k in raw:
        if k not in TOP_KEYS and k not in D.ASSUMPTIONS:
            raise _unknown_key(k, TOP_KEYS | set(D.ASSUMPTIONS), "needs file")
    a, given = _assumptions(raw)
    jobs_raw = raw.get("jobs", [])
    inf_raw = raw.get("inference", [])
    if isinstance(jobs_raw, dict):
        jobs_raw = [jobs_raw]
    if isinstance(inf_raw, dict):
        inf_raw = [inf_raw]
    if not isinstance(jobs_raw, list) or not isinstance(inf_raw, list):
        raise AipcError("jobs and inference must be lists of tables ([[jobs]], [[inference]])")
    jobs = tuple(_job(e, i, a) for i, e in enumerate(jobs_raw))
    inference = tuple(_inference(e, i, a) for i, e in enumerate(inf_raw))
    if not jobs and not inference:
        raise AipcError("the needs file has no demand: add a [[jobs]] table (training) or an [[inference]] "
                        "table (serving); see 'aipc decide --example'")
    names = [x.name for x in (*jobs, *inference)]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise AipcError(f"two workloads are named '{dup[0]}'; give each [[jobs]]/[[inference]] a distinct name")
    prices = {}
    for dev, p in _table(raw.get("prices", {}), "[prices]").items():
        prices[dev] = _num(p, f"prices.{dev}", lo=0, fix=f"a purchase price in {a.currency}, e.g. {dev} = 1999")
    cloud_raw = raw.get("cloud", [])
    if not isinstance(cloud_raw, list):
        raise AipcError("cloud must be a list of offers ([[cloud]] tables with device, provider, per_hour)")
    cand = _table(raw.get("candidates", {}), "[candidates]")
    for k in cand:
        if k not in CANDIDATE_KEYS:
            raise _unknown_key(k, CANDIDATE_KEYS, "[candidates]")
    return Needs(
        jobs=jobs, inference=inference, assumptions=a, prices=prices,
        cloud=tuple(_cloud(e, i, a) for i, e in enumerate(cloud_raw)),
        replace_cloud=_bool(cand.get("replace_cloud", False), "candidates.replace_cloud"),
        devices=_names(cand.get("devices", []), "candidates.devices"),
        exclude=_names(cand.get("exclude", []), "candidates.exclude"),
        buy=_bool(cand.get("buy", True), "candidates.buy"), owned=_bool(cand.get("owned", True), "candidates.owned"),
        rent=_bool(cand.get("cloud", True), "candidates.cloud"), given=given,
    )


def parse_text(text: str, where: str = "needs", fmt: str = "toml") -> dict:
    """TOML (or JSON) text -> raw dict, with a one-line error naming ``where``."""
    data = parse(text, fmt, where)
    if not isinstance(data, dict):
        raise AipcError(f"{where}: expected a table of fields")
    return data


def read_raw(source: str | Path, stdin_text: str | None = None) -> dict:
    """The raw dict of a needs file; ``-`` reads ``stdin_text`` (TOML, or JSON if it starts with '{')."""
    if str(source) == "-":
        text = stdin_text or ""
        if not text.strip():
            raise AipcError("no needs on standard input; pipe a needs file, e.g. 'aipc decide --example | aipc decide -'")
        return parse_text(text, "stdin", "json" if text.lstrip().startswith("{") else "toml")
    p = Path(source).expanduser()
    text = read_text(p, what="needs file", fix="write one with 'aipc decide --example > needs.toml'")
    return parse_text(text, str(p), format_of(p))


def merge(base: dict, over: dict) -> dict:
    """Deep merge: tables merge key by key; ``[[cloud]]`` offers add up (an offer for the same device
    and provider overrides the earlier one when candidates are built); anything else is replaced."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        elif k == "cloud" and isinstance(v, list) and isinstance(out.get(k), list):
            out[k] = [*out[k], *v]
        else:
            out[k] = v
    return out


def parse_value(text: str) -> Any:
    """A flag value as TOML would read it (numbers, true/false, "strings", [lists]); bare words stay text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        return text.strip()


def apply_set(raw: dict, assignment: str) -> dict:
    """``--set a.b=value``: put ``value`` at the dotted path (tables are created as needed)."""
    if "=" not in assignment:
        raise AipcError(f"--set expects KEY=VALUE, e.g. --set assumptions.horizon_months=24 (got {assignment!r})")
    key, val = assignment.split("=", 1)
    parts = [p.strip() for p in key.split(".") if p.strip()]
    if not parts:
        raise AipcError(f"--set expects KEY=VALUE (got {assignment!r})")
    patch: dict = {}
    cur = patch
    for p in parts[:-1]:
        cur[p] = {}
        cur = cur[p]
    cur[parts[-1]] = parse_value(val)
    return merge(raw, patch)


def load_needs(source: str | Path | dict, *, overrides: list[dict] | None = None, sets: list[str] | None = None,
               stdin_text: str | None = None) -> Needs:
    """Read, merge overrides (files, then ``--set``), validate."""
    raw = dict(source) if isinstance(source, dict) else read_raw(source, stdin_text)
    for o in overrides or []:
        raw = merge(raw, o)
    for s in sets or []:
        raw = apply_set(raw, s)
    return needs_from_dict(raw)


def example_text() -> str:
    """The commented example needs file shipped with the package."""
    return Path(__file__).with_name("example_needs.toml").read_text(encoding="utf-8")

