// Layout: how large the pictures are for the width available, and where the panels sit.
// Picture size: `width` CSS px when given, else as wide as the output area allows (responsive),
// rounded down to whole CSS px per feature cell so that cells stay crisp.
import { el } from "./dom.js";

export const BAR_W = 260, GAP = 10;        // the bars panel's width and the gap between panels (CSS px)
export const LARGE = 1.35;                 // size="large" (a projector): type and bars this much larger

// {side: CSS px of a picture's width, stacked: bars below the pictures} for `avail` CSS px and
// n pictures in a row (the image and its context maps), bars `barW` wide
export function layoutFor(avail, { W, s }, fixed, n = 2, barW = BAR_W) {
  const crisp = (side) => { const px = Math.floor(side * s / W); return px >= 1 ? px * W / s : Math.max(60, side); };
  if (fixed > 0) return { side: Math.max(120, fixed), stacked: false };
  if (!(avail > 0)) return { side: 300, stacked: false };
  const row = crisp((avail - barW - n * GAP - 4 * n) / n), two = crisp((avail - (n - 1) * GAP - 3 * n) / n);
  const cell = (side) => side * s / W;
  // bars beside the pictures (reachable without scrolling) unless that leaves fewer than 6 CSS px a cell
  if (row >= 120 && cell(row) >= Math.min(6, cell(two))) return { side: row, stacked: false };
  if (two >= 120) return { side: two, stacked: true };                                           // bars below
  const half = crisp((avail - GAP - 6) / 2);
  return half >= 160 ? { side: half, stacked: true } : { side: crisp(avail - 4), stacked: true }; // two or one a row
}

// the size every picture shares (CSS px and canvas px); fit() recomputes it and says if it changed
export function sizing(data, n, bars = true) {       // bars: false when there is no bars column (no OCR)
  const dpr = Math.min(2, (globalThis.devicePixelRatio || 1));
  const size = { dpr, dispW: 300, dispH: Math.round(300 * data.H / data.W), bw: 0, bh: 0, stacked: false, barW: BAR_W };
  size.fit = (avail, fixed, large) => {
    size.barW = bars ? Math.round(BAR_W * (large ? LARGE : 1)) : 0;
    const lay = layoutFor(avail, data, fixed, n, size.barW);
    const changed = lay.side !== size.dispW || lay.stacked !== size.stacked || !size.bw;
    size.dispW = lay.side; size.dispH = Math.round(lay.side * data.H / data.W); size.stacked = lay.stacked;
    size.bw = Math.round(size.dispW * dpr); size.bh = Math.round(size.dispH * dpr);
    return changed;
  };
  return size;
}

// Two pictures a row: the image and OCR's context, then (with an ASPP model) ASPP's taps and its ERF
// under them; the bars beside both rows (a grid), or, when the width is short, below everything.
export function arrange(container, image, contexts, side, size) {
  const items = [image, ...contexts, side].map((p) => p.el);
  for (const e of items) { e.style.gridColumn = e.style.gridRow = ""; e.style.order = ""; }
  if (size.stacked) {
    container.style.display = ""; container.style.gridTemplateColumns = "";
    side.el.style.order = "10";                                                  // the bars after the pictures
    return;
  }
  const col = size.dispW + 2 + "px";
  container.style.display = "grid";
  container.style.gridTemplateColumns = `${col} ${col} ${size.barW}px`;
  [image, ...contexts].forEach((p, i) => { p.el.style.gridColumn = String(1 + (i % 2)); p.el.style.gridRow = String(1 + Math.floor(i / 2)); });
  side.el.style.gridColumn = "3"; side.el.style.gridRow = `1 / span ${Math.ceil((1 + contexts.length) / 2)}`;
}

// the column beside (or below) the pictures: a title over the parts' nodes
export function sideColumn(v, parts, text = "object regions this pixel draws context from (its sim map row)") {
  const panel = el("div", "ocrviz-panel ocrviz-panel-bars");
  const title = el("div", "ocrviz-title");
  panel.append(title, ...parts.flatMap((p) => p.nodes));
  return {
    el: panel,
    watches: ["hover", "pinned"],
    resize() {
      const { size } = v;
      panel.style.width = size.stacked ? Math.max(size.barW, Math.min(2 * size.barW, size.dispW + 2)) + "px" : size.barW + "px";
    },
    draw(f) {
      if (!f.only) title.textContent = text;
      for (const p of parts) if (!f.only || (p.watches || []).some((k) => f.only.has(k))) p.draw(f);
    },
  };
}
