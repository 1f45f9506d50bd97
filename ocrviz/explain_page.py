"""The ``ocrviz explain`` page: for each image, where its context comes from (beside chance) and its explorer.

``context_summary`` reads one captured image's sim map (HW x K, each row a
cell's weights over the K object regions); ``summary_html`` prints it with
each figure's chance level (a sim map that knows nothing: uniform rows, 1/K
each) and a one-line definition; ``explain_section`` builds one image's
section (the explorer included) and ``index_html`` the index that heads a
page of several images.  ``ocrviz report`` uses the same sections for the
pages its worst images link to.

Example::

    section, summary = explain_section(model, image, labels, name="street.png", anchor="image-0")
"""
from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np

SUMMARY_DEFINITIONS = {
    "effective": "exp(entropy) of a cell's sim row, mean over cells: 1 = one region gives all the context, "
                 "K = all regions give equally (uniform rows)",
    "top": "the regions with the largest mean sim weight over the image's cells (their share of all context)",
    "own": "mean sim weight on the region of the cell's own predicted class",
    "pixel": "the selected cell's own row: effective regions and its largest weights",
}


def _entropy_exp(rows: np.ndarray) -> np.ndarray:
    p = rows.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(1)
    return np.exp(h)


def context_summary(data: Any, pixel_cell: tuple[int, int] | None = None, top: int = 3) -> dict:
    """Where context comes from in one captured image, from its sim map (HW x K, rows = pixel -> regions).

    ``effective_regions``: mean over cells of exp(entropy of the sim row), in [1, K] (1: one region
    supplies all context; K: all regions equally).  ``top_regions``: the regions with the largest
    mean sim weight over cells (their share of all context).  ``own_class_share``: mean sim weight
    on the region of the cell's own predicted class.  ``chance``: each figure for uniform rows.
    With ``pixel_cell``: that cell's top regions.
    """
    sim = np.asarray(data.sim_map, np.float64)                         # HW x K
    h, w = data.feat_hw
    names = list(data.class_names)
    k = len(names)
    mean = sim.mean(0)
    order = np.argsort(-mean, kind="stable")[:top]
    pred = np.array([data.pred_at(y, x) for y in range(h) for x in range(w)])
    out = {
        "feature_grid": [h, w],
        "num_regions": k,
        "effective_regions": float(_entropy_exp(sim).mean()),
        "top_regions": [{"region": names[j], "share": float(mean[j])} for j in order],
        "own_class_share": float(sim[np.arange(h * w), pred].mean()),
        "chance": {"effective_regions": float(k), "region_share": 1 / k, "own_class_share": 1 / k},
    }
    if pixel_cell is not None:
        y, x = pixel_cell
        ocr_map = data.panel_maps(y, x)["ocr-context"]                  # an ocrviz.context.ContextMap
        order = np.argsort(-ocr_map.source_weights, kind="stable")[:top]
        out["pixel"] = {"cell": [y, x], "predicted": names[data.pred_at(y, x)],
                        "effective_regions": float(_entropy_exp(sim[y * w + x][None])[0]),
                        "top_regions": [{"region": ocr_map.sources[j], "share": float(ocr_map.source_weights[j])}
                                        for j in order],
                        # where each map's mass lies, by the cells' predicted class (the explorer's strips)
                        "mass_by_class": {panel: {n: v for n, v in sorted(m.items(), key=lambda nv: -nv[1])[:top]
                                                  if v > 0}
                                          for panel, m in data.panel_masses(y, x).items()}}
    return out


def _against_chance(v: float, chance: float) -> str:
    r = v / chance if chance else float("nan")
    if 0.9 <= r <= 1.1:
        return "about chance"
    return f"{r:.1f}× chance"


