// ASPP's context of the selected cell: its taps weighted by the branch shares (a convention: each
// dilated branch 1/9 on each tap, pooling spread over every cell; taps off the grid read zero padding),
// with the taps drawn over the map and their tooltip.
import { asppTapsMap } from "./mass.js";
import { tapsLayer } from "./taps.js";
import { tooltip } from "./tooltip.js";

export function asppSource(v) {
  const { data, listen, size } = v, { rates, nBranch, shares, h, w } = data;
  const taps = tapsLayer(data);
  const row = new Float64Array(nBranch);
  const source = {
    id: "aspp-context",
    legendNote: () => "convention: 1/9 per dilated tap × the branch shares",
    nodes: [taps],
    map(f, out) {
      if (!shares.length) return { why: data.unavailable["aspp-context"] || "This page has no ASPP branch shares to weight the taps with." };
      for (let b = 0; b < nBranch; b++) row[b] = shares[f.p * nBranch + b];
      const off = asppTapsMap(f.st.y, f.st.x, row, rates, h, w, out);
      return { off, map: "taps", topWhat: "this cell's largest tap weight" };
    },
    title: () => "ASPP: its taps × the branch shares (1x1 on the cell, 1/9 per dilated tap, pooling everywhere)",
    draw: (ctx, f) => taps.draw(f.st.y, f.st.x, true),
  };
  // the taps' tooltip, over this panel's picture (it takes the pointer events the taps do not)
  source.attach = (stack) => {
    const tip = tooltip(taps, taps, data);
    stack.append(tip);
    listen.on(stack, "mousemove", (ev) => {
      const r = taps.getBoundingClientRect();
      tip.show({ offsetX: ev.clientX - r.left, offsetY: ev.clientY - r.top }, true, size.dispW);
    });
    listen.on(stack, "mouseleave", () => { tip.hidden = true; });
  };
  return source;
}
