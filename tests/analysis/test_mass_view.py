"""ocrviz.analysis.mass_view: the explorer's mass view of a context map, checked against the rule of
context_panel.js ``massView`` written out again here cell by cell, against scales.js ``scaled`` run in
Node, and on the case that motivated it (issue 16): a large uniform region with a low density but most
of the mass is drawn more opaque than a small peaked one."""
from __future__ import annotations

import importlib.util
import json
import math
import pathlib
import subprocess

import numpy as np
import pytest

from ocrviz.analysis.mass_view import DEFAULT_SCALE, FADE, mass_view_image, mass_view_rgba, scaled
from ocrviz.context.types import ContextMap

REPO = pathlib.Path(__file__).resolve().parents[2]
NAMES = ["road", "car", "sky"]
PALETTE = [(128, 64, 128), (0, 0, 142), (70, 130, 180)]


def _alpha_by_hand(m: np.ndarray, cls: np.ndarray, scale: str) -> np.ndarray:
    """massView of context_panel.js, one cell at a time: class mass from the map, each class's peak,
    opacity = (mass / largest mass) x scaled(value, class peak), as the canvas's byte / 255."""
    mass, peak = {}, {}
    for (i, j), v in np.ndenumerate(m):
        c = int(cls[i, j])
        mass[c] = mass.get(c, 0.0) + (v if v > 0 else 0.0)
        peak[c] = max(peak.get(c, 0.0), v)
    most = max(mass.values())
    out = np.zeros(m.shape)
    for (i, j), v in np.ndenumerate(m):
        c = int(cls[i, j])
        top = peak[c]
        if not (top > 0 and v > 0):
            t = 0.0
        elif v / top >= 1:
            t = 1.0
        elif scale == "linear":
            t = v / top
        elif scale == "log":
            t = max(0.0, 1 + math.log10(v / top) / 3)
        else:
            t = math.sqrt(v / top)
        out[i, j] = math.floor(255 * (mass[c] / most) * t + 0.5) / 255   # JS Math.round
    return out


def _hand_map() -> tuple[np.ndarray, np.ndarray]:
    """3 x 4: road (6 cells, 0.5 of the mass), car (4 cells, 0.3, one peak), sky (2 cells, 0.2)."""
    cls = np.array([[2, 2, 0, 0],
                    [1, 1, 0, 0],
                    [1, 1, 0, 0]])
    m = np.array([[0.15, 0.05, 0.10, 0.10],
                  [0.21, 0.03, 0.05, 0.05],
                  [0.03, 0.03, 0.15, 0.05]])
    assert abs(m.sum() - 1) < 1e-12
    return m, cls


@pytest.mark.parametrize("scale", ["sqrt", "log", "linear"])
def test_hand_made_map_matches_the_rule_written_again(scale: str) -> None:
    m, cls = _hand_map()
    rgba = mass_view_rgba(m, cls, PALETTE, NAMES, mass={"road": 0.5, "car": 0.3, "sky": 0.2, "off-grid": 0.0},
                          scale=scale)
    assert rgba.shape == (3, 4, 4)
    np.testing.assert_allclose(rgba[..., 3], _alpha_by_hand(m, cls, scale), atol=1e-12)
    np.testing.assert_allclose(rgba[..., :3], np.asarray(PALETTE)[cls] / 255, atol=1e-12)
    # road holds the most mass: its peak cell is fully opaque, car's peak at 0.3 / 0.5, sky's at 0.2 / 0.5
    assert rgba[2, 2, 3] == 1.0
    assert rgba[1, 0, 3] == pytest.approx(round(255 * 0.6) / 255)
    assert rgba[0, 0, 3] == pytest.approx(round(255 * 0.4) / 255)
    # though the car peak (0.21) is the map's largest value, the most opaque cells are road's
    assert m.argmax() == 4 and rgba[..., 3].max() == rgba[cls == 0][..., 3].max() > rgba[1, 0, 3]


def test_uniform_region_with_most_mass_beats_a_small_peaked_one() -> None:
    """Issue 16: 60 road cells at 0.01 each (0.6 of the mass, the lowest density) against 4 car cells
    holding 0.4 with a peak of 0.25.  The density picture would make the car peak 25 times as bright
    as any road cell; the mass view draws every road cell fully and the car peak at 0.4 / 0.6."""
    cls = np.zeros((8, 8), np.int64)
    cls[:2, :2] = 1                                                     # 4 car cells
    m = np.where(cls == 1, 0.05, 0.6 / 60)
    m[0, 0] = 0.25
    assert abs(m.sum() - 1) < 1e-12 and m[cls == 1].sum() == pytest.approx(0.4)
    cm = ContextMap(weights=m, off_grid=0.0, cell=(0, 0), exact=True, convention="", site="head", kind="ocr")
    alpha = mass_view_rgba(cm, cls, PALETTE, NAMES)[..., 3]             # shares from mass_by_class
    assert (alpha[cls == 0] == 1.0).all()
    assert alpha[0, 0] == pytest.approx(round(255 * 0.4 / 0.6) / 255)
    assert alpha[cls == 0].min() > alpha[cls == 1].max()
    assert m[cls == 0].max() < m[cls == 1].min()                          # ... while its density is the lowest


