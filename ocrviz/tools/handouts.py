"""Handouts: each course notebook, executed, as ONE standalone HTML page that needs no kernel.

    python -m ocrviz.tools.handouts notebooks -o build/handouts            # all of them
    python -m ocrviz.tools.handouts notebooks -o build/handouts --only 02 03

(``make handouts`` runs the first line.)  Each notebook runs top to bottom in a
fresh kernel inside a temporary copy (the kernel's working directory, so what
it writes next to itself never lands in the repository), with this checkout on
``PYTHONPATH``, the shipped data (``OCRVIZ_DATA``, default ``data/``) and one
thread per kernel, as ``tests/notebooks`` runs them.

Every explorer displayed becomes the working offline explorer of
``ocrviz.widgets.export.render_fragment`` (hover, click, ASPP mode,
counterfactual bars: all in the page), in the state it had when the notebook
finished: after the last cell, one extra cell (not kept) renders each
displayed ``Explorer`` in the kernel, with ASPP's ERF stored for the cell it
sits on and for the cells its displaying cell names in its metadata
(``ocrviz: {"erf_cells": [[row, col], ...]}``), so the ERF panel works offline.
A label or HTML widget shows its last text, a plotly ``FigureWidget`` its
figure (without its click handlers); other widgets (upload buttons, sliders)
become a one-line note, since they need a kernel.  The page is nbconvert's
``lab`` template with everything that would be fetched taken out (require.js,
the widget manager, MathJax and Mermaid from CDNs) and a
Content-Security-Policy of ``default-src 'none'``, so it cannot fetch anything
even if it tried; plotly figures get plotly.js inline once per page.  LaTeX in
markdown (``$...$``, ``$$...$$``, ``\\(...\\)``, ``\\[...\\]``, ``\\begin{env}``), which
MathJax would typeset online, becomes MathML at export time (``latex2mathml``;
the browser draws it natively) with the TeX kept as its annotation; only the
handout changes, not the notebook.  A formula latex2mathml cannot read stays
as TeX source, with a warning naming it.

Size: at most ``--max-mb`` (10) MB per page.  The explorers share what the
rest of the page leaves, each at the finest precision that fits
(``render_fragment(max_bytes=...)``); a page still over the limit is an error.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import nbformat

from ocrviz.atomic import check_folder_writable, write_atomic

REPO = Path(__file__).resolve().parents[2]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PLOTLY = "application/vnd.plotly.v1+json"
MB = 1000 * 1000
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "img-src data: blob:; font-src data:")
FRAGMENT_MAX = 3 * 1024 * 1024          # one explorer never needs more (export's default page budget)
FRAGMENT_MIN = 256 * 1024
ERF_MAX = 16                            # stored ERFs per explorer: h x w bytes each (2 kB at 32 x 64)

# nbconvert's lab page, less every reference to a CDN.
TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}
<meta http-equiv="Content-Security-Policy" content="{{ resources.ocrviz_csp }}">
{%- endblock html_head_js -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}
<style type="text/css">
.ocrviz-handout-widget { font: 12px system-ui, sans-serif; color: #777; font-style: italic; padding: 2px 0; }
.ocrviz-handout-text { font: 13px system-ui, sans-serif; padding: 2px 0; }
.ocrviz-fragment { margin: 4px 0; }
.jp-RenderedHTMLCommon .ocrviz-fragment table { margin: 0; }
math { font-family: "STIX Two Math", "Latin Modern Math", "Cambria Math", math; font-size: 1.1em; }
math[display="block"] { margin: 0.6em 0; overflow-x: auto; overflow-y: hidden; }
.ocrviz-tex { white-space: pre-wrap; }
</style>
{%- endblock html_head_css -%}
"""

