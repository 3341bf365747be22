"""Property-based fuzzing of model input: HF ``config.json`` dicts and files (real catalog and tiny configs,
mutated: fields dropped, wrong types, huge/negative/NaN numbers, unicode, nesting) and model folders
with safetensors headers (bad length prefixes, truncated or non-JSON headers, junk tensor entries,
broken shard indexes). Only one-line AipcErrors may come out; an accepted spec must be usable."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from fuzz_book import Book, fuzz_settings, json_text, junk, mangled, maybe, text

from aipc.errors import AipcError
from aipc.models import catalog, hf_config
from aipc.models.load import read_safetensors_header, resolve
from aipc.models.spec import ModelSpec
from aipc.models.tiny import TINY_TYPES, tiny_config

BASES = [e["config"] for e in catalog.entries()] + [tiny_config(t) for t in TINY_TYPES]
KNOWN_KEYS = sorted({k for b in BASES for k in b} | {k for d in hf_config.DEFAULTS.values() for k in d} | {
    "head_dim", "num_key_value_heads", "layer_types", "use_sliding_window", "sliding_window", "max_window_layers",
    "sliding_window_pattern", "_sliding_window_pattern", "qkv_bias", "attention_bias", "mlp_bias", "text_config",
    "num_local_experts", "num_experts", "decoder_sparse_step", "mlp_only_layers", "n_inner"})
MODEL_TYPES = [*hf_config.SUPPORTED, *hf_config.TEXT_OF, "gemma3", "t5", "", "LLAMA"]
SMALL_INT = st.one_of(st.integers(0, 8), st.sampled_from([16, 32, 64, 128, 4096, 2**31, 2**63, 10**30]), st.integers(-2, 2))
PLAUSIBLE = st.one_of(SMALL_INT, st.booleans(), st.none(), st.lists(st.sampled_from(["sliding_attention", "full_attention"]), max_size=4),
                      st.lists(st.integers(0, 3), max_size=3))


@st.composite
def configs(draw):
    """A real config with a few mutations: changed, dropped or added fields, another model_type, a wrapper."""
    cfg = dict(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(0, 4))):
        how = draw(st.sampled_from(["set", "set", "drop", "junk", "type"]))
        key = draw(st.sampled_from(KNOWN_KEYS))
        if how == "drop":
            cfg.pop(draw(st.sampled_from(sorted(cfg))) if cfg else key, None)
        elif how == "set":
            cfg[key] = draw(PLAUSIBLE)
        elif how == "junk":
            cfg[key] = draw(junk(4))
        else:
            cfg["model_type"] = draw(maybe(st.sampled_from(MODEL_TYPES)))
    if draw(st.integers(0, 9)) == 0:  # a multimodal wrapper around it
        cfg = {"model_type": draw(st.sampled_from(["gemma3", "gemma3", "llama"])), "text_config": draw(maybe(st.just(cfg)))}
    return cfg


def _use(spec: ModelSpec) -> None:
    """What the estimator and `aipc models` call on an accepted spec; each must work and be sane."""
    total = spec.param_count()
    assert isinstance(total, int) and total > 0
    assert 0 < spec.active_param_count() <= total
    assert spec.kv_bytes_per_token(2) >= 0
    for key, (i, o, n) in spec.linear_modules().items():
        assert i > 0 and o > 0 and n > 0, key
    spec.expert_matrices()
    assert spec.num_heads % spec.num_kv_heads == 0 and spec.head_dim > 0


@fuzz_settings(ci=160, full=1500)
@given(cfg=st.one_of(configs(), configs(), configs(), junk()))
def test_hf_config_dict(cfg):
    t = _tally("fuzz: config.json dict (hf_config.parse, ModelSpec.from_hf_config)")
    spec = t.run(lambda: ModelSpec.from_hf_config(cfg, name="fuzz"))
    if isinstance(spec, ModelSpec):
        try:
            _use(spec)
        except AipcError:  # a clean refusal later is acceptable; a crash or a nonsense value is not
            pass


@fuzz_settings(ci=80, full=700)
@given(cfg=configs(), data=st.data())
def test_config_json_file(cfg, data, tmp_path_factory):
    raw = data.draw(mangled(json_text(cfg)))
    p = _files(tmp_path_factory, "config").write(".json", raw, name="config.json")
    t = _tally("fuzz: config.json file (models.load.resolve)")
    spec = t.run(lambda: resolve(str(p)))
    if isinstance(spec, ModelSpec):
        _use(spec)


# ------------------------------------------------------------------ safetensors folders

DTYPES = st.sampled_from(["F32", "BF16", "F16", "I64", "U8", "F8_E4M3", "BOOL"])


@st.composite
def tensor_entries(draw):
    """A plausible header: consecutive data_offsets matching dtype x shape, with optional damage."""
    header, off = {}, 0
    for i in range(draw(st.integers(0, 4))):
        shape = draw(st.lists(st.integers(0, 64), max_size=3))
        n = 1
        for d in shape:
            n *= d
        end = off + 4 * n
        entry = {"dtype": draw(DTYPES), "shape": shape, "data_offsets": [off, end]}
        off = end
        if draw(st.integers(0, 4)) == 0:  # damage one field
            field = draw(st.sampled_from(["dtype", "shape", "data_offsets", "extra"]))
            entry[field] = draw(st.one_of(junk(4), st.just([5, 1]), st.just([-8, 0]), st.just(["0", "x"]),
                                          st.just([0, 1e400]), st.just([-1, 3]), st.just("12")))
        header[draw(st.one_of(st.sampled_from([f"model.layers.{i}.w", "lm_head.weight"]), text(8)))] = entry
    if draw(st.booleans()):
        header["__metadata__"] = draw(maybe(st.just({"format": "pt"})))
    return header, off


@st.composite
def safetensors_bytes(draw):
    header, data_len = draw(tensor_entries())
    how = draw(st.sampled_from(["ok", "ok", "ok", "json-junk", "not-json", "short-prefix", "huge-prefix",
                                "big-prefix", "truncated", "empty", "list"]))
    if how == "json-junk":
        body = json.dumps(draw(junk(6))).encode()
    elif how == "list":
        body = json.dumps(list(header.items())).encode()
    elif how == "not-json":
        body = draw(st.binary(max_size=64))
    else:
        body = json.dumps(header).encode()
    n = len(body)
    if how == "huge-prefix":
        n = draw(st.sampled_from([2**64 - 1, 2**63, 100 * 1024 * 1024 + 1]))
    elif how == "big-prefix":
        n += draw(st.integers(1, 1000))
    elif how == "short-prefix":
        n = draw(st.integers(0, max(0, n - 1)))
    blob = struct.pack("<Q", n) + body + b"\0" * min(data_len, 4096)
    if how == "truncated":
        blob = blob[: draw(st.integers(0, len(blob)))]
    elif how == "empty":
        blob = b""
    return blob


@st.composite
def folders(draw):
    cfg = draw(st.one_of(st.sampled_from([tiny_config(t) for t in TINY_TYPES]), configs()))
    shards = {f"model-0000{i}-of-0000{n}.safetensors": draw(safetensors_bytes())
              for n in [draw(st.integers(1, 3))] for i in range(1, n + 1)}
    index = None
    if len(shards) > 1 or draw(st.booleans()):
        wmap = {f"t{i}": name for i, name in enumerate(shards)}
        how = draw(st.sampled_from(["ok", "ok", "missing", "junk", "traversal", "not-json"]))
        if how == "missing":
            wmap["extra"] = "model-00009-of-00009.safetensors"
        elif how == "traversal":
            wmap["evil"] = "../config.json"
        index = {"weight_map": wmap} if how != "junk" else draw(junk(5))
        index = json.dumps(index) if how != "not-json" else "{\"weight_map\": {"
    return cfg, shards, index


@fuzz_settings(ci=110, full=1000)
@given(folder=folders(), cfg_raw=st.booleans())
def test_model_folder_with_safetensors_headers(folder, cfg_raw, tmp_path_factory):
    cfg, shards, index = folder
    root = _files(tmp_path_factory, "folder").folder()
    (root / "config.json").write_text(json.dumps(cfg))
    for name, blob in shards.items():
        (root / name).write_bytes(blob)
    if index is not None:
        (root / "model.safetensors.index.json").write_text(index)
    t = _tally("fuzz: model folder + safetensors headers (models.load.resolve)")
    spec = t.run(lambda: resolve(root))
    if isinstance(spec, ModelSpec) and spec.weight_bytes is not None:
        assert isinstance(spec.weight_bytes, int) and spec.weight_bytes >= 0
        assert all(isinstance(n, int) and n >= 0 for n in spec.weight_dtypes.values())


# ------------------------------------------------------------------ regressions found by fuzzing

def _st_file(tmp_path, header_bytes: bytes, n: int | None = None):
    p = tmp_path / "model.safetensors"
    p.write_bytes(struct.pack("<Q", len(header_bytes) if n is None else n) + header_bytes)
    return p


@pytest.mark.parametrize("header", [
    b"[1, 2]", b"\"text\"", b"7", b"null",                                    # JSON, but not an object
    b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, "x"]}}',       # offset not a number
    b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 1e400]}}',     # infinite offset
    b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}',         # end before begin
    b'{"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}',        # negative dimension
    b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}}',        # negative offset
    b'{"w": {"dtype": "F32", "shape": "22", "data_offsets": [0, 16]}}',       # shape not a list
    b"[" * 100_000 + b"]" * 100_000,                                          # absurd nesting
])
def test_bad_safetensors_headers_are_one_line_errors(tmp_path, header):
    p = _st_file(tmp_path, header)
    with pytest.raises(AipcError, match="safetensors|corrupt|header"):
        read_safetensors_header(p)


def test_good_safetensors_header_still_reads(tmp_path):
    h = {"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
         "b": {"dtype": "BF16", "shape": [], "data_offsets": [24, 26]}, "__metadata__": {"format": "pt"}}
    assert read_safetensors_header(_st_file(tmp_path, json.dumps(h).encode())) == (26, {"F32": 6, "BF16": 1})


def test_config_fields_found_by_fuzzing_are_one_line_errors():
    for cfg in ({"model_type": []}, {"model_type": {"a": 1}}, {"model_type": "gemma3", "text_config": {"model_type": [1]}}):
        with pytest.raises(AipcError, match="model_type"):
            hf_config.parse(cfg)
    with pytest.raises(AipcError, match="num_experts_per_tok"):  # more active experts than experts
        hf_config.parse(tiny_config("mixtral", num_experts_per_tok=5))  # 4 experts
    assert hf_config.parse(tiny_config("mixtral", num_experts_per_tok=4))[0]["experts_per_token"] == 4


def test_deeply_nested_config_json_is_a_one_line_error(tmp_path):
    p = tmp_path / "config.json"
    p.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(AipcError, match="not valid JSON"):
        resolve(str(p))


# ------------------------------------------------------------------ bookkeeping

BOOK = Book()
_tally, _files = BOOK.tally, BOOK.files

_report = BOOK.fixture()
