"""User device files (TOML/JSON, --catalog and AIPC_DEVICES): add, override, and one-line errors."""

from __future__ import annotations

import json
import os

import pytest

from aipc.errors import AipcError
from aipc.hardware.catalog import get_device, load_catalog

NEW_BOX = """
source = "our lab sheet"
as_of = "2026-11-01"

[devices.lab-box]
label = "Lab box with two 3090s"
vendor = "nvidia"
kind = "gpu"
category = "workstation"
memory_gib = 48
bandwidth_gbs = 936
peak_tflops = {bf16 = 142, fp32 = 71.2}
price_usd = {value = 1800, source = "invoice 2026-10", as_of = "2026-10-15"}

[devices.rtx-4090]
price_usd = {value = 1750, source = "street price, shop X", as_of = "2026-11-20"}
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_toml_file_adds_and_overrides_fields(tmp_path):
    base = load_catalog()
    cat = load_catalog([write(tmp_path, "devices.toml", NEW_BOX)])
    box = cat["lab-box"]
    assert box.memory_bytes == 48 * 2**30 and box.bandwidth_bytes_s == 936e9
    assert box.peak("bf16") == 142e12 and box.sources["peak_flops.bf16"].source == "our lab sheet"
    assert box.sources["price_usd"].as_of == "2026-10-15"
    r = cat["rtx-4090"]
    assert r.price_usd == 1750 and r.sources["price_usd"].source == "street price, shop X"
    assert r.peak_flops == base["rtx-4090"].peak_flops  # fields not given are kept
    assert r.cloud == base["rtx-4090"].cloud
    assert "lab-box" not in base and base["rtx-4090"].price_usd == 1599  # built-in catalog untouched


def test_json_file_and_env_var(tmp_path, monkeypatch):
    data = {"devices": {"edge-npu": {
        "label": "Edge NPU", "vendor": "acme", "kind": "npu", "category": "ai-pc",
        "source": "acme datasheet rev 3", "as_of": "2026-09-30",
        "memory_gb": 8, "bandwidth_gbs": 68, "peak_tflops": {"int8": 26}}}}
    p = write(tmp_path, "acme.json", json.dumps(data))
    monkeypatch.setenv("AIPC_DEVICES", os.pathsep.join([str(p)]))
    npu = get_device("edge npu")
    assert npu.memory_bytes == 8_000_000_000 and npu.peak_flops == {"int8": 26e12}


def test_replace_true_drops_the_builtin_entry(tmp_path):
    text = """
[devices.h100-sxm]
replace = true
label = "H100 capped"
vendor = "nvidia"
kind = "gpu"
category = "datacenter"
source = "our power-capped measurements"
as_of = "2026-11-02"
memory_gib = 80
bandwidth_gbs = 2900
peak_tflops.bf16 = 700
"""
    h = load_catalog([write(tmp_path, "cap.toml", text)])["h100-sxm"]
    assert h.peak_flops == {"bf16": 700e12} and h.cloud == () and h.power_w is None


def test_override_may_switch_units(tmp_path):
    text = """
[devices.l4]
bandwidth_bytes_s = {value = 2.5e11, source = "measured", as_of = "2026-11-03"}
"""
    l4 = load_catalog([write(tmp_path, "l4.toml", text)])["l4"]
    assert l4.bandwidth_bytes_s == 2.5e11


def test_edited_file_is_reloaded(tmp_path):
    p = write(tmp_path, "d.toml", NEW_BOX)
    assert load_catalog([p])["rtx-4090"].price_usd == 1750
    p.write_text(NEW_BOX.replace("1750", "1700"))
    os.utime(p, ns=(os.stat(p).st_atime_ns, os.stat(p).st_mtime_ns + 10**9))
    assert load_catalog([p])["rtx-4090"].price_usd == 1700


BAD = [
    ('[devices.rtx-4090]\nbandwidth_gbs = {value = -5, source = "x", as_of = "2026-01-01"}\n',
     "devices.toml: [rtx-4090] bandwidth_gbs must be a positive number"),
    ('[devices.rtx-4090]\nbandwidth_gbs = 900\n',
     "devices.toml: [rtx-4090] bandwidth_gbs needs a source"),
    ('[devices.rtx-4090]\nprice_usd = {value = 10, source = "x", as_of = "last week"}\n',
     "devices.toml: [rtx-4090] price_usd as_of must be a date YYYY-MM-DD"),
    ('[devices.rtx-4090]\nkind = "tpu"\n',
     "devices.toml: [rtx-4090] kind must be one of gpu | apu | npu | cpu"),
    ('[devices.rtx-4090]\nbandwith_gbs = 900\n',
     "devices.toml: [rtx-4090] bandwith_gbs is not a known field"),
    ('[devices.new-one]\nlabel = "x"\nvendor = "y"\nkind = "gpu"\ncategory = "workstation"\n'
     'source = "s"\nas_of = "2026-01-01"\nbandwidth_gbs = 100\npeak_tflops.bf16 = 1\n',
     "devices.toml: [new-one] memory_bytes is required"),
    ('[devices.rtx-4090]\npeak_tflops.bf17 = {value = 1, source = "s", as_of = "2026-01-01"}\n',
     "devices.toml: [rtx-4090] peak_tflops.bf17 is not a known dtype"),
    ('[devices.rtx-4090]\nmemory_gb = {value = 24, source = "s", as_of = "2026-01-01"}\n'
     'usable_memory_gb = {value = 30, source = "s", as_of = "2026-01-01"}\n',
     "devices.toml: [rtx-4090] usable_memory must not exceed memory"),
    ('[devices.rtx-4090]\nprice_usd = {value = 1, ref = "nope"}\n',
     "devices.toml: [rtx-4090] price_usd refers to unknown ref 'nope'"),
    ('[devices.rtx-4090\nlabel = "x"\n', "devices.toml: not valid TOML"),
    ('[gpus.rtx-4090]\nlabel = "x"\n', "devices.toml: needs a 'devices' table"),
]


@pytest.mark.parametrize("text,expected", BAD, ids=[e.split("] ")[-1][:30] for _, e in BAD])
def test_bad_files_give_one_line_errors(tmp_path, text, expected):
    with pytest.raises(AipcError) as e:
        load_catalog([write(tmp_path, "devices.toml", text)])
    msg = str(e.value)
    assert msg.startswith(expected), msg
    assert "\n" not in msg


def test_missing_file_is_named(tmp_path):
    with pytest.raises(AipcError, match="device catalog file not found: .*nowhere.toml"):
        load_catalog([tmp_path / "nowhere.toml"])


def test_bad_json_file(tmp_path):
    with pytest.raises(AipcError, match="x.json: not valid JSON"):
        load_catalog([write(tmp_path, "x.json", "{devices: }")])


def _docs():
    from pathlib import Path

    return (Path(__file__).resolve().parents[1] / "docs" / "devices.md").read_text()


def test_docs_format_example_loads(tmp_path):
    text = _docs()
    block = text.split("## File format", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    box = load_catalog([write(tmp_path, "example.toml", block)])["lab-box"]
    assert box.sources["memory_bytes"].source == "our lab sheet"
    assert box.sources["peak_flops.bf16"].source.endswith("— dense, fp32 accumulate")
    assert box.cloud[0].usd_per_hour == pytest.approx(0.43)


def test_docs_table_lists_every_device():
    text = _docs()
    missing = [n for n in load_catalog() if f"`{n}`" not in text]
    assert not missing, f"docs/devices.md lacks {missing}; regenerate its Entries table"
