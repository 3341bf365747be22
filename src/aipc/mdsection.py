"""Edit one ``## Section`` of a Markdown file (docs/benchmarks.md, docs/validation.md), leaving the
other sections untouched: append a table row (generate, serve benchmarks) or replace the section's
body (estimate, decide, train benchmarks; aipc validate --write). Writes are atomic."""

from __future__ import annotations

import os
from pathlib import Path


def append_to_section(path: str | Path, title: str, table_header: str, row: str, intro: str = "") -> None:
    """Add ``row`` to the table under ``title`` (created with ``intro`` and ``table_header`` if absent)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    lines = text.rstrip("\n").split("\n")
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() == title)
    except StopIteration:
        block = ["", title, ""] + ([intro, ""] if intro else []) + table_header.split("\n") + [row]
        lines += block
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        section = lines[start:end]
        first_header_line = table_header.split("\n")[0]
        if first_header_line not in section:
            while section and not section[-1].strip():
                section.pop()
            section += [""] + table_header.split("\n")
            section.append(row)
        else:
            h = section.index(first_header_line)
            last = h + 1
            while last + 1 < len(section) and section[last + 1].startswith("|"):
                last += 1
            section.insert(last + 1, row)
        if end < len(lines) and section[-1].strip():
            section.append("")
        lines = lines[:start] + section + lines[end:]
    _write_atomic(path, "\n".join(lines) + "\n")


def replace_section(path: str | Path, title: str, body: str, *, new_file: str = "# Benchmarks\n") -> None:
    """Make ``title`` (a '## ' heading line) hold exactly ``body``; appended at the end when absent.
    A file that does not exist starts as ``new_file``."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else new_file
    block = f"{title}\n\n{body.strip(chr(10))}\n"
    start = text.find(title + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + block
    else:
        end = text.find("\n## ", start + len(title))
        text = text[:start] + block + (text[end:] if end >= 0 else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, text)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
