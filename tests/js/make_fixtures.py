"""Numbers written by Python for the JS unit tests (tests/js/*.test.mjs): ``fixtures.json``.

    python tests/js/make_fixtures.py          # rewrite tests/js/fixtures.json

The JS tests check the page's codecs and mass strips against these; ``tests/widgets/test_js.py``
checks that the committed file equals a fresh run (so the numbers always come from today's Python).
- codecs: arrays of non-square shapes encoded by ``ocrviz.widgets.payload`` (float32, fixed24,
  fixed16, uint8; shuffled and deflated as the widget sends them) and their values.
- mass: ``ContextMap.mass_by_class`` of an OCR context map (sum_k sim[k] * region_k), of ASPP's taps
  weighted by the branch shares (tap fractions from ``ocrviz.analysis.context_share.aspp_tap_fractions``,
  a dilated conv with zero padding) and of an ERF, on a non-square grid with several classes.
"""
from __future__ import annotations

import base64
import json
import pathlib

import numpy as np

from ocrviz.analysis.context_share import aspp_tap_fractions
from ocrviz.context.types import ContextMap
from ocrviz.widgets.payload import encode_buffer, encode_numbers

OUT = pathlib.Path(__file__).with_name("fixtures.json")


def _spec(spec: dict) -> dict:
    return {**{k: v for k, v in spec.items() if k != "buf"}, "b64": base64.b64encode(spec["buf"]).decode("ascii")}


def codecs(rng: np.random.Generator) -> list[dict]:
    cases = []
    for shape in [(3, 5), (1, 7), (6, 2), (2, 3, 4)]:
        a = rng.random(shape).astype(np.float32)
        for precision in ("float32", "fixed24", "fixed16"):
            cases.append({"name": f"{precision} {shape}", "shape": list(shape), "kind": "f32", "precision": precision,
                          "spec": _spec(encode_numbers(a, precision)), "values": [float(v) for v in a.ravel()]})
        codes = rng.integers(0, 6, size=shape, dtype=np.uint8)          # class-map-like: deflate helps
        cases.append({"name": f"uint8 {shape}", "shape": list(shape), "kind": "u8", "precision": "exact",
                      "spec": _spec(encode_buffer(codes.tobytes())), "values": codes.ravel().tolist()})
    return cases


def mass(rng: np.random.Generator) -> dict:
    names = ["road", "pole", "car", "sky"]
    k, h, w = len(names), 5, 7                                            # a non-square grid
    cell_class = rng.integers(0, k, size=(h, w))
    region = rng.random((k, h, w)) ** 4                                   # K x h x w, peaky
    region /= region.sum(axis=(1, 2), keepdims=True)                      # each region sums to 1
    sim = rng.dirichlet(np.ones(k))                                       # one pixel's sim row
    ocr = ContextMap(weights=np.einsum("k,khw->hw", sim, region), off_grid=0.0, cell=(2, 3), exact=True,
                     convention="", site="head", kind="ocr")
    rates, nb = [1, 3], 4                                                 # 1x1, two dilated, pooling
    onehot = (cell_class[None] == np.arange(k)[:, None, None]).astype(np.float64)   # K x h x w
    taps = aspp_tap_fractions(onehot, rates)                              # K x nb x h x w
    aspp = []
    for cell in [(2, 3), (0, 6), (4, 0)]:                                 # inside; corners: taps off the grid
        shares = rng.dirichlet(np.ones(nb))
        by_class = np.einsum("b,kb->k", shares, taps[:, :, cell[0], cell[1]])      # K
        out = {n: float(by_class[i]) for i, n in enumerate(names)}
        out["off-grid"] = float(1.0 - by_class.sum())
        aspp.append({"cell": list(cell), "shares": shares.tolist(), "mass": out})
    erf = rng.random((h, w)) ** 3
    erf /= erf.sum()
    erf_map = ContextMap(weights=erf, off_grid=0.0, cell=(1, 1), exact=False, convention="|d out / d in| summed",
                         site="aspp", kind="aspp-erf")
    return {"names": names, "h": h, "w": w, "cell_class": cell_class.ravel().tolist(),
            "ocr": {"sim": sim.tolist(), "region": region.ravel().tolist(), "mass": ocr.mass_by_class(cell_class, names)},
            "aspp": {"rates": rates, "cases": aspp},
            "erf": {"map": erf.ravel().tolist(), "mass": erf_map.mass_by_class(cell_class, names)}}


def site_grids(rng: np.random.Generator) -> list[dict]:
    """ocrviz.widgets.site_grids on coarser, finer and odd site grids: the drawn map, the selected cells
    and the class fractions (the strip of a map drawn on another grid)."""
    from ocrviz.widgets.site_grids import class_fractions, site_cell, spread_matrix

    cases = []
    for grid, site in [((6, 10), (3, 5)), ((7, 9), (2, 4)), ((4, 6), (4, 6)), ((3, 4), (5, 7)), ((5, 8), (1, 1))]:
        row = rng.random(site[0] * site[1]) ** 2
        cls = rng.integers(0, 3, grid)
        cases.append({"grid": list(grid), "site": list(site), "row": row.tolist(),
                      "drawn": (spread_matrix(site, grid) @ row).tolist(),
                      "cells": [[y, x, *site_cell((y, x), grid, site)] for y in range(grid[0]) for x in range(grid[1])],
                      "cell_class": cls.ravel().tolist(), "shares": (row @ class_fractions(site, cls, 3)).tolist()})
    return cases


def fixtures() -> str:
    rng = np.random.default_rng(16)
    return json.dumps({"codecs": codecs(rng), "mass": mass(rng), "site_grids": site_grids(rng)}, indent=1) + "\n"


if __name__ == "__main__":
    OUT.write_text(fixtures())
    print(f"wrote {OUT}")
