"""The numbers ``docs/teaching.md`` quotes, computed from the shipped models, and the page itself.

    python -m ocrviz.tools.teaching            # rewrite docs/teaching.md
    python -m ocrviz.tools.teaching --check    # exit 1 if the committed page differs

A teacher's plan names pixels and the numbers the class should see there; if
the models are retrained those numbers move, so the page is generated: the
prose lives in ``TEMPLATE`` below (``{name}`` fields), the numbers in
:func:`numbers`, and ``tests/notebooks/test_teaching.py`` checks that the
committed page equals a fresh rendering and recomputes every number another
way (and against what the notebooks print).

Every pixel is a feature cell (row, column) of a 32 x 64 grid (stride 8) on a
shipped sample scene, as the explorer's ``select(row, col)`` takes it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ocrviz.context import strip_text  # noqa: F401  (the notebooks' name, re-exported)
import torch

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "teaching.md"
N_IMAGES = 12                               # notebook 03's first section measures the same scenes
FACADE = ("street_0", (7, 14))              # a building cell whose context is mostly road
ROAD = ("street_0", (16, 32))               # a road cell; its own (road) region works against it
CAR_WINDOW = ("street_2", (13, 25))         # notebook 03's pixel: the largest car window's centre
PANELS = ("ocr-context", "aspp-context", "aspp-erf")   # the explorer's three context panels, side by side


def _models() -> tuple[Any, Any]:
    import ocrviz

    return ocrviz.load_model("toycity-ocr"), ocrviz.load_model("toycity-aspp")


def own_object_fraction(scene: Any, cell: tuple[int, int], feat_hw: tuple[int, int], stride: int) -> np.ndarray:
    """h x w: the fraction of each cell covered by the object at ``cell``'s centre (instance for
    things, class region for stuff; notebook 03's own-object share weighs a map with it)."""
    from ocrviz.analysis.context_share import _object_fractions, object_ids

    frac, centre = _object_fractions(object_ids(scene.labels, scene.instances), stride, feat_hw)
    return frac[centre[cell]]


