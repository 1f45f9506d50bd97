"""The ``ocrviz report`` page: ``report_html(title, report)`` from ``report_run.run_report``'s dict.

Written for a reader who has not seen notebook 06: every rate sits beside its
chance level, every field is defined in one line next to it, each OCR model's
verdict sentences are the notebook's own (``analysis.verdicts``), and the
figures (inline SVG, ``report_figures``) name what they hold.  Several models
appear side by side, each later one with its difference from the first and
a paired bootstrap interval on that difference.

Example::

    write_atomic("report.html", report_html("ocrviz report", run_report(...), explain_links={3: "x/3.html"}))
"""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ocrviz.html_page import page
from ocrviz.report_figures import bars, heatmap

CSS = """
.fig { margin: 6px 14px 10px 0; vertical-align: top; } .figs { display: flex; flex-wrap: wrap; }
ul.verdict li { margin: 3px 0; } .ci { color: #666; font-size: 11px; } td.def, th.def { color: #555; max-width: 460px; }
tr.worst td { background: #fff4f0; } .skipped { color: #8a4b00; }
"""

METRIC_ROWS = (
    ("miou", "mIoU", "IoU = TP / (TP + FP + FN) per class over all pixels of the set, mean over the classes "
                     "present (image resolution)"),
    ("pixel_acc", "pixel accuracy", "share of labelled pixels whose predicted class is the true class"),
    ("ambiguous_acc", "ambiguous-pixel accuracy", "accuracy on ToyCity's designed-ambiguous pixels (their "
                                                  "appearance fits two classes; only the context can tell)"),
    ("cue_free_acc", "cue-free accuracy", "accuracy on ambiguous pixels with no other cue within the backbone's "
                                          "receptive field (only long-range context can tell)"),
    ("seconds_per_image", "forward seconds per image", "model forward only, on the report's device"),
)


def _e(s: Any) -> str:
    return html.escape(str(s))


def _num(v: Any, digits: int = 3, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _ci(pair: Sequence[float] | None, signed: bool = False) -> str:
    return "" if not pair else f' <span class="ci">[{_num(pair[0], 3, signed)}, {_num(pair[1], 3, signed)}]</span>'


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], num_cols: Sequence[int] = (), def_col: int = -1,
           row_class: Sequence[str] | None = None) -> str:
    """Cells are HTML (escaped by the caller)."""
    th = "".join(f'<th{" class=def" if i == def_col else ""}>{_e(h)}</th>' for i, h in enumerate(head))
    body = []
    for r, row in enumerate(rows):
        cls = f' class="{row_class[r]}"' if row_class and row_class[r] else ""
        body.append(f"<tr{cls}>" + "".join(
            f'<td{" class=num" if i in num_cols else (" class=def" if i == def_col else "")}>{c}</td>'
            for i, c in enumerate(row)) + "</tr>")
    return f"<table><tr>{th}</tr>{''.join(body)}</table>"


def majority_baseline(confusion: Sequence[Sequence[int]]) -> dict[str, Any]:
    """Chance level of the metrics: every pixel called the most frequent true class."""
    c = np.asarray(confusion, np.float64)
    freq = c.sum(1)
    total = freq.sum() or 1.0
    top = int(np.argmax(freq))
    present = int((freq > 0).sum()) or 1
    return {"class": top, "pixel_acc": freq[top] / total, "miou": freq[top] / total / present}


def _models_table(rep: Mapping[str, Any], names: Sequence[str]) -> str:
    models, deltas = rep["models"], {d["name"]: d for d in rep["deltas"]}
    base = majority_baseline(models[0]["metrics"]["confusion"])
    head = ["figure", *[m["name"] for m in models], *[f"{d['name']} − {d['vs']}" for d in rep["deltas"]],
            "chance", "what it is"]
    rows = []
    for key, label, what in METRIC_ROWS:
        vals = [m["metrics"].get(key) for m in models]
        if all(v is None for v in vals):
            continue
        digits = 4 if key == "seconds_per_image" else 3
        cells = [_num(v, digits) + (_ci(m.get(f"{key}_ci")) if f"{key}_ci" in m else "") for v, m in zip(vals, models)]
        for d in rep["deltas"]:
            m = next(x for x in models if x["name"] == d["name"])
            ref = models[0]["metrics"].get(key)
            dv = d.get(key, None if m["metrics"].get(key) is None or ref is None else m["metrics"][key] - ref)
            cells.append(_num(dv, digits, signed=True) + _ci(d.get(f"{key}_ci"), signed=True))
        chance = {"miou": _num(base["miou"]), "pixel_acc": _num(base["pixel_acc"])}.get(key, "-")
        rows.append([_e(label), *cells, chance, _e(what)])
    rows.append(["images", *[str(m["metrics"]["n_images"]) for m in models], *["" for _ in deltas], "", ""])
    n = len(models) + len(deltas)
    note = (f'<p class="note">Chance: every pixel called the most frequent true class '
            f'({_e(names[base["class"]] if base["class"] < len(names) else base["class"])}). '
            f'Intervals: {_e(rep["bootstrap"]["text"])}; a difference\'s interval is paired (both models on the '
            f'same resampled images).</p>')
    return _table(head, rows, num_cols=range(1, n + 2), def_col=n + 2) + note


