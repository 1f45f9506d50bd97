// ocrviz explorer view (anywidget ESM; bundled by esbuild into ../static/explorer.js).
// Each view owns its state store (store.js), so several explorers on one page stay independent.
// Data arrive once as binary buffers (payload.py, decoded by data.js); every per-pixel picture is
// computed here, so a click redraws in one frame.  A panel is {el | nodes, watches?, resize?, draw(frame)}:
// it reads the frame (the state, the cell, its sim row, its counterfactual) and draws itself.
import { decode } from "./codecs.js";
import { counterfactuals } from "./counterfactuals.js";
import { loadData } from "./data.js";
import { el, listeners } from "./dom.js";
import { imagePanel } from "./image_panel.js";
import { contextPanel } from "./context_panel.js";
import { ocrSource } from "./ocr_context.js";
import { asppSource } from "./aspp_context.js";
import { erfSource } from "./erf_context.js";
import { loadHeads, siteSource } from "./site_context.js";
import { regionBars } from "./bars.js";
import { branchBars } from "./branches.js";
import { cfPanel } from "./cf_panel.js";
import { infoLine } from "./info.js";
import { createLayers } from "./layers.js";
import { arrange, sideColumn, sizing } from "./layout.js";
import { heatLut } from "./scales.js";
import { createStore, initialState } from "./store.js";
import { toolbar } from "./toolbar.js";

const PARTIAL = new Set(["hover", "pinned", "erf"]);     // changes that redraw only the panels watching them

async function render({ model, el: host }) {
  const listen = listeners();
  const data = await loadData(model), { h, w } = data;
  const dims = { h, w };
  const store = createStore(model, initialState(model, dims), dims);
  listen.add(() => store.dispose());
  // the context maps shown side by side: OCR's, and with an ASPP model its taps and its ERF
  // and every context site of the heads in `sites` (site_context.js: one panel per head, a site picker)
  const heads = await loadHeads(model.get("sites"));
  const sources = (v) => [...(data.ocr ? [ocrSource(v)] : []), ...(data.rates.length ? [asppSource(v), erfSource(v)] : []),
    ...heads.map((hd, j) => siteSource(v, hd, j)),
    ...(data.rates.length ? [] : heads.filter((hd) => hd.erf).slice(0, 1).map((hd) => erfSource(v, "erf", hd.label)))];
  const size = sizing(data, 2, data.ocr), root = el("div", "ocrviz-explorer");      // two pictures a row (layout.arrange)
  const v = { model, data, store, size, listen, root, cf: counterfactuals(data, model), lut: heatLut(), layers: createLayers(data, size) };
  v.refocus = () => v.image.focus({ preventScroll: true });   // after a button, arrow keys still reach the image

  const bar = toolbar(v), image = imagePanel(v), cfBox = cfPanel(v), side = sideColumn(v, data.ocr ? [regionBars(v), branchBars(v), cfBox] : [],
    data.ocr ? undefined : "");
  const contexts = sources(v).map((src) => contextPanel(v, src)), info = infoLine(v);
  if (!data.ocr) side.el.style.display = "none";             // no region bars: the pictures take the width
  v.contextTops = (f) => contexts.map((c) => c.top(f));      // "same scale for all maps"
  const panels = el("div", "ocrviz-panels");
  panels.append(image.el, contexts[0].el, side.el, ...contexts.slice(1).map((c) => c.el));
  root.append(bar.el, panels, info.el);
  root.setAttribute("data-lm-suppress-shortcuts", "true");   // keys inside the explorer are ours, not JupyterLab's
  host.append(root);
  listen.add(() => root.remove());
  const drawn = [bar, image, side, ...contexts, info];

  function redraw(only) {
    const t0 = performance.now(), st = store.state, p = st.y * w + st.x;
    let res;
    const f = { st, p, only, row: data.rowOf(p), cf: () => (res === undefined ? (res = v.cf.on ? v.cf.at(p, st) : null) : res) };
    for (const panel of drawn) if (!only || (panel.watches || []).some((k) => only.has(k))) panel.draw(f);
    if (only) return;
    root.dataset.view = st.view; root.dataset.overlay = st.overlay;
    root.dataset.drawMs = (performance.now() - t0).toFixed(2);
    root.dataset.y = String(st.y); root.dataset.x = String(st.x);   // last: observers see a finished frame
  }
  function resize() {
    const large = model.get("size") === "large";
    root.classList.toggle("ocrviz-large", large);
    const changed = size.fit(root.clientWidth || host.clientWidth || 0, model.get("width") || 0, large);
    for (const panel of drawn) if (panel.resize) panel.resize();
    arrange(panels, image, contexts, side, size);
    root.dataset.cellPx = (size.dispW * data.s / data.W).toFixed(2);          // CSS px per feature cell
    root.dataset.layout = size.stacked ? "stacked" : "row";
    return changed;
  }
  v.redraw = () => redraw();
  resize();

  store.subscribe((changed) => {
    if (changed.has("dropped") || changed.has("gain")) v.cf.clearWhole();
    redraw([...changed].every((k) => PARTIAL.has(k)) ? changed : undefined);
  });
  // the whole image under the current edit, in its own task after the pixel's frame (page-side head)
  let wholeTimer = 0;
  listen.add(() => clearTimeout(wholeTimer));
  v.wholeLater = () => {
    if (!v.cf.page) return;
    clearTimeout(wholeTimer);
    wholeTimer = setTimeout(() => {
      const t0 = performance.now(); v.cf.wholeImage(store.state); redraw();
      root.dataset.wholeMs = (performance.now() - t0).toFixed(1);     // the whole-image re-run and its redraw
    }, 0);
  };

  // keys anywhere in the explorer (the image, or a toolbar button just clicked) move the pixel
  listen.on(root, "keydown", (ev) => {
    const step = ev.shiftKey ? 5 : 1, st = store.state;
    const d = { ArrowUp: [-step, 0], ArrowDown: [step, 0], ArrowLeft: [0, -step], ArrowRight: [0, step] }[ev.key];
    if (d) {
      ev.preventDefault(); ev.stopPropagation();
      store.set({ pinned: true, y: Math.min(h - 1, Math.max(0, st.y + d[0])), x: Math.min(w - 1, Math.max(0, st.x + d[1])) });
    } else if (ev.key === "Escape") { ev.stopPropagation(); store.set({ pinned: false }); }
  });

  // Python -> view, beyond the synced state (store.js)
  const onModel = (ev, fn) => { model.on(ev, fn); listen.add(() => model.off(ev, fn)); };
  const resized = () => { if (resize()) { v.layers.clear(); redraw(); } };
  onModel("change:width", resized);
  onModel("change:size", resized);
  if (typeof ResizeObserver !== "undefined") {
    let raf = 0;
    const ro = new ResizeObserver(() => { cancelAnimationFrame(raf); raf = requestAnimationFrame(resized); });
    ro.observe(root);
    listen.add(() => { ro.disconnect(); cancelAnimationFrame(raf); });
  }
  if (v.cf.kernel) onModel("change:cf_answer", () => {
    const st = store.state, r = v.cf.onAnswer(st.y * w + st.x, st);
    if (r.type === "error") cfBox.error(r.error);
    else if (r.type === "redraw") redraw();
  });
  const erfChanged = () => redraw(new Set(["erf"]));
  onModel("change:erf_cell", erfChanged);
  onModel("change:erf_status", erfChanged);

  redraw();
  return () => listen.dispose();
}

export default { render, decode };
