"""``aipc decide`` on the command line: example, stdin, --json equals the API, flags, errors, no torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_cli

from aipc.cost.needs import example_text

CATALOG = """
schema = 1
[devices.srv]
label = "Test server"
vendor = "nvidia"
kind = "gpu"
category = "datacenter"
source = "test fixture"
as_of = "2026-11-25"
memory_gib = 80
bandwidth_gbs = 3350
power_w = 1000
price_usd = 35000
peak_tflops = {bf16 = 989, fp32 = 67}

[[devices.srv.cloud]]
provider = "TestCloud"
usd_per_hour = 2.5
"""

NEEDS = """
[assumptions]
electricity_per_kwh = 0.09
pue_datacenter = 1.0

[candidates]
devices = ["srv"]
owned = false

[[jobs]]
name = "ft"
model = "llama-3.2-1b"
train_tokens = 36_000_000
jobs_per_month = 10
"""


@pytest.fixture
def files(tmp_path):
    cat = tmp_path / "devices.toml"
    cat.write_text(CATALOG)
    needs = tmp_path / "needs.toml"
    needs.write_text(NEEDS)
    return cat, needs


def test_example_is_printed_verbatim():
    code, out, err = run_cli("decide", "--example")
    assert code == 0 and err == ""
    assert out == example_text()
    assert "[[jobs]]" in out and "[[inference]]" in out


def test_example_piped_into_stdin_recommends_without_torch(tmp_path):
    code = ("import sys; from aipc.cli import main; rc = main(['decide', '-']); "
            "print('TORCH-LOADED' if 'torch' in sys.modules else 'TORCH-FREE'); sys.exit(rc)")
    env = {**os.environ, "AIPC_HOME": str(tmp_path), "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    p = subprocess.run([sys.executable, "-c", code], input=example_text(), capture_output=True, text=True,
                       env=env, timeout=240)
    assert p.returncode == 0, p.stderr
    assert "Recommendation:" in p.stdout and "What would flip the answer" in p.stdout
    assert "TORCH-FREE" in p.stdout


def test_json_is_one_object_equal_to_the_api(files):
    cat, needs = files
    code, out, err = run_cli("decide", str(needs), "--catalog", str(cat), "--json")
    assert code == 0, err
    got = json.loads(out)
    from aipc.cost import decide, load_needs
    from aipc.hardware.catalog import load_catalog
    from aipc.render import to_jsonable

    api = to_jsonable(decide(load_needs(needs), catalog=load_catalog([cat])))
    assert got == json.loads(json.dumps(api))
    assert set(got) >= {"currency", "feasible", "recommendation", "picks", "candidates", "sensitivity", "flips",
                        "assumptions", "throughput", "per_workload", "closest_misses", "warnings", "needs"}
    cheap = got["picks"]["cheapest"]
    assert cheap["id"] == "cloud:srv:TestCloud"
    buy = next(c for c in got["candidates"] if c["id"] == "buy:srv")
    assert buy["capex"] == 35000 and buy["break_even"][0]["vs"] == "cloud:srv:TestCloud"


def test_price_rate_and_set_flags(files):
    cat, needs = files
    code, out, err = run_cli("decide", str(needs), "--catalog", str(cat), "--json", "--price", "srv=70000",
                             "--rate", "srv@TestCloud=5", "--set", "assumptions.horizon_months=24")
    assert code == 0, err
    got = json.loads(out)
    buy = next(c for c in got["candidates"] if c["id"] == "buy:srv")
    cloud = next(c for c in got["candidates"] if c["kind"] == "cloud")
    assert buy["capex"] == 70000 and buy["capex_per_month"] == pytest.approx(70000 / 24)
    assert cloud["per_hour"] == 5.0 and cloud["price_source"].startswith("needs file")
    a = {x["field"]: x for x in got["assumptions"]}
    assert a["horizon_months"]["value"] == 24 and a["horizon_months"]["given"] is True
    assert a["pue_desk"]["given"] is False and "FIELD-NOTES" in a["pue_desk"]["source"]


def test_overrides_file_and_table(files, tmp_path):
    cat, needs = files
    over = tmp_path / "over.toml"
    over.write_text('on_prem_required = true\n[prices]\nsrv = 30000\n')
    code, out, err = run_cli("decide", str(needs), "--catalog", str(cat), "--overrides", str(over))
    assert code == 0, err
    assert "Recommendation: Buy Test server" in out
    assert "Data must stay on premises" in out
    assert "per month" in out and "sensitivity" in out


@pytest.mark.parametrize("args, message", [
    (["--price", "srv=-1"], "prices.srv must be a number >= 0"),
    (["--price", "srv"], "--price expects NAME=NUMBER"),
    (["--rate", "srv=abc"], "is not a number"),
    (["--set", "assumptions.horizon_months=0"], "horizon_months must be a number > 0"),
    (["--price", "srx=1"], "unknown device 'srx'; did you mean srv"),
])
def test_bad_flags_exit_2_one_line(files, args, message):
    cat, needs = files
    code, out, err = run_cli("decide", str(needs), "--catalog", str(cat), *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_missing_file_and_no_argument():
    code, out, err = run_cli("decide")
    assert code == 2 and "aipc decide --example > needs.toml" in err
    code, out, err = run_cli("decide", "/nonexistent/needs.toml")
    assert code == 2 and "not found" in err
