// ASPP's taps of one feature cell: the geometry (mirrors ocrviz.analysis.aspp_taps) and their SVG
// drawing over the image, one colour per branch.
import { svg } from "./dom.js";

export const BRANCH_COLOURS = ["#a8a8a8", "#ff9f1c", "#f038ff", "#2ec4f1", "#9be564", "#ffd166", "#ef476f"];
export const branchColour = (b) => BRANCH_COLOURS[b % BRANCH_COLOURS.length];

// taps of feature cell (y, x) for dilation `rates`, stride s, h x w grid, H x W image
export function asppTaps(y, x, rates, s, h, w, H, W) {
  const tap = (dy, dx, r) => {
    const ti = y + dy * r, tj = x + dx * r;
    return { cell: [ti, tj], y: (ti + 0.5) * s, x: (tj + 0.5) * s, inside: ti >= 0 && ti < h && tj >= 0 && tj < w };
  };
  const out = [{ branch: 0, kind: "1x1", rate: null, taps: [tap(0, 0, 0)] }];
  rates.forEach((r, n) => {
    const taps = [];
    for (const dy of [-1, 0, 1]) for (const dx of [-1, 0, 1]) taps.push(tap(dy, dx, r));
    out.push({ branch: n + 1, kind: "dilated", rate: r, taps });
  });
  out.push({ branch: rates.length + 1, kind: "pool", rate: null, taps: [], extent: [0, 0, H, W] });
  return out;
}

// the SVG layer over the image (viewBox in image pixels): circles per tap, a dashed frame for pooling
export function tapsLayer(data) {
  const { H, W, s, h, w, rates } = data;
  const layer = svg("svg", { class: "ocrviz-taps", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
  layer.draw = (y, x, shown) => {
    layer.replaceChildren();
    if (!shown || !rates.length) return;
    const R = Math.max(s * 0.45, Math.max(H, W) / 110);
    for (const br of asppTaps(y, x, rates, s, h, w, H, W)) {
      const colour = branchColour(br.branch);
      if (br.kind === "pool") {
        const inset = R * 0.4;
        layer.append(svg("rect", { class: "ocrviz-pool", "data-branch": br.branch, x: inset, y: inset, width: W - 2 * inset, height: H - 2 * inset,
          fill: "none", stroke: colour, "stroke-width": 3, "stroke-dasharray": "8 5", "vector-effect": "non-scaling-stroke" }));
        continue;
      }
      const r = R * (1.5 - 0.25 * Math.min(br.branch, 4));
      for (const t of br.taps) {
        const cy = Math.min(H, Math.max(0, t.y)), cx = Math.min(W, Math.max(0, t.x));   // off-grid taps: clipped to the border
        const c = svg("circle", { class: "ocrviz-tap" + (t.inside ? "" : " ocrviz-outside"), "data-branch": br.branch,
          "data-y": t.y, "data-x": t.x, "data-inside": t.inside, cx, cy, r,
          fill: t.inside ? colour : "none", "fill-opacity": 0.55, stroke: colour, "stroke-width": 2,
          "stroke-dasharray": t.inside ? "" : "3 3", "vector-effect": "non-scaling-stroke" });
        c.dataset.tip = `branch ${br.branch} (${br.kind}${br.rate ? ` rate ${br.rate} = ${br.rate * s}px` : ""}): cell (${t.cell[0]}, ${t.cell[1]})${t.inside ? "" : " — outside the image: reads zero padding"}`;
        c.dataset.r = r; layer.append(c);
      }
    }
  };
  return layer;
}
