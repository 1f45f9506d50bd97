// The mass strips against ContextMap.mass_by_class computed by Python (fixtures.json).
import assert from "node:assert/strict";
import { test } from "node:test";
import { ocrContext } from "../../ocrviz/widgets/js/context_maps.js";
import { asppTapsMap, massByClass, massFromShares, massJSON, massText, ocrShares } from "../../ocrviz/widgets/js/mass.js";
import { fixtures } from "./fixtures.mjs";

const { names, h, w, cell_class: cellClass } = fixtures.mass;
const hw = h * w;
function close(got, want, tol, what) {
  assert.deepEqual(Object.keys(got), Object.keys(want), `${what}: the same classes, in order, then off-grid`);
  for (const k of Object.keys(want)) assert.ok(Math.abs(got[k] - want[k]) <= tol, `${what} ${k}: ${got[k]} vs ${want[k]}`);
  assert.ok(Math.abs(Object.values(got).reduce((a, b) => a + b, 0) - 1) < 1e-12, `${what}: sums to 1`);
}

test("OCR: sum_k sim[k] * region_k, by the cells' predicted class", () => {
  const { sim, region, mass } = fixtures.mass.ocr;
  const m = ocrContext(Float64Array.from(region), sim, hw, new Float64Array(hw));
  close(massByClass(m, 0, cellClass, names), mass, 1e-12, "ocr");
});

test("ASPP taps x branch shares, with taps off the grid", () => {
  const { rates, cases } = fixtures.mass.aspp;
  for (const c of cases) {
    const out = new Float64Array(hw), off = asppTapsMap(c.cell[0], c.cell[1], c.shares, rates, h, w, out);
    close(massByClass(out, off, cellClass, names), c.mass, 1e-12, `aspp ${c.cell}`);
  }
  assert.ok(cases.some((c) => c.mass["off-grid"] > 0.05), "a corner cell puts mass off the grid");
});

test("ERF by class", () => {
  const { map, mass } = fixtures.mass.erf;
  close(massByClass(Float64Array.from(map), 0, cellClass, names), mass, 1e-12, "erf");
});

test("the strip names the largest shares and sums the rest", () => {
  const mass = { road: 0.631, pole: 0.162, vegetation: 0.071, sky: 0.02, car: 0.016, "off-grid": 0.1 };
  assert.equal(massText(mass, { most: 3 }), "63 % road · 16 % pole · 10 % off-grid · 11 % other");
  assert.equal(massText({ a: 1, "off-grid": 0 }), "100 % a");
  assert.deepEqual(JSON.parse(massJSON({ a: 0.1234567, b: 0.8765433 })), { a: 0.123457, b: 0.876543 });
});

test("a map with no mass says zero everywhere (no NaN)", () => {
  const got = massByClass(new Float64Array(hw), 0, cellClass, names);
  assert.ok(Object.values(got).every((v) => v === 0));
});

test("OCR's exact strip: sim row @ region_mass (each region's mass on each class) = the map's own mass", () => {
  const { sim, region, mass } = fixtures.mass.ocr, K = names.length;
  const regionMass = new Float64Array(K * K);                      // what payload.py sends as region_mass
  for (let k = 0; k < K; k++) for (let i = 0; i < hw; i++) regionMass[k * K + cellClass[i]] += region[k * hw + i];
  close(massFromShares(ocrShares(sim, regionMass, K), 0, names), mass, 1e-12, "ocr via region_mass");
  close(massFromShares([0.2, 0.2, 0.1, 0.1], 0.4, names), { road: 0.2, pole: 0.2, car: 0.1, sky: 0.1, "off-grid": 0.4 }, 1e-15, "shares");
});
