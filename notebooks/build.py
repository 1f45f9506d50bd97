"""Build the course notebooks from their readable sources in ``notebooks/src``.

Each ``src/NN_name.py`` is a percent-format script (the format Jupytext and
VS Code understand): ``# %%`` starts a code cell, ``# %% [markdown]`` a
markdown cell whose lines carry a leading ``# ``.  Anything before the first
marker is a note for maintainers and is not copied.  A code-cell marker may
carry cell metadata as Jupytext writes it, ``key=<JSON>`` pairs:
``# %% tags=["course-test"] jupyter={"source_hidden": true}`` (a collapsed cell).  The ``.ipynb`` files are
written without outputs, with stable cell ids, so rebuilding an unchanged
source gives a byte-identical notebook.

    python notebooks/build.py            # rewrite notebooks/*.ipynb
    python notebooks/build.py --check    # exit 1 if a notebook differs from its source
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
LANGUAGE_INFO = {"name": "python", "pygments_lexer": "ipython3", "codemirror_mode": {"name": "ipython", "version": 3},
                 "file_extension": ".py", "mimetype": "text/x-python", "nbconvert_exporter": "python"}


_META = re.compile(r'(\w+)=(\[[^\]]*\]|\{[^}]*\}|"[^"]*"|\S+)')


def _metadata(rest: str) -> dict:
    """``key=<JSON> key2=<JSON>`` after a ``# %%`` marker -> {key: value}."""
    found = {key: json.loads(value) for key, value in _META.findall(rest)}
    if _META.sub("", rest).strip():
        raise ValueError(f"cannot read cell metadata {rest!r}: write key=<JSON> pairs")
    return found


def parse(text: str) -> list[tuple[str, str]]:
    """Percent-format text -> [(cell_type, source)]; see :func:`parse_cells` for metadata."""
    return [(kind, source) for kind, source, _ in parse_cells(text)]


def parse_cells(text: str) -> list[tuple[str, str, dict]]:
    """Percent-format text -> [(cell_type, source, metadata)]."""
    cells: list[tuple[str, list[str], dict]] = []
    for line in text.splitlines():
        if line.startswith("# %% [markdown]"):
            cells.append(("markdown", [], {}))
        elif line.startswith("# %%"):
            cells.append(("code", [], _metadata(line[4:])))
        elif cells:
            if cells[-1][0] == "markdown":
                if line and not line.startswith("#"):
                    raise ValueError(f"markdown line without a leading '#': {line!r}")
                line = line[2:] if line.startswith("# ") else line[1:]
            cells[-1][1].append(line)
    out = []
    for kind, lines, meta in cells:
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if lines:
            out.append((kind, "\n".join(lines), meta))
    return out


def build(src: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": LANGUAGE_INFO}
    for i, (kind, source, meta) in enumerate(parse_cells(src.read_text())):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cell = make(source)
        if meta:
            cell.metadata.update(meta)
        cell.id = f"{src.stem[:2]}-{i:03d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="report notebooks that differ from their source")
    args = parser.parse_args(argv)
    stale = []
    for src in sorted(SRC.glob("[0-9][0-9]_*.py")):
        target = HERE / f"{src.stem}.ipynb"
        text = render(build(src))
        if target.exists() and target.read_text() == text:
            continue
        stale.append(target.name)
        if not args.check:
            target.write_text(text)
            print(f"wrote {target.relative_to(HERE.parent)}")
    if args.check and stale:
        print("out of date (run python notebooks/build.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
