// A context panel: where the selected pixel's context comes from, as one map over the feature grid,
// drawn over the dimmed image, with the strip that says where its mass lies by class.
// `source` says what the map is (ocr_context.js, aspp_context.js, erf_context.js):
//   {id, title(f), map(f, out) -> {off, topWhat, shares?} | {why} (out: HW), draw?(ctx, f), nodes?}
//   (shares: the map's exact K class shares when the drawn map is only 8-bit; optional: titleNodes (in the
//   title's box, under its text), after (nodes under the legend), legendNote() (said first in the legend: "exact" or the convention), and
//   draw(ctx, f, panel) also gets the panel, for its data-* attributes)
// Two views: "mass" (each cell in its predicted class's colour; a class's opacity is its share of
// the mass relative to the largest share, each class drawn relative to its own peak) and "density"
// (the map's value per cell in viridis).  Carries data-panel, data-vmax, data-scale, data-mass.
import { el, canvas } from "./dom.js";
import { massByClass, massFromShares, massJSON, massParts, pct } from "./mass.js";
import { VIRIDIS, colourise, describeScale, maxOf, rgba, scaled } from "./scales.js";

export function contextPanel(v, source) {
  const { data, layers, size, lut } = v, { h, w, hw, names, palette, cellClass } = data;
  const panel = el("div", `ocrviz-panel ocrviz-panel-context ${source.panelClass || ""}`.trim(), { "data-panel": source.id });
  const title = el("div", "ocrviz-title"), titleText = el("span");
  title.append(titleText, ...(source.titleNodes || []));       // e.g. a site picker under the title's text
  const stack = el("div", "ocrviz-stack");
  const cv = el("canvas", "ocrviz-context");
  const why = el("div", "ocrviz-unavailable"); why.hidden = true;
  stack.append(cv, ...(source.nodes || []), why);
  if (source.attach) source.attach(stack);
  const legend = el("div", "ocrviz-legend");
  const grad = el("span", "ocrviz-legend-bar");
  const legendText = el("span", "ocrviz-legend-text");
  legend.append(grad, legendText);
  const strip = el("div", "ocrviz-mass", { title: "where this map's mass lies: its share on cells the model predicts as each class" });
  panel.append(title, stack, strip, legend, ...(source.after || []));

  const small = canvas(h, w), sctx = small.getContext("2d"), img = sctx.createImageData(w, h);
  const px = new Uint32Array(img.data.buffer), vals = new Float32Array(hw);
  const peak = new Float64Array(names.length);
  const VIRIDIS_CSS = `linear-gradient(to right, ${VIRIDIS.map((c) => `rgb(${c.join(",")})`).join(", ")})`;

  // the mass view: class colour, opacity = (share / largest share) x the cell's value on its class's own scale
  function massView(m, mass, scale) {
    peak.fill(0);
    for (let i = 0; i < hw; i++) if (m[i] > peak[cellClass[i]]) peak[cellClass[i]] = m[i];
    let most = 0;
    names.forEach((n) => { if (mass[n] > most) most = mass[n]; });
    for (let i = 0; i < hw; i++) {
      const c = cellClass[i], a = most > 0 ? (mass[names[c]] / most) * scaled(m[i], peak[c], scale) : 0;
      px[i] = rgba(palette[c] || [255, 255, 255], Math.round(255 * a));
    }
  }
  function setStrip(mass) {
    strip.replaceChildren(...massParts(mass).flatMap((p, i) => {
      const e = el("span", "ocrviz-mass-part", { "data-class": p.name });
      const k = names.indexOf(p.name);
      if (k >= 0) { const sw = el("span", "ocrviz-swatch"); sw.style.background = `rgb(${palette[k].join(",")})`; e.append(sw); }
      e.append(document.createTextNode(`${pct(p.share)} ${p.name}`));
      return i ? [document.createTextNode(" · "), e] : [e];
    }));
  }

  return {
    el: panel,
    watches: source.watches || [],
    resize() {
      if (cv.width !== size.bw || cv.height !== size.bh) { cv.width = size.bw; cv.height = size.bh; }
      cv.style.width = size.dispW + "px"; cv.style.height = size.dispH + "px";
      for (const n of source.nodes || []) { n.style.width = size.dispW + "px"; n.style.height = size.dispH + "px"; }
      panel.style.width = size.dispW + 2 + "px";
    },
    // the largest value of this panel's map at the current pixel ("same scale for every map")
    top: (f) => { const r = source.map(f, vals); return r.why ? 0 : maxOf(vals); },
    draw(f) {
      const st = f.st, r = source.map(f, vals), ctx = cv.getContext("2d");
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(st.view === "density" || r.why ? layers.dim() : layers.faded(), 0, 0);
      titleText.textContent = source.title(f, r);
      cv.dataset.map = r.map || "none";
      cv.dataset.region = r.region ?? "all";
      if (r.why) {
        layers.outline(ctx, st.y, st.x);
        why.hidden = false; why.textContent = r.why;
        strip.textContent = "\u00a0"; legendText.textContent = "no map"; grad.style.background = "none";
        for (const e of [panel, cv]) { e.dataset.vmax = ""; e.dataset.scale = st.scale; }
        panel.dataset.mass = "";
        if (source.draw) source.draw(ctx, f, panel);
        return;
      }
      why.hidden = true;
      const own = maxOf(vals), top = st.shared ? Math.max(own, ...v.contextTops(f)) : own;
      const mass = r.shares ? massFromShares(r.shares, r.off, names) : massByClass(vals, r.off, cellClass, names);
      if (st.view === "density") colourise(vals, px, top, st.scale, lut); else massView(vals, mass, st.scale);
      sctx.putImageData(img, 0, 0); ctx.drawImage(small, 0, 0, size.bw, size.bh);
      layers.outline(ctx, st.y, st.x);
      if (source.draw) source.draw(ctx, f, panel);
      setStrip(mass);
      panel.dataset.mass = massJSON(mass);
      const note = source.legendNote ? source.legendNote() + " · " : "";
      const what = st.shared ? "largest of this pixel's context maps" : r.topWhat;
      if (st.view === "density") {
        grad.style.background = VIRIDIS_CSS; grad.hidden = false;
        legendText.textContent = note + "density: the value per cell · " + describeScale(top, what, st.scale);
      } else {
        grad.hidden = true;
        legendText.textContent = note + `mass by class: colour = the cell's predicted class, strength = that class's share `
          + `(the strip) × the cell's value (${st.scale === "sqrt" ? "√" : st.scale}, to the class's own peak)`;
      }
      for (const e of [panel, cv]) { e.dataset.vmax = String(top); e.dataset.scale = st.scale; e.dataset.scaleOf = what; }
      panel.dataset.view = st.view;
    },
  };
}
