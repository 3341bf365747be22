"""Property-based fuzzing of the workload and needs parsers: dicts, TOML/JSON files (valid, wrong
types, huge/negative/NaN numbers, unicode, deep nesting, truncated or damaged), and ``--set`` strings.
The only allowed failure is a one-line AipcError."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from fuzz_book import (Book, fuzz_settings, json_text, junk, mangled, maybe, numbers, table_of,
                              text, toml_text)

from aipc import spec
from aipc.cost import defaults as D
from aipc.cost.needs import load_needs, needs_from_dict
from aipc.errors import AipcError
from aipc.models import catalog

MODELS = st.sampled_from([*catalog.names()[:12], "meta-llama/Llama-3.1-8B", "gpt2", "./missing/config.json", ""])
NAMES = st.one_of(st.text(min_size=1, max_size=12).filter(str.strip), st.sampled_from(["a", "b", "chat bot"]))
POS = st.one_of(st.integers(1, 4096), st.sampled_from([1, 2, 8, 128, 2048]), numbers())
SMALL = st.integers(1, 4096)
COMMON_FIELDS = {
    "model": maybe(MODELS),
    "precision": maybe(st.sampled_from([*spec.PRECISION_PRESETS, *spec.QUANTIZED, "BF16", "fp8", "int3"])),
    "weight_dtype": maybe(st.sampled_from(list(spec.DTYPE_BYTES))),
    "compute_dtype": maybe(st.sampled_from([*spec.FLOAT_DTYPES, "fp8", "int8"])),
    "optim_dtype": maybe(st.sampled_from(spec.FLOAT_DTYPES)),
    "adapter_dtype": maybe(st.sampled_from([*spec.ADAPTER_DTYPES, "int8", "BF16"])),
    "kv_dtype": maybe(st.sampled_from(list(spec.DTYPE_BYTES))),
    "optimizer": maybe(st.sampled_from(spec.OPTIMIZERS)),
    "attention": maybe(st.sampled_from(spec.ATTENTION)),
    "lora_targets": maybe(st.one_of(st.just("all-linear"), st.lists(st.sampled_from(spec.DEFAULT_LORA_TARGETS)),
                                    st.just("q_proj, v_proj"))),
    "master_weights": maybe(st.one_of(st.booleans(), st.sampled_from(["yes", "off", "maybe"]))),
    "grad_ckpt": maybe(st.booleans()),
    "logits_fp32": maybe(st.booleans()),
    "fused_loss": maybe(st.booleans()),
    "link": maybe(st.sampled_from(["pcie4", "nvlink4", "ib-ndr"])),
    **{f: maybe(st.one_of(SMALL, SMALL, POS)) for f in (
        "batch_size", "seq_len", "prompt_tokens", "gen_tokens", "grad_accum", "num_devices", "nodes", "lora_rank",
        "int4_group_size", "trainable_layers", "train_tokens")},
}
INFER_ONLY = {"task": maybe(st.sampled_from(["infer", "INFER", " infer "])), "method": maybe(st.just("full")),
              "sharding": maybe(st.sampled_from(["none", "tp"])), "engine": maybe(st.sampled_from(spec.ENGINES))}
TRAIN_ONLY = {"task": maybe(st.sampled_from(["train", "Train"])), "method": maybe(st.sampled_from(spec.METHODS)),
              "sharding": maybe(st.sampled_from(["none", "ddp", "zero1", "zero2", "zero3", "fsdp"]))}
ANY_ONLY = {"task": maybe(st.sampled_from(spec.TASKS)), "method": maybe(st.sampled_from(spec.METHODS)),
            "sharding": maybe(st.sampled_from(spec.SHARDING)),
            "engine": maybe(st.sampled_from([*spec.ENGINES, "vllm", "LLAMACPP"]))}
WORKLOAD_FIELDS = {**COMMON_FIELDS, **ANY_ONLY}
WORKLOADS = st.one_of(table_of({**COMMON_FIELDS, **INFER_ONLY}, required=("model",)),
                      table_of({**COMMON_FIELDS, **TRAIN_ONLY}, required=("model", "task")),
                      table_of({k: maybe(v, 3) for k, v in WORKLOAD_FIELDS.items()}), junk())


def _check_workload(w: spec.Workload) -> None:
    """A Workload the parser accepted must hold what validate() promises."""
    assert isinstance(w, spec.Workload) and w.model.strip()
    for f in ("batch_size", "seq_len", "prompt_tokens", "gen_tokens", "grad_accum", "num_devices", "lora_rank"):
        v = getattr(w, f)
        assert isinstance(v, int) and not isinstance(v, bool) and v > 0, (f, v)
    assert w.task in spec.TASKS and w.method in spec.METHODS and w.compute in ("fp32", "bf16", "fp16", "fp8")
    assert w.tokens_per_step > 0 and w.context > 0
    assert spec.dtype_bytes(w.weight_dtype, w.int4_group_size) > 0


@fuzz_settings(ci=180, full=1600)
@given(d=WORKLOADS)
def test_workload_from_dict(d):
    t = _tally("fuzz: workload dict (workload_from_dict)")
    w = t.run(lambda: spec.workload_from_dict(d))
    if isinstance(w, spec.Workload):
        _check_workload(w)
        assert spec.workload_from_dict(w.to_dict()) == w  # what it writes, it reads back


@fuzz_settings(ci=120, full=1200)
@given(d=WORKLOADS, fmt=st.sampled_from(["toml", "json", "toml-section"]), data=st.data())
def test_workload_file(d, fmt, data, tmp_path_factory):
    files = _files(tmp_path_factory, "workload")
    tbl = d if isinstance(d, dict) else {"model": d}
    body = toml_text(tbl) if fmt == "toml" else json_text(d) if fmt == "json" else "[workload]\n" + toml_text(tbl)
    raw = data.draw(mangled(body))
    p = files.write(".json" if fmt == "json" else ".toml", raw)
    t = _tally("fuzz: workload file (load_workload_file, TOML/JSON)")
    w = t.run(lambda: spec.load_workload_file(p))
    if isinstance(w, spec.Workload):
        _check_workload(w)


# ------------------------------------------------------------------ needs

JOB_FIELDS = {
    "name": maybe(NAMES), "model": maybe(MODELS), "method": maybe(st.sampled_from(["full", "lora", "qlora"])),
    "train_tokens": maybe(st.one_of(st.integers(1, 10**12), st.integers(1, 10**12), POS)),
    "jobs_per_month": maybe(st.floats(0.1, 100)), "deadline_hours": maybe(st.floats(0.1, 1000)),
    "seq_len": maybe(POS), "batch_size": maybe(POS), "precision": maybe(st.sampled_from(["bf16", "nf4", "fp32"])),
    "grad_ckpt": maybe(st.sampled_from([True, False, "auto"])),
    "lora_rank": maybe(POS), "optimizer": maybe(st.sampled_from(spec.OPTIMIZERS)),
}
INFER_FIELDS = {
    "name": maybe(NAMES), "model": maybe(MODELS),
    "requests_per_day": maybe(st.one_of(st.floats(1, 1e7), st.integers(1, 10**6), numbers())),
    "peak_requests_per_s": maybe(st.floats(0, 1e4)), "prompt_tokens": maybe(POS), "output_tokens": maybe(POS),
    "ttft_s": maybe(st.floats(0.01, 10)), "tpot_s": maybe(st.floats(0.001, 1)),
    "precision": maybe(st.sampled_from(["bf16", "int4", "q4_k_m"])), "kv_dtype": maybe(st.sampled_from(["fp8", "bf16"])),
}
ASSUME_FIELDS = {
    "currency": maybe(st.sampled_from(["USD", "EUR", "€", "jpy"])), "usd_per_unit": maybe(st.floats(0.01, 10)),
    "on_prem_required": maybe(st.booleans()), "horizon_months": maybe(st.floats(1, 120)),
    "residual_fraction": maybe(st.floats(0, 1)), "utilization": maybe(st.one_of(st.just("auto"), st.floats(0, 1))),
    "electricity_per_kwh": maybe(st.floats(0, 1)), "pue_desk": maybe(st.floats(1, 2)),
    "pue_datacenter": maybe(st.floats(1, 2)), "ops_per_month": maybe(st.floats(0, 1e4)),
    "extra_capex_per_device": maybe(st.floats(0, 1e4)), "host_per_gpu_card": maybe(st.floats(0, 5e3)),
    "max_devices": maybe(st.integers(1, 16)), "always_on": maybe(st.booleans()),
    "peak_to_average": maybe(st.floats(1, 10)), "max_batch": maybe(st.integers(1, 256)),
}
assert set(ASSUME_FIELDS) == set(D.ASSUMPTIONS) and set(JOB_FIELDS) >= set(D.JOB) and set(INFER_FIELDS) >= set(D.INFERENCE)
DEVICES = st.sampled_from(["rtx-4090", "h100-sxm", "m4-max-40c", "nope-9000", ""])
CLOUD_FIELDS = {"device": maybe(DEVICES), "provider": maybe(st.sampled_from(["Lambda", "aws", ""])),
                "per_hour": maybe(st.floats(0, 50)), "per_instance_hour": maybe(st.floats(0, 400)),
                "devices_per_instance": maybe(st.integers(0, 8)), "instance": maybe(text(10))}
CAND_FIELDS = {"devices": maybe(st.lists(DEVICES, max_size=3)), "exclude": maybe(st.lists(DEVICES, max_size=2)),
               "buy": maybe(st.booleans()), "owned": maybe(st.booleans()), "cloud": maybe(st.booleans()),
               "replace_cloud": maybe(st.booleans())}


JOB = table_of(JOB_FIELDS, required=("model", "train_tokens"))
INF = table_of(INFER_FIELDS, required=("model", "requests_per_day"))
JOBS = maybe(st.one_of(st.lists(JOB, max_size=2), JOB), 0.5)
INFS = maybe(st.one_of(st.lists(INF, max_size=2), INF), 0.5)
SOME_INFS = maybe(st.one_of(st.lists(INF, min_size=1, max_size=2), INF), 0.5)
ASSUME = table_of(ASSUME_FIELDS)
OPTIONAL_PARTS = (("prices", maybe(st.dictionaries(DEVICES, numbers(), max_size=3))),
                  ("cloud", maybe(st.lists(table_of(CLOUD_FIELDS), max_size=3))),
                  ("candidates", maybe(table_of(CAND_FIELDS))))


@st.composite
def needs_dicts(draw):
    d = draw(ASSUME)
    if draw(st.booleans()):  # the same fields under [assumptions]
        d = {"assumptions": d}
    d["jobs"] = draw(JOBS)
    d["inference"] = draw(INFS if d["jobs"] else SOME_INFS)
    for key, strat in OPTIONAL_PARTS:
        if draw(st.booleans()):
            d[key] = draw(strat)
    return d


def _check_needs(n) -> None:
    a = n.assumptions
    assert n.jobs or n.inference
    for v in (a.usd_per_unit, a.horizon_months, a.pue_desk, a.pue_datacenter, a.peak_to_average):
        assert math.isfinite(v) and v > 0
    assert 0 <= a.residual_fraction < 1 and a.max_devices >= 1 and a.max_batch >= 1
    for j in n.jobs:
        assert j.train_tokens > 0 and j.jobs_per_month > 0 and math.isfinite(j.tokens_per_month)
        j.workload()
    for i in n.inference:
        assert i.peak_requests_per_s > 0 and i.ttft_s > 0 and i.tpot_s > 0
        i.workload()
    for c in n.cloud:
        assert c.per_hour > 0 and c.devices_per_instance >= 1


@fuzz_settings(ci=180, full=1600)
@given(d=st.one_of(needs_dicts(), needs_dicts(), junk()))
def test_needs_from_dict(d):
    t = _tally("fuzz: needs dict (needs_from_dict)")
    n = t.run(lambda: needs_from_dict(d))
    if not isinstance(n, AipcError):
        _check_needs(n)


SET_KEYS = st.sampled_from(["assumptions.horizon_months", "horizon_months", "currency", "jobs", "inference",
                            "prices.rtx-4090", "candidates.devices", "a.b.c", "", ".", "..x", "utilization"])
SET_VALUES = st.one_of(st.sampled_from(["24", "nan", "inf", "-1", "1e999", "[1, 2", "\"EUR\"", "[\"rtx-4090\"]",
                                        "{a = 1}", "true", "auto", "[[[[[[[[[[]]]]]]]]]]", "[" * 3000]), text(12))


@fuzz_settings(ci=110, full=1000)
@given(d=needs_dicts(), fmt=st.sampled_from(["toml", "json"]), sets=st.lists(st.tuples(SET_KEYS, SET_VALUES), max_size=2),
       bare=st.lists(text(8), max_size=1), data=st.data())
def test_needs_file_and_set_flags(d, fmt, sets, bare, data, tmp_path_factory):
    files = _files(tmp_path_factory, "needs")
    raw = data.draw(mangled(toml_text(d) if fmt == "toml" else json_text(d)))
    p = files.write(f".{fmt}", raw)
    assignments = [f"{k}={v}" for k, v in sets] + bare
    t = _tally("fuzz: needs file + --set (load_needs)")
    n = t.run(lambda: load_needs(p, sets=assignments))
    if not isinstance(n, AipcError):
        _check_needs(n)


# ------------------------------------------------------------------ regressions found by fuzzing

@pytest.mark.parametrize("body", ["[" * 100_000 + "]" * 100_000, "x = " + "[" * 100_000 + "]" * 100_000])
def test_deeply_nested_files_are_one_line_errors(tmp_path, body):
    for suffix in (".json", ".toml"):
        p = tmp_path / f"w{suffix}"
        p.write_text(body)
        with pytest.raises(AipcError, match="not valid"):
            spec.load_workload_file(p)
        with pytest.raises(AipcError, match="not valid"):
            load_needs(p)


def test_deeply_nested_set_value_is_a_one_line_error(tmp_path):
    p = tmp_path / "needs.toml"
    p.write_text('[[inference]]\nmodel = "gpt2"\nrequests_per_day = 1000\n')
    with pytest.raises(AipcError, match="horizon_months"):
        load_needs(p, sets=["horizon_months=" + "[" * 3000])


def test_type_errors_name_the_expected_type():
    with pytest.raises(AipcError, match=r"'lora_targets' must be list \(got 5\)"):  # was "must be tuple[str, (got 5)"
        spec.workload_from_dict({"model": "gpt2", "lora_targets": 5})


# ------------------------------------------------------------------ bookkeeping

BOOK = Book()
_tally, _files = BOOK.tally, BOOK.files

_report = BOOK.fixture()


def test_fields_cover_the_workload_dataclass():
    """The fuzzer knows every Workload field (a new field gets fuzzed or this fails)."""
    assert {f.name for f in dataclasses.fields(spec.Workload)} <= set(WORKLOAD_FIELDS) | {"weight_dtype"}


def test_needs_with_absurd_demand_is_a_one_line_error():
    # found by the full fuzz run: train_tokens = 1.8e308 made tokens per month infinite
    from aipc.cost.needs import needs_from_dict

    with pytest.raises(AipcError, match="train_tokens"):
        needs_from_dict({"jobs": {"model": "llama-3.2-1b", "train_tokens": 1.7976931348623157e308, "jobs_per_month": 2.0}})


def test_engine_is_checked_and_training_is_torch_only():
    assert spec.workload_from_dict({"model": "gpt2", "engine": "llamacpp", "precision": "q4_k_m"}).engine == "llamacpp"
    with pytest.raises(AipcError, match="engine must be one of torch, llamacpp, openvino"):
        spec.workload_from_dict({"model": "gpt2", "engine": "vllm"})
    with pytest.raises(AipcError, match="engine llamacpp runs inference only"):
        spec.workload_from_dict({"model": "gpt2", "task": "train", "engine": "llamacpp"})
