// The context panel: where the selected pixel's context comes from, as a heat map over the image.
// OCR: sum_k sim[p,k] * region_k (or one region while its bar is hovered); ASPP: the gradient ERF
// with the taps for reference.  States its scale and top value (data-vmax, data-scale).
import { ocrContext } from "./context_maps.js";
import { el, fmt, canvas } from "./dom.js";
import { asppTaps, branchColour } from "./taps.js";
import { VIRIDIS, colourise, describeScale, maxOf } from "./scales.js";

export function contextPanel(v) {
  const { data, layers, size, lut } = v, { H, W, h, w, s, hw, K, names, sim, region, regionScale, rates, preErf } = data;
  const panel = el("div", "ocrviz-panel ocrviz-panel-context");
  const title = el("div", "ocrviz-title");
  const cv = el("canvas", "ocrviz-context");
  const legend = el("div", "ocrviz-legend");
  const grad = el("span", "ocrviz-legend-bar");
  grad.style.background = `linear-gradient(to right, ${VIRIDIS.map((c) => `rgb(${c.join(",")})`).join(", ")})`;
  const legendText = el("span", "ocrviz-legend-text");
  legend.append(grad, legendText);
  panel.append(title, cv, legend);

  const heatSmall = canvas(h, w), heatCtx = heatSmall.getContext("2d"), heatImg = heatCtx.createImageData(w, h);
  const heatPx = new Uint32Array(heatImg.data.buffer), vals = new Float32Array(hw), other = new Float32Array(hw);
  const regionHeat = new Map();                          // k:scale -> colourised ImageData (made on first hover)
  const contextOf = (f, out) => ocrContext(region, v.cf.edit(f.p, f.st) || f.row, hw, out);

  function showScale(top, what, scale) {
    legendText.textContent = describeScale(top, what, scale);
    for (const e of [panel, cv]) { e.dataset.vmax = String(top); e.dataset.scale = scale; e.dataset.scaleOf = what; }
  }
  function heat(m, top, scale) {
    const ctx = cv.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(layers.dim(), 0, 0);
    if (m) { colourise(m, heatPx, top, scale, lut); heatCtx.putImageData(heatImg, 0, 0); ctx.drawImage(heatSmall, 0, 0, size.bw, size.bh); }
    return ctx;
  }
  // the larger of this pixel's OCR context maximum and ASPP ERF maximum ("same scale for OCR & ASPP")
  const sharedTop = (f, erf) => Math.max(maxOf(contextOf(f, other)), erf ? maxOf(erf) : 0);
  const SHARED = "largest of this pixel's OCR context and ASPP ERF";

  function drawOcr(f) {
    const { st, p } = f, k = st.hover;
    if (k >= 0 && k < K) {
      const top = 255 * regionScale[k], key = k + ":" + st.scale;
      if (!regionHeat.has(key)) {
        const id = new ImageData(w, h);
        colourise(region.subarray(k * hw, (k + 1) * hw), new Uint32Array(id.data.buffer), top, st.scale, lut);
        regionHeat.set(key, id);
      }
      const ctx = cv.getContext("2d");
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(layers.dim(), 0, 0);
      heatCtx.putImageData(regionHeat.get(key), 0, 0); ctx.drawImage(heatSmall, 0, 0, size.bw, size.bh);
      layers.outline(ctx, st.y, st.x);
      title.textContent = `region “${names[k]}”: its spatial-softmax weights (sum to 1 over the image); this pixel gives it ${fmt(sim[p * K + k], 4)}`;
      showScale(top, `region “${names[k]}”'s largest weight`, st.scale);
      cv.dataset.region = String(k); cv.dataset.map = "region";
      return;
    }
    const m = contextOf(f, vals), own = maxOf(m);
    const top = st.shared ? Math.max(own, sharedTop(f, data.erfFor(st.y, st.x))) : own;
    layers.outline(heat(m, top, st.scale), st.y, st.x);
    title.textContent = "where this pixel's context comes from: Σₖ sim[p,k] · region weightsₖ (sums to 1 over the image)"
      + (v.cf.edit(p, st) ? " — with the edited row" : "");
    showScale(top, st.shared ? SHARED : "this pixel's largest context weight", st.scale);
    cv.dataset.region = "all"; cv.dataset.map = "context";
  }

  function drawErf(f) {
    const { st } = f, erf = data.erfFor(st.y, st.x);
    const own = erf ? maxOf(erf) : 0, top = st.shared ? Math.max(own, maxOf(contextOf(f, other))) : own;
    const ctx = heat(erf, top, st.scale), sx = size.bw / W, sy = size.bh / H, dpr = size.dpr;
    layers.outline(ctx, st.y, st.x);
    for (const br of asppTaps(st.y, st.x, rates, s, h, w, H, W)) {   // taps, for reference
      ctx.fillStyle = branchColour(br.branch);
      for (const t of br.taps) if (t.inside) ctx.fillRect(t.x * sx - 1.5 * dpr, t.y * sy - 1.5 * dpr, 3 * dpr, 3 * dpr);
    }
    const status = v.model.get("erf_status") || "";
    const missing = data.standalone
      ? `no ERF stored for this cell in this page (${preErf.size} cell${preErf.size === 1 ? " has" : "s have"} one)`
      : "no ERF for this cell: Explorer(..., erf_fn=...) with show_erf=True computes it";
    title.textContent = erf ? "ASPP's effective receptive field of this cell (|∂ output / ∂ input|, share per cell; sums to 1)"
      : status || missing;
    if (erf || st.shared) showScale(top || 1, st.shared ? SHARED : "this cell's largest ERF share", st.scale);
    else { legendText.textContent = "no map"; for (const e of [panel, cv]) { e.dataset.vmax = ""; e.dataset.scale = st.scale; } }
    cv.dataset.region = String(st.hover >= 0 ? st.hover : "all");
    cv.dataset.map = erf ? "erf" : "none";
  }

  return {
    el: panel,
    watches: ["hover", "erf"],
    resize() {
      if (cv.width !== size.bw || cv.height !== size.bh) { cv.width = size.bw; cv.height = size.bh; }
      cv.style.width = size.dispW + "px"; cv.style.height = size.dispH + "px";
      panel.style.width = size.dispW + 2 + "px";
    },
    draw(f) {
      if (f.only && f.only.has("erf") && f.st.mode !== "aspp") return;     // an ERF arrived for the other mode
      if (f.only && f.only.has("hover") && f.st.mode !== "ocr") return;
      if (f.st.mode === "aspp") drawErf(f); else drawOcr(f);
    },
  };
}
