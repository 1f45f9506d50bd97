// A context site on another grid than the explorer's (SegFormer's MiT stages): the display rule of
// ocrviz/widgets/site_grids.py, written again here (tests/js/site_grids.test.mjs checks both agree).
// A click selects the site cell its explorer cell's centre lies in; a site cell's weight is shared
// equally by the explorer cells whose centre lies in it (a site cell holding no centre gives it all to
// the explorer cell under its own centre), so the drawn map keeps every site cell's mass.

// for each of nFrom cells along one axis, the one of nTo cells its centre lies in
export function centreIndex(nFrom, nTo) {
  const out = new Int32Array(nFrom);
  for (let i = 0; i < nFrom; i++) out[i] = Math.min(Math.floor(((i + 0.5) * nTo) / nFrom), nTo - 1);
  return out;
}

const same = (a, b) => a[0] === b[0] && a[1] === b[1];

// explorer cell (y, x) on grid [h, w] -> [row, col] of the site grid [gh, gw]
export function siteCellOf(y, x, grid, siteGrid) {
  if (same(grid, siteGrid)) return [y, x];
  return [centreIndex(grid[0], siteGrid[0])[y], centreIndex(grid[1], siteGrid[1])[x]];
}

// the explorer rows / columns a site cell (r, c) is drawn on: [r0, r1) x [c0, c1) (for the dashed outline)
export function cellSpan(r, c, grid, siteGrid) {
  const span = (n, m, k) => {
    const idx = centreIndex(n, m);
    let a = -1, b = -1;
    for (let i = 0; i < n; i++) if (idx[i] === k) { if (a < 0) a = i; b = i + 1; }
    if (a < 0) { a = centreIndex(m, n)[k]; b = a + 1; }
    return [a, b];
  };
  return [...span(grid[0], siteGrid[0], r), ...span(grid[1], siteGrid[1], c)];
}

// a site map `row` (gh gw) drawn on the explorer's cells into `out` (h w); keeps the total mass
export function spreadTo(row, siteGrid, grid, out) {
  if (same(grid, siteGrid)) { out.set(row); return out; }
  const [gh, gw] = siteGrid, [h, w] = grid, rows = centreIndex(h, gh), cols = centreIndex(w, gw);
  const count = new Float64Array(gh * gw);
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) count[rows[i] * gw + cols[j]] += 1;
  out.fill(0);
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) {
    const s = rows[i] * gw + cols[j];
    out[i * w + j] = row[s] / count[s];
  }
  const er = centreIndex(gh, h), ec = centreIndex(gw, w);
  for (let s = 0; s < gh * gw; s++) if (count[s] === 0) out[er[Math.floor(s / gw)] * w + ec[s % gw]] += row[s];
  return out;
}
