// The info line: the selected cell, what OCR (and ASPP) predict there, the true class, the top
// region, and the error's blame.  Marks the root with data-pred / data-true / data-blame / data-pinned.
import { classAt } from "./codecs.js";
import { el } from "./dom.js";

// ocrviz.analysis.error_blame's categories (payload "blame": their index per pixel, 255 = no error)
const BLAME = [["region", "the ground truth's soft regions alone repair it"],
  ["relation", "a one-hot relation on its true class alone repairs it"],
  ["both", "either edit alone repairs it"],
  ["neither", "neither edit repairs it: the pixel features or the classifier"]];
const IGNORE = 255;

export function infoLine(v) {
  const { data, root } = v, { H, W, h, w, s, names, maps } = data;
  const info = el("div", "ocrviz-info");
  return {
    el: info,
    watches: ["pinned"],
    draw(f) {
      const st = f.st, at = (m) => classAt(m, st.y, st.x, h, w, s);
      const pr = at(maps.pred), gt = at(maps.gt), ap = at(maps.aspp);
      const name = (k) => (k === null ? "—" : k === IGNORE ? "ignore" : names[k]);
      root.dataset.pred = String(pr); root.dataset.predName = name(pr);
      root.dataset.true = gt === null ? "" : String(gt); root.dataset.trueName = gt === null ? "" : name(gt);
      root.dataset.asppPred = ap === null ? "" : String(ap);
      const y0 = st.y * s, x0 = st.x * s;
      const parts = [`cell (row ${st.y}, col ${st.x}) = pixels y ${y0}–${Math.min(H, y0 + s) - 1}, x ${x0}–${Math.min(W, x0 + s) - 1}`,
        `${data.predBy} predicts ${name(pr)}`];
      if (gt !== null) parts.push(`true: ${name(gt)}`);
      if (ap !== null) parts.push(`ASPP predicts ${name(ap)}`);
      if (f.topRegion !== undefined) v.topRegion = f.topRegion;
      if (data.ocr) parts.push(`top region: ${names[v.topRegion] ?? "?"}`);
      const bl = at(maps.blame);          // at the cell's centre pixel
      root.dataset.blame = bl === null || bl === IGNORE || !BLAME[bl] ? "" : BLAME[bl][0];
      if (st.overlay === "errors" && root.dataset.blame) parts.push(`error blame: ${BLAME[bl][0]} — ${BLAME[bl][1]}`);
      info.textContent = parts.join(" · ");
      v.pin.textContent = st.pinned ? "pinned: click it again or press Esc to follow the mouse" : "following the mouse: click to pin";
      root.dataset.pinned = String(st.pinned);
    },
  };
}