# Runs in the kernel after the notebook's last cell: each displayed widget, as HTML.
HARVEST = """
def __ocrviz_handout_erfs(explorer, named):
    # The ERFs the page can show without a kernel: the cell the explorer sits on, then the cells
    # the notebook names (cell metadata ocrviz.erf_cells), at most __ERF_MAX__ (a few kB each).
    from ocrviz.widgets.payload import erf_to_cells
    fn, data = getattr(explorer, "_erf_fn", None), explorer.data
    if fn is None:
        return
    cache = explorer._erf_cache
    h, w = data.feat_hw
    cells = [tuple(int(v) for v in explorer.selected)] + [tuple(int(v) for v in c) for c in named]
    for cell in list(dict.fromkeys(cells))[:__ERF_MAX__]:
        if cell not in cache and 0 <= cell[0] < h and 0 <= cell[1] < w:
            cache[cell] = erf_to_cells(fn(*cell), data.feat_hw, data.output_stride, data.image_hw)


def __ocrviz_handout_harvest(ids, budget, path, erf_cells):
    import json
    import ipywidgets
    from ipywidgets.widgets.widget import _instances
    from ocrviz.widgets import Explorer
    from ocrviz.widgets.export import explorer_fragment

    seen, order = {}, []
    def visit(mid):
        w = _instances.get(mid)
        if mid in seen or w is None:
            return
        if isinstance(w, Explorer):
            seen[mid] = {"kind": "explorer"}; order.append(mid)
        elif isinstance(w, ipywidgets.Box):
            seen[mid] = {"kind": "box", "horizontal": isinstance(w, ipywidgets.HBox),
                         "children": [c.model_id for c in w.children]}
            for c in w.children:
                visit(c.model_id)
        elif hasattr(w, "to_plotly_json"):              # a plotly FigureWidget: drawn, without its clicks
            seen[mid] = {"kind": "plotly", "figure": w.to_plotly_json()}
        elif isinstance(w, (ipywidgets.FloatProgress, ipywidgets.IntProgress)):    # e.g. tqdm's bar
            seen[mid] = {"kind": "progress", "value": float(w.value), "max": float(w.max)}
        elif isinstance(getattr(w, "value", None), str) and isinstance(w, (ipywidgets.Label, ipywidgets.HTML)):
            seen[mid] = {"kind": "text", "value": w.value, "html": isinstance(w, ipywidgets.HTML)}
        else:
            seen[mid] = {"kind": "other", "name": type(w).__name__}
    for mid in ids:
        visit(mid)
    each = max(__MIN__, min(__MAX__, budget // max(1, len(order))))
    for mid in order:
        __ocrviz_handout_erfs(_instances[mid], erf_cells.get(mid, []))
        seen[mid]["html"] = explorer_fragment(_instances[mid], uid=mid[:12], max_bytes=each)
    with open(path, "w") as f:
        json.dump(seen, f, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
"""


@dataclass
class Handout:
    """One written page."""
    path: Path
    bytes: int
    explorers: int
    seconds: float


