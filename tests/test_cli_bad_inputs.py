"""Every bad value of every flag of every verb is refused at parse time with one ``error:`` line (exit 2),
before the verb's work starts (tests/bad_inputs.py derives the ~700 cases from the verbs' own options).

The table runs in process through ``aipc.cli.main`` with each verb's work replaced by a recorder (so an
accepted bad value is caught the moment the work would start); a control run of each verb's valid
command line must reach its work, or the refusals would prove nothing. The issue's own examples also
run as real subprocesses. scripts/reliability.py runs the same table and writes the counts.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from bad_inputs import cases, controls, run_case, summary, work_stubbed


@pytest.fixture(scope="module")
def table(tmp_path_factory, tiny_llama_dir):
    root = tmp_path_factory.mktemp("bad-inputs")
    return root, cases(root, tiny_llama_dir), controls(root / "control", tiny_llama_dir)


def test_each_verbs_valid_command_line_is_accepted(table):
    root, _, ctl = table
    with work_stubbed():
        outcomes = {c.verb: run_case(c, root) for c in ctl}
    assert all(o.startswith("accepted") for o, _ in outcomes.values()), outcomes


def test_every_bad_value_of_every_flag_is_refused_in_one_line_before_any_work(table):
    root, all_cases, _ = table
    with work_stubbed():
        results = [(c, *run_case(c, root)) for c in all_cases]
    s = summary(results)
    assert s["cases"] >= 500 and len(s["by_verb"]) >= 15, s["by_verb"]
    assert s["failures"] == [], s["failures"][:5]
    assert s["refused_for_another_reason"] == [], s["refused_for_another_reason"][:5]


@pytest.mark.parametrize("args,words", [
    (["generate", "{tiny}", "--prompt", "hi", "--temperature", "nan"], ["--temperature", "finite"]),
    (["generate", "{tiny}", "--prompt", "hi", "--temperature", "inf"], ["--temperature"]),
    (["bench", "{tiny}", "--min-time", "nan"], ["--min-time"]),
    (["serve", "{tiny}", "--rate-limit-rpm", "nan"], ["--rate-limit-rpm"]),
    (["validate", "{tiny}/config.json", "--batch", str(2**70)], ["--batch"]),
])
def test_the_issues_examples_through_a_real_subprocess(args, words, tiny_llama_dir):
    argv = [a.replace("{tiny}", str(tiny_llama_dir)) for a in args]
    r = subprocess.run([sys.executable, "-m", "aipc", *argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == "", (r.returncode, r.stderr)
    line = r.stderr.strip()
    assert "\n" not in line and line.startswith("error: ") and "Traceback" not in line, r.stderr
    for w in words:
        assert w in line, (w, line)


def test_validate_set_accepts_every_set_the_runner_has():
    """The parse-time rule of `aipc validate --set` reads the runner's own list (it once refused 'unseen')."""
    from aipc.commands.options import VERB_RULES
    from aipc.validation.configs import SETS

    rule = VERB_RULES["validate"]["--set"]
    assert "unseen" in SETS
    for name in SETS:
        rule.check("--set", name)
    with pytest.raises(Exception, match="unseen"):
        rule.check("--set", "bogus")