def pixel_numbers(ocr: Any, aspp: Any, scene_name: str, cell: tuple[int, int] | None = None) -> dict[str, Any]:
    """One cell's numbers under OCR (sim row, influence, own-object share, the drop of its top
    region) and ASPP (own-object share of the taps and of the gradient ERF).  ``cell=None``: the
    cue-free cell of the scene that OCR gets wrong, deepest inside the wrong cue-free area."""
    import ocrviz
    from ocrviz.analysis import aspp_branch_shares, region_influence, rerun_head
    from ocrviz.analysis.cells import deepest_cell, labels_at_cells
    from ocrviz.analysis.context_share import aspp_own_object_share, ocr_own_object_share
    from ocrviz.analysis.erf import make_erf_fn
    from ocrviz.data.ambiguity import cue_free
    from ocrviz.data.dataset import normalize
    from ocrviz.data.samples import load_sample
    from ocrviz.data.toycity import CLASSES
    from ocrviz.widgets.payload import erf_to_cells

    scene = load_sample(scene_name)
    x = normalize(scene.image)[None]                                     # 1 x 3 x H x W
    hooks = ["hook_branch0", "hook_branch1", "hook_branch2", "hook_branch3", "hook_pool"]
    with torch.no_grad():
        logits, cache = ocrviz.run_with_cache(ocr, x)
        aspp_logits, acache = ocrviz.run_with_cache(aspp, x, names=hooks)
    h, w = cache.feature_size
    stride = ocr.output_stride
    true = labels_at_cells(scene.labels, stride, (h, w))                  # h x w
    pred = labels_at_cells(logits[0].max(0).indices.numpy(), stride, (h, w))
    if cell is None:
        free = labels_at_cells(cue_free(scene.ambiguity).astype(np.uint8), stride, (h, w)).astype(bool)
        cell = deepest_cell(free & (pred != true))
    r, c = cell
    p = r * w + c
    sim = cache.sim_map[0].numpy()                                        # HW x K
    influence = region_influence(ocr, cache, cells=[(0, r, c)])[0].numpy()   # K
    head = rerun_head(ocr, cache)[0, :, r, c].numpy()                     # K logits at the cell
    top = int(np.argmax(sim[p]))
    dropped = sim[p].copy()
    dropped[top] = 0.0
    edited = cache.sim_map.clone()
    edited[0, p] = torch.from_numpy(dropped / dropped.sum())
    after = rerun_head(ocr, cache, sim_map=edited)[0, :, r, c].numpy()    # K logits without the top region
    shares = aspp_branch_shares([acache[n][0].numpy() for n in hooks], aspp.head.project[0].weight.detach().numpy())
    erf = erf_to_cells(make_erf_fn(aspp, x)(r, c), (h, w), stride, scene.labels.shape)   # h x w, sums to 1
    own = own_object_fraction(scene, (r, c), (h, w), stride)
    explorer = ocrviz.Explorer(ocr, scene.image, scene.labels, aspp_model=aspp)   # as the notebooks open it
    masses = explorer.data.panel_masses(r, c, erf)                       # {panel: {class: mass}}: the strips
    explorer.close()
    with torch.no_grad():
        soft = labels_at_cells(ocr(x, return_aux=True)[1][0].max(0).indices.numpy(), stride, (h, w))  # h x w
    name = lambda k: CLASSES[int(k)]  # noqa: E731
    return {
        "scene": scene_name, "cell": (int(r), int(c)), "true": name(true[r, c]), "pred": name(pred[r, c]),
        "soft": name(soft[r, c]), "aspp_pred": name(labels_at_cells(aspp_logits[0].max(0).indices.numpy(),
                                                                     stride, (h, w))[r, c]),
        "row": {CLASSES[k]: float(v) for k, v in enumerate(sim[p])},
        "ranked": [CLASSES[k] for k in np.argsort(-sim[p], kind="stable")],
        "influence": {CLASSES[k]: float(v) for k, v in enumerate(influence)},
        "most_influential": CLASSES[int(np.argmax(influence))],
        "logits": {CLASSES[k]: float(v) for k, v in enumerate(head)},
        "top": CLASSES[top], "after_drop_top": {CLASSES[k]: float(v) for k, v in enumerate(after)},
        "pred_after_drop_top": CLASSES[int(np.argmax(after))],
        "ocr_own": float(ocr_own_object_share(sim, cache.region_weights[0].numpy(), scene.labels, scene.instances,
                                              stride=stride)[r, c]),
        "aspp_own": float(aspp_own_object_share(shares, aspp.head.rates, scene.labels, scene.instances,
                                                stride=stride)[r, c]),
        "erf_own": float((erf * own).sum()),
        "mass": {panel: masses[panel] for panel in PANELS}, "erf_cells": erf, "aspp_shares": shares[p],
    }


def scene_numbers(ocr: Any, n_images: int = N_IMAGES) -> dict[str, float]:
    """Notebook 03's lines 1 and 5 over the same validation scenes: how often a cell's most attended
    and its most influential region is its true class, with 1/K beside them."""
    import ocrviz
    from ocrviz.analysis import region_influence
    from ocrviz.analysis.cells import labels_at_cells
    from ocrviz.data.dataset import ToyCityDataset, val_split

    data = ToyCityDataset(val_split(n_images), height=256, width=512)
    top, inf, cls = [], [], []
    for batch in torch.utils.data.DataLoader(data, batch_size=4):
        with torch.no_grad():
            _, cache = ocrviz.run_with_cache(ocr, batch["image"])
        h, w = cache.feature_size
        influence = region_influence(ocr, cache).numpy()                  # B x HW x K
        for b in range(len(batch["image"])):
            cls.append(labels_at_cells(batch["labels"][b].numpy(), ocr.output_stride, (h, w)).ravel())
            top.append(cache.sim_map[b].numpy().argmax(1))
            inf.append(influence[b].argmax(1))
    cls_, top_, inf_ = np.concatenate(cls), np.concatenate(top), np.concatenate(inf)
    valid = cls_ != 255
    return {"K": int(ocr.num_classes), "cells": int(valid.sum()), "images": n_images,
            "top_is_true": float((top_ == cls_)[valid].mean()), "inf_is_true": float((inf_ == cls_)[valid].mean())}


