"""Where each class's context comes from, over a dataset: ``context_flow``.

Three K x K matrices (one for a model without OCR: see below); row t = feature cells whose true class (centre-pixel
label, ``cells.labels_at_cells``) is t, column c = the class of the pixels
the context comes from.  Sources are scored by the fraction of each cell's
pixels in class c (``cells.class_fractions``; ignored pixels belong to no class).

* ``ocr_mass``: cell p's OCR context map ``c_p(q) = sum_k sim[p, k] *
  region_weights[k, q]`` (a distribution over cells q, ``ocrviz.context.ocr``)
  has mass ``sim[p] @ region_mass(region_weights, fractions)`` on class c
  (``ocrviz.context.context_masses``).  Summed over the class-t cells, then each
  row NORMALISED TO SUM 1 (the share of class-t context drawn from class c,
  among labelled source pixels).
* ``ocr_influence``: :func:`region_influence` of region k (OCR's regions are
  the classes, so column c = region c), the MEAN over class-t cells, in logit
  units, NOT normalised (influence can be negative).
* ``aspp_mass`` (with ``aspp_model``): each cell's ASPP tap distribution (each
  branch weighted by its share of the projection, ``ocrviz.context.dilated_taps``)
  scored the same way, rows
  normalised to sum 1 (taps on the zero padding land on no class).

Any other head whose map is exact (self-attention, DANet's PAM, a
criss-cross pass: ``ContextMap.exact``) gets ``ocr_mass`` from its own map
(the name is kept; ``head`` says whose map it is) and no influence matrix
(``ocr_influence`` is None: it re-runs OCR's head on edited rows).  A map that
rests on a convention (PSP, ASPP) is refused; CCNet's two passes need
``site="head.passes.1"`` (or ``.0``).

``cells[t]`` counts the class-t cells; ``examples[(t, c)]`` lists up to
``n_examples`` cells ``(image index, row, col)`` of class t with the largest
OCR mass on class c (for "show me such pixels" in the explorer).

Example::

    flow = context_flow(ocr, images, labels, aspp_model=aspp)
    flow.figure().show()
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import context
from .cells import class_fractions, labels_at_cells
from .counterfactual import ocr_parts
from .influence import region_influence
from .markdown import cell
from .passes import check_labels, image_pass


@dataclass(frozen=True)
class ContextFlow:
    """K x K matrices, rows true class of the cell, columns source class (see the module docstring)."""

    ocr_mass: np.ndarray
    ocr_influence: np.ndarray | None
    aspp_mass: np.ndarray | None
    cells: np.ndarray
    class_names: tuple[str, ...]
    n_images: int
    examples: dict[tuple[int, int], list[tuple[int, int, int]]] = field(default_factory=dict)
    head: str = "OCR"          # whose exact map ``ocr_mass`` scores: "OCR", or "<kind> at <site path>"

    def to_dict(self) -> dict[str, Any]:
        nan = lambda m: None if m is None else np.where(np.isnan(m), None, np.round(m, 6)).tolist()  # noqa: E731
        return {"class_names": list(self.class_names), "n_images": self.n_images, "cells": self.cells.tolist(),
                "head": self.head,
                "ocr_mass": nan(self.ocr_mass), "ocr_influence": nan(self.ocr_influence),
                "aspp_mass": nan(self.aspp_mass)}

    def to_markdown(self) -> str:
        """The context-mass matrix (OCR's, or the head's) as a markdown table (rows true class, columns source class)."""
        head = "| true \\ source | " + " | ".join(map(cell, self.class_names)) + " |"
        rows = [f"| {cell(n)} | " + " | ".join("-" if np.isnan(v) else f"{v:.2f}" for v in r) + " |"
                for n, r in zip(self.class_names, self.ocr_mass)]
        return "\n".join([head, "|---|" + "---:|" * len(self.class_names)] + rows)

    def figure(self) -> Any:
        """Plotly heatmaps side by side (OCR mass, OCR influence, ASPP mass), hover = row, column, value, cells."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        mats = [(f"{self.head} context-map mass", self.ocr_mass, "Blues")]
        if self.ocr_influence is not None:
            mats.append(("OCR influence (mean logit drop)", self.ocr_influence, "RdBu"))
        if self.aspp_mass is not None:
            mats.append(("ASPP tap-weighted mass", self.aspp_mass, "Oranges"))
        fig = make_subplots(rows=1, cols=len(mats), subplot_titles=[t for t, _, _ in mats], horizontal_spacing=0.08)
        names = list(self.class_names)
        counts = np.broadcast_to(self.cells[:, None], self.ocr_mass.shape)
        for i, (title, m, scale) in enumerate(mats, start=1):
            extra = {"zmid": 0.0} if scale == "RdBu" else {"zmin": 0.0, "zmax": 1.0}
            fig.add_trace(go.Heatmap(
                z=m, x=names, y=names, colorscale=scale, customdata=counts, showscale=False, **extra,
                hovertemplate=("true %{y} \u2190 source %{x}<br>" + title + ": %{z:.3f}<br>"
                               "%{customdata} cells of class %{y}<extra></extra>")), 1, i)
            fig.update_xaxes(title_text="source class", row=1, col=i)
            fig.update_yaxes(autorange="reversed", row=1, col=i, title_text="true class" if i == 1 else None)
        fig.update_layout(height=420, width=380 * len(mats), title=f"Where the context comes from ({self.n_images} images)")
        return fig


