"""Write the notebook the JupyterLab browser test runs.

The notebook shows two explorers (to prove they stay independent) and writes
``expected.npz`` next to itself: the arrays the first explorer shows, which
the test compares with the DOM.  Any notebook can take its place (e.g.
notebooks/02_click_a_pixel.ipynb) if it does the same: display an
``ocrviz.Explorer`` and call ``explorer.data.to_npz("expected.npz")``.

    python tests/browser/make_nb.py /tmp/nb/explorer_test.ipynb
"""
from __future__ import annotations

import pathlib
import sys

import nbformat

SETUP = '''\
import numpy as np
import ipywidgets as widgets
from IPython.display import display
from ocrviz.widgets import Explorer
from ocrviz.widgets.synthetic import synthetic_data, synthetic_erf

data = synthetic_data(h={h}, w={w}, k={k}, output_stride={s}, seed=0)
data.to_npz("expected.npz")          # what the test compares the DOM with
explorer = Explorer.from_data(data, erf_fn=lambda y, x: synthetic_erf(data, y, x), show_erf=True)
echo = widgets.Label("selected: none")
echo.add_class("ocrviz-py-echo")     # Python-side echo: proves `selected` syncs back to the kernel
explorer.observe(lambda ch: setattr(echo, "value", f"selected: {{ch['new'][0]}},{{ch['new'][1]}}"), names="selected")
display(explorer, echo)
'''

SECOND = '''\
# a second, different explorer in the same notebook: must render and stay independent
other = Explorer.from_data(synthetic_data(h=8, w=16, k=3, output_stride=8, seed=1, aspp=False), width=240)
display(other)
'''


def make_notebook(path: str | pathlib.Path, *, h: int = 16, w: int = 32, k: int = 5, s: int = 8) -> pathlib.Path:
    """Write the two-explorer test notebook to ``path``; returns the path."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# ocrviz explorer: browser test notebook"),
                nbformat.v4.new_code_cell(SETUP.format(h=h, w=w, k=k, s=s)),
                nbformat.v4.new_code_cell(SECOND)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


if __name__ == "__main__":
    print(make_notebook(sys.argv[1] if len(sys.argv) > 1 else "explorer_test.ipynb"))