def kernel_env(data: Path | None = None, threads: str = "1") -> dict[str, str]:
    """The notebooks' kernel environment, as tests/notebooks uses it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["OCRVIZ_DATA"] = str(data or os.environ.get("OCRVIZ_DATA") or REPO / "data")
    env.setdefault("OMP_NUM_THREADS", threads)
    env.setdefault("MKL_NUM_THREADS", env["OMP_NUM_THREADS"])
    env.pop("OCRVIZ_HRNET_CKPT", None)
    return env


def named_erf_cells(nb: nbformat.NotebookNode) -> dict[str, list[list[int]]]:
    """{model_id: [[row, col], ...]} from the ``ocrviz: {"erf_cells": ...}`` metadata of the cells
    that display explorers (every widget a cell displays gets the cell's list)."""
    found: dict[str, list[list[int]]] = {}
    for cell in nb.cells:
        named = cell.get("metadata", {}).get("ocrviz", {}).get("erf_cells", [])
        if not named:
            continue
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view:
                found.setdefault(view["model_id"], []).extend([int(r), int(c)] for r, c in named)
    return found


def _widget_ids(nb: nbformat.NotebookNode) -> list[str]:
    ids = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view and view.get("model_id") not in ids:
                ids.append(view["model_id"])
    return ids


def execute(src: Path, workdir: Path, *, max_bytes: int, env: dict[str, str] | None = None,
            timeout: int = 300) -> tuple[nbformat.NotebookNode, dict[str, Any]]:
    """Run ``src`` in ``workdir``; (executed notebook, {model_id: widget as handout HTML})."""
    from nbclient import NotebookClient

    work = workdir / src.name
    shutil.copy(src, work)
    nb = nbformat.read(work, as_version=4)
    client = NotebookClient(nb, timeout=timeout, startup_timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    out_json = workdir / ".ocrviz_handout_widgets.json"
    with client.setup_kernel(env=env or kernel_env(), cwd=str(workdir)):
        for i, cell in enumerate(nb.cells):
            client.execute_cell(cell, i)
        ids = _widget_ids(nb)
        rest = len(nbformat.writes(nb)) + 1 * MB       # outputs as they will be inlined + the lab template
        code = (HARVEST.replace("__MIN__", str(FRAGMENT_MIN)).replace("__MAX__", str(FRAGMENT_MAX))
                .replace("__ERF_MAX__", str(ERF_MAX))
                + f"\n__ocrviz_handout_harvest({ids!r}, {max_bytes - rest}, {str(out_json)!r}, "
                + f"{named_erf_cells(nb)!r})\n"
                + "del __ocrviz_handout_harvest, __ocrviz_handout_erfs\n")
        harvest = nbformat.v4.new_code_cell(code)
        nb.cells.append(harvest)
        try:
            client.execute_cell(harvest, len(nb.cells) - 1)
        finally:
            nb.cells.pop()
    return nb, json.loads(out_json.read_text())


def _note(name: str) -> str:
    return (f'<div class="ocrviz-handout-widget">[{html.escape(name)}: interactive only in a running '
            f'notebook]</div>')


def _plotly_html(figure: dict, state: dict[str, bool]) -> str:
    """A plotly figure as HTML, plotly.js inline the first time on the page (``state``)."""
    import plotly.io as pio

    fig = pio.from_json(json.dumps(figure), skip_invalid=True)
    out = _escape_figure_scripts(pio.to_html(fig, include_plotlyjs=False, full_html=False))   # data stays data (W1)
    if not state.get("plotly_js"):
        from plotly.offline import get_plotlyjs

        out = f'<script type="text/javascript">{get_plotlyjs()}</script>\n{out}'
    state["plotly_js"] = True
    return out


def _widget_html(mid: str, widgets: dict[str, Any], state: dict[str, bool] | None = None) -> str:
    state = {} if state is None else state
    w = widgets.get(mid)
    if w is None:
        return _note("widget")
    if w["kind"] == "explorer":
        return w["html"]
    if w["kind"] == "box":
        flex = "row; flex-wrap: wrap; gap: 12px" if w["horizontal"] else "column"
        return (f'<div style="display: flex; flex-direction: {flex}">'
                + "".join(_widget_html(c, widgets, state) for c in w["children"]) + "</div>")
    if w["kind"] == "plotly":
        return _plotly_html(w["figure"], state)
    if w["kind"] == "progress":
        return f'<progress value="{w["value"]:g}" max="{w["max"]:g}"></progress>'
    if w["kind"] == "text":                 # a label's last value, as text (an HTML widget's is HTML already)
        text = w["value"] if w["html"] else html.escape(w["value"])
        return f'<div class="ocrviz-handout-text">{text}</div>' if text.strip() else ""
    return _note(f"{w['name']} widget")


def prepare(nb: nbformat.NotebookNode, widgets: dict[str, Any]) -> nbformat.NotebookNode:
    """Widget outputs -> their handout HTML; plotly figures -> inline plotly.js; no widget state."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.metadata.pop("widgets", None)
    state: dict[str, bool] = {}                   # plotly.js inlined yet?
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data")
            if not data:
                continue
            if WIDGET_VIEW in data:
                out["data"] = {"text/html": _widget_html(data[WIDGET_VIEW]["model_id"], widgets, state)}
                out["metadata"] = {}
            elif PLOTLY in data:
                out["data"] = {"text/html": _plotly_html(data[PLOTLY], state)}
                out["metadata"] = {}
    return nb


def _escape_figure_scripts(div: str) -> str:
    """A plotly figure's inline scripts with every ``<`` as ``\\u003c``: the figure's data (class
    names, titles) sits in JSON literals there, and ``<!--<script>`` in a string would make the
    HTML parser swallow the rest of the page.  (plotly writes ``<`` only inside those strings;
    plotly.js itself is added separately, untouched.)"""
    return re.sub(r"(<script\b[^>]*>)(.*?)(</script>)",
                  lambda m: m.group(1) + m.group(2).replace("<", "\\u003c") + m.group(3), div, flags=re.S)


def tex_to_mathml(tex: str, display: bool) -> str:
    """One formula as MathML (``<math>``, the TeX source as its annotation); TeX in ``<code>`` if unreadable."""
    try:
        from latex2mathml.converter import convert as latex2mathml
    except ImportError:
        raise ImportError("handouts typeset formulas with latex2mathml, which is not installed: "
                          "pip install -c requirements.lock -e '.[test]' (make handouts installs it)") from None

    try:
        out = latex2mathml(tex.strip(), display="block" if display else "inline")
        unknown = re.search(r"<m[ion][^>]*>(\\[A-Za-z]+)", out)     # a command it does not know, kept as text
        if unknown:
            raise ValueError(f"unknown command {unknown.group(1)}")
    except Exception as err:                      # latex2mathml raises its own errors, and others on odd input
        warnings.warn(f"handout: formula {tex.strip()[:80]!r} kept as TeX (latex2mathml: {type(err).__name__}: "
                      f"{err})", stacklevel=2)
        wrapped = f"$${tex}$$" if display else f"${tex}$"
        return f'<code class="ocrviz-tex">{html.escape(wrapped, quote=False)}</code>'
    try:
        out = safe_mathml(out)
    except ValueError as err:
        warnings.warn(f"handout: formula {tex.strip()[:80]!r} kept as TeX ({err})", stacklevel=2)
        wrapped = f"$${tex}$$" if display else f"${tex}$"
        return f'<code class="ocrviz-tex">{html.escape(wrapped, quote=False)}</code>'
    head, _, rest = out.partition(">")            # <math xmlns=... display=...> ... </math>
    body = rest[: rest.rfind("</math>")]
    return (f'{head}><semantics><mrow>{body}</mrow><annotation encoding="application/x-tex">'
            f"{html.escape(tex.strip(), quote=False)}</annotation></semantics></math>")


# What latex2mathml writes: MathML presentation elements, and attributes without behaviour.
MATHML_TAGS = frozenset(
    "math semantics annotation mrow mi mn mo ms mtext mspace mfrac msqrt mroot msub msup msubsup munder mover "
    "munderover mmultiscripts mprescripts none mtable mtr mtd mlabeledtr mstyle merror mpadded mphantom menclose "
    "mfenced maction".split())
MATHML_ATTRS = frozenset(
    "xmlns display mathvariant stretchy fence separator form accent accentunder lspace rspace width height depth "
    "linethickness columnalign rowalign columnspacing rowspacing columnlines rowlines frame displaystyle "
    "scriptlevel movablelimits largeop symmetric minsize maxsize notation open close separators align "
    "columnspan rowspan mathcolor mathbackground mathsize encoding class".split())
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)((?:\s+[A-Za-z_:][-A-Za-z0-9_:.]*=\"[^\"<>]*\")*)\s*(/?)>")
_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);")


def safe_mathml(markup: str) -> str:
    """latex2mathml's output with its text made text: ``\\text{<script>...}`` or ``\\text{a<b}``.

    latex2mathml copies ``\\text{...}`` into ``<mtext>`` unescaped, so a formula could
    write any element into the page.  Here a ``<`` that does not open or close a
    MathML element becomes ``&lt;``, an ``&`` that starts no character reference
    ``&amp;``, a stray ``>`` ``&gt;``; the result must then parse as XML holding only
    MathML elements and attributes (no ``on...``, no ``href``), else ``ValueError``.
    """
    import xml.etree.ElementTree as ET

    parts, pos = [], 0
    for m in _TAG.finditer(markup):
        text = markup[pos:m.start()]
        if m.group(2) in MATHML_TAGS:
            parts += [_escape_text(text), m.group(0)]
        else:
            parts.append(_escape_text(text + m.group(0)))
        pos = m.end()
    parts.append(_escape_text(markup[pos:]))
    out = "".join(parts)
    try:
        root = ET.fromstring(out)
    except ET.ParseError as err:
        raise ValueError(f"latex2mathml wrote markup that is not well-formed ({err})") from None
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        bad = [a for a in el.attrib if a.rsplit("}", 1)[-1] not in MATHML_ATTRS]
        if tag not in MATHML_TAGS or bad:
            raise ValueError(f"latex2mathml wrote <{tag}> {bad or ''}, which is not plain MathML")
    return out


def _escape_text(text: str) -> str:
    """Text between tags: every ``<``/``>`` escaped, ``&`` unless it starts a character reference."""
    out, pos = [], 0
    for m in _ENTITY.finditer(text):
        out.append(text[pos:m.start()].replace("&", "&amp;"))
        out.append(m.group(0))
        pos = m.end()
    out.append(text[pos:].replace("&", "&amp;"))
    return "".join(out).replace("<", "&lt;").replace(">", "&gt;")


def _mathml_exporter():
    """nbconvert's HTMLExporter whose markdown math (as nbconvert's own parser finds it) becomes MathML."""
    from jinja2 import pass_context
    from nbconvert import HTMLExporter
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    class MathMLRenderer(IPythonRenderer):
        # nbconvert embeds images by re-serialising each raw HTML block through BeautifulSoup, which
        # closes an unclosed tag: `<details><summary>Answer</summary>` (a block of its own, ended by
        # the blank line) came out as an empty <details> with its answer printed after it, in the
        # open.  Only a block with an <img> needs that pass.
        def block_html(self, html: str) -> str:
            keep = re.search(r"<img\b", html, re.I)            # else mistune's own, no re-serialising
            return (super() if keep else super(IPythonRenderer, self)).block_html(html)

        def inline_html(self, html: str) -> str:
            keep = re.search(r"<img\b", html, re.I)
            return (super() if keep else super(IPythonRenderer, self)).inline_html(html)

        def block_math(self, body: str) -> str:
            return tex_to_mathml(body, display=True)

        def latex_environment(self, name: str, body: str) -> str:
            return tex_to_mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)

        def inline_math(self, body: str) -> str:
            return tex_to_mathml(body, display=False)

    class MathMLExporter(HTMLExporter):
        @pass_context
        def markdown2html(self, context, source):   # HTMLExporter.markdown2html, with the renderer above
            cell = context.get("cell", {})
            renderer = MathMLRenderer(escape=False, attachments=cell.get("attachments", {}),
                                      embed_images=self.embed_images,
                                      path=context.get("resources", {}).get("metadata", {}).get("path", ""),
                                      anchor_link_text=self.anchor_link_text,
                                      exclude_anchor_links=self.exclude_anchor_links, **self.lexer_options)
            return MarkdownWithMath(renderer=renderer).render(source)

    return MathMLExporter


def convert(nb: nbformat.NotebookNode, title: str) -> str:
    """The handout page: nbconvert's lab template, nothing fetched, formulas as MathML."""
    from jinja2 import DictLoader

    exporter = _mathml_exporter()(template_name="lab", template_file="ocrviz_handout.html.j2",
                                  extra_loaders=[DictLoader({"ocrviz_handout.html.j2": TEMPLATE})],
                                  embed_images=True)
    nb.metadata["title"] = title
    page, _ = exporter.from_notebook_node(nb, resources={"ocrviz_csp": CSP})
    external = external_references(page)
    if external:
        raise RuntimeError(f"the handout {title!r} would fetch {external[:5]}")
    return page


def external_references(page: str) -> list[str]:
    """What a page would load: script/link/img/iframe/... sources, CSS url() and @import (data: aside).

    The page is read as the browser reads it (``html.parser``): only real elements count, so
    text and the contents of ``<script>`` elements (inert JSON data, whose strings may hold
    ``<img src=...>`` as a class name) are not taken for markup.  The Content-Security-Policy
    also stops what scripts might fetch; this is the static check.
    """
    from html.parser import HTMLParser

    found: list[str] = []
    css: list[str] = []

    class Refs(HTMLParser):
        in_style = False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            for name, value in attrs:
                value = (value or "").strip()
                if name in ("src", "href", "data", "poster") and tag in LOADING_TAGS and value \
                        and not value.startswith(("data:", "#")):
                    found.append(value)
                elif name == "style" and value:
                    css.append(value)
            self.in_style = tag == "style"

        def handle_endtag(self, tag: str) -> None:
            self.in_style = False

        def handle_data(self, data: str) -> None:
            if self.in_style:
                css.append(data)

    parser = Refs(convert_charrefs=True)
    parser.feed(page)
    parser.close()
    text = "\n".join(css)
    found += [u for u in re.findall(r"url\(\s*[\"']?([^\"')]+)", text) if not u.startswith(("data:", "#"))]
    found += re.findall(r"@import\s+(?:url\()?[\"']?([^\"';\s)]+)", text)
    return found


LOADING_TAGS = frozenset("script link img iframe source video audio embed object track input image use".split())


def build(src: Path, out_dir: Path, *, max_mb: float = 10.0, env: dict[str, str] | None = None) -> Handout:
    """Execute ``src`` and write ``out_dir/<stem>.html``."""
    t0 = time.perf_counter()
    limit = int(max_mb * MB)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_folder_writable(out_dir / f"{src.stem}.html")       # before minutes of kernel time, not after
    with tempfile.TemporaryDirectory(prefix="ocrviz-handout-") as tmp:
        nb, widgets = execute(src, Path(tmp), max_bytes=limit, env=env)
    page = convert(prepare(nb, widgets), title=src.stem)
    size = len(page.encode("utf-8"))
    if size > limit:
        raise RuntimeError(f"{src.stem}: the handout is {size / MB:.1f} MB, over the {max_mb:g} MB limit")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{src.stem}.html"
    write_atomic(path, page)
    n = sum(1 for w in widgets.values() if w["kind"] == "explorer")
    return Handout(path, size, n, time.perf_counter() - t0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", type=Path, nargs="?", default=REPO / "notebooks",
                        help="a folder of .ipynb files (default: the course) or one notebook")
    parser.add_argument("-o", "--out", type=Path, default=REPO / "build" / "handouts")
    parser.add_argument("--only", nargs="+", default=None, metavar="PREFIX",
                        help="only the notebooks whose names start with these (e.g. 02 03)")
    parser.add_argument("--max-mb", type=float, default=10.0, help="size limit per page (MB, default 10)")
    args = parser.parse_args(argv)
    srcs = [args.notebooks] if args.notebooks.suffix == ".ipynb" else sorted(args.notebooks.glob("*.ipynb"))
    if args.only:
        srcs = [s for s in srcs if s.name.startswith(tuple(args.only))]
    if not srcs:
        print(f"no notebooks found in {args.notebooks}" + (f" starting with {args.only}" if args.only else ""),
              file=sys.stderr)
        return 2
    for src in srcs:
        try:
            h = build(src, args.out, max_mb=args.max_mb)
        except OSError as e:                  # an unwritable or full output folder: one line, nothing half-written
            print(f"{src.name}: could not write the handout in {str(args.out)!r}: {e.strerror or e}; "
                  "nothing was written", file=sys.stderr)
            return 2
        print(f"{h.path}: {h.bytes / MB:.2f} MB, {h.explorers} explorer(s), {h.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