def test_off_grid_mass_and_the_shares_normalisation_cancel() -> None:
    m, cls = _hand_map()
    cm = ContextMap(weights=m * 0.8, off_grid=0.2, cell=(1, 1), exact=False, convention="taps", site="h", kind="aspp")
    from_map = mass_view_rgba(cm, cls, PALETTE, NAMES)
    strip = {"road": 0.4, "car": 0.24, "sky": 0.16, "off-grid": 0.2}
    np.testing.assert_allclose(from_map, mass_view_rgba(m, cls, PALETTE, NAMES, mass=strip), atol=1e-12)
    np.testing.assert_allclose(from_map[..., 3], _alpha_by_hand(m, cls, DEFAULT_SCALE), atol=1e-12)


def test_default_scale_and_view_are_the_explorers() -> None:
    from ocrviz.widgets.explorer import SCALES, Explorer
    traits = Explorer.class_traits()
    assert traits["scale"].default_value == DEFAULT_SCALE == "sqrt" and DEFAULT_SCALE in SCALES
    assert traits["context_view"].default_value == "mass"
    fade = (REPO / "ocrviz/widgets/js/layers.js").read_text()
    assert f"rgba(255,255,255,{FADE})" in fade


def _node_scaled(cases: list[tuple[float, float, str]]) -> list[float]:
    spec = importlib.util.spec_from_file_location("_node_bin", REPO / "tests/js/node_bin.py")
    node_bin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(node_bin)
    node = node_bin.command("node")
    if node is None:
        pytest.fail(node_bin.missing_message("node"))
    script = ("import { scaled } from './ocrviz/widgets/js/scales.js';"
              f"console.log(JSON.stringify({json.dumps(cases)}.map(([v, t, s]) => scaled(v, t, s))));")
    run = subprocess.run([*node, "--input-type=module", "-e", script], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_scaled_is_scales_js() -> None:
    cases = [(v, t, s) for s in ("sqrt", "log", "linear") for v, t in
             ((0.25, 1.0), (0.01, 1.0), (1e-5, 1.0), (2.0, 1.0), (0.5, 0.0), (-1.0, 1.0), (0.0, 0.0), (0.03, 0.21))]
    want = _node_scaled(cases)
    got = [float(scaled(np.array(v), t, s)) for v, t, s in cases]
    np.testing.assert_allclose(got, want, atol=1e-15)


def test_image_is_faded_and_cells_cover_their_pixels() -> None:
    image = np.full((6, 8, 3), 100, np.uint8)
    rgba = np.zeros((3, 4, 4))
    rgba[1, 2] = (1.0, 0.0, 0.0, 1.0)                                    # cell (1, 2): opaque red
    rgba[0, 0] = (0.0, 0.0, 1.0, 0.5)                                    # cell (0, 0): half blue
    out = mass_view_image(image, rgba)
    faded = (1 - FADE) * 100 / 255 + FADE
    np.testing.assert_allclose(out[5, 7], [faded] * 3)
    np.testing.assert_allclose(out[2:4, 4:6].reshape(-1, 3), [[1.0, 0.0, 0.0]] * 4)
    np.testing.assert_allclose(out[:2, :2].reshape(-1, 3), [[faded / 2, faded / 2, faded / 2 + 0.5]] * 4)
    assert np.allclose(out[2, 3], faded) and np.allclose(out[4, 4], faded)


def test_errors_say_what_to_give() -> None:
    m, cls = _hand_map()
    with pytest.raises(ValueError, match="no `mass`"):
        mass_view_rgba(m, cls, PALETTE, NAMES)
    with pytest.raises(ValueError, match="same feature grid"):
        mass_view_rgba(m, cls[:2], PALETTE, NAMES, mass={n: 1.0 for n in NAMES})
    with pytest.raises(ValueError, match="no share for"):
        mass_view_rgba(m, cls, PALETTE, NAMES, mass={"road": 1.0})
    with pytest.raises(ValueError, match="allowed: sqrt, log, linear"):
        mass_view_rgba(m, cls, PALETTE, NAMES, mass={n: 1.0 for n in NAMES}, scale="cubic")
    with pytest.raises(ValueError, match="one RGB triple"):
        mass_view_rgba(m, cls, PALETTE[:2], NAMES, mass={n: 1.0 for n in NAMES})
    with pytest.raises(ValueError, match="class ids in 0..2"):
        mass_view_rgba(m, cls + 1, PALETTE, NAMES, mass={n: 1.0 for n in NAMES})
