// Where a context map's mass lies, by class: {class name: share of the map's mass on source cells the
// model predicts as that class, ..., "off-grid": share outside the image}, summing to 1 (the page's
// ContextMap.mass_by_class, ocrviz.context.types).  A cell's class: argmax of the main logits at
// feature resolution (payload `cell_class`).

// weights: HW (>= 0), offGrid: mass outside the image, cellClass: HW class indices
export function massByClass(weights, offGrid, cellClass, names) {
  const sums = new Float64Array(names.length);
  let total = offGrid > 0 ? offGrid : 0;
  for (let i = 0; i < weights.length; i++) {
    const m = weights[i];
    if (m > 0) { const c = cellClass[i]; if (c < names.length) sums[c] += m; total += m; }
  }
  const out = {};
  names.forEach((n, k) => { out[n] = total > 0 ? sums[k] / total : 0; });
  out["off-grid"] = total > 0 ? Math.max(0, offGrid) / total : 0;
  return out;
}

// the same from K class shares computed elsewhere (exact numbers sent with a map drawn from 8-bit codes)
export function massFromShares(shares, offGrid, names) {
  const total = shares.reduce((a, b) => a + b, 0) + Math.max(0, offGrid);
  const out = {};
  names.forEach((n, k) => { out[n] = total > 0 ? shares[k] / total : 0; });
  out["off-grid"] = total > 0 ? Math.max(0, offGrid) / total : 0;
  return out;
}

// OCR's class shares for sim row `row`: row @ regionMass (K x K, region k's mass on class c's cells)
export function ocrShares(row, regionMass, K) {
  const out = new Array(K).fill(0);
  for (let k = 0; k < row.length; k++) for (let c = 0; c < K; c++) out[c] += row[k] * regionMass[k * K + c];
  return out;
}

// ASPP's taps of cell (y, x) weighted by the branch shares (a convention, as ocrviz.analysis.context_flow):
// branch 0 (1x1) all on the cell, each dilated branch 1/9 on each of its nine taps (taps off the grid
// read zero padding: off-grid mass), image pooling spread evenly over every cell.  Writes HW into
// `out`, returns the off-grid mass.
export function asppTapsMap(y, x, shares, rates, h, w, out) {
  out.fill(0);
  let off = 0;
  out[y * w + x] += shares[0];
  rates.forEach((r, n) => {
    const a = shares[n + 1] / 9;
    for (const dy of [-1, 0, 1]) for (const dx of [-1, 0, 1]) {
      const ti = y + dy * r, tj = x + dx * r;
      if (ti >= 0 && ti < h && tj >= 0 && tj < w) out[ti * w + tj] += a; else off += a;
    }
  });
  const pool = shares[rates.length + 1] / (h * w);
  for (let i = 0; i < out.length; i++) out[i] += pool;
  return off;
}

// the strip under a map: the largest shares, "63 % road · 16 % pole · 7 % vegetation" (at most `most`,
// each at least `least`, the rest summed as "other")
export function massParts(mass, { most = 4, least = 0.03 } = {}) {
  const entries = Object.entries(mass).sort((a, b) => b[1] - a[1]);
  const shown = entries.filter(([, v], i) => i < most && v >= least);
  const rest = 1 - shown.reduce((a, [, v]) => a + v, 0);
  const parts = shown.map(([name, v]) => ({ name, share: v }));
  if (rest >= 0.005) parts.push({ name: "other", share: rest });
  return parts;
}
export const pct = (v) => `${Math.round(100 * v)} %`;
export function massText(mass, opts) { return massParts(mass, opts).map((p) => `${pct(p.share)} ${p.name}`).join(" · "); }

// data-mass: the shares rounded to 6 decimals
export function massJSON(mass) {
  const out = {};
  for (const [k, v] of Object.entries(mass)) out[k] = +v.toFixed(6);
  return JSON.stringify(out);
}
