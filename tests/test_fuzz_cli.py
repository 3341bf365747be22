"""Property-based fuzzing of every verb's command-line flags, in process through ``aipc.cli.main``.

Each case is one argv: a verb, its arguments and a random set of its options (read from the typer app,
so a new flag is fuzzed without touching this file) with plausible values (catalog models, the tiny
model folder, good and bad workload/needs/catalog/data files, device names) or junk (wrong types,
huge/negative/NaN numbers, unicode), plus unknown flags and stray arguments. The promise checked:
exit 0 (with ``--json``: exactly one JSON object on stdout) or exit 2 with one line ``error: ...`` on
stderr — never a traceback.

Verbs whose work is a long measurement or a server (train, generate, serve, bench, loadtest, hw,
validate, report, convert) get their flags parsed and validated for real; the work function they then call is
replaced by a stub that records "reached". The others run for real (estimate, models, devices,
decide, results, calibrate, seal, unseal).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import typing
from pathlib import Path
from unittest import mock

import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st
from fuzz_book import Book, fuzz_settings, maybe

from aipc.cli import app, main
from aipc.cost.needs import example_text


class Reached(BaseException):
    """Raised by the stubbed work functions: the command validated its flags and started its work."""


def _reached(*a, **k):
    raise Reached


STUBS = ["aipc.commands.train.run", "aipc.commands.generate._run", "aipc.serve.server.run",
         "aipc.bench.runner.run_bench", "aipc.serve.loadtest.run", "aipc.hardware.profile.load_or_measure",
         "aipc.validation.runner.measure", "aipc.validation.runner.run_set", "aipc.report.collect.collect",
         "aipc.engines.gguf_convert.convert", "aipc.engines.openvino_export.convert"]
COMMANDS = typer.main.get_command(app).commands
VERB_WEIGHTS = {"estimate": 4, "decide": 2, "models": 2, "devices": 2, "train": 3, "serve": 2, "generate": 2,
                "bench": 2, "loadtest": 2, "results": 2, "calibrate": 1, "seal": 2, "unseal": 2, "hw": 1,
                "validate": 1, "report": 1, "convert": 2}

# ------------------------------------------------------------------ input files (written once)


def make_pool(root: Path, tiny_dir: Path) -> dict[str, list[str]]:
    """Files the flags may name: good and bad ones of every kind aipc reads."""
    from aipc.models.tiny import tiny_config
    from aipc.privacy.keys import new_key_file

    root.mkdir(parents=True, exist_ok=True)

    def w(name: str, data: str | bytes) -> str:
        p = root / name
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(p)

    good_cfg = w("config.json", json.dumps(tiny_config("llama")))
    (root / "cfgdir").mkdir(exist_ok=True)
    bad_cfg = str(root / "cfgdir" / "config.json")
    Path(bad_cfg).write_text(json.dumps({**tiny_config("llama"), "num_attention_heads": "four"}))
    key = root / "seal.key"
    if not key.exists():
        new_key_file(key)
    open_key = w("open.key", "00" * 32)
    os.chmod(open_key, 0o644)
    sealed_src = w("secret.txt", "sealed text\n" * 10)
    missing = str(root / "does-not-exist.toml")
    return {
        "model": ["llama-3.1-8b", "smollm2-135m", "qwen3-30b-a3b", "gpt2", "bert-base-uncased", "deepseek-v3",
                  "meta-llama/Llama-3.1-8B", "llama", str(tiny_dir), good_cfg, bad_cfg,
                  w("w.toml", 'model = "llama-3.2-1b"\ntask = "train"\nmethod = "lora"\n'),
                  w("bad.toml", 'model = "x"\nbatch_size = -3\n'), w("w.json", json.dumps({"model": "gpt2"})),
                  w("trunc.toml", 'model = "llama-3.2-1b"\ntask = "tra'), missing, str(root), "this"],
        "needs": [w("needs.toml", example_text()), w("needs.json", json.dumps({"inference": {"model": "gpt2",
                  "requests_per_day": 1000}})), w("bad-needs.toml", "[[jobs]]\nmodel = 5\n"),
                  w("bin.toml", b"\xff\xfe\x00junk"), missing, "-", str(root)],
        "catalog": [w("dev.toml", '[devices.fuzz-gpu]\nlabel = "F"\nvendor = "x"\nkind = "gpu"\ncategory = '
                                  '"workstation"\nsource = "s"\nas_of = "2026-01-01"\nmemory_gib = 24\n'
                                  'bandwidth_gbs = 900\npeak_tflops.bf16 = 80\n'),
                    w("baddev.json", '{"devices": {"x": {"memory_gib": [1]}}}'), missing],
        "data": [w("d.txt", "hello world\n" * 50), w("d.jsonl", '{"text": "hi"}\n{"text": 3}\n'),
                 w("e.jsonl", ""), str(root), missing],
        "key": [str(key), open_key, missing, w("short.key", "abcd")],
        "file": [sealed_src, str(key) + ".sealed", good_cfg, missing, str(root), w("junk.bin", os.urandom(64))],
        "db": [str(root / "results.sqlite"), good_cfg, str(root), str(root / "new" / "r.sqlite")],
        "out": [str(root / "out"), str(root / "out.json"), str(root / "out.toml"), str(root / "x.csv"), "/proc/nope",
                str(root)],
    }


# ------------------------------------------------------------------ argv strategies

CLI_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
INTS = maybe(st.sampled_from(["1", "2", "4", "8", "16", "128", "512", "2048"]), 2,
             bad=st.sampled_from(["0", "-1", "-5", "99999999999999999999", "1.5", "abc", "", "1e3", " 3", "0x10"]))
FLOATS = maybe(st.sampled_from(["0.5", "1", "0.01", "2e-4", "3", "0"]), 2,
               bad=st.sampled_from(["-1", "nan", "inf", "-inf", "1e309", "abc", "", "1e-320"]))
NAMED = {
    "--device": ["this", "cpu", "rtx-4090", "h100-sxm", "rtx-4090,h100-sxm", "cuda:0", "mps", "auto", "nope"],
    "--precision": ["bf16", "fp16", "fp32", "auto", "nf4", "int4", "q4_k_m", "mixed-bf16", "amp-bf16", "fp8", "x"],
    "--task": ["infer", "train", "TRAIN", "serve"], "--method": ["full", "lora", "qlora", "freeze", "dora"],
    "--kv-dtype": ["fp8", "bf16", "int4", "x"], "--optimizer": ["adamw", "sgd", "adamw8bit", "lion"],
    "--attention": ["sdpa", "eager", "flash", "x"], "--sharding": ["ddp", "fsdp", "tp", "zero3", "none", "x"],
    "--link": ["pcie4", "nvlink4", "ib-ndr", "x"], "--lora-targets": ["all-linear", "q_proj,v_proj", "", ","],
    "--category": ["ai-pc", "workstation", "datacenter", "this-machine", "x"], "--kind": ["gpu", "apu", "bench", "x"],
    "--scenario": ["train", "prefill,decode", "generate", "", "x"], "--set": ["small", "full", "x"],
    "--dtype": ["fp32", "bf16", "fp16", "int8", "q4_k_m"], "--quant": ["q4_k_m", "q8_0", "f16", "q9", ""],
    "--to": ["gguf", "GGUF", "openvino", "onnx", ""], "--engine": ["torch", "llamacpp", "openvino", "llama", ""], "--endpoint": ["completions", "chat", "embeddings"],
    "--concurrency": ["1", "1,4,16", "0", "5000", "a,b", ""], "--rate": ["0.5,2", "0", "-1", "inf", "x", "1"],
    "--host": ["127.0.0.1", "0.0.0.0", "localhost", "::1", "example.com"], "--threads": ["1", "2", "auto", "0", "-1"],
    "--machine": ["this", "abc"], "--id": ["abc", ""], "--rdzv-endpoint": ["127.0.0.1:29500", "x"],
    "--api-key": ["k" * 20, "short", ""], "--served-name": ["tiny", ""], "--prompt": ["hello", "", "é" * 40],
    "--system": ["be brief", ""], "--stop": ["\n", "", "END"], "--text-field": ["text", "body", ""],
    "--price": ["rtx-5090=2400", "rtx-5090=", "=5", "rtx-5090=abc", "x=1e309", "rtx-4090=-1"],
    "--model": ["gpt2", "tiny", "llama-3.1-8b", ""], "url": ["http://127.0.0.1:9", "http://127.0.0.1:9/v1", "https://example.com", "ftp://x", "x"],
}
DECIDE_RATES = ["h100-sxm@Lambda=2.10", "h100-sxm=2", "a100-80gb@x=0", "=1", "h100-sxm@=nan", "x"]
DECIDE_SETS = ["assumptions.horizon_months=24", "horizon_months=nan", "currency=\"EUR\"", "jobs=1", "a.b.c=1",
               "utilization=auto", "=", "x", "max_devices=0", "[" * 2000, "horizon_months=" + "[" * 3000]
PATH_KIND = {"model": "model", "query": "model", "needs": "needs", "--catalog": "catalog", "--overrides": "needs",
             "--workload": "model", "--needs": "needs", "--data": "data", "--key-file": "key", "--new-key": "out",
             "path": "file", "--db": "db", "--export": "out", "--import": "file", "--out": "out", "-o": "out",
             "--output": "out", "--write": "out", "--audit-log": "out", "--api-key-file": "key",
             "--resume-from": "file", "--tokenizer": "model"}


def _annotation(param) -> type:
    ann = param.type_descriptor.annotation
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    if typing.get_origin(ann) is list or (args and typing.get_origin(args[0]) is list):
        args = typing.get_args(args[0] if args else ann)
    return args[0] if args else ann


@st.composite
def value_for(draw, verb: str, param, pool: dict[str, list[str]]) -> str:
    name = param.opts[0] if param.param_type_name == "option" else param.name
    long = next((o for o in param.opts if o.startswith("--")), name)
    kind = PATH_KIND.get(long) or PATH_KIND.get(name)
    if verb == "decide" and long == "--rate":
        plausible = st.sampled_from(DECIDE_RATES)
    elif verb == "decide" and long == "--set":
        plausible = st.sampled_from(DECIDE_SETS)
    elif kind:
        plausible = st.sampled_from(pool[kind])
    elif NAMED.get(long):
        plausible = st.sampled_from(NAMED[long])
    elif NAMED.get(name):
        plausible = st.sampled_from(NAMED[name])
    else:
        t = _annotation(param)
        plausible = INTS if t is int else FLOATS if t is float else CLI_TEXT
    return draw(maybe(plausible, 1, bad=st.one_of(CLI_TEXT, INTS, FLOATS)))


@st.composite
def argvs(draw, pool: dict[str, list[str]]) -> list[str]:
    verb = draw(st.sampled_from([v for v, n in VERB_WEIGHTS.items() for _ in range(n) if v in COMMANDS]))
    cmd = COMMANDS[verb]
    argv = [verb]
    for p in cmd.params:
        if p.param_type_name == "argument" and (p.required or draw(st.booleans())):
            argv.append(draw(value_for(verb, p, pool)))
    options = [p for p in cmd.params if p.param_type_name == "option"]
    chosen = draw(st.lists(st.sampled_from(options), unique_by=lambda p: p.name, max_size=6)) if options else []
    chosen += [p for p in options if p.required and p not in chosen and draw(maybe(st.just(True), bad=st.just(False)))]
    for p in chosen:
        if getattr(p, "is_flag", False):
            argv.append(draw(st.sampled_from(p.opts + p.secondary_opts)))
            continue
        for _ in range(draw(st.integers(1, 2)) if p.multiple else 1):
            argv += [draw(st.sampled_from(p.opts)), draw(value_for(verb, p, pool))]
    extra = draw(maybe(st.just(None), 1, bad=st.sampled_from(["--bogus", "--json", "stray", "--", "-x", "--help",
                                                               "--port", "--data"])))
    if extra:
        argv.insert(draw(st.integers(1, len(argv))), extra)
    return argv


def check_outcome(argv: list[str], code: int, out: str, err: str) -> str:
    assert "Traceback" not in out + err, f"traceback for {argv}:\n{err}"
    assert code in (0, 2), f"exit {code} for {argv}:\n{err}"
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), f"not one 'error:' line for {argv}: {err!r}"
        return "exit 2"
    if "--json" in argv and not {"--help", "--example"} & set(argv):
        obj = json.loads(out)  # exactly one JSON document
        assert isinstance(obj, dict), f"--json printed a {type(obj).__name__} for {argv}"
    return "exit 0"


@pytest.fixture(scope="module")
def pool(tmp_path_factory, tiny_llama_dir):
    return make_pool(tmp_path_factory.mktemp("cli-pool"), tiny_llama_dir)


@pytest.fixture(scope="module")
def stubs():
    with contextlib.ExitStack() as stack:
        for target in STUBS:
            stack.enter_context(mock.patch(target, _reached))
        yield


@fuzz_settings(ci=280, full=2400)
@given(data=st.data())
def test_cli_flags_of_every_verb(data, pool, stubs, tmp_path_factory):
    cwd = BOOK.files(tmp_path_factory, "cli-cwd").root  # relative output paths (runs/, aipc-report/) land here
    argv = data.draw(argvs(pool))
    stdin = data.draw(st.sampled_from([example_text(), "", "{", "[[jobs]]\nmodel = 1\n"]))
    t = BOOK.tally("fuzz: CLI flags of every verb (aipc.cli.main)")

    def run():
        out, err = io.StringIO(), io.StringIO()
        old = os.getcwd()
        os.chdir(cwd)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                    mock.patch.object(sys, "stdin", io.StringIO(stdin)):
                try:
                    code = main(list(argv))
                except Reached:
                    return "reached the work (stubbed)"
        finally:
            os.chdir(old)
        return check_outcome(argv, code, out.getvalue(), err.getvalue())

    outcome = t.run(run)
    t.outcomes[f"{argv[0]}: {outcome}"] += 1


BOOK = Book()
_report = BOOK.fixture()


def test_conflicting_output_formats_are_refused():
    """Found by the fuzzer: `aipc results --json --csv` printed CSV with exit 0."""
    from helpers import run_cli

    code, out, err = run_cli("results", "--json", "--csv")
    assert code == 2 and out == "" and err.startswith("error: --csv and --json")


def test_every_verb_is_fuzzed():
    assert set(COMMANDS) <= set(VERB_WEIGHTS), set(COMMANDS) - set(VERB_WEIGHTS)