def _attention_section(m: Mapping[str, Any]) -> str:
    ar = m["analyses"]["attention_report"]
    d, chance, ci, labels, defs = ar["dict"], ar["chance"], ar["ci"], ar["labels"], ar["definitions"]
    k = d["num_classes"]
    parts = [f"<h2>Does the attention matter? {_e(m['name'])}</h2>",
             '<ul class="verdict">' + "".join(f"<li>{_e(s)}</li>" for s in ar["verdicts"]) + "</ul>"]
    rows = []
    for key, label in labels.items():
        label = label.replace("(of K)", f"(of K = {k})")
        rows.append([_e(label), _num(d.get(key)) + _ci(ci.get(key)),
                     "-" if chance.get(key) is None else _num(chance[key]) + (" (1/K)" if key.startswith("top") else
                                                                              " (uniform rows)"),
                     _e(defs[key])])
    parts.append(_table(["figure", "value [95 % CI]", "chance", "what it is"], rows, num_cols=(1, 2), def_col=3))
    parts.append(f'<p class="note">{d["n_images"]} images, {d["n_cells"]} feature cells (one sim row each); '
                 f'shuffled rows drawn with seed {d["seed"]}.</p>')
    drop = ar.get("drop_ci", {})
    figs = [bars(["own rows", "uniform rows", "one-hot rows", "shuffled rows"],
                 [("mIoU", [d["miou"], d["miou_uniform_sim"], d["miou_onehot_sim"], d["miou_shuffled_sim"]],
                   [ci.get(f) for f in ("miou", "miou_uniform_sim", "miou_onehot_sim", "miou_shuffled_sim")])],
                 title="mIoU with the sim rows replaced (ablation)", y_label="mIoU", width=460,
                 reference=(d["miou"], "the model's own rows"))]
    roc, even = d.get("region_on_class"), d.get("region_on_class_chance")
    if roc:
        cls = list(roc)
        figs.append(bars(cls, [("region on its class", [roc[c] for c in cls], [None] * len(cls)),
                               ("region spread evenly (chance)", [even.get(c) if even else None for c in cls],
                                [None] * len(cls))],
                         title="Soft region k: share of its weight on class-k pixels", y_label="share", width=620))
    parts.append('<div class="figs">' + "".join(figs) + "</div>")
    drops = [f"{label} rows {_num(d['miou'] - d[f'miou_{e}_sim'])}{_ci(drop.get(f'{e}_drop'))}"
             for e, label in (("uniform", "uniform"), ("onehot", "one-hot"), ("shuffled", "shuffled"))]
    parts.append(f'<p class="note">mIoU drop (own rows minus edited rows) [95 % CI, paired]: {"; ".join(drops)}. '
                 f'{_e(defs["region_on_class"])}.</p>')
    return "\n".join(parts)


def _flow_section(m: Mapping[str, Any]) -> str:
    entry = m["analyses"].get("context_flow")
    if not entry:
        return ""
    f = entry["dict"]
    names = f["class_names"]
    nan = lambda x: np.array([[np.nan if v is None else v for v in r] for r in x], np.float64)  # noqa: E731
    mass, even = nan(f["ocr_mass"]), nan(entry["even_spread"])
    head = f.get("head", "OCR")
    figs = [heatmap(mass, names, names, title=f"{head} context mass: share of a class-t cell's context on class c",
                    vmin=0, vmax=1, col_axis="class the context comes from (rows sum to 1)"),
            heatmap(even, names, names, title="Chance: context spread evenly over the image",
                    vmin=0, vmax=1, col_axis="class c's share of the image (rows sum to 1)")]
    if f.get("ocr_influence") is not None:        # OCR only: it re-runs OCR's head without region c
        figs.append(heatmap(nan(f["ocr_influence"]), names, names,
                            title="OCR influence: mean drop of the predicted logit without region c",
                            diverging=True, col_axis="region removed (logit units; negative = removing it helps)"))
    if f.get("aspp_mass") is not None:
        figs.append(heatmap(nan(f["aspp_mass"]), names, names, title=f"ASPP tap mass ({entry.get('aspp_name', 'ASPP')}): "
                            "share of a class-t cell's taps on class c", vmin=0, vmax=1,
                            col_axis="class the taps land on (rows sum to 1)"))
    diag = lambda a: float(np.nanmean(np.diag(a)))  # noqa: E731
    line = (f"Own-class share of the context (mean of the diagonal): {head} {diag(mass):.2f} against {diag(even):.2f} "
            "for context spread evenly" + (f", ASPP ({entry.get('aspp_name', 'ASPP')}) {diag(nan(f['aspp_mass'])):.2f}"
                                           if f.get("aspp_mass") else "") + ".")
    cells = ", ".join(f"{n} {c}" for n, c in zip(names, f["cells"]))
    return (f"<h2>Where each class's context comes from: {_e(m['name'])}</h2><ul class=verdict><li>{_e(line)}</li></ul>"
            f'<div class="figs">{"".join(figs)}</div><p class="note">Rows: the true class of a feature cell '
            f"(cells per class: {_e(cells)}). Mass rows are distributions over the labelled source pixels; "
            "influence is not normalised and can be negative.</p>")


