"""The estimator's OpenVINO weight bytes against real IRs exported inside the test (optimum-intel +
NNCF): every compressed matrix byte for fp16 / int8 / int4, tied (Qwen2) and untied (Llama)."""

from __future__ import annotations

import pytest

ov = pytest.importorskip("openvino", reason="OpenVINO is not installed (./setup.sh installs it)")


def _ir_matrix_bytes(folder) -> int:
    """Bytes of the IR's weight constants (rank >= 2) whose decompression chain ends in a MatMul or Gather
    (shape (1, ...) is RoPE's inverse frequencies, not a weight)."""
    from aipc.engines.openvino_runner import _consumers

    model = ov.Core().read_model(str(folder / "openvino_model.xml"))
    total = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Constant":
            continue
        shape = list(op.get_output_shape(0))
        if len(shape) < 2 or shape[0] == 1:
            continue
        ends = _consumers(op)
        if any(t in ("MatMul", "Gather") for t in ends):
            total += op.get_byte_size()
    return total


@pytest.fixture(scope="module")
def tiny_llama_ir(tmp_path_factory):
    from aipc.engines.openvino_export import convert
    from aipc.models.tiny import make_tiny_folder

    src = make_tiny_folder(tmp_path_factory.mktemp("llama-src"), "llama", hidden_size=128, intermediate_size=160)
    root = tmp_path_factory.mktemp("llama-ir")
    return src, convert(str(src), "int4", root / "int4")


def test_formula_equals_exported_bytes_tied(ov_ir, tiny_qwen_dir):
    from aipc.estimate.openvino_weights import weight_bytes
    from aipc.models.load import resolve

    spec = resolve(str(tiny_qwen_dir))
    for fmt, folder in ov_ir.items():
        assert weight_bytes(spec, fmt)["matrices"] == _ir_matrix_bytes(folder), fmt


def test_formula_equals_exported_bytes_untied_with_adjusted_groups(tiny_llama_ir):
    """Llama with an untied lm_head (int8 backup) and a 160-wide MLP (group 32 by NNCF's 'adjust')."""
    from aipc.estimate.openvino_weights import group_size, weight_bytes
    from aipc.models.load import resolve

    src, folder = tiny_llama_ir
    spec = resolve(str(src))
    assert group_size(128) == 128 and group_size(160) == 32 and group_size(48) is None
    got = weight_bytes(spec, "int4")
    assert got["matrices"] == _ir_matrix_bytes(folder)
    assert got["per_step"] < got["total"]  # the untied embedding table is read one row per token


def test_runner_bytes_per_step_agree_with_the_formula(ov_ir, tiny_qwen_dir):
    from aipc.engines.openvino_runner import OVRunner
    from aipc.estimate.openvino_weights import weight_bytes
    from aipc.models.load import resolve

    spec = resolve(str(tiny_qwen_dir))
    for fmt, folder in ov_ir.items():
        want = weight_bytes(spec, fmt)["per_step"]
        assert OVRunner(folder).weight_bytes_per_step() == pytest.approx(want, rel=0.1), fmt


def test_report_candidates_and_defaults_on_intel_ai_pc_devices():
    """Where OpenVINO is installed the report tries it on CPUs and Intel GPUs / NPUs; on an Intel NPU it
    is the only engine; its defaults carry their source."""
    from aipc.estimate import estimate
    from aipc.estimate.choose import best_setup, candidates
    from aipc.hardware.catalog import get_device
    from aipc.models import catalog
    from aipc.spec import Workload

    chat = Workload(model="llama-3.1-8b", task="infer", prompt_tokens=512, gen_tokens=256)
    npu, igpu = get_device("intel-lunar-lake-npu"), get_device("intel-lunar-lake-igpu")
    assert [(c.engine, c.weight_dtype) for c in candidates(chat, npu)] == [("openvino", "int8"), ("openvino", "int4")]
    assert ("openvino", "int4") in [(c.engine, c.weight_dtype) for c in candidates(chat, igpu)]
    assert all(c.engine != "openvino" for c in candidates(chat, get_device("qualcomm-x-elite-npu")))
    m = catalog.get("llama-3.1-8b")
    e = estimate(chat.replace(engine="openvino", weight_dtype="int4"), igpu, model=m)
    assert "decode MBU 0.61" in e.efficiency.source and e.memory.weights_only_bytes == pytest.approx(4.678e9, rel=0.01)
    # 4.15 GB read per token at 0.61 x 136.5 GB/s
    assert e.time.decode_tokens_per_s == pytest.approx(0.61 * 136.5e9 / 4.153e9, rel=0.05)
    ch = best_setup(chat, npu, m)
    assert ch.workload.engine == "openvino" and ch.estimate.fits
