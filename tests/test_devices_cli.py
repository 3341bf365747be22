"""`aipc devices`: table, filters, one device with sources, --json, --catalog, exit 2 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import run_cli


def test_json_lists_at_least_30_devices_with_sources():
    code, out, err = run_cli("devices", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["count"] == len(data["devices"]) >= 30
    for d in data["devices"]:
        numbers = [d["memory_bytes"], d["usable_memory_bytes"], d["bandwidth_bytes_s"], *d["peak_flops"].values()]
        numbers += [d[k] for k in ("power_w", "price_usd") if k in d]
        for n in numbers:
            assert n["value"] > 0 and n["source"] and len(n["as_of"]) == 10, d["name"]
    h100 = next(d for d in data["devices"] if d["name"] == "h100-sxm")
    assert abs(h100["peak_flops"]["bf16"]["value"] - 989.4e12) < 1e12


def test_table_lists_devices_with_their_columns():
    code, out, _ = run_cli("devices")
    assert code == 0
    for word in ("h100-sxm", "m4-max-40c", "intel-lunar-lake-npu", "bf16 TFLOP/s", "989.4", "$1,599"):
        assert word in out, word


def test_filters_by_category_kind_and_substring():
    code, out, _ = run_cli("devices", "--category", "datacenter", "--json")
    names = {d["name"] for d in json.loads(out)["devices"]}
    assert code == 0 and "h100-sxm" in names and "m4-max-40c" not in names
    code, out, _ = run_cli("devices", "--kind", "npu", "--json")
    kinds = {d["kind"] for d in json.loads(out)["devices"]}
    assert code == 0 and kinds == {"npu"}
    code, out, _ = run_cli("devices", "apple", "--json")
    assert code == 0 and {d["vendor"] for d in json.loads(out)["devices"]} == {"apple"}


def test_one_device_shows_every_source():
    code, out, _ = run_cli("devices", "h100-sxm")
    assert code == 0
    assert "glennklockwood.com" in out and "Lambda" in out and "sparsity, halved" in out
    code, out, _ = run_cli("devices", "NVIDIA GeForce RTX 4090", "--json")
    d = json.loads(out)["device"]
    assert code == 0 and d["name"] == "rtx-4090" and d["price_usd"]["value"] == 1599


def test_catalog_option_adds_a_device(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text('[devices.my-gpu]\nlabel = "Mine"\nvendor = "x"\nkind = "gpu"\ncategory = "workstation"\n'
                 'source = "my notes"\nas_of = "2026-11-01"\nmemory_gib = 20\nbandwidth_gbs = 500\n'
                 'peak_tflops.bf16 = 50\n')
    code, out, err = run_cli("devices", "my-gpu", "--catalog", str(p), "--json")
    assert code == 0, err
    assert json.loads(out)["device"]["memory_bytes"]["value"] == 20 * 2**30


def test_bad_input_exits_2_with_one_line():
    for args, needle in [(("devices", "h10-sxm"), "did you mean"),
                         (("devices", "--category", "laptop"), "unknown category 'laptop'"),
                         (("devices", "--kind", "tpu"), "unknown kind 'tpu'")]:
        code, out, err = run_cli(*args)
        assert code == 2, args
        assert err.startswith("error:") and needle in err and len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err


def test_bad_catalog_file_exits_2(tmp_path):
    p = tmp_path / "devices.toml"
    p.write_text('[devices.rtx-4090]\nbandwidth_gbs = {value = -5, source = "x", as_of = "2026-01-01"}\n')
    code, out, err = run_cli("devices", "--catalog", str(p))
    assert code == 2
    assert err.strip() == "error: devices.toml: [rtx-4090] bandwidth_gbs must be a positive number (got -5)"


def test_devices_does_not_import_torch():
    code = ("import sys, io, contextlib; from aipc.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): rc = main(['devices', '--json'])\n"
            "assert rc == 0, rc\n"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
