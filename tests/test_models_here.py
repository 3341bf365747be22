"""``aipc models --here`` / ``--device NAME``: the whole catalog x installed engines x formats, ranked,
each row checked against the estimator's own answer for the same workload; filters; provenance;
engines from the registry; no torch import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import run_cli

from aipc.bench.here import formats
from aipc.engines import WEIGHT_FORMATS, available
from aipc.estimate import calibrate as C
from aipc.estimate import estimate
from aipc.estimate import expected_errors as X
from aipc.estimate import here as H
from aipc.estimate.core import evaluate
from aipc.hardware.local import resolve_device
from aipc.models import catalog
from aipc.spec import Workload

DEVICE = "rtx-4090"


@pytest.fixture(scope="module")
def table():
    code, out, err = run_cli("models", "--device", DEVICE, "--json")
    assert code == 0, err
    return json.loads(out)


def _peak(name: str, engine: str, fmt: str, context: int) -> int:
    w = Workload(model=name, task="infer", engine=engine, weight_dtype=fmt, batch_size=1,
                 prompt_tokens=context - H.SPEED_GEN, gen_tokens=H.SPEED_GEN)
    return evaluate(catalog.get(name), w.validate(), resolve_device(DEVICE)).memory.peak_bytes


def test_every_model_engine_format_is_a_row_or_skipped(table):
    pairs = [(e, f) for e in available() for f in WEIGHT_FORMATS[e]]
    assert table["engines"] == sorted(available()) and len(pairs) >= 16
    got = {(r["model"], r["engine"], r["format"]) for r in table["rows"]}
    skipped = {tuple(s.split(":")[0].split(" ")) for s in table["skipped"]}
    for name in catalog.names():
        for e, f in pairs:
            assert ((name, e, f) in got) != ((name, e, f) in skipped), (name, e, f)


def test_ranked_fits_with_useful_context_first_then_decode_speed(table):
    rows = table["rows"]
    useful = [r["max_context"] is not None and r["max_context"] >= H.MEMORY_CONTEXT for r in rows]
    assert any(useful) and not all(useful)
    assert useful == sorted(useful, reverse=True)  # every useful row before every other
    speeds = [r["decode_tokens_per_s"] for r, u in zip(rows, useful) if u and r["decode_tokens_per_s"] is not None]
    assert speeds == sorted(speeds, reverse=True) and speeds[0] > 10 * speeds[-1]


@pytest.mark.parametrize("name,engine,fmt", [("qwen2.5-7b", "llamacpp", "q4_k_m"), ("llama-3.1-8b", "torch", "fp16"),
                                             ("qwen3-14b", "llamacpp", "q8_0")])
def test_memory_and_largest_context_agree_with_the_estimator(table, name, engine, fmt):
    r = next(r for r in table["rows"] if (r["model"], r["engine"], r["format"]) == (name, engine, fmt))
    assert r["memory_4k_bytes"] == _peak(name, engine, fmt, 4096)
    cap = resolve_device(DEVICE).usable_memory_bytes
    n = r["max_context"]
    assert n is not None and n % H.CONTEXT_STEP == 0 or n == r["model_context"]
    assert _peak(name, engine, fmt, n) <= cap
    if n < r["model_context"]:
        assert _peak(name, engine, fmt, n + H.CONTEXT_STEP) > cap
    w = Workload(model=name, task="infer", engine=engine, weight_dtype=fmt, prompt_tokens=H.SPEED_PROMPT,
                 gen_tokens=H.SPEED_GEN)
    t = estimate(w, DEVICE).time
    assert r["decode_tokens_per_s"] == pytest.approx(t.decode_tokens_per_s)
    assert r["prefill_tokens_per_s"] == pytest.approx(H.SPEED_PROMPT / t.prefill_s)


def test_a_model_that_does_not_fit_has_no_context(table):
    r = next(r for r in table["rows"] if r["model"] == "llama-3.1-405b" and r["format"] == "q4_k_m")
    assert r["max_context"] is None and not r["fits_4k"] and r is not table["rows"][0]


def test_filters_keep_exactly_the_matching_rows(table):
    code, out, _ = run_cli("models", "--device", DEVICE, "--json", "--min-tps", "150", "--min-context", "32768",
                           "--task", "chat")
    assert code == 0
    rows = json.loads(out)["rows"]
    want = [r for r in table["rows"] if r["task"] == "chat" and (r["decode_tokens_per_s"] or 0) >= 150
            and (r["max_context"] or 0) >= 32768]
    assert rows == want and 0 < len(rows) < len(table["rows"])
    code, out, _ = run_cli("models", "--device", DEVICE, "--json", "--task", "embedding")
    assert {r["model"] for r in json.loads(out)["rows"]} == {"bert-base-uncased"}


def test_engines_come_from_the_registry(monkeypatch):
    """An engine whose formats are registered (OpenVINO, merged separately) shows up by itself."""
    import aipc.engines as E

    monkeypatch.setattr(E, "available", lambda: ["torch", "llamacpp", "openvino"])
    m = catalog.get("qwen2.5-0.5b")
    rows, skipped = H.table(resolve_device(DEVICE), formats(), models=[m])
    assert {(r.engine, r.format) for r in rows} == {(e, f) for e in ("torch", "llamacpp", "openvino")
                                                    for f in WEIGHT_FORMATS[e]} and not skipped
    rows, _ = H.table(resolve_device(DEVICE), formats(["openvino"]), models=[m])
    assert {r.engine for r in rows} == {"openvino"}


def test_calibrated_and_default_provenance_with_their_expected_errors():
    d = resolve_device(DEVICE)
    m = catalog.get("smollm2-135m")
    pts = [{"device": d.name, "scenario": "decode", "flops_per_token": 2.7e8, "factor": f, "tokens": 1,
            "engine": "llamacpp", "weight_format": "q8_0", "ideal_s": 1e-3, "layers": 30} for f in (0.2, 0.25)]
    with C.using(C.fit(pts)):
        rows, _ = H.table(d, formats(), models=[m])
    by = {(r.engine, r.format): r for r in rows}
    q4 = by[("llamacpp", "q4_0")]  # the same kernel family as the measured q8_0
    assert q4.decode_kind == "calibrated" and q4.prefill_kind == "default"
    assert q4.decode_expected_error == X.EXPECTED[("calibrated", "decode")]["median_abs_error"]
    assert q4.prefill_expected_error == X.EXPECTED[("default-catalog", "prefill")]["median_abs_error"]
    assert by[("torch", "fp16")].decode_kind == "default"
    default_rows, _ = H.table(d, formats(), models=[m])
    assert {r.decode_kind for r in default_rows} == {"default"}
    w = Workload(model=m.name, task="infer", engine="llamacpp", weight_dtype="q4_0", prompt_tokens=H.SPEED_PROMPT,
                 gen_tokens=H.SPEED_GEN)
    with C.using(C.fit(pts)):
        calibrated = estimate(w, d, model=m).time.decode_tokens_per_s
    default = next(r for r in default_rows if r.format == "q4_0").decode_tokens_per_s
    assert q4.decode_tokens_per_s == pytest.approx(calibrated) and abs(calibrated / default - 1) > 0.05


def test_expected_errors_carry_source_and_date():
    for e in X.table():
        assert e["source"].startswith("docs/validation.md") and len(e["date"]) == 10 and 0 < e["median_abs_error"] < 1


def test_bad_input_is_one_error_line():
    for args, msg in ((("--device", "nope"), "unknown device 'nope'"), (("--here", "--min-tps", "nan"), "--min-tps"),
                      (("--here", "--task", "poetry"), "--task must be one of"),
                      (("--min-context", "1000"), "go with --here"), (("--here", "--device", DEVICE), "use one"),
                      (("--here", "--engine", "llama"), "--engine")):
        code, out, err = run_cli("models", *args)
        assert code == 2 and out == "" and err.startswith("error:") and msg in err, (args, err)
        assert len(err.strip().splitlines()) == 1


def test_here_does_not_import_torch_and_lists_this_machine():
    """A fresh AIPC_HOME (no aipc hw profile): every row, memory and context, and no invented speed."""
    code = ("import sys, io, json, contextlib; from aipc.cli import main\n"
            "buf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf): rc = main(['models', '--here', '--json'])\n"
            "d = json.loads(buf.getvalue())\n"
            "assert rc == 0 and d['device'].startswith('this-machine') and len(d['rows']) > 300, d['device']\n"
            "assert not d['measured_peaks'] and {r['decode_tokens_per_s'] for r in d['rows']} == {None}\n"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules and 'llama_cpp' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_people_table_marks_each_figure():
    code, out, _ = run_cli("models", "--device", DEVICE, "--engine", "llamacpp")
    assert code == 0 and "decode tok/s" in out and " d " in out + " " and "more (filter with" in out
    assert "m = measured here" in out and "c = calibrated" in out


def test_gguf_parts_cache_gives_the_computed_bytes():
    """The disk cache answers with exactly what llama.cpp's mix computes, and a changed config misses it."""
    import dataclasses
    import json as _json

    from aipc.estimate import here_cache
    from aipc.estimate.quant import gguf_parts

    m = catalog.get("qwen2.5-0.5b")
    H.table(resolve_device(DEVICE), formats(["llamacpp"]), models=[m])
    data = _json.loads(here_cache._path().read_text())
    cached = data[here_cache.model_key(m)]
    assert set(cached) == set(WEIGHT_FORMATS["llamacpp"])
    fresh = dataclasses.replace(m)  # another spec object: the estimator's memo computes it again
    for fmt in ("q4_k_m", "q8_0", "q6_k"):
        assert cached[fmt] == gguf_parts(fresh, fmt) and sum(cached[fmt].values()) > 0
    other = dataclasses.replace(m, config={**m.config, "num_hidden_layers": 12})
    assert here_cache.model_key(other) != here_cache.model_key(m)


def test_an_engines_own_check_sets_its_rows_expected_error_on_this_machine():
    own = X.BY_ENGINE[("llamacpp", "default", "decode")]["median_abs_error"]
    assert X.expected("default", "decode", True, "llamacpp")["median_abs_error"] == own
    assert X.expected("default", "decode", False, "llamacpp") == X.expected("default", "decode", False)
    assert X.expected("calibrated", "decode", True, "torch")["median_abs_error"] == \
        X.EXPECTED[("calibrated", "decode")]["median_abs_error"]
    m, d = catalog.get("smollm2-135m"), resolve_device(DEVICE)
    here = H.row(m, "llamacpp", "q4_k_m", d, this_machine=True)
    there = H.row(m, "llamacpp", "q4_k_m", d, this_machine=False)
    assert here.decode_expected_error == own != there.decode_expected_error
    assert H.row(m, "torch", "fp32", d, this_machine=True).decode_expected_error == \
        X.EXPECTED[("default", "decode")]["median_abs_error"]
