"""site_grids: a site of another grid drawn on the explorer's cells keeps every site cell's mass, on
coarser, uneven and finer grids; the click's cell and the class fractions follow the stated rule
(checked here by hand on small grids)."""
from __future__ import annotations

import numpy as np
import pytest

from ocrviz.widgets.site_grids import class_fractions, grid_note, site_cell, spread_matrix


@pytest.mark.parametrize("site,grid", [((2, 3), (4, 6)), ((3, 5), (7, 9)), ((5, 7), (2, 3)), ((1, 1), (3, 4)),
                                       ((4, 6), (4, 6))])
def test_every_site_cell_keeps_its_mass(site, grid):
    u = spread_matrix(site, grid)
    assert u.shape == (grid[0] * grid[1], site[0] * site[1]) and (u >= 0).all()
    np.testing.assert_allclose(u.sum(0), 1.0)
    if site == grid:
        np.testing.assert_array_equal(u, np.eye(site[0] * site[1]))


def test_a_coarse_cell_is_shared_by_its_block():
    u = spread_matrix((2, 3), (4, 6)).reshape(4, 6, 2, 3)                 # explorer cells x site cells
    np.testing.assert_allclose(u[2:4, 2:4, 1, 1], 0.25)                  # site cell (1, 1): rows 2-3, cols 2-3
    assert u[:, :, 1, 1].sum() == pytest.approx(1.0) and u[0, 0, 1, 1] == 0
    assert site_cell((3, 5), (4, 6), (2, 3)) == (1, 2) and site_cell((0, 1), (4, 6), (2, 3)) == (0, 0)


def test_a_finer_site_cell_goes_to_the_cell_under_its_centre():
    u = spread_matrix((4, 1), (2, 1))                                     # site rows 0..3 on explorer rows 0..1
    # explorer row 0's centre (0.25 of the height) lies in site row 1, row 1's (0.75) in site row 3;
    # site rows 0 and 2 hold no centre: each goes whole to the explorer row under its own centre (0, 1)
    np.testing.assert_array_equal(u, [[1, 1, 0, 0], [0, 0, 1, 1]])


def test_class_fractions_count_the_drawn_cells():
    cls = np.array([[0, 0, 1, 1], [0, 2, 1, 1]])                          # 2 x 4 explorer cells
    fr = class_fractions((1, 2), cls, 3)                                  # site cells: left, right halves
    np.testing.assert_allclose(fr, [[0.75, 0, 0.25], [0, 1, 0]])
    assert grid_note((1, 2), (2, 4)).startswith("this site's grid is 1 x 2, the explorer's 2 x 4")
    assert grid_note((2, 4), (2, 4)) == ""
