"""scripts/here_validation.py --smoke end to end: a tiny model built and converted inside the run, swept
by llama.cpp, two held-out formats compared with measured decodes and loaded at the table's largest
context, the table written to the Markdown file given."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "here_validation.py"


def test_smoke_writes_the_table(tmp_path):
    doc = tmp_path / "validation.md"
    doc.write_text("# Validation\n\n## Other section\n\nkept\n", encoding="utf-8")
    r = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--budget", "300", "--threads", "1", "--doc", str(doc)],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-2000:]
    text = doc.read_text(encoding="utf-8")
    assert "## Other section\n\nkept" in text and "## What you can run here: table against measured runs" in text
    assert "Smoke run" in text and "calibration refitted from 4 runs" in text
    rows = re.findall(r"^\| tiny-qwen2 \| (\w+) \| ([\d.e+]+) \((\w+)\) \| ([\d.e+]+) \| ([+-][\d.]+)% \| ([\d,]+): loads and decodes",
                      text, re.M)
    assert [x[0] for x in rows] == ["q4_0", "q6_k"] and {x[2] for x in rows} == {"calibrated"}
    for _, table, _, measured, err, _ in rows:  # the error column is table / measured - 1
        assert abs(float(table) / float(measured) - 1 - float(err) / 100) < 0.06
    assert re.search(r"Median \|error\| [\d.]+% over 2 held-out pairs", text)


def test_bad_budget_is_one_error_line(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--budget", "nan"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().startswith("error: --budget") and len(r.stderr.strip().splitlines()) == 1