def summary_html(s: dict) -> str:
    """One image's summary as a table: figure | value | chance | what it is."""
    k = s["num_regions"]
    c = s.get("chance") or {"effective_regions": float(k), "region_share": 1 / k, "own_class_share": 1 / k}
    tops = ", ".join(f"{html.escape(r['region'])} {100 * r['share']:.0f} %" for r in s["top_regions"])
    own = s["own_class_share"]
    rows = [("effective number of regions (mean over cells)", f"{s['effective_regions']:.2f} of {k}",
             f"{k} (uniform rows)", SUMMARY_DEFINITIONS["effective"]),
            ("regions supplying most context", tops, f"1/K = {100 * c['region_share']:.1f} % each",
             SUMMARY_DEFINITIONS["top"]),
            ("context from the cell's own predicted class", f"{100 * own:.1f} % ({_against_chance(own, c['own_class_share'])})",
             f"1/K = {100 * c['own_class_share']:.1f} %", SUMMARY_DEFINITIONS["own"])]
    if "pixel" in s:
        p = s["pixel"]
        ptops = ", ".join(f"{html.escape(r['region'])} {100 * r['share']:.0f} %" for r in p["top_regions"])
        rows.append((f"selected cell {tuple(p['cell'])} (predicted {html.escape(p['predicted'])})",
                     f"{p['effective_regions']:.2f} effective regions; {ptops}",
                     f"{k}; 1/K = {100 / k:.1f} % each", SUMMARY_DEFINITIONS["pixel"]))
        for panel, masses in p.get("mass_by_class", {}).items():
            strip = " · ".join(f"{100 * v:.0f} % {html.escape(n)}" for n, v in masses.items())
            rows.append((f"{panel}: where its mass lies", strip, "",
                         "share of this panel's map on cells the model predicts as each class (the explorer's strip)"))
    head = "<tr><th></th><th>value</th><th>chance</th><th>what it is</th></tr>"
    body = "".join(f'<tr><th>{html.escape(a)}</th><td>{b}</td><td>{ch}</td><td class="def">{html.escape(d)}</td></tr>'
                   for a, b, ch, d in rows)
    return f'<table class="ocrviz-summary">{head}{body}</table>'


def explain_section(model: Any, image: np.ndarray, labels: np.ndarray | None, *, name: str, anchor: str,
                    aspp_model: Any = None, device: Any = None, mean: Any = None, std: Any = None,
                    pixel: tuple[int, int] | None = None, max_side: int | None = 1024) -> tuple[str, dict]:
    """One image's section: summary table beside chance + the explorer -> (HTML, summary dict).

    ``labels`` at the image's size (resized here with it); ``pixel``: an image pixel (row, col) to select.
    Raises ``ValueError`` for a model the explorer cannot read (no OCR block, ...)."""
    from ocrviz.data.images import prepare_image
    from ocrviz.widgets import Explorer
    from ocrviz.widgets.export import explorer_fragment

    x, prep = prepare_image(image, output_stride=32, max_side=max_side, policy="resize")
    lab = None if labels is None else resize_nearest(labels, prep.input_size)
    ex = Explorer(model, x, lab, aspp_model=aspp_model, device=device, mean=mean, std=std)
    cell = None
    if pixel is not None:
        sy, sx = prep.scale
        ex.select_pixel(min(x.shape[0] - 1, int(pixel[0] * sy)), min(x.shape[1] - 1, int(pixel[1] * sx)))
        cell = tuple(ex.selected)
    summary = context_summary(ex.data, cell)
    summary.update(image=str(name), input_size=list(prep.input_size), notes=list(prep.notes))
    note = f'<p class="note">{html.escape("; ".join(prep.notes))}</p>' if prep.notes else ""
    section = (f'<section id="{html.escape(anchor)}"><h2>{html.escape(name)}</h2>{note}{summary_html(summary)}'
               f"{explorer_fragment(ex)}</section>")
    return section, summary


def index_html(summaries: Sequence[dict], anchors: Sequence[str]) -> str:
    """The index heading a page of several images: one row per image, its headline numbers beside chance."""
    rows = []
    for s, a in zip(summaries, anchors):
        k = s["num_regions"]
        top = s["top_regions"][0] if s["top_regions"] else {"region": "-", "share": float("nan")}
        name = str(s["image"]).replace("\\", "/").rsplit("/", 1)[-1]
        rows.append(f'<tr><td><a href="#{html.escape(a)}">{html.escape(name)}</a></td>'
                    f'<td class="num">{s["effective_regions"]:.2f} of {k}</td>'
                    f'<td>{html.escape(top["region"])} {100 * top["share"]:.0f} % '
                    f'({_against_chance(top["share"], 1 / k)})</td>'
                    f'<td class="num">{100 * s["own_class_share"]:.1f} % '
                    f'({_against_chance(s["own_class_share"], 1 / k)})</td></tr>')
    k = summaries[0]["num_regions"] if summaries else 0
    return ("<h2>Images</h2><table><tr><th>image</th><th>effective regions (uniform rows: K)</th>"
            f"<th>region supplying most context (chance 1/K = {100 / max(k, 1):.1f} %)</th>"
            f"<th>context from the cell's own predicted class (chance {100 / max(k, 1):.1f} %)</th></tr>"
            + "".join(rows) + "</table>")


def resize_nearest(mask: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """An H x W class map at ``size`` (rows, cols), nearest neighbour (class ids never mix)."""
    if mask.shape == tuple(size):
        return mask
    from PIL import Image

    return np.asarray(Image.fromarray(mask.astype(np.int32)).resize((size[1], size[0]), Image.NEAREST)).astype(np.int64)
