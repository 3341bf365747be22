"""Every verb's flags checked by one set of rules right after parsing, before any work starts.

:func:`validated` wraps each command of the CLI: it looks up the rule of every parameter — the verb's
own (``VERB_RULES``), else the flag's (``FLAG_RULES``, one entry per concept: ``--seed`` means the same
in every verb), else the default for its type (an int: whole, >= 0, <= 2**53; a float: finite, >= 0)
— and checks the parsed values. A bad value is one ``error:`` line (exit 2) and nothing has run.
:func:`rule_for` answers the same lookup for the reliability sweep, which derives bad values from it.

Rules of a verb built from a config dataclass (``train``, see :mod:`aipc.commands.config_opts`) come
from the dataclass fields' metadata and are registered in ``VERB_RULES`` when the verb is built.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any

from aipc import rules as R
from aipc.serve.server import SERVE_RULES  # import-light: no torch, no uvicorn

_DB = R.PathRule("out-file", url=True)  # a SQLite file, or a postgresql:// URL
FLAG_RULES: dict[str, Any] = {
    # sizes and counts (estimate, validate, bench, train, generate, serve, loadtest)
    "--batch": R.COUNT, "--seq-len": R.COUNT, "--prompt-tokens": R.COUNT, "--gen-tokens": R.COUNT,
    "--context": R.COUNT, "--grad-accum": R.COUNT, "--lora-rank": R.Num(int, ge=1, le=65536),
    "--num-devices": R.Num(int, ge=1, le=1 << 20), "--nodes": R.Num(int, ge=1, le=1 << 16),
    "--train-tokens": R.Num(int, ge=1, le=2**60), "--max-tokens": R.COUNT, "--max-len": R.COUNT,
    "--max-prompt-tokens": R.COUNT, "--max-batch": R.Num(int, ge=1, le=1 << 16),
    "--max-queue": R.COUNT0, "--max-body-bytes": R.Num(int, ge=1, le=1 << 40),
    "--num-requests": R.COUNT, "--prompt-words": R.COUNT, "--warmup": R.COUNT0, "--min-reps": R.COUNT,
    # one meaning everywhere
    "--seed": R.SEED, "--threads": R.THREADS, "--port": R.PORT, "--temperature": R.TEMPERATURE,
    "--top-p": R.PROB, "--top-k": R.COUNT0, "--engine": R.Words("aipc.spec:ENGINES"),
    # durations and rates
    "--min-time": R.SECONDS0, "--max-time": R.SECONDS, "--duration": R.SECONDS, "--timeout": R.SECONDS,
    "--slo-ttft": R.SECONDS, "--slo-tpot": R.SECONDS, "--slo-e2e": R.SECONDS, "--graceful-timeout": R.SECONDS0,
    "--rate-limit-rpm": R.RATE, "--rate-limit-tpm": R.RATE, "--utilization": R.PROB,
    # files read
    "--catalog": R.PathRule("file"), "--overrides": R.PathRule("file"), "--workload": R.PathRule("file"),
    "--needs": R.PathRule("file"), "--key-file": R.PathRule("file"), "--api-key-file": R.PathRule("file"),
    "--import": R.PathRule("file"),
    # files and folders written
    "--db": _DB, "--write": R.PathRule("out-file"), "--audit-log": R.PathRule("out-file"),
    "--new-key": R.PathRule("new-file"),
    # words from a fixed set
    "--link": R.Words("aipc.estimate.roofline:LINKS_BYTES_S"), "--lora-targets": R.MODULES,
}
VERB_RULES: dict[str, dict[str, Any]] = {
    "hw": {"--export": R.PathRule("out-file")},
    "bench": {"--device": R.DEVICES, "--scenario": R.Words("aipc.bench.scenarios:SCENARIOS", sep=","),
              "--precision": R.Words("aipc.engines:FORMAT_WORDS"), "--method": R.Words(("full", "lora")),
              "--engine": R.Words("aipc.spec:ENGINES", sep=","), "--budget": R.SECONDS},
    "generate": {"--device": R.DEVICE, "--dtype": R.Words("aipc.engines:FORMAT_WORDS")},
    "serve": {"--device": R.DEVICE, "--dtype": R.Words("aipc.engines:FORMAT_WORDS"), **SERVE_RULES},
    "convert": {"--output": R.PathRule("out-any"), "--to": R.Words("aipc.commands.convert:TARGETS"), "--quant": R.Words(pattern=r"[a-z0-9_]{1,16}",
                                                                                      names="a quant type name")},
    "validate": {"--set": R.Words("aipc.validation.configs:SETS")},
    "models": {"--task": R.Words("aipc.estimate.here:TASKS"), "--min-tps": R.Num(float, ge=0, le=1e9),
               "--min-context": R.COUNT, "--engine": R.Words("aipc.spec:ENGINES", sep=","),
               "--kv-dtype": R.Words("aipc.estimate.here:KV_DTYPES")},
    "results": {"--export": R.PathRule("out-file")},
    "report": {"--out": R.PathRule("out-dir")},
    "decide": {"needs": R.PathRule("file", dash=True)},
    "seal": {"path": R.PathRule("any"), "--output": R.PathRule("out-any")},
    "unseal": {"path": R.PathRule("any"), "--output": R.PathRule("out-any")},
}


def flag_of(param) -> str:
    """The name a rule is keyed by: the long flag (``--lr``), else the first flag, else the argument name."""
    if param.param_type_name != "option":
        return param.name
    return next((o for o in param.opts if o.startswith("--")), param.opts[0])


def _base_type(param) -> Any:
    ann = param.type_descriptor.annotation
    while typing.get_origin(ann) in (typing.Union, types.UnionType, list):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        ann = args[0] if args else str
    return ann


def rule_for(verb: str, param) -> Any:
    """The rule that checks ``param`` of ``verb`` (None for text and switches)."""
    flag, t = flag_of(param), _base_type(param)
    found = VERB_RULES.get(verb, {}).get(flag) or FLAG_RULES.get(flag)
    if isinstance(found, R.Num) and t not in (int, float) or isinstance(found, R.Words) and t is not str:
        found = None  # a number flag that also takes words (generate --threads auto) checks itself
    if found is not None or t is bool:
        return found
    return R.ANY_INT if t is int else R.ANY_FLOAT if t is float else None


def check_values(verb: str, command, values: dict[str, Any]) -> None:
    """Apply each parameter's rule to its parsed value (each item of a repeated flag)."""
    for param in command.params:
        rule = rule_for(verb, param)
        v = values.get(param.name)
        if rule is None or v is None:
            continue
        for item in (v if isinstance(v, (list, tuple)) else [v]):
            rule.check(flag_of(param), item)


def validated(group):
    """Wrap every command of the click ``group`` so its values are checked before its body runs."""
    for verb, command in group.commands.items():
        if getattr(command.callback, "_aipc_checked", False):
            continue
        body = command.callback

        @functools.wraps(body)
        def checked(*args, _verb=verb, _cmd=command, _body=body, **kwargs):
            check_values(_verb, _cmd, kwargs)
            return _body(*args, **kwargs)

        checked._aipc_checked = True
        command.callback = checked
    return group
