"""ocrviz.analysis.mass_panel: one mass-view panel as the notebooks draw it.  The drawn image is the
mass view of the map (shares summed by hand here), the outline covers exactly the pixels that show the
pixel's cell, the text under the panel is the explorer's strip, and the legend names the classes the
strips hold."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from ocrviz.analysis.mass_panel import cell_box, class_legend, class_mass, mass_panel, strip_lines  # noqa: E402
from ocrviz.analysis.mass_view import mass_view_image, mass_view_rgba  # noqa: E402
from ocrviz.context import strip_text  # noqa: E402
from ocrviz.context.types import ContextMap  # noqa: E402

NAMES = ["road", "car", "sky"]
PALETTE = [(128, 64, 128), (0, 0, 142), (70, 130, 180)]


def _scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 12 x 16 image over a 3 x 4 grid (stride 4): road 0.5, car 0.3, sky 0.2 of the map."""
    cls = np.array([[2, 2, 0, 0],
                    [1, 1, 0, 0],
                    [1, 1, 0, 0]])
    m = np.array([[0.15, 0.05, 0.10, 0.10],
                  [0.21, 0.03, 0.05, 0.05],
                  [0.03, 0.03, 0.15, 0.05]])
    image = (np.arange(12 * 16 * 3) % 251).astype(np.uint8).reshape(12, 16, 3)
    return image, m, cls


def test_class_mass_is_the_map_summed_by_class() -> None:
    _, m, cls = _scene()
    mass = class_mass(m, cls, NAMES)
    assert mass == pytest.approx({"road": 0.5, "car": 0.3, "sky": 0.2})
    cm = ContextMap(weights=m * 0.9, off_grid=0.1, cell=(0, 0), exact=False, convention="taps", site="h", kind="aspp")
    assert class_mass(cm, cls, NAMES) == pytest.approx({"road": 0.45, "car": 0.27, "sky": 0.18, "off-grid": 0.1})
    with pytest.raises(ValueError, match="same feature grid"):
        class_mass(m, cls[:2], NAMES)


def test_panel_draws_the_mass_view_outline_and_strip() -> None:
    image, m, cls = _scene()
    fig, ax = plt.subplots()
    try:
        got = mass_panel(ax, image, m, cls, (1, 2), PALETTE, NAMES, title="a pixel")
        assert got == pytest.approx({"road": 0.5, "car": 0.3, "sky": 0.2})
        rgba = mass_view_rgba(m, cls, PALETTE, NAMES, mass={"road": 0.5, "car": 0.3, "sky": 0.2})   # h x w x 4
        want = mass_view_image(image, rgba)
        np.testing.assert_allclose(ax.get_images()[0].get_array(), want, atol=1e-12)
        boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert [p.get_edgecolor()[:3] for p in boxes] == [(0.0, 0.0, 0.0), (1.0, 1.0, 1.0)]   # black under white
        assert all((p.get_x(), p.get_y(), p.get_width(), p.get_height()) == (7.5, 3.5, 4.0, 4.0) for p in boxes)
        assert ax.get_title() == "a pixel"
        assert [t.get_text() for t in ax.texts] == [strip_lines(got)]
    finally:
        plt.close(fig)


def test_given_shares_are_drawn_and_returned() -> None:
    image, m, cls = _scene()
    strip = {"road": 0.4, "car": 0.24, "sky": 0.16, "off-grid": 0.2}
    fig, ax = plt.subplots()
    try:
        assert mass_panel(ax, image, m, cls, (0, 0), PALETTE, NAMES, mass=strip) == strip
        assert "20 % off-grid" in ax.texts[0].get_text()
    finally:
        plt.close(fig)


@pytest.mark.parametrize("image_hw, grid", [((12, 16), (3, 4)), ((10, 7), (3, 2)), ((5, 9), (4, 4))])
def test_the_outline_covers_the_pixels_that_show_the_cell(image_hw: tuple[int, int], grid: tuple[int, int]) -> None:
    image = np.zeros(image_hw + (3,), np.uint8)
    for r in range(grid[0]):
        for c in range(grid[1]):
            rgba = np.zeros(grid + (4,))
            rgba[r, c] = (1.0, 0.0, 0.0, 1.0)                        # only this cell, opaque red
            red = np.argwhere(mass_view_image(image, rgba)[..., 1] == 0)
            x0, y0, bw, bh = cell_box((r, c), grid, image_hw)
            assert (x0 + 0.5, y0 + 0.5) == (red[:, 1].min(), red[:, 0].min())
            assert (bw, bh) == (red[:, 1].max() - red[:, 1].min() + 1, red[:, 0].max() - red[:, 0].min() + 1)
            assert len(red) == bw * bh
    with pytest.raises(ValueError, match="outside the 3 x 4 grid"):
        cell_box((3, 0), (3, 4), (12, 16))


def test_strip_lines_break_the_explorers_strip() -> None:
    mass = {"road": 0.41, "sidewalk": 0.22, "building": 0.13, "sky": 0.09, "car": 0.08, "pole": 0.07}
    text = strip_lines(mass, width=24)
    assert text.replace("\n", " · ") == strip_text(mass)
    assert all(len(line) <= 24 for line in text.splitlines()) and len(text.splitlines()) > 1


def test_legend_names_the_classes_the_strips_hold() -> None:
    fig = plt.figure()
    try:
        shown = class_legend(fig, [{"road": 0.9, "car": 0.02, "sky": 0.08}, {"road": 0.5, "car": 0.01, "sky": 0.49}],
                             PALETTE, NAMES)
        assert shown == ["road", "sky"]
        assert [t.get_text() for t in fig.legends[0].get_texts()] == ["road", "sky"]
    finally:
        plt.close(fig)
