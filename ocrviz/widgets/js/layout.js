// Layout: how large the pictures are for the width available, and where the panels sit.
// Picture size: `width` CSS px when given, else as wide as the output area allows (responsive),
// rounded down to whole CSS px per feature cell so that cells stay crisp.
import { el } from "./dom.js";

export const BAR_W = 260, GAP = 10;        // the bars panel's width and the gap between panels (CSS px)

// {side: CSS px of a picture's width, stacked: bars below the pictures} for `avail` CSS px
export function layoutFor(avail, { W, s }, fixed) {
  const crisp = (side) => { const px = Math.floor(side * s / W); return px >= 1 ? px * W / s : Math.max(60, side); };
  if (fixed > 0) return { side: Math.max(120, fixed), stacked: false };
  if (!(avail > 0)) return { side: 300, stacked: false };
  const row = crisp((avail - BAR_W - 2 * GAP - 8) / 2), two = crisp((avail - GAP - 6) / 2);
  const cell = (side) => side * s / W;
  if (row >= 120 && cell(row) >= Math.min(8, cell(two))) return { side: row, stacked: false };   // bars beside
  if (two >= 160) return { side: two, stacked: true };                                           // bars below
  return { side: crisp(avail - 4), stacked: true };                                              // one column
}

// the size every picture shares (CSS px and canvas px); fit() recomputes it and says if it changed
export function sizing(data) {
  const dpr = Math.min(2, (globalThis.devicePixelRatio || 1));
  const size = { dpr, dispW: 300, dispH: Math.round(300 * data.H / data.W), bw: 0, bh: 0, stacked: false };
  size.fit = (avail, fixed) => {
    const lay = layoutFor(avail, data, fixed), changed = lay.side !== size.dispW || lay.stacked !== size.stacked || !size.bw;
    size.dispW = lay.side; size.dispH = Math.round(lay.side * data.H / data.W); size.stacked = lay.stacked;
    size.bw = Math.round(size.dispW * dpr); size.bh = Math.round(size.dispH * dpr);
    return changed;
  };
  return size;
}

// the column beside (or below) the pictures: a title over the parts' nodes
export function sideColumn(v, parts) {
  const panel = el("div", "ocrviz-panel ocrviz-panel-bars");
  const title = el("div", "ocrviz-title");
  panel.append(title, ...parts.flatMap((p) => p.nodes));
  return {
    el: panel,
    watches: ["hover", "pinned"],
    resize() {
      const { size } = v;
      panel.style.width = size.stacked ? Math.max(BAR_W, Math.min(2 * BAR_W, size.dispW + 2)) + "px" : BAR_W + "px";
      panel.style.order = size.stacked ? "3" : "";                               // bars below the two pictures
    },
    draw(f) {
      if (!f.only) title.textContent = f.st.mode === "aspp" ? "ASPP branches: fixed context of this cell" : "object regions this pixel draws context from (sim map row)";
      for (const p of parts) if (!f.only || (p.watches || []).some((k) => f.only.has(k))) p.draw(f);
    },
  };
}
