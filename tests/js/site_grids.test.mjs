// site_grids.js draws a site of another grid (SegFormer's MiT stages) by the rule of
// ocrviz/widgets/site_grids.py: the drawn map, the cell a click selects and the mass kept, against
// Python's numbers (fixtures.json: coarser, odd, equal, finer and one-cell site grids).
import assert from "node:assert/strict";
import { test } from "node:test";
import { fixtures } from "./fixtures.mjs";
import { massByClass } from "../../ocrviz/widgets/js/mass.js";
import { cellSpan, siteCellOf, spreadTo } from "../../ocrviz/widgets/js/site_grids.js";

test("a site map drawn on the explorer's grid equals Python's spread_matrix @ row, mass kept", () => {
  for (const c of fixtures.site_grids) {
    const out = new Float64Array(c.grid[0] * c.grid[1]);
    spreadTo(Float64Array.from(c.row), c.site, c.grid, out);
    out.forEach((v, i) => assert.ok(Math.abs(v - c.drawn[i]) < 1e-12, `${c.site} on ${c.grid}: cell ${i}`));
    const sum = (a) => a.reduce((s, v) => s + v, 0);
    assert.ok(Math.abs(sum(out) - sum(c.row)) < 1e-12, "no mass lost or made");
  }
});

test("a click selects the site cell Python's site_cell names; its span holds the clicked cell", () => {
  for (const c of fixtures.site_grids) {
    for (const [y, x, r, col] of c.cells) {
      assert.deepEqual(siteCellOf(y, x, c.grid, c.site), [r, col], `${c.site} on ${c.grid} at ${y},${x}`);
      const [r0, r1, c0, c1] = cellSpan(r, col, c.grid, c.site);
      if (c.site[0] <= c.grid[0] && c.site[1] <= c.grid[1]) assert.ok(r0 <= y && y < r1 && c0 <= x && x < c1);
    }
  }
});

test("the strip of the drawn map (counted on the explorer's cells) equals Python's class_fractions", () => {
  for (const c of fixtures.site_grids) {
    const out = new Float64Array(c.grid[0] * c.grid[1]);
    spreadTo(Float64Array.from(c.row), c.site, c.grid, out);
    const names = ["a", "b", "c"], mass = massByClass(out, 0, c.cell_class, names);
    const total = c.row.reduce((s, v) => s + v, 0);
    names.forEach((n, k) => assert.ok(Math.abs(mass[n] - c.shares[k] / total) < 1e-9, `${c.site} on ${c.grid}: ${n}`));
  }
});
