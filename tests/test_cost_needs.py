"""The needs file: defaults with sources, the shipped example, overrides, and one-line errors."""

from __future__ import annotations

import re

import pytest

from aipc.cost import defaults as D
from aipc.cost.needs import apply_set, example_text, load_needs, merge, needs_from_dict, parse_text
from aipc.errors import AipcError

JOB = {"model": "llama-3.2-1b", "train_tokens": 1_000_000}
SERVE = {"model": "llama-3.2-1b", "requests_per_day": 8640}


def test_every_default_has_a_meaning_source_and_date():
    for table in (D.ASSUMPTIONS, D.JOB, D.INFERENCE):
        for name, d in table.items():
            assert d.meaning and d.source, name
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", d.as_of), name


def test_defaults_apply():
    n = needs_from_dict({"jobs": [JOB]})
    a = n.assumptions
    assert (a.currency, a.horizon_months, a.residual_fraction, a.utilization) == ("USD", 36, 0.0, None)
    assert (a.electricity_per_kwh, a.pue_desk, a.pue_datacenter, a.max_devices) == (0.13, 1.0, 1.56, 8)
    assert n.given == frozenset()
    j = n.jobs[0]
    assert (j.method, j.jobs_per_month, j.deadline_hours, j.seq_len, j.batch_size, j.grad_ckpt) == \
        ("lora", 1.0, None, 2048, 1, None)
    assert j.name == "llama-3.2-1b lora"


def test_inference_defaults_and_peak():
    n = needs_from_dict({"inference": [SERVE]})
    i = n.inference[0]
    assert (i.prompt_tokens, i.output_tokens, i.ttft_s, i.tpot_s) == (512, 256, 2.0, 0.1)
    # 8640 requests a day = 0.1/s on average; peak defaults to 3x
    assert i.peak_requests_per_s == pytest.approx(0.3)
    assert i.requests_per_month == pytest.approx(8640 * 365 / 12)
    assert i.tokens_per_month == pytest.approx(8640 * 365 / 12 * 768)
    with pytest.raises(AipcError, match="below the daily average"):
        needs_from_dict({"inference": [{**SERVE, "peak_requests_per_s": 0.05}]})


def test_example_parses_and_states_the_defaults():
    text = example_text()
    n = needs_from_dict(parse_text(text))
    assert len(n.jobs) == 1 and len(n.inference) == 1
    assert n.given == frozenset()  # the example writes every assumption at its default
    # every assumption field is in the example, written with its default value
    raw = parse_text(text)
    flat = {**{k: v for k, v in raw.items() if k in D.ASSUMPTIONS}, **raw["assumptions"]}
    assert set(flat) == set(D.ASSUMPTIONS)
    for k, v in flat.items():
        assert v == D.ASSUMPTIONS[k].value, k


def test_currency_converts_usd_defaults():
    n = needs_from_dict({"jobs": [JOB], "currency": "eur", "usd_per_unit": 1.25})
    assert n.assumptions.currency == "EUR"
    assert n.assumptions.electricity_per_kwh == pytest.approx(0.13 / 1.25)
    assert n.assumptions.host_per_gpu_card == pytest.approx(800.0)
    n2 = needs_from_dict({"jobs": [JOB], "currency": "EUR", "usd_per_unit": 1.25, "electricity_per_kwh": 0.29})
    assert n2.assumptions.electricity_per_kwh == 0.29  # given in the file's currency: kept


@pytest.mark.parametrize("patch, message", [
    ({"assumptions": {"horizon_months": 0}}, "horizon_months must be a number > 0"),
    ({"assumptions": {"residual_fraction": 1.0}}, "residual_fraction must be a number >= 0 and < 1"),
    ({"assumptions": {"utilization": 0}}, "utilization must be"),
    ({"assumptions": {"electricity_per_kwh": -0.1}}, "electricity_per_kwh must be a number >= 0"),
    ({"assumptions": {"pue_desk": 0.5}}, "pue_desk must be a number >= 1"),
    ({"assumptions": {"horizon": 12}}, "unknown field 'horizon'; did you mean horizon_months"),
    ({"prices": {"rtx-4090": -1}}, "prices.rtx-4090 must be a number >= 0"),
    ({"prices": {"rtx-4090": "cheap"}}, "prices.rtx-4090 must be a number"),
    ({"cloud": [{"device": "h100-sxm", "provider": "x"}]}, "needs exactly one of per_hour"),
    ({"cloud": [{"device": "h100-sxm", "per_hour": 0}]}, "cloud\\[0\\].per_hour must be a number > 0"),
    ({"jobs": [{"model": "llama-3.2-1b"}]}, "train_tokens is required"),
    ({"jobs": [{**JOB, "jobs_per_month": 0}]}, "zero demand"),
    ({"jobs": [{**JOB, "deadline_hours": -1}]}, "deadline_hours must be a number > 0"),
    ({"jobs": [{**JOB, "method": "dreambooth"}]}, "method must be one of"),
    ({"jobs": [{**JOB, "lr": 1e-4}]}, "unknown field 'lr'"),
    ({"inference": [{"model": "llama-3.2-1b", "requests_per_day": 0}]}, "zero demand"),
    ({"inference": [{**SERVE, "tpot_s": 0}]}, "tpot_s must be a number > 0"),
    ({"jobs": [JOB, JOB]}, "two workloads are named"),
    ({"colour": "red"}, "needs file: unknown field 'colour'"),
    ({"horizon_months": 12, "assumptions": {"horizon_months": 24}}, "both at the top level and under"),
])
def test_bad_input_is_one_line(patch, message):
    raw = merge({"jobs": [JOB]}, patch)
    with pytest.raises(AipcError, match=message) as e:
        needs_from_dict(raw)
    assert "\n" not in str(e.value)


def test_no_demand_at_all():
    with pytest.raises(AipcError, match="no demand"):
        needs_from_dict({"assumptions": {"horizon_months": 12}})


def test_overrides_and_set():
    raw = {"jobs": [JOB], "cloud": [{"device": "h100-sxm", "provider": "A", "per_hour": 2.0}]}
    raw = merge(raw, {"cloud": [{"device": "l4", "provider": "B", "per_hour": 0.5}], "prices": {"rtx-4090": 1500}})
    assert [c["provider"] for c in raw["cloud"]] == ["A", "B"]  # offers add up
    raw = apply_set(raw, "assumptions.horizon_months=24")
    raw = apply_set(raw, "on_prem_required=true")
    raw = apply_set(raw, 'currency="EUR"')
    n = needs_from_dict(raw)
    assert n.assumptions.horizon_months == 24 and n.assumptions.on_prem_required is True
    assert n.assumptions.currency == "EUR" and n.prices == {"rtx-4090": 1500.0}
    assert {"horizon_months", "on_prem_required", "currency"} <= n.given
    with pytest.raises(AipcError, match="KEY=VALUE"):
        apply_set(raw, "horizon_months")


def test_load_needs_from_file_and_stdin(tmp_path):
    p = tmp_path / "needs.toml"
    p.write_text(example_text())
    n = load_needs(p, sets=["assumptions.horizon_months=12"])
    assert n.assumptions.horizon_months == 12
    n2 = load_needs("-", stdin_text=example_text())
    assert n2.jobs == n.jobs
    with pytest.raises(AipcError, match="not found"):
        load_needs(tmp_path / "missing.toml")
    with pytest.raises(AipcError, match="no needs on standard input"):
        load_needs("-", stdin_text="")
    bad = tmp_path / "bad.toml"
    bad.write_text("jobs = [")
    with pytest.raises(AipcError, match="not valid TOML"):
        load_needs(bad)
