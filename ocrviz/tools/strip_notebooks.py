"""Strip outputs, execution counts and widget state from notebooks, in place.

The notebooks in ``notebooks/`` are committed clean: a student's first "Run
All" produces every picture, and diffs show only what a person changed.

    python -m ocrviz.tools.strip_notebooks notebooks            # rewrite dirty ones
    python -m ocrviz.tools.strip_notebooks --check notebooks    # list dirty ones, exit 1

Stdlib + nbformat only.  Kept: cell sources, cell ids, the kernelspec and
language info.  Dropped: outputs, execution counts, per-cell execution
timing metadata, the saved widget state (``metadata.widgets``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable, Sequence

import nbformat

# Notebook-level metadata that records a run, not the notebook.
RUN_METADATA = ("widgets", "execution", "papermill")
# Cell-level metadata that records a run.
CELL_RUN_METADATA = ("execution", "ExecuteTime", "collapsed", "scrolled", "papermill")


def problems(nb: nbformat.NotebookNode) -> list[str]:
    """What makes ``nb`` not clean (empty list = clean).

    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    >>> problems(nb)
    []
    """
    found = [f"notebook metadata {key!r}" for key in RUN_METADATA if key in nb.metadata]
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            if cell.get("outputs"):
                found.append(f"cell {i}: {len(cell.outputs)} output(s)")
            if cell.get("execution_count") is not None:
                found.append(f"cell {i}: execution_count {cell.execution_count}")
        found += [f"cell {i}: metadata {key!r}" for key in CELL_RUN_METADATA if key in cell.get("metadata", {})]
        if cell.get("attachments") and cell.cell_type == "code":
            found.append(f"cell {i}: attachments")
    return found


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Clear ``nb`` in place (outputs, counts, run metadata); returns it."""
    for key in RUN_METADATA:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in CELL_RUN_METADATA:
            cell.get("metadata", {}).pop(key, None)
    return nb


def notebook_paths(paths: Iterable[str | Path]) -> list[Path]:
    """``.ipynb`` files given directly or found (recursively) under folders; checkpoints skipped."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
        elif p.suffix == ".ipynb" and p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p} is neither a folder nor an .ipynb file")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ocrviz.tools.strip_notebooks", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="notebooks or folders holding them")
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if any notebook is not clean")
    args = parser.parse_args(argv)
    dirty = 0
    for path in notebook_paths(args.paths):
        nb = nbformat.read(path, as_version=4)
        found = problems(nb)
        if not found:
            continue
        dirty += 1
        if args.check:
            print(f"{path}: " + "; ".join(found[:5]) + (" ..." if len(found) > 5 else ""))
        else:
            nbformat.write(strip(nb), path)
            print(f"stripped {path} ({len(found)} item(s))")
    return 1 if (args.check and dirty) else 0


if __name__ == "__main__":
    sys.exit(main())
