"""Bad command-line inputs for every verb, derived from each verb's options (no tests here).

For every parameter of every command, the bad values come from the parameter's own rule
(``aipc.commands.options.rule_for``: a number rule's out-of-range and non-finite values, a path rule's
wrong kinds of path) plus a few words that are no number, and, for text flags with a fixed set of
choices, a word outside that set. Each case is a minimal valid invocation of the verb with exactly one
value made bad. The promise: exit 2, one ``error:`` line, and the verb's work never started.
Used by tests/test_cli_bad_inputs.py (a subset) and scripts/reliability.py (all of them).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import typer

from aipc import rules as R
from aipc.cli import app, main
from aipc.commands.options import _base_type, flag_of, rule_for

# The work each verb starts once its flags are accepted (replaced by a recorder: reaching it with a bad
# value is an accepted bad value). Verbs not listed do their (short) work for real.
WORK = ["aipc.commands.train.run", "aipc.commands.generate._run", "aipc.serve.server.run",
        "aipc.bench.runner.run_bench", "aipc.serve.loadtest.run", "aipc.hardware.profile.load_or_measure",
        "aipc.validation.runner.measure", "aipc.validation.runner.run_set", "aipc.report.collect.collect",
        "aipc.bench.context.machine_context", "aipc.engines.gguf_convert.convert"]
# Text flags whose words are a fixed set: one word outside it each.
CHOICE_BAD = {"--method": "dora", "--precision": "fp7", "--device": "nope9", "--task": "serve-it",
              "--optimizer": "lion9", "--kv-dtype": "int3", "--attention": "flash9", "--sharding": "zero9",
              "--link": "carrier-pigeon", "--dtype": "int3", "--scenario": "nope", "--set": "medium",
              "--endpoint": "embeddings", "--kind": "toaster", "--category": "toaster", "--lora-targets": ",",
              "--rdzv-endpoint": "no-port", "--host": "not a host", "--concurrency": "0", "--rate": "-1",
              "--threads": "0"}
NOT_NUMBERS = ["abc", ""]
FILTER_VERBS = ("results", "calibrate")  # their --device/--kind/... select stored runs: any word is a valid filter


class Reached(BaseException):
    """The verb's work started: the bad value was accepted."""


def _reached(*a, **k):
    raise Reached


@dataclass
class Case:
    verb: str
    param: str
    value: str
    argv: list[str]