def _confusion_section(rep: Mapping[str, Any], names: Sequence[str]) -> str:
    figs = []
    for m in rep["models"]:
        c = np.asarray(m["metrics"]["confusion"], np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = c / c.sum(1, keepdims=True)
        figs.append(heatmap(share, names, names, title=f"{m['name']}: confusion, share of each true class",
                            vmin=0, vmax=1, col_axis="predicted class (rows sum to 1)"))
    return ("<h2>Confusion matrices</h2><div class=figs>" + "".join(figs) + "</div>")


def _per_class(rep: Mapping[str, Any], names: Sequence[str]) -> str:
    models = rep["models"]
    rows = []
    for n in names:
        vals = [m["metrics"]["per_class_iou"].get(n) for m in models]
        deltas = [None if v is None or vals[0] is None else v - vals[0] for v in vals[1:]]
        rows.append([_e(n), *[_num(v) for v in vals], *[_num(d, 3, True) for d in deltas]])
    head = ["class", *[f"IoU {m['name']}" for m in models], *[f"{m['name']} − {models[0]['name']}" for m in models[1:]]]
    return "<h2>Per-class IoU</h2>" + _table(head, rows, num_cols=range(1, 2 * len(models)))


def _per_image(rep: Mapping[str, Any], links: Mapping[int, str]) -> str:
    models = rep["models"]
    worst = {i for m in models for i in m["worst"]}
    ocr = [m for m in models if m["analyses"].get("attention_report")]
    head = ["#", "image", *[f"mIoU {m['name']}" for m in models],
            *[f"{m['name']} − {models[0]['name']}" for m in models[1:]],
            *[f"top = true, {m['name']}" for m in ocr], "explain"]
    order = sorted(range(rep["n_images"]), key=lambda i: (i not in worst, models[0]["per_image"][i]["miou"] or 0, i))
    rows, classes = [], []
    for i in order:
        v = [m["per_image"][i]["miou"] for m in models]
        link = f'<a href="{_e(links[i])}">explain</a>' if i in links else ""
        rows.append([str(i), _e(models[0]["per_image"][i]["image"]), *[_num(x) for x in v],
                     *[_num(None if x is None or v[0] is None else x - v[0], 3, True) for x in v[1:]],
                     *[_num(m["per_image"][i].get("top_is_true")) for m in ocr], link])
        classes.append("worst" if i in worst else "")
    lines = "; ".join(f"{_e(m['name'])}: " + ", ".join(f"#{i} ({_num(m['per_image'][i]['miou'])})" for i in m["worst"])
                      for m in models)
    chance = (f" (chance for top = true: 1/K = {1 / ocr[0]['analyses']['attention_report']['dict']['num_classes']:.3f})"
              if ocr else "")
    return (f"<h2>Per image</h2><p>Worst images (lowest mIoU) per model: {lines}. They come first, shaded; each "
            f"explain link opens that image in the explorer.</p>" + _table(head, rows, num_cols=range(2, len(head) - 1),
                                                                          row_class=classes)
            + f'<p class="note">mIoU of one image: mean IoU over the classes present in that image{_e(chance)}.</p>')


def report_html(title: str, rep: Mapping[str, Any], explain_links: Mapping[int, str] | None = None) -> str:
    """The whole page (see the module docstring); ``explain_links``: image index -> href of its explain page."""
    models = rep["models"]
    names = list(models[0]["metrics"]["per_class_iou"])
    parts = [f'<p class="note">{_e(rep["data"])}; {len(models)} model{"s" * (len(models) != 1)} on the same '
             f'{rep["n_images"]} images; device {_e(rep["device"])}. Square brackets: {_e(rep["bootstrap"]["text"])}.</p>']
    for m in models:
        if m.get("skipped"):
            parts.append(f'<p class="skipped">{_e(m["name"])}: {_e(m["skipped"])}.</p>')
    parts += ["<h2>Models side by side</h2>", _models_table(rep, names)]
    for m in models:
        if m["analyses"].get("attention_report"):
            parts.append(_attention_section(m))
        parts.append(_flow_section(m))          # any head with an exact map (context_flow)
    parts += [_confusion_section(rep, names), _per_class(rep, names), _per_image(rep, explain_links or {})]
    return page(title, "\n".join(p for p in parts if p), extra_css=CSS)
