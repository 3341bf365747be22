"""Append a result row to one ``## Section`` of a Markdown file (docs/benchmarks.md), leaving the
other sections untouched; the benchmark scripts of generate and serve use it."""

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
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)
