"""Property-based fuzzing of device catalog override files (``aipc devices --catalog FILE``,
``load_catalog(extra=[path])``): new entries and overrides of built-in ones, numbers with and without
sources, refs, cloud offers — as TOML and JSON, valid, wrong-typed, huge/negative/NaN, truncated or
damaged. Only one-line AipcErrors may come out; an accepted device must be sane and round-trip."""

from __future__ import annotations

import json
import math
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from fuzz_book import (Book, fuzz_settings, json_text, junk, mangled, maybe, numbers, table_of, text,
                              toml_text)

from aipc.errors import AipcError
from aipc.hardware import catalog as C

SRC = {"source": "https://example.com/datasheet", "as_of": "2026-01-31"}
DATES = maybe(st.just("2026-01-31"), 3, bad=st.sampled_from(["2026-02-30", "yesterday", "2026-1-1", "", "20260131"]))
POS_NUM = maybe(st.one_of(st.integers(1, 4096), st.floats(0.01, 1e5)), 2, bad=numbers())
REF_NAMES = maybe(st.just("src"), 3, bad=st.sampled_from(["nv_h100", "lambda", "nope"]))


@st.composite
def number(draw, plausible=POS_NUM):
    """A number as the schema allows it: bare, {value, source, as_of}, {value, ref}, with a note."""
    v = draw(maybe(plausible))
    how = draw(maybe(st.sampled_from(["sourced", "sourced", "ref", "bare"]), 3, bad=st.just("partial")))
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


PEAKS = st.dictionaries(st.sampled_from([*C.DTYPES, *C.DTYPES, "fp12"]), number(), min_size=1, max_size=3)
OFFER = table_of({"provider": maybe(st.sampled_from(["lambda", "aws", ""])), "instance": maybe(text(8)),
                  "usd_per_hour": maybe(POS_NUM), "usd_per_instance_hour": maybe(POS_NUM),
                  "devices_per_instance": maybe(st.integers(0, 8)), "source": maybe(st.just(SRC["source"])),
                  "as_of": maybe(DATES), "ref": maybe(REF_NAMES), "note": maybe(text(8))},
                 required=("provider", "usd_per_hour", "source", "as_of"))
ENTRY_FIELDS = {
    "label": maybe(st.sampled_from(["Fuzz GPU 24 GB", "x", ""])), "vendor": maybe(st.sampled_from(["nvidia", "amd"])),
    "kind": maybe(st.sampled_from([*C.KINDS, "tpu"])), "category": maybe(st.sampled_from([*C.CATEGORIES, "cloud"])),
    "power_w": number(), "price_usd": number(), "cloud": maybe(st.lists(OFFER, max_size=2)),
    "measured": maybe(st.booleans()), "replace": maybe(st.booleans()), "notes": maybe(text(20)),
    "source": maybe(st.just(SRC["source"])), "as_of": maybe(DATES),
    "refs": maybe(st.dictionaries(REF_NAMES, maybe(st.just(SRC)), max_size=2)),
}
# one key per quantity (two conflict: that error is reached through the junk cases and the tests below)
QUANTITY_KEYS = [("memory_gib", "memory_gib", "memory_gb", "memory_bytes"), ("usable_memory_gb", *[None] * 5),
                 ("bandwidth_gbs", "bandwidth_bytes_s"), ("peak_tflops", "peak_flops")]


@st.composite
def entries(draw):
    e = draw(table_of(ENTRY_FIELDS, required=("label", "vendor", "kind", "category")))
    for keys in QUANTITY_KEYS:
        key = draw(st.sampled_from(keys))
        if key is None or (keys[0] == "memory_gib" and draw(maybe(st.just(False), bad=st.just(True)))):
            continue
        e[key] = draw(maybe(PEAKS)) if key.startswith("peak") else draw(number())
    if key_of(e, "memory_gib") is not None and draw(st.booleans()):  # unified memory: a share is usable
        e["usable_memory_gib"] = {"value": key_of(e, "memory_gib") * draw(st.sampled_from([0.5, 0.75, 1.0])), **SRC}
    if draw(maybe(st.just(False), bad=st.just(True))):  # a second key for the same quantity
        e[draw(st.sampled_from(["memory_gb", "peak_flops", "bandwidth_bytes_s"]))] = draw(number())
    return e


def key_of(e: dict, key: str):
    """The plain positive number behind ``e[key]`` (bare or {value: ...}), else None."""
    v = e.get(key)
    v = v.get("value") if isinstance(v, dict) else v
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 < v < 1e12
    return v if ok else None


IDS = maybe(st.sampled_from(["fuzz-gpu", "fuzz-apu", "rtx-4090", "H100-SXM", "m4-max-40c"]), 2,
            bad=st.one_of(st.sampled_from(["-bad", "a b", ""]), text(12)))


@st.composite
def catalog_files(draw):
    d = {"devices": draw(maybe(st.dictionaries(IDS, maybe(entries(), 0.3), min_size=1, max_size=3), 0.3))}
    if draw(maybe(st.just(True), bad=st.just(False))):
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


@fuzz_settings(ci=150, full=1500)
@given(d=st.one_of(catalog_files(), catalog_files(), catalog_files(), junk()),
       fmt=st.sampled_from(["toml", "json"]), data=st.data())
def test_device_catalog_override_file(d, fmt, data, tmp_path_factory):
    tbl = d if isinstance(d, dict) else {"devices": d}
    body = toml_text(tbl) if fmt == "toml" else json_text(d)
    raw = data.draw(mangled(body))
    p = BOOK.files(tmp_path_factory, "catalog").write(f".{fmt}", raw)
    t = BOOK.tally("fuzz: device catalog override file (load_catalog extra=[file])")
    cat = t.run(lambda: C.load_catalog(extra=[p]))
    if isinstance(cat, dict):
        written = (json.loads(body) if fmt == "json" else tomllib.loads(body)) if raw == body.encode() else {}
        _check(cat, list(written["devices"]) if isinstance(written.get("devices"), dict) else [])


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
    {"devices": {"x": {**GOOD, "peak_tflops": {"bf16": {"value": 1e300, **SRC}}}}},  # overflows to inf FLOP/s
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


BOOK = Book()
_report = BOOK.fixture()