def _normalise_rows(m: np.ndarray) -> np.ndarray:
    total = m.sum(1, keepdims=True)
    return np.where(total > 0, m / np.where(total > 0, total, 1.0), np.nan)


def _site_mass(cache: Any, frac: np.ndarray, kind: str, what: str) -> np.ndarray:
    """HW x K: each cell's context-map mass on each class, from the one ``kind`` site in ``cache``."""
    found = context.context_masses(cache, frac, kind=kind)
    if len(found) != 1:
        raise ValueError(f"{what} has {len(found)} {kind} context sites ({[s.path for s, _ in found]}); "
                         f"context_flow reads exactly one")
    return found[0][1]


def _exact_site(cache: Any, site: str | None) -> tuple[Any, Any]:
    """(producer, site) of the one exact context site (at module path ``site`` when given)."""
    found = context.find_sites(cache)
    chosen = [(p, s) for p, s in found if site is None or s.path == site]
    if len(chosen) != 1:
        raise ValueError(f"context_flow reads one context site; this model has {[s.path for _, s in found] or 'none'}"
                         f"{f' and none at {site!r}' if site is not None and not chosen else ''}; pick one with site=...")
    p, s = chosen[0]
    m = p.read(cache, s, (0, 0))
    if not m.exact:
        raise ValueError(f"the map at {s.path!r} ({s.kind}) rests on a convention ({m.convention}), so its "
                         f"class-to-class flow would be the convention's; context_flow reads exact maps only")
    return p, s


def _aspp_cell_mass(aspp_model: torch.nn.Module, image: np.ndarray, frac: np.ndarray, i: int) -> np.ndarray:
    """HW x K: each cell's ASPP tap-weighted mass on each class."""
    p = image_pass(aspp_model, image, i)
    if frac.shape[1:] != p.feat_hw:
        raise ValueError(f"image {i}: the ASPP model's feature map is {p.feat_hw[0]} x {p.feat_hw[1]}, the OCR "
                         f"model's {frac.shape[1]} x {frac.shape[2]}; give models with the same output stride")
    return _site_mass(p.cache, frac, "aspp", "aspp_model")


