"""Property-based fuzzing of device catalog override files (``aipc devices --catalog FILE``,
``load_catalog(extra=[path])``): new entries and overrides of built-in ones, numbers with and without
sources, refs, cloud offers — as TOML and JSON, valid, wrong-typed, huge/negative/NaN, truncated or
damaged. Only one-line AipcErrors may come out; an accepted device must be sane and round-trip."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_common import (Files, Tally, fuzz_settings, json_text, junk, mangled, maybe, numbers, table_of, text,
                              toml_text)

from aipc.errors import AipcError
from aipc.hardware import catalog as C

SRC = {"source": "https://example.com/datasheet", "as_of": "2026-01-31"}
DATES = st.sampled_from(["2026-01-31", "2026-02-30", "yesterday", "2026-1-1", "", "20260131"])
POS_NUM = st.one_of(st.integers(1, 4096), st.floats(0.01, 1e5), numbers())
REF_NAMES = st.sampled_from(["src", "nv_h100", "lambda", "nope"])


@st.composite
def number(draw, plausible=POS_NUM):
    """A number as the schema allows it: bare, {value, source, as_of}, {value, ref}, with a note."""
    v = draw(maybe(plausible))
    how = draw(st.sampled_from(["sourced", "sourced", "ref", "bare", "partial"]))
    if how == "sourced":
        out = {"value": v, **SRC}
    elif how == "ref":
        out = {"value": v, "ref": draw(REF_NAMES)}
    elif how == "partial":
        out = {"value": v, "source": draw(maybe(st.just(SRC["source"]))), "as_of": draw(maybe(DATES))}
    else:
        return v
    if draw(st.integers(0, 4)) == 0:
        out["note"] = draw(text(10))
    return out


PEAKS = st.dictionaries(st.sampled_from([*C.DTYPES, "fp12"]), number(), min_size=0, max_size=3)
OFFER = table_of({"provider": maybe(st.sampled_from(["lambda", "aws", ""])), "instance": maybe(text(8)),
                  "usd_per_hour": maybe(POS_NUM), "usd_per_instance_hour": maybe(POS_NUM),
                  "devices_per_instance": maybe(st.integers(0, 8)), "source": maybe(st.just(SRC["source"])),
                  "as_of": maybe(DATES), "ref": maybe(REF_NAMES), "note": maybe(text(8))},
                 required=("provider", "usd_per_hour", "source", "as_of"))
ENTRY_FIELDS = {
    "label": maybe(st.sampled_from(["Fuzz GPU 24 GB", "x", ""])), "vendor": maybe(st.sampled_from(["nvidia", "amd"])),
    "kind": maybe(st.sampled_from([*C.KINDS, "tpu"])), "category": maybe(st.sampled_from([*C.CATEGORIES, "cloud"])),
    "memory_gib": number(), "memory_gb": number(), "memory_bytes": number(st.integers(1, 2**40)),
    "usable_memory_gib": number(), "usable_memory_gb": number(), "bandwidth_gbs": number(),
    "bandwidth_bytes_s": number(st.integers(1, 10**13)), "power_w": number(), "price_usd": number(),
    "peak_tflops": maybe(PEAKS), "peak_flops": maybe(PEAKS), "cloud": maybe(st.lists(OFFER, max_size=2)),
    "measured": maybe(st.booleans()), "replace": maybe(st.booleans()), "notes": maybe(text(20)),
    "source": maybe(st.just(SRC["source"])), "as_of": maybe(DATES),
    "refs": maybe(st.dictionaries(REF_NAMES, maybe(st.just(SRC)), max_size=2)),
}
ENTRY = table_of(ENTRY_FIELDS, required=("label", "vendor", "kind", "category", "memory_gib", "bandwidth_gbs",
                                         "peak_tflops"))
IDS = st.one_of(st.sampled_from(["fuzz-gpu", "fuzz-apu", "rtx-4090", "H100-SXM", "m4-max-40c", "-bad", "a b", ""]),
                text(12))


@st.composite
def catalog_files(draw):
    d = {"devices": draw(maybe(st.dictionaries(IDS, maybe(ENTRY, 0.3), min_size=1, max_size=3), 0.3))}
    if draw(st.booleans()):
        d["refs"] = draw(maybe(st.fixed_dictionaries({"src": maybe(st.just(SRC))})))
    if draw(st.booleans()):
        d.update({"source": draw(maybe(st.just(SRC["source"]))), "as_of": draw(maybe(DATES))})
    if draw(st.integers(0, 9)) == 0:
        d["schema"] = draw(maybe(st.just(1)))
    return d


def _check(cat: dict, ids: list) -> None:
    for name in ids:
        spec = C.match_device(cat, name)
        assert spec is not None, name
        assert spec.memory_bytes > 0 and 0 < spec.usable_memory_bytes <= spec.memory_bytes
        assert math.isfinite(spec.bandwidth_bytes_s) and spec.bandwidth_bytes_s > 0
        assert spec.peak_flops and all(math.isfinite(v) and v > 0 for v in spec.peak_flops.values())
        assert all(o.usd_per_hour > 0 and o.devices_per_instance >= 1 for o in spec.cloud)
        assert spec.kind in C.KINDS and spec.category in C.CATEGORIES
        again = C.device_from_dict(json.loads(json.dumps(C.device_to_dict(spec))), where="round trip")
        assert again == spec  # what `aipc devices --json` writes reads back the same


@fuzz_settings(ci=200, full=1500)
@given(d=st.one_of(catalog_files(), catalog_files(), catalog_files(), junk()),
       fmt=st.sampled_from(["toml", "json"]), data=st.data())
def test_device_catalog_override_file(d, fmt, data, tmp_path_factory):
    if "files" not in _STATE:
        _STATE["files"] = Files(tmp_path_factory.mktemp("fuzz-catalog"))
    tbl = d if isinstance(d, dict) else {"devices": d}
    body = toml_text(tbl) if fmt == "toml" else json_text(d)
    raw = data.draw(mangled(body))
    p = _STATE["files"].write(f".{fmt}", raw)
    t = _STATE.setdefault("tally", Tally("fuzz: device catalog override file (load_catalog extra=[file])"))
    cat = t.run(lambda: C.load_catalog(extra=[p]))
    if isinstance(cat, dict):
        as_written = raw == body.encode() and isinstance(tbl.get("devices"), dict)
        _check(cat, list(tbl["devices"]) if as_written else [])


# ------------------------------------------------------------------ regressions found by fuzzing

GOOD = {"label": "Fuzz GPU", "vendor": "nvidia", "kind": "gpu", "category": "workstation",
        "memory_gib": {"value": 24, **SRC}, "bandwidth_gbs": {"value": 1000, **SRC},
        "peak_tflops": {"bf16": {"value": 100, **SRC}}}


@pytest.mark.parametrize("file", [
    {"devices": {"x": GOOD}, "refs": [1, 2]},                                  # file refs not a table
    {"devices": {"x": {**GOOD, "refs": "src"}}},                               # entry refs not a table
    {"devices": {"x": {**GOOD, "memory_gib": {"value": 24, "ref": ["a"]}}}},   # ref not a name
    {"devices": {"x": {**GOOD, "memory_gib": {"value": 24, "ref": {"a": 1}}}}},
    {"devices": {"x": {**GOOD, "memory_gib": {"value": 24, "source": 5, "as_of": 20260131}}}},
    {"devices": {"x": {**GOOD, "peak_tflops": {"bf16": 5}}}},                  # bare peak without a default source
    {"devices": {"x": {**GOOD, "peak_tflops": {"bf16": [1, 2]}}}},
    {"devices": {"x": {**GOOD, "cloud": [{"provider": "p", "usd_per_hour": 1, "ref": ["x"]}]}}},
    {"devices": {"x": {**GOOD, "cloud": [{"provider": "p", "usd_per_hour": 1, "source": "s", "as_of": 5}]}}},
    {"devices": {"x": {**GOOD, "memory_gib": {"value": 1e308, **SRC}}}},         # overflows to inf bytes
    {"devices": {"rtx-4090": {"peak_tflops": [1]}}},                           # override with a non-table
    {"devices": {"rtx-4090": {"memory_gb": 5}}, "source": "s", "as_of": "2026-01-01"},  # smaller than usable
])
def test_bad_catalog_files_are_one_line_errors(tmp_path, file):
    p = tmp_path / "dev.json"
    p.write_text(json.dumps(file))
    with pytest.raises(AipcError):
        C.load_catalog(extra=[p])


def test_non_utf8_and_deep_catalog_files_are_one_line_errors(tmp_path):
    for name, data in (("a.toml", b"[devices.x]\nlabel = \"\xff\"\n"), ("b.json", b"[" * 100_000),
                       ("c.toml", b"x = " + b"[" * 100_000)):
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(AipcError):
            C.load_catalog(extra=[p])


def test_good_override_file_still_loads(tmp_path):
    p = tmp_path / "dev.json"
    p.write_text(json.dumps({"devices": {"fuzz-gpu": GOOD}}))
    spec = C.load_catalog(extra=[p])["fuzz-gpu"]
    assert spec.memory_bytes == 24 * 2**30 and spec.peak_flops == {"bf16": 100e12}


_STATE: dict = {}


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    if "tally" in _STATE:
        _STATE["tally"].finish()