def numbers() -> dict[str, Any]:
    """Everything the page quotes, from the shipped models (about a minute on one CPU thread)."""
    ocr, aspp = _models()
    return {"facade": pixel_numbers(ocr, aspp, *FACADE), "road": pixel_numbers(ocr, aspp, *ROAD),
            "window": pixel_numbers(ocr, aspp, *CAR_WINDOW), "cuefree": pixel_numbers(ocr, aspp, "street_2"),
            "scenes": scene_numbers(ocr)}


def fields(n: dict[str, Any]) -> dict[str, Any]:
    """The template's ``{name}`` fields, formatted as the page prints them (``*_pct`` are dicts of
    class name -> "23 %", which the template indexes: ``{w_ocr_pct[car]}``)."""
    f, r, win, cf, sc = n["facade"], n["road"], n["window"], n["cuefree"], n["scenes"]
    cell = lambda p: f"({p['cell'][0]}, {p['cell'][1]})"  # noqa: E731
    out = {
        "K": str(sc["K"]), "chance": f"{1 / sc['K']:.1%}", "images": str(sc["images"]), "cells": f"{sc['cells']:,}",
        "top_is_true": f"{sc['top_is_true']:.1%}", "inf_is_true": f"{sc['inf_is_true']:.1%}",
        "f_cell": cell(f), "f_true": f["true"], "f_pred": f["pred"], "f_top": f["top"],
        "f_top_w": f"{f['row'][f['top']]:.2f}", "f_inf": f"{f['influence'][f['top']]:+.2f}",
        "f_own": f"{f['ocr_own']:.2f}", "f_second": f["ranked"][1], "f_second_w": f"{f['row'][f['ranked'][1]]:.2f}",
        "r_cell": cell(r), "r_true": r["true"], "r_pred": r["pred"], "r_w": f"{r['row'][r['true']]:.2f}",
        "r_rank": str(r["ranked"].index(r["true"]) + 1), "r_inf": f"{r['influence'][r['true']]:+.2f}",
        "r_rise": f"{-r['influence'][r['true']]:.1f}", "r_most": r["most_influential"],
        "r_most_inf": f"{r['influence'][r['most_influential']]:+.2f}",
        "w_cell": cell(win), "w_true": win["true"], "w_pred": win["pred"], "w_aspp_pred": win["aspp_pred"],
        "w_own": f"{win['ocr_own']:.2f}", "w_aspp_own": f"{win['aspp_own']:.2f}", "w_erf_own": f"{win['erf_own']:.2f}",
        "w_top3": ", ".join(f"{k} {win['row'][k]:.2f}" for k in win["ranked"][:3]),
        "w_car_rank": str(win["ranked"].index("car") + 1), "w_car": f"{win['row']['car']:.2f}",
        "c_cell": cell(cf), "c_true": cf["true"], "c_pred": cf["pred"], "c_soft": cf["soft"], "c_top": cf["top"],
        "c_top_w": f"{cf['row'][cf['top']]:.2f}",
        "c_top_before": f"{cf['logits'][cf['top']]:.2f}", "c_top_after": f"{cf['after_drop_top'][cf['top']]:.2f}",
        "c_after_pred": cf["pred_after_drop_top"],
        "c_true_before": f"{cf['logits'][cf['true']]:.2f}", "c_true_after": f"{cf['after_drop_top'][cf['true']]:.2f}",
    }
    for key, pix in (("f", f), ("r", r), ("w", win), ("c", cf)):         # the mass strips, as the page draws them
        for panel, short in zip(PANELS, ("ocr", "aspp", "erf")):
            out[f"{key}_strip_{short}"] = strip_text(pix["mass"][panel])
            out[f"{key}_{short}_pct"] = {n: f"{int(np.floor(100 * v + 0.5))} %" for n, v in pix["mass"][panel].items()}
    return out


TEMPLATE = (Path(__file__).resolve().parent / "teaching_template.md")


def render(n: dict[str, Any]) -> str:
    """docs/teaching.md for the numbers ``n``."""
    return TEMPLATE.read_text().format(**fields(n))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/teaching.md differs from a fresh one")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    page = render(numbers())
    if args.check:
        if DOC.read_text() != page:
            print(f"{DOC} is out of date: run python -m ocrviz.tools.teaching")
            return 1
        return 0
    DOC.write_text(page)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
