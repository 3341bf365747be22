"""``aipc bench --sweep`` for real: tiny models converted by llama.cpp's converter inside the test, run
by llama.cpp, stored in a real SQLite results DB, the calibration refitted, and the runs shown as
"measured" in the ``models --here`` table; resumed without measuring again; stopped by the budget."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli

from aipc.bench.here import formats, measured, overlay, this_machine
from aipc.bench.here_sweep import ANCHOR_BYTES, Item, SweepOptions, plan, predict, run_sweep, sweep_formats
from aipc.bench.store import ResultsDB
from aipc.engines import WEIGHT_FORMATS
from aipc.estimate import calibrate as C
from aipc.estimate import here as H
from aipc.estimate import resolve_model
from aipc.estimate.calibrate import format_family
from aipc.hardware.local import resolve_device

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_formats_one_per_kernel_family_from_the_registry():
    for engine, fmts in WEIGHT_FORMATS.items():
        got = sweep_formats(engine)
        assert set(got) <= set(fmts) and len({format_family(f) for f in got}) == len(got)
        assert {format_family(f) for f in got} == {format_family(f) for f in fmts}
    assert sweep_formats("llamacpp")[0] == "q4_k_m"


def test_default_plan_is_small_models_smallest_first():
    items = plan(SweepOptions(engines=["llamacpp", "torch"]))
    sizes = [i.weight_bytes for i in items]
    assert sizes == sorted(sizes) and {i.engine for i in items} == {"llamacpp", "torch"}
    first = sweep_formats("llamacpp")[0]
    big = {i.model for i in items if i.engine == "llamacpp" and i.fmt == first and i.weight_bytes >= ANCHOR_BYTES}
    small = {i.model for i in items if i.engine == "llamacpp"} - big
    assert len(big) == 1 and len(small) == 3  # one model whose weights dominate a decode step, for the fit
    assert max(resolve_model(m).param_count() for m in small) < 1e9


def test_predict_scales_the_last_item():
    it = Item("m", "llamacpp", "f16", 4e6)
    assert predict([], it) == 0.0
    assert predict([(1e6, 2.0), (2e6, 3.0)], it) == pytest.approx(6.0)
    assert predict([(1e6, 2.0), (8e6, 10.0)], it) == pytest.approx(10.0)  # never less than the last item


def test_sweep_measures_stores_calibrates_and_resumes(tiny_ggufs, tmp_path):
    qwen = str(tiny_ggufs["qwen_dir"])
    db = tmp_path / "r.sqlite"
    o = SweepOptions(engines=["llamacpp"], models=[qwen], formats={"llamacpp": ("q8_0", "q4_0")}, budget_s=600,
                     db=db, threads=1)
    seen = []
    res = run_sweep(o, on_progress=lambda i, n, label: seen.append((i, n)))
    assert [m["item"] for m in res["measured"]] == [f"{qwen} llamacpp q4_0", f"{qwen} llamacpp q8_0"]
    assert res["stopped"] is None and seen[0] == (0, 2) and seen[-1] == (2, 2)
    assert res["calibration"].startswith("calibration refitted from 4 runs")
    assert res["kernels"].startswith("not measured") and "aipc hw --kernels" in res["kernels"]  # not asked for
    runs = ResultsDB(db).runs(kind="bench")
    assert sorted((r["scenario"], r["workload"]["weight_dtype"]) for r in runs) == [
        ("decode", "q4_0"), ("decode", "q8_0"), ("prefill", "q4_0"), ("prefill", "q8_0")]
    assert all(r["workload"]["prompt_tokens"] == H.SPEED_PROMPT for r in runs)

    # the table: measured where a run exists, calibrated for another format of a measured family
    spec = resolve_device("this")
    rows, _ = H.table(spec, formats(["llamacpp"]), models=[resolve_model(qwen)])
    by = {r.format: r for r in rows}
    assert by["q5_0"].decode_kind == "calibrated" and by["q6_k"].decode_kind == "calibrated"
    n = overlay(rows, measured(db, "cpu", this_machine()))
    dec = {r["workload"]["weight_dtype"]: r["metrics"]["decode_tokens_per_s"] for r in runs if r["scenario"] == "decode"}
    assert n == 4 and by["q8_0"].decode_kind == "measured" and by["q8_0"].decode_tokens_per_s == dec["q8_0"]
    assert C.snapshot()["devices"][spec.name]["decode@llamacpp"]["by_format"].keys() == {"q4_0", "q8_0"}

    again = run_sweep(o)  # resumable: nothing measured twice
    assert again["measured"] == [] and len(again["already_stored"]) == 2
    assert len(ResultsDB(db).runs(kind="bench")) == 4


def test_cli_sweep_stops_within_a_tiny_budget(tiny_ggufs, tmp_path):
    """The first item always starts; the next is predicted from it and does not fit a 1 s budget."""
    qwen = str(tiny_ggufs["qwen_dir"])
    db = tmp_path / "r.sqlite"
    code, out, err = run_cli("bench", "--sweep", qwen, "--engine", "llamacpp", "--budget", "1", "--threads", "1",
                             "--db", str(db), "--json")
    assert code == 0, err
    res = json.loads(out)
    assert len(res["measured"]) == 1 and res["stopped"].startswith("budget:") and len(res["not_started"]) == 2
    assert {r["workload"]["weight_dtype"] for r in ResultsDB(db).runs(kind="bench")} == {res["measured"][0]["item"].split()[-1]}


def test_cli_sweep_bad_input():
    for args, msg in ((("--budget", "5"), "--budget goes with --sweep"), (("--kernels",), "--kernels goes with --sweep"),
                      (("--sweep", "--budget", "nan"), "--budget"),
                      (("--sweep", "--budget", "-1"), "--budget"), (("--sweep", "--engine", "llama"), "--engine"),
                      (("--engine", "torch,llamacpp"), "one engine")):
        code, out, err = run_cli("bench", *args)
        assert code == 2 and err.startswith("error:") and msg in err and len(err.strip().splitlines()) == 1, (args, err)


def test_a_model_the_engine_cannot_take_is_reported_and_the_sweep_goes_on(tiny_ggufs, tmp_path):
    import shutil

    good = str(tiny_ggufs["qwen_dir"])
    broken = tmp_path / "no-tokenizer"
    shutil.copytree(good, broken)
    for f in broken.glob("tokenizer*"):
        f.unlink()  # llama.cpp's converter needs the tokenizer: this one cannot become a GGUF
    o = SweepOptions(engines=["llamacpp"], models=[str(broken), good], formats={"llamacpp": ("q8_0",)},
                     budget_s=600, db=tmp_path / "r.sqlite", threads=1)
    res = run_sweep(o)
    assert [f["item"] for f in res["failed"]] == [f"{broken} llamacpp q8_0"] and res["failed"][0]["error"]
    assert [m["item"] for m in res["measured"]] == [f"{good} llamacpp q8_0"] and res["stopped"] is None
