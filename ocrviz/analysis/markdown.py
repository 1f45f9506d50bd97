"""Markdown table cells that hold any string: the analyses' ``to_markdown`` and the report page
that turns those tables into HTML agree on one escaping.

A class name is data: ``a|b`` must stay one cell, and a line break inside a name must not end
the row.  ``cell`` escapes ``\\`` and ``|`` with a backslash (GitHub's rule for a pipe inside a
table) and writes the two characters that end a markdown line, ``\\n`` and ``\\r``, as the
visible escapes ``\\u000a`` / ``\\u000d``.  Other separators (U+2028, U+2029, ...) end no
markdown line and stay as they are, so a reader must split rows at ``\\n`` only, never with
``str.splitlines``; ``split_row`` reads a row back, cell for cell.

    >>> cell("a|b")
    'a\\\\|b'
    >>> split_row("| a\\\\|b | 0.5 |")
    ['a|b', '0.5']
"""
from __future__ import annotations

import re

_BREAKS = re.compile("[\n\r]")                       # markdown's line endings (CommonMark)


def cell(text: object) -> str:
    """``text`` as one markdown table cell: ``\\`` and ``|`` escaped, ``\\n``/``\\r`` as visible escapes."""
    s = str(text).replace("\\", "\\\\").replace("|", "\\|")
    return _BREAKS.sub(lambda m: f"\\u{ord(m.group()):04x}", s)


def split_row(line: str) -> list[str]:
    """One markdown table row -> its cells, stripped, with ``\\|`` and ``\\\\`` read back."""
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    cells, cur, i = [], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body) and body[i + 1] in "|\\":
            cur.append(body[i + 1])
            i += 2
            continue
        if ch == "|":
            cells.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
        i += 1
    if "".join(cur).strip():
        cells.append("".join(cur).strip())
    return cells