def bases(root: Path, tiny: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    """A minimal valid invocation per verb: (positional arguments, {flag: value})."""
    from aipc.cost.needs import example_text
    from aipc.privacy.keys import load_key, new_key_file
    from aipc.privacy.seal import seal_file

    root.mkdir(parents=True, exist_ok=True)
    key = root / "k.key"
    if not key.exists():
        new_key_file(key)
    plain = root / "plain.txt"
    plain.write_text("secret\n")
    if not (root / "plain.txt.sealed").exists():
        seal_file(plain, root / "plain.txt.sealed", load_key(key))
    (root / "data.txt").write_text("hello world\n" * 40)
    from aipc.bench.store import ResultsDB

    ResultsDB(root / "r.sqlite")  # an empty results file (each call opens its own connection)
    (root / "needs.toml").write_text(example_text())
    k = str(key)
    return {
        "hw": ([], {}), "models": ([], {}), "devices": ([], {}), "estimate": (["llama-3.2-1b"], {}),
        "validate": ([str(tiny / "config.json")], {"--task": "infer"}), "bench": ([str(tiny)], {"--no-store": ""}),
        "results": ([], {"--db": str(root / "r.sqlite")}), "calibrate": ([], {"--dry-run": "", "--db": str(root / "r.sqlite")}),
        "decide": ([str(root / "needs.toml")], {}), "report": ([], {"--out": str(root / "report")}),
        "train": ([str(tiny)], {"--data": str(root / "data.txt"), "--out": str(root / "run")}),
        "generate": ([str(tiny)], {"--prompt": "hi"}), "serve": ([str(tiny)], {}),
        "loadtest": (["http://127.0.0.1:9"], {}), "convert": ([str(tiny)], {"--output": str(root / "t.gguf")}),
        "seal": ([str(plain)], {"--output": str(root / "out.sealed"), "--key-file": k}),
        "unseal": ([str(root / "plain.txt.sealed")], {"--output": str(root / "out.txt"), "--key-file": k}),
    }


def bad_values(verb: str, param, scratch: Path) -> list[str]:
    rule, t, flag = rule_for(verb, param), _base_type(param), flag_of(param)
    out: list[str] = []
    if isinstance(rule, R.Num):
        out += rule.bad_values() + NOT_NUMBERS
    elif isinstance(rule, R.PathRule):
        out += [v for v in rule.bad_values(scratch) if v or t is str]  # typer reads "" as "." for a Path
    elif isinstance(rule, R.Words):
        out += rule.bad_values()
    elif t in (int, float):
        out += NOT_NUMBERS
    if flag in CHOICE_BAD and t is str and not isinstance(rule, R.Words) and verb not in FILTER_VERBS:
        out.append(CHOICE_BAD[flag])
    return list(dict.fromkeys(out))


def cases(root: Path, tiny: Path) -> list[Case]:
    """Every bad value of every parameter of every verb, each in an otherwise valid command line."""
    commands = typer.main.get_command(app).commands
    base = bases(root / "files", tiny)
    scratch = root / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    out = []
    for verb, cmd in sorted(commands.items()):
        args, opts = base[verb]
        positional = [p for p in cmd.params if p.param_type_name == "argument"]
        for param in cmd.params:
            if getattr(param, "is_flag", False) or getattr(param, "hidden", False):
                continue
            flag = flag_of(param)
            for value in bad_values(verb, param, scratch):
                if param.param_type_name == "argument":
                    i = positional.index(param)
                    pos = [*args[:i], value, *args[i + 1:]] if i < len(args) else [*args, value]
                    argv = [verb, *pos, *_flat(opts)]
                else:
                    argv = [verb, *args, *_flat({k: v for k, v in opts.items() if k != flag}), flag, value]
                out.append(Case(verb, flag, value, argv))
    return out


def controls(root: Path, tiny: Path) -> list[Case]:
    """Each verb's valid invocation alone (its own files): it must be accepted, or the bad cases prove nothing."""
    return [Case(verb, "(valid)", "", [verb, *args, *_flat(opts)]) for verb, (args, opts) in bases(root, tiny).items()]


def on_target(case: Case, stderr: str) -> bool:
    """Whether the refusal names what was bad: the flag, or (for an argument) the value."""
    line = stderr.strip().splitlines()[0] if stderr.strip() else ""
    name = case.param.lstrip("-")
    return name in line or name.replace("-", "_") in line or (bool(case.value) and case.value in line)


def _flat(opts: dict[str, str]) -> list[str]:
    return [x for k, v in opts.items() for x in ([k, v] if v != "" else [k])]


@contextlib.contextmanager
def work_stubbed():
    with contextlib.ExitStack() as stack:
        for target in WORK:
            stack.enter_context(mock.patch(target, _reached))
        yield


def run_case(case: Case, cwd: Path) -> tuple[str, str]:
    """(outcome, stderr): "refused" (exit 2, one error line, no work), or what went wrong instead."""
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                mock.patch.object(sys, "stdin", io.StringIO("")):
            try:
                code = main(list(case.argv))
            except Reached:
                return "accepted (work started)", err.getvalue()
            except BaseException as e:  # noqa: BLE001 - anything escaping main() is a finding
                return f"escaped main(): {type(e).__name__}", err.getvalue()
    finally:
        os.chdir(old)
    text = err.getvalue()
    lines = text.strip().splitlines()
    if "Traceback" in text + out.getvalue():
        return "traceback", text
    if code == 0:
        return "accepted (exit 0)", text
    if code != 2:
        return f"exit {code}", text
    if len(lines) != 1 or not lines[0].startswith("error: "):
        return "not one error line", text
    return "refused", text


def summary(results: list[tuple[Case, str, str]]) -> dict:
    """Counts per verb and outcome, and the cases that did not end in a one-line refusal."""
    by_verb: dict[str, dict[str, int]] = {}
    for case, outcome, _ in results:
        d = by_verb.setdefault(case.verb, {})
        d[outcome] = d.get(outcome, 0) + 1
    failures = [{"argv": c.argv, "outcome": o, "stderr": e[-400:]} for c, o, e in results if o != "refused"]
    off = [{"argv": c.argv, "stderr": e.strip()[:300]} for c, o, e in results if o == "refused" and not on_target(c, e)]
    return {"cases": len(results), "refused": sum(o == "refused" for _, o, _ in results), "by_verb": by_verb,
            "failures": failures, "params": len({(c.verb, c.param) for c, _, _ in results}),
            "refused_naming_the_input": sum(o == "refused" and on_target(c, e) for c, o, e in results),
            "refused_for_another_reason": off}


def dump(results, path: Path) -> None:
    path.write_text(json.dumps(summary(results), indent=1))
