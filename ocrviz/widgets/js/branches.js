// ASPP's branch bars: the share of each branch in ASPP's 1x1 projection at the selected cell.
import { el } from "./dom.js";
import { branchColour } from "./taps.js";

export function branchBars(v) {
  const { data } = v, { rates, nBranch, shares, s, w } = data;
  const part = el("div", "ocrviz-branches");
  const head = el("div", "ocrviz-note"); head.textContent = "ASPP branches: the share of each in its 1x1 projection at this cell";
  head.hidden = !rates.length;
  const rows = [];
  for (let b = 0; b < nBranch && rates.length; b++) {
    const r = el("div", "ocrviz-branch-share", { "data-branch": b });
    const sw = el("span", "ocrviz-swatch"); sw.style.background = branchColour(b);
    const nm = el("span", "ocrviz-name");
    nm.textContent = b === 0 ? "1x1 (the cell)" : b === nBranch - 1 ? "image pooling (all)" : `3x3 rate ${rates[b - 1]} = ${rates[b - 1] * s}px`;
    const bar = el("span", "ocrviz-bar"), fill = el("span", "ocrviz-bar-fill"); bar.append(fill);
    fill.style.background = branchColour(b);
    const val = el("span", "ocrviz-value");
    r.append(sw, nm, bar, val);
    rows.push({ r, fill, val });
    part.append(r);
  }
  const note = el("div", "ocrviz-note");
  return {
    nodes: [head, part, note],
    draw(f) {
      part.hidden = note.hidden = !rates.length;
      if (!rates.length) return;
      const p = f.st.y * w + f.st.x;
      if (!shares.length) { note.textContent = "no per-branch shares in the data"; return; }
      rows.forEach((row, b) => {
        const val = shares[p * nBranch + b];
        row.r.dataset.share = val.toFixed(6);
        row.fill.style.width = (100 * val).toFixed(2) + "%";
        row.val.textContent = val.toFixed(4);
      });
    },
  };
}
