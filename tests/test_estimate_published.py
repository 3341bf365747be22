"""Uncalibrated estimates against published measurements (aipc.estimate.published): single-device decode
(gpt-fast, llama.cpp CUDA / Metal / Vulkan) and multi-GPU training (torchtitan) within +-20%."""

import pytest

from aipc.estimate import published as P
from aipc.estimate.efficiency import default_efficiency
from aipc.estimate.efficiency_defaults import DEFAULTS
from aipc.hardware.catalog import get_device


@pytest.mark.parametrize("run", [r for r in P.RUNS if r.scenario in ("decode", "train")],
                         ids=lambda r: f"{r.scenario}-{r.device}-{r.model}-{r.engine}-{r.precision}")
def test_uncalibrated_estimate_within_20_percent_of_published(run):
    est = P.estimate_run(run)
    assert est is not None and 0.8 <= est / run.value <= 1.2, (est, run.value)


def test_every_published_run_and_default_names_its_source():
    for r in P.RUNS:
        assert r.source and r.date and r.value > 0
    for key, d in DEFAULTS.items():
        assert d.source.startswith("default"), key
        assert 0 <= d.mfu_train <= 1 and 0 < d.mfu_prefill <= 1 and 0 < d.mbu_decode <= 1 and d.decode_layer_s >= 0


def test_defaults_depend_on_engine_and_generation():
    gpu = get_device("rtx-4090")
    assert default_efficiency(gpu, "llamacpp").mfu_prefill != default_efficiency(gpu, "torch").mfu_prefill
    assert default_efficiency(get_device("a100-80gb")).mfu_train > default_efficiency(get_device("h100-sxm")).mfu_train
    npu = get_device("intel-lunar-lake-npu")
    assert "no published llamacpp measurement" in default_efficiency(npu, "llamacpp").source