@torch.no_grad()
def context_flow(model: torch.nn.Module, images: Iterable[np.ndarray], labels: Iterable[np.ndarray], *,
                 aspp_model: torch.nn.Module | None = None, n_examples: int = 5, progress: bool = False,
                 site: str | None = None) -> ContextFlow:
    """Class-to-class context flow of an OCR model, or of any head whose map is exact, over a set.

    Args:
        model: a supported OCR model (``counterfactual.SUPPORTED``), or a model with one exact context
            site (``ocrviz.context.exact_sites``: toycity-sa, toycity-da, a CCNet pass, MMSeg's NLHead).
        images, labels: iterables in step, H x W x 3 uint8 and H x W (255 = ignore); read once.
        aspp_model: an ocrviz ASPP model (``arch == "aspp"``) with the same output stride.
        n_examples: example cells kept per matrix entry.
        progress: a tqdm bar.
        site: module path of the context site to read when the model has several (CCNet's passes).
    """
    try:
        parts = ocr_parts(model)
    except ValueError:
        parts = None                                   # not OCR: its one exact site's map, no influence
    if aspp_model is not None and getattr(aspp_model, "arch", None) != "aspp":
        raise ValueError(f"aspp_model must be an ocrviz ASPP model (arch 'aspp', e.g. load_model('toycity-aspp')), "
                         f"got {type(aspp_model).__name__} arch={getattr(aspp_model, 'arch', None)!r}")
    from tqdm.auto import tqdm

    k = int(getattr(model, "num_classes", 0) or (parts.cls.out_channels if parts is not None else 0))
    if k == 0:
        raise ValueError(f"cannot tell how many classes {type(model).__name__} predicts; give a model with num_classes")
    names = tuple(getattr(model, "class_names", None) or [str(i) for i in range(k)])
    mass, infl, aspp = np.zeros((k, k)), np.zeros((k, k)), np.zeros((k, k))
    cells = np.zeros(k, np.int64)
    best: dict[tuple[int, int], list[tuple[float, tuple[int, int, int]]]] = {}
    models = [m for m in (model, aspp_model) if m is not None]
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    n = 0
    head = "OCR"
    label_iter = iter(labels)
    try:
        for i, image in enumerate(tqdm(images, desc="context_flow", unit="img", disable=not progress)):
            p = image_pass(model, image, i)
            try:
                lab = check_labels(next(label_iter), p.image_hw, i)
            except StopIteration:
                raise ValueError(f"labels ran out at image {i}; give one label map per image") from None
            h, w = p.feat_hw
            cell = labels_at_cells(lab, p.stride, (h, w)).ravel()           # HW true class per cell
            known = cell != 255
            frac = class_fractions(lab, k, (h, w))                         # K x h x w
            if parts is not None:
                cell_mass = _site_mass(p.cache, frac, "ocr", "model")        # HW x K
                cell_infl = region_influence(model, p.cache)[0].double().cpu().numpy()  # HW x K
            else:
                prod, s = _exact_site(p.cache, site)
                head = f"{s.kind} at {s.path}"
                ((_, cell_mass),) = context.context_masses(p.cache, frac, kind=s.kind, path=s.path)  # HW x K
                cell_infl = np.zeros_like(cell_mass)
            t = cell[known]
            np.add.at(mass, t, cell_mass[known])
            np.add.at(infl, t, cell_infl[known])
            cells += np.bincount(t, minlength=k)
            if aspp_model is not None:
                np.add.at(aspp, t, _aspp_cell_mass(aspp_model, image, frac, i)[known])
            for tc in np.unique(t):
                idx = np.flatnonzero(cell == tc)
                for c in range(k):
                    top = idx[np.argsort(-cell_mass[idx, c], kind="stable")[:n_examples]]
                    cand = best.setdefault((int(tc), c), []) + [(float(cell_mass[q, c]), (i, int(q // w), int(q % w)))
                                                                for q in top]
                    best[(int(tc), c)] = sorted(cand, key=lambda e: -e[0])[:n_examples]
            n += 1
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)
    if n == 0:
        raise ValueError("context_flow got no images; give iterables of H x W x 3 uint8 images and H x W labels")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_infl = np.where(cells[:, None] > 0, infl / np.maximum(cells[:, None], 1), np.nan)
    return ContextFlow(ocr_mass=_normalise_rows(mass), ocr_influence=mean_infl if parts is not None else None,
                       aspp_mass=_normalise_rows(aspp) if aspp_model is not None else None, cells=cells,
                       class_names=names, n_images=n,
                       examples={key: [e for _, e in v] for key, v in best.items()}, head=head)
