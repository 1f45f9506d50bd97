// ocrviz explorer view: vanilla ESM, no imports, no network.
// All state lives inside render()'s closure, so several explorers on one page
// stay independent.  Data arrive once as binary buffers (see payload.py);
// every per-pixel picture is computed here, so a click redraws in one frame.

const VIRIDIS = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
  [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]];
const BRANCH_COLOURS = ["#a8a8a8", "#ff9f1c", "#f038ff", "#2ec4f1", "#9be564", "#ffd166", "#ef476f"];
const OVERLAYS = ["image", "prediction", "ground truth", "errors", "marked"];
const SCALES = { sqrt: "√", log: "log", linear: "linear" };
const LOG_DECADES = 3;              // log scale: the bottom colour is 10^-3 of the top
const IGNORE = 255;
// ocrviz.analysis.error_blame's categories (payload "blame": their index per pixel, 255 = no error)
const BLAME = [["region", "the ground truth's soft regions alone repair it"],
  ["relation", "a one-hot relation on its true class alone repairs it"],
  ["both", "either edit alone repairs it"],
  ["neither", "neither edit repairs it: the pixel features or the classifier"]];
// overlay colours: sent by Python (ocrviz.widgets.colours); these fallbacks match it
const COLOURS = { error: { rgb: [228, 26, 28], name: "red" }, right: { rgb: [60, 170, 70], name: "green" },
  ignore: { rgb: [128, 128, 128], name: "grey" }, mark: { rgb: [255, 215, 0], name: "yellow" } };
const BAR_W = 260, GAP = 10;        // the bars panel's width and the gap between panels (CSS px)
const rgba = ([r, g, b], a) => ((a << 24) | (b << 16) | (g << 8) | r) >>> 0;   // little-endian RGBA
// t in [0, 1] for a value v on a scale whose top colour is `top`
function scaled(v, top, scale) {
  if (!(top > 0) || !(v > 0)) return 0;
  const r = v / top;
  if (r >= 1) return 1;
  if (scale === "linear") return r;
  if (scale === "log") return Math.max(0, 1 + Math.log10(r) / LOG_DECADES);
  return Math.sqrt(r);
}

function u8(dv) {
  if (!dv || !dv.byteLength) return new Uint8Array(0);
  return new Uint8Array(dv.buffer, dv.byteOffset, dv.byteLength);
}
function f32(dv) {  // copy: a DataView's offset need not be 4-aligned
  if (!dv || !dv.byteLength) return new Float32Array(0);
  return new Float32Array(dv.buffer.slice(dv.byteOffset, dv.byteOffset + dv.byteLength));
}
// A compact buffer {buf: DataView, deflate, shuffle, fixed} (ocrviz.widgets.payload.encode_buffer)
// -> a DataView of the raw little-endian bytes (fixed point becomes float32).
async function decode(spec) {
  let bytes = u8(spec.buf);
  if (spec.deflate) {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  }
  const n = spec.shuffle || 1;
  if (n > 1) {                                  // byte planes -> items
    const items = bytes.length / n, out = new Uint8Array(bytes.length);
    for (let b = 0; b < n; b++) for (let i = 0; i < items; i++) out[i * n + b] = bytes[b * items + i];
    bytes = out;
  }
  if (spec.fixed) {                             // little-endian fixed point -> float32
    const nb = spec.fixed / 8, items = bytes.length / nb, denom = 2 ** spec.fixed - 1, f = new Float32Array(items);
    for (let i = 0; i < items; i++) { let q = 0; for (let b = nb - 1; b >= 0; b--) q = q * 256 + bytes[i * nb + b]; f[i] = q / denom; }
    bytes = new Uint8Array(f.buffer);
  }
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
function viridis(t) {
  const x = Math.max(0, Math.min(1, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x)), f = x - i;
  return VIRIDIS[i].map((c, n) => Math.round(c + f * (VIRIDIS[i + 1][n] - c)));
}
function heatLut() {  // 256 RGBA entries packed little-endian for Uint32 ImageData writes
  const lut = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    const [r, g, b] = viridis(i / 255), a = Math.round(70 + 185 * i / 255);
    lut[i] = ((a << 24) | (b << 16) | (g << 8) | r) >>> 0;
  }
  return lut;
}
function el(tag, cls, attrs) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}
const SVGNS = "http://www.w3.org/2000/svg";  // a namespace name, never fetched
function svg(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}
function fmt(v, d) { return Number.isFinite(v) ? v.toFixed(d) : String(v); }

// ASPP taps of feature cell (y, x): mirrors ocrviz.analysis.aspp_taps.
function asppTaps(y, x, rates, s, h, w, H, W) {
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

async function render({ model, el: host }) {
  const cleanups = [];
  const on = (target, ev, fn, opts) => { target.addEventListener(ev, fn, opts); cleanups.push(() => target.removeEventListener(ev, fn, opts)); };
  const onModel = (ev, fn) => { model.on(ev, fn); cleanups.push(() => model.off(ev, fn)); };

  // ---------------------------------------------------------------- data
  const [H, W] = model.get("image_hw"), [h, w] = model.get("feat_hw"), s = model.get("output_stride");
  const hw = h * w, names = model.get("class_names"), K = names.length, palette = model.get("palette");
  const unpacked = {};                                       // the compressed buffers, decoded once
  for (const [k, spec] of Object.entries(model.get("packed") || {})) unpacked[k] = await decode(spec);
  const buf = (k) => unpacked[k] || model.get(k);
  const sim = f32(buf("sim_map"));                           // HW x K
  const regionQ = u8(buf("region_q")), regionScale = model.get("region_scale");
  const region = new Float32Array(K * hw);                   // K x HW, de-quantised once
  for (let k = 0; k < K; k++) { const sc = regionScale[k], o = k * hw; for (let i = 0; i < hw; i++) region[o + i] = regionQ[o + i] * sc; }
  const maps = {
    pred: { data: u8(buf("pred")), hw: model.get("pred_hw") },
    gt: { data: u8(buf("gt")), hw: model.get("gt_hw") },
    aspp: { data: u8(buf("aspp_pred")), hw: model.get("aspp_pred_hw") },
    mark: { data: u8(buf("mark")), hw: model.get("mark_hw") },
    blame: { data: u8(buf("blame")), hw: model.get("blame_hw") || [] },
  };
  const markName = model.get("mark_name") || "marked";
  let markCount = 0;
  for (let i = 0; i < maps.mark.data.length; i++) markCount += maps.mark.data[i];
  const markPct = maps.mark.data.length ? (100 * markCount / maps.mark.data.length).toFixed(1) : "0.0";
  const rates = model.get("aspp_rates") || [];
  const shares = f32(buf("aspp_shares"));
  const nBranch = rates.length + 2;
  const colours = { ...COLOURS, ...(model.get("overlay_colours") || {}) };
  const standalone = !!model.get("standalone");       // an exported page: no kernel, no Python hints
  const preErf = new Map();                                  // "y,x" -> Float32Array(hw)
  {
    const cells = model.get("erf_cells") || [], q = u8(model.get("erf_maps")), sc = model.get("erf_scales") || [];
    cells.forEach(([cy, cx], n) => { const m = new Float32Array(hw); for (let i = 0; i < hw; i++) m[i] = q[n * hw + i] * sc[n]; preErf.set(cy + "," + cx, m); });
  }
  const lut = heatLut();

  // ---------------------------------------------------------------- counterfactuals
  // OCR's head after the sim map is per pixel (ocrviz.analysis.pixel_head): an edited sim row of
  // one cell is re-run here, in float64, without a kernel.  null when the payload has no head.
  const cf = (() => {
    const get = (n) => f32(buf("cf_" + n));
    const value = get("value");
    if (!value.length) return null;
    const pixels = get("pixels"), upW = get("up_w"), upB = get("up_b"), fuseW = get("fuse_w"), fuseB = get("fuse_b");
    const clsW = get("cls_w"), clsB = get("cls_b"), C = upB.length, Ck = value.length / K;
    const ctx = new Float64Array(Ck), obj = new Float64Array(C), aug = new Float64Array(C);
    let pixPart = null;                          // fuse bias + the pixel half of the fuse conv, per cell (lazy)
    const pixelPart = () => {
      if (pixPart) return pixPart;
      pixPart = new Float64Array(hw * C);
      for (let p = 0; p < hw; p++) {
        const pc = p * C;
        for (let i = 0; i < C; i++) {
          let a = fuseB[i]; const o = i * 2 * C + C;
          for (let j = 0; j < C; j++) a += fuseW[o + j] * pixels[pc + j];
          pixPart[pc + i] = a;
        }
      }
      return pixPart;
    };
    const logits = (row, p) => {                 // K logits of cell p for sim row `row`
      for (let j = 0; j < Ck; j++) { let a = 0; for (let k = 0; k < K; k++) a += row[k] * value[k * Ck + j]; ctx[j] = a; }
      for (let i = 0; i < C; i++) { let a = upB[i]; const o = i * Ck; for (let j = 0; j < Ck; j++) a += upW[o + j] * ctx[j]; obj[i] = a > 0 ? a : 0; }
      const pp = pixelPart(), pc = p * C;
      for (let i = 0; i < C; i++) {
        let a = pp[pc + i]; const o = i * 2 * C;
        for (let j = 0; j < C; j++) a += fuseW[o + j] * obj[j];
        aug[i] = a > 0 ? a : 0;
      }
      const out = new Array(K);
      for (let k = 0; k < K; k++) { let a = clsB[k]; const o = k * C; for (let i = 0; i < C; i++) a += clsW[o + i] * aug[i]; out[k] = a; }
      return out;
    };
    // the class of every cell when its row is rowFn(p): the edit applied to the whole image
    logits.predictAll = (rowFn) => {
      const out = new Uint8Array(hw);
      for (let p = 0; p < hw; p++) { const l = logits(rowFn(p), p); let b = 0; for (let k = 1; k < K; k++) if (l[k] > l[b]) b = k; out[p] = b; }
      return out;
    };
    return logits;
  })();
  const argmax = (v) => v.reduce((b, x, i) => (x > v[b] ? i : b), 0);
  const rowOf = (p) => Array.from(sim.subarray(p * K, (p + 1) * K));
  // the sim row of cell p with the regions in `dropped` removed, region gain.k scaled by gain.f, and the
  // rest renormalised (null: no edit)
  const editedRow = (p, dropped, gain) => {
    const scaled = gain && gain.f !== 1;
    if (!dropped.size && !scaled) return null;
    const r = rowOf(p).map((v, k) => (dropped.has(k) ? 0 : scaled && k === gain.k ? v * gain.f : v));
    const t = r.reduce((a, b) => a + b, 0);
    return t > 0 ? r.map((v) => v / t) : null;
  };
  const currentEdit = (p) => editedRow(p, state.dropped, state.gain);
  let basePred = null, editPred = null;          // every cell's class without / with the current edit
  let wholeChanged = null;                       // how many cells the current edit changes (null: not known yet)

  // Models too large for the page (ocrviz.widgets.kernel_cf): the page asks the kernel, which answers
  // the pixel (cf_answer) and then the whole image (cf_answer_pred); the same arithmetic as `cf`.
  const kernelCf = !cf && !!model.get("cf_kernel") && !standalone;
  const cfOn = !!cf || kernelCf;
  const editSig = () => JSON.stringify([[...state.dropped].sort((a, b) => a - b),
    state.gain && state.gain.f !== 1 ? [state.gain.k, state.gain.f] : null]);
  // Views of one widget share its request and answer traits: a view takes an answer already there for
  // its key, does not re-send a request already there (no trait would change, no answer would come),
  // and asks again when another view's request overtook its own.
  let kAnswer = null, kAsked = "", kRequest = null;
  const adopt = (ans) => {          // take the kernel's answer to our request (and its whole image, once there)
    kAnswer = { ...ans, p: ans.cell[0] * w + ans.cell[1] };
    if (ans.whole && ans.edit === editSig()) {
      editPred = Uint8Array.from(u8(model.get("cf_answer_pred")));
      wholeChanged = ans.whole.changed;
    }
  };
  // {base, influence, after, edited, pending} of cell p under the current edit
  const cfAt = (p) => {
    const edit = editSig(), edited = edit !== "[[],null]";
    if (cf) {
      const row = rowOf(p), base = cf(row, p), c = argmax(base), e = currentEdit(p);
      const influence = row.map((_, k) => { const r = editedRow(p, new Set([k])); return r ? base[c] - cf(r, p)[c] : 0; });
      return { base, influence, after: e ? cf(e, p) : null, edited: !!e, pending: false };
    }
    const key = edit + "@" + p;
    if (kAnswer && kAnswer.key === key) return { ...kAnswer, edited: kAnswer.after !== null, pending: false };
    if (kAsked !== key) {
      kAsked = key;
      kRequest = { key, edit, cell: [Math.floor(p / w), p % w], dropped: JSON.parse(edit)[0], gain: JSON.parse(edit)[1] };
      const last = model.get("cf_answer") || {};
      if (last.key === key && !last.error) {          // already answered (for another view of this widget)
        adopt(last);
        return { ...kAnswer, edited: kAnswer.after !== null, pending: false };
      }
      if ((model.get("cf_request") || {}).key !== key) { model.set("cf_request", kRequest); model.save_changes(); }
    }
    const same = kAnswer && kAnswer.p === p;       // this cell's own numbers stay while the edit is re-run
    return { base: same ? kAnswer.base : null, influence: same ? kAnswer.influence : null, after: null, edited, pending: true };
  };

  // ---------------------------------------------------------------- DOM
  const root = el("div", "ocrviz-explorer");
  const toolbar = el("div", "ocrviz-toolbar");
  const modes = el("span", "ocrviz-modes");
  const modeBtn = {};
  for (const [m, label] of [["ocr", "OCR: object regions"], ["aspp", "ASPP: dilated taps"]]) {
    const b = el("button", "ocrviz-mode-btn", { "data-mode": m, type: "button" });
    b.textContent = label; modeBtn[m] = b; modes.append(b);
    if (m === "aspp" && !rates.length) {
      b.disabled = true;
      b.title = standalone ? "this page was exported without ASPP data" : "no ASPP data: pass aspp_model= (or aspp_rates) to the Explorer";
    }
  }
  const overlays = el("span", "ocrviz-overlays");
  const overlayBtn = {};
  for (const o of OVERLAYS) {
    const b = el("button", "ocrviz-overlay-btn", { "data-overlay": o, type: "button" });
    b.textContent = o === "marked" ? markName : o; overlayBtn[o] = b; overlays.append(b);
    if ((o === "ground truth" || o === "errors") && !maps.gt.data.length) { b.disabled = true; b.title = "no labels given"; }
    if (o === "marked" && !maps.mark.data.length) b.hidden = true;        // only with a mark= map
  }
  const scales = el("span", "ocrviz-scales", { title: "colour scale of the maps on the right" });
  const scaleBtn = {};
  for (const [sc, label] of Object.entries(SCALES)) {
    const b = el("button", "ocrviz-scale-btn", { "data-scale": sc, type: "button" });
    b.textContent = label; scaleBtn[sc] = b; scales.append(b);
  }
  const sharedBtn = el("button", "ocrviz-shared-btn", { type: "button",
    title: "one colour scale for OCR's context and ASPP's ERF at this pixel (the larger maximum of the two at the top)" });
  sharedBtn.textContent = "same scale for OCR & ASPP";
  scales.append(sharedBtn);
  const pin = el("span", "ocrviz-pin");
  toolbar.append(modes, overlays, scales, pin);

  const panels = el("div", "ocrviz-panels");
  // Picture size: `width` CSS px when given, else as wide as the output area allows (responsive),
  // rounded down to whole CSS px per feature cell so that cells stay crisp.
  const dpr = Math.min(2, (globalThis.devicePixelRatio || 1));
  let dispW = 300, dispH = Math.round(300 * H / W), bw = Math.round(dispW * dpr), bh = Math.round(dispH * dpr), stacked = false;
  const crisp = (side) => { const px = Math.floor(side * s / W); return px >= 1 ? px * W / s : Math.max(60, side); };
  function layoutFor(avail) {
    const fixed = model.get("width") || 0;
    if (fixed > 0) return { side: Math.max(120, fixed), stacked: false };
    if (!(avail > 0)) return { side: 300, stacked: false };
    const row = crisp((avail - BAR_W - 2 * GAP - 8) / 2), two = crisp((avail - GAP - 6) / 2);
    const cell = (side) => side * s / W;
    if (row >= 120 && cell(row) >= Math.min(8, cell(two))) return { side: row, stacked: false };   // bars beside
    if (two >= 160) return { side: two, stacked: true };                                           // bars below
    return { side: crisp(avail - 4), stacked: true };                                              // one column
  }
  const mkCanvas = (cls) => el("canvas", cls);

  const pA = el("div", "ocrviz-panel ocrviz-panel-image");
  const titleA = el("div", "ocrviz-title");
  const stack = el("div", "ocrviz-stack");
  const cImg = mkCanvas("ocrviz-image");
  cImg.tabIndex = 0;
  cImg.setAttribute("data-lm-suppress-shortcuts", "true");   // arrow keys move the pixel, not notebook cells
  cImg.setAttribute("aria-label", "image: click or hover to pick a pixel; arrow keys move it");
  const tapsSvg = svg("svg", { class: "ocrviz-taps", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
  const tip = el("div", "ocrviz-tooltip");                    // ASPP tap tooltips (SVG titles never show: no pointer events)
  tip.hidden = true;
  stack.append(cImg, tapsSvg, tip);
  const overlayLegend = el("div", "ocrviz-overlay-legend");
  pA.append(titleA, stack, overlayLegend);

  const pB = el("div", "ocrviz-panel ocrviz-panel-bars");
  const titleB = el("div", "ocrviz-title");
  const regionList = el("div", "ocrviz-regions");
  const rows = [];
  for (let k = 0; k < K; k++) {
    const r = el("div", "ocrviz-region", { "data-k": k, "data-name": names[k] });
    const sw = el("span", "ocrviz-swatch"); sw.style.background = `rgb(${palette[k].join(",")})`;
    const nm = el("span", "ocrviz-name"); nm.textContent = names[k];
    const bar = el("span", "ocrviz-bar"), fill = el("span", "ocrviz-bar-fill"); bar.append(fill);
    fill.style.background = `rgb(${palette[k].join(",")})`;
    const val = el("span", "ocrviz-value"), inf = el("span", "ocrviz-value ocrviz-influence");
    r.append(sw, nm, bar, val, inf);
    if (cfOn) r.title = "click: drop this region from the pixel's sim row (again: put it back); shift-click: keep only it";
    rows.push({ r, fill, val, inf });
    regionList.append(r);
  }
  const branchList = el("div", "ocrviz-branches");
  const brows = [];
  for (let b = 0; b < nBranch && rates.length; b++) {
    const r = el("div", "ocrviz-branch-share", { "data-branch": b });
    const sw = el("span", "ocrviz-swatch"); sw.style.background = BRANCH_COLOURS[b % BRANCH_COLOURS.length];
    const nm = el("span", "ocrviz-name");
    nm.textContent = b === 0 ? "1x1 (the cell)" : b === nBranch - 1 ? "image pooling (all)" : `3x3 rate ${rates[b - 1]} = ${rates[b - 1] * s}px`;
    const bar = el("span", "ocrviz-bar"), fill = el("span", "ocrviz-bar-fill"); bar.append(fill);
    fill.style.background = BRANCH_COLOURS[b % BRANCH_COLOURS.length];
    const val = el("span", "ocrviz-value");
    r.append(sw, nm, bar, val);
    brows.push({ r, fill, val });
    branchList.append(r);
  }
  const noteB = el("div", "ocrviz-note");
  const barTools = el("div", "ocrviz-bar-tools");
  const sortBtn = {};
  for (const [k, label] of [["attention", "sort by sim"], ["influence", "by Δlogit"]]) {
    const b = el("button", "ocrviz-sort-btn", { "data-sort": k, type: "button" }); b.textContent = label; sortBtn[k] = b; barTools.append(b);
  }
  const resetBtn = el("button", "ocrviz-reset-btn", { type: "button" }); resetBtn.textContent = "undo";
  barTools.append(resetBtn);
  const gainRow = el("div", "ocrviz-gain");
  const gainPick = el("select", "ocrviz-gain-region", { "aria-label": "region to scale" });
  names.forEach((n, k) => { const o = el("option", "", { value: k }); o.textContent = n; gainPick.append(o); });
  const gainSlider = el("input", "ocrviz-gain-slider", { type: "range", min: "0", max: "4", step: "0.05", value: "1",
    "aria-label": "scale this region's weight in the pixel's sim row" });
  const gainText = el("span", "ocrviz-gain-text"); gainText.textContent = "×1.00";
  const gainLabel = el("span"); gainLabel.textContent = "scale ";
  gainRow.append(gainLabel, gainPick, gainSlider, gainText);
  const barHead = el("div", "ocrviz-bar-head");
  barHead.append(el("span"), el("span"), el("span"), el("span"), el("span"));
  barHead.children[3].textContent = "sim"; barHead.children[4].textContent = cfOn ? "Δlogit" : "";
  barHead.children[4].title = "influence: how much the predicted class's logit drops when this region is removed from the row (renormalised)";
  const cfBox = el("div", "ocrviz-cf");
  if (!cfOn) { barTools.hidden = true; }
  pB.append(titleB, barTools, gainRow, barHead, regionList, branchList, noteB, cfBox);

  const pC = el("div", "ocrviz-panel ocrviz-panel-context");
  const titleC = el("div", "ocrviz-title");
  const cCtx = mkCanvas("ocrviz-context");
  const legend = el("div", "ocrviz-legend");
  const grad = el("span", "ocrviz-legend-bar");
  grad.style.background = `linear-gradient(to right, ${VIRIDIS.map((c) => `rgb(${c.join(",")})`).join(", ")})`;
  const legendText = el("span", "ocrviz-legend-text");
  legend.append(grad, legendText);
  pC.append(titleC, cCtx, legend);

  panels.append(pA, pB, pC);
  const info = el("div", "ocrviz-info");
  root.append(toolbar, panels, info);
  root.setAttribute("data-lm-suppress-shortcuts", "true");   // keys inside the explorer are ours, not JupyterLab's
  host.append(root);
  cleanups.push(() => root.remove());

  function applySize() {
    const lay = layoutFor(root.clientWidth || host.clientWidth || 0);
    const nw = lay.side, nh = Math.round(nw * H / W);
    const changed = nw !== dispW || lay.stacked !== stacked || !cImg.width;
    dispW = nw; dispH = nh; stacked = lay.stacked;
    bw = Math.round(dispW * dpr); bh = Math.round(dispH * dpr);
    for (const c of [cImg, cCtx]) {
      if (c.width !== bw || c.height !== bh) { c.width = bw; c.height = bh; }
      c.style.width = dispW + "px"; c.style.height = dispH + "px";
    }
    tapsSvg.style.width = dispW + "px"; tapsSvg.style.height = dispH + "px";   // over the canvas' content box
    pA.style.width = pC.style.width = dispW + 2 + "px";                       // titles wrap inside the picture's width
    pB.style.width = stacked ? Math.max(BAR_W, Math.min(2 * BAR_W, dispW + 2)) + "px" : BAR_W + "px";
    pB.style.order = stacked ? "3" : "";                                      // bars below the two pictures
    root.dataset.cellPx = (dispW * s / W).toFixed(2);                         // CSS px per feature cell
    root.dataset.layout = stacked ? "stacked" : "row";
    return changed;
  }
  applySize();

  // ---------------------------------------------------------------- image + cached layers
  let bitmap = null;
  try {
    const blob = new Blob([u8(model.get("image"))], { type: model.get("image_mime") || "image/png" });
    bitmap = await createImageBitmap(blob);
  } catch (e) { console.warn("ocrviz: image decode failed", e); }

  const small = (ph, pw) => { const c = document.createElement("canvas"); c.width = pw; c.height = ph; return c; };
  // class index of feature cell (y, x) in a class map: same rule as ExplorerData._at
  const classAt = (m, y, x) => {
    if (!m.data.length) return null;
    if (m.hw[0] === h && m.hw[1] === w) return m.data[y * w + x];
    const py = Math.min(m.hw[0] - 1, y * s + (s >> 1)), px = Math.min(m.hw[1] - 1, x * s + (s >> 1));
    return m.data[py * m.hw[1] + px];
  };
  // nearest resampling of a class map to another grid (feature <-> image)
  const resample = (m, th, tw) => {
    const [mh, mw] = m.hw;
    if (mh === th && mw === tw) return m.data;
    const out = new Uint8Array(th * tw);
    for (let y = 0; y < th; y++) {
      const sy = mh < th ? Math.min(mh - 1, Math.floor(y / s)) : Math.min(mh - 1, y * s + (s >> 1));
      for (let x = 0; x < tw; x++) {
        const sx = mw < tw ? Math.min(mw - 1, Math.floor(x / s)) : Math.min(mw - 1, x * s + (s >> 1));
        out[y * tw + x] = m.data[sy * mw + sx];
      }
    }
    return out;
  };
  const classCanvas = (m, alpha) => {
    const [mh, mw] = m.hw, c = small(mh, mw), ctx = c.getContext("2d"), id = ctx.createImageData(mw, mh);
    const px = new Uint32Array(id.data.buffer), lutc = new Uint32Array(256);
    for (let k = 0; k < K; k++) { const [r, g, b] = palette[k]; lutc[k] = ((alpha << 24) | (b << 16) | (g << 8) | r) >>> 0; }
    for (let i = 0; i < m.data.length; i++) px[i] = lutc[m.data[i]];   // ignore (255) stays transparent
    ctx.putImageData(id, 0, 0); return c;
  };
  const errorCanvas = (pm) => {
    const [gh, gw] = maps.gt.hw, p = resample(pm, gh, gw), g = maps.gt.data;
    const c = small(gh, gw), ctx = c.getContext("2d"), id = ctx.createImageData(gw, gh), px = new Uint32Array(id.data.buffer);
    const wrong = rgba(colours.error.rgb, 235), ign = rgba(colours.ignore.rgb, 120), right = rgba(colours.right.rgb, 90);
    for (let i = 0; i < g.length; i++) px[i] = g[i] === IGNORE ? ign : (p[i] === g[i] ? right : wrong);
    ctx.putImageData(id, 0, 0); return c;
  };
  const markCanvas = () => {      // marked pixels in the mark colour, the rest dimmed
    const [mh, mw] = maps.mark.hw, c = small(mh, mw), ctx = c.getContext("2d"), id = ctx.createImageData(mw, mh);
    const px = new Uint32Array(id.data.buffer), on = rgba(colours.mark.rgb, 170), off = (110 << 24) >>> 0;
    for (let i = 0; i < maps.mark.data.length; i++) px[i] = maps.mark.data[i] ? on : off;
    ctx.putImageData(id, 0, 0); return c;
  };
  const layers = new Map();
  const layer = (key, paint) => {
    if (!layers.has(key)) {
      const c = small(bh, bw), ctx = c.getContext("2d");
      ctx.fillStyle = "#222"; ctx.fillRect(0, 0, bw, bh);
      if (bitmap) { ctx.imageSmoothingQuality = "high"; ctx.drawImage(bitmap, 0, 0, bw, bh); }
      ctx.imageSmoothingEnabled = false;
      paint(ctx);
      layers.set(key, c);
    }
    return layers.get(key);
  };
  const predMap = () => (state.mode === "aspp" && maps.aspp.data.length ? maps.aspp : maps.pred);
  const overlayLayer = () => {
    const o = state.overlay, which = predMap() === maps.aspp ? "aspp" : "ocr";
    if (o === "prediction" && which === "ocr" && editPred) {      // the edit applied to every cell (not cached)
      const c = small(bh, bw), ctx = c.getContext("2d");
      ctx.drawImage(layer("image", () => {}), 0, 0); ctx.imageSmoothingEnabled = false;
      ctx.drawImage(classCanvas({ data: editPred, hw: [h, w] }, 150), 0, 0, bw, bh);
      return c;
    }
    if (o === "prediction") return layer("pred:" + which, (ctx) => ctx.drawImage(classCanvas(predMap(), 150), 0, 0, bw, bh));
    if (o === "ground truth" && maps.gt.data.length) return layer("gt", (ctx) => ctx.drawImage(classCanvas(maps.gt, 150), 0, 0, bw, bh));
    if (o === "errors" && maps.gt.data.length) return layer("err:" + which, (ctx) => {
      ctx.fillStyle = "rgba(255,255,255,0.35)"; ctx.fillRect(0, 0, bw, bh); ctx.drawImage(errorCanvas(predMap()), 0, 0, bw, bh);
    });
    if (o === "marked" && maps.mark.data.length) return layer("mark", (ctx) => ctx.drawImage(markCanvas(), 0, 0, bw, bh));
    return layer("image", () => {});
  };
  const dimLayer = () => layer("dim", (ctx) => { ctx.fillStyle = "rgba(0,0,0,0.62)"; ctx.fillRect(0, 0, bw, bh); });

  // heat maps over the h x w grid, drawn scaled with smoothing off
  const heatSmall = small(h, w), heatCtx = heatSmall.getContext("2d"), heatImg = heatCtx.createImageData(w, h);
  const heatPx = new Uint32Array(heatImg.data.buffer), ctxValsBuf = new Float32Array(hw), ctxOther = new Float32Array(hw);
  const regionHeat = new Map();                          // k -> colourised ImageData (precomputed on first hover)
  const colourise = (vals, out, top) => {
    for (let i = 0; i < hw; i++) out[i] = lut[(scaled(vals[i], top, state.scale) * 255) | 0];
  };
  const maxOf = (vals) => { let m = 0; for (let i = 0; i < vals.length; i++) if (vals[i] > m) m = vals[i]; return m; };
  const contextOf = (p, out) => {     // sum_k sim[p, k] * region_k, the pixel's context map (edited row if any)
    const ctxVals = out || ctxValsBuf, row = currentEdit(p) || rowOf(p);
    ctxVals.fill(0);
    for (let k = 0; k < K; k++) {
      const a = row[k]; if (a === 0) continue;
      const o = k * hw; for (let i = 0; i < hw; i++) ctxVals[i] += a * region[o + i];
    }
    return ctxVals;
  };

  // ---------------------------------------------------------------- state
  const sel0 = model.get("selected") || [0, 0];
  const state = {
    y: Math.min(h - 1, Math.max(0, sel0[0] | 0)), x: Math.min(w - 1, Math.max(0, sel0[1] | 0)),
    mode: model.get("mode") === "aspp" && rates.length ? "aspp" : "ocr",
    overlay: OVERLAYS.includes(model.get("overlay")) ? model.get("overlay") : "image",
    hover: model.get("hover_region") ?? -1, pinned: !!model.get("pinned"),
    scale: SCALES[model.get("scale")] ? model.get("scale") : "sqrt", shared: !!model.get("shared_scale"),
    sort: "attention", dropped: new Set(), gain: null,
  };
  let syncTimer = null;
  cleanups.push(() => clearTimeout(syncTimer));

  // ---------------------------------------------------------------- drawing
  const cellRect = (ctx, y, x, colour, lw) => {
    const sx = bw / W, sy = bh / H;
    ctx.lineWidth = lw; ctx.strokeStyle = colour;
    ctx.strokeRect(x * s * sx, y * s * sy, Math.max(2, s * sx), Math.max(2, s * sy));
  };
  const outline = (ctx) => { cellRect(ctx, state.y, state.x, "#000", 3 * dpr); cellRect(ctx, state.y, state.x, "#fff", 1.2 * dpr); };

  function drawImagePanel() {
    const ctx = cImg.getContext("2d");
    ctx.drawImage(overlayLayer(), 0, 0);
    outline(ctx);
    const shown = state.overlay === "marked" ? `${markName}: ${markPct}% of the image`
      : state.overlay === "prediction" && state.mode === "ocr" && editPred ? "prediction with the edit, per cell" : state.overlay;
    drawOverlayLegend();
    titleA.textContent = state.mode === "aspp"
      ? `image (${shown}) · ASPP taps of the selected cell (${s}px cells)`
      : `image (${shown}) · selected cell = ${s}x${s} px`;
  }

  // The colour scale of the right-hand map: its top colour is the shown map's own maximum, or with
  // "same scale" the larger of this pixel's OCR context maximum and ASPP ERF maximum.
  function showScale(top, what) {
    const sc = state.scale, name = { sqrt: "√ scale", log: "log scale", linear: "linear scale" }[sc];
    const bottom = sc === "log" ? `≤ ${(top * 10 ** -LOG_DECADES).toPrecision(2)} (1/${10 ** LOG_DECADES} of the top)` : "0";
    legendText.textContent = `top colour = ${top.toPrecision(3)} (${what}); bottom = ${bottom}; ${name}`;
    for (const e of [pC, cCtx]) { e.dataset.vmax = String(top); e.dataset.scale = sc; e.dataset.scaleOf = what; }
  }
  function sharedTop(p) {     // max of this pixel's OCR context map and of its ASPP ERF (when there is one)
    const erf = erfFor(state.y, state.x);
    return Math.max(maxOf(contextOf(p, ctxOther)), erf ? maxOf(erf) : 0);
  }

  const swatch = (rgb, text) => {
    const e = el("span", "ocrviz-key"), sw = el("span", "ocrviz-swatch");
    sw.style.background = `rgb(${rgb.join(",")})`; e.append(sw, document.createTextNode(text)); return e;
  };
  function drawOverlayLegend() {     // names the colours of the overlay shown (same height for every overlay)
    const o = state.overlay, keys = [];
    if (o === "errors") keys.push(swatch(colours.error.rgb, `${colours.error.name}: wrong`),
      swatch(colours.right.rgb, `${colours.right.name}: right`), swatch(colours.ignore.rgb, `${colours.ignore.name}: not scored`));
    else if (o === "marked") keys.push(swatch(colours.mark.rgb, `${colours.mark.name}: ${markName} pixels (${markPct}%)`));
    else if (o === "prediction" || o === "ground truth") keys.push(document.createTextNode("class colours as in the region bars"));
    else keys.push(document.createTextNode("\u00a0"));
    overlayLegend.replaceChildren(...keys);
    overlayLegend.dataset.overlay = o;
  }

  function drawHeat(vals, top) {
    const ctx = cCtx.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(dimLayer(), 0, 0);
    if (vals) { colourise(vals, heatPx, top); heatCtx.putImageData(heatImg, 0, 0); ctx.drawImage(heatSmall, 0, 0, bw, bh); }
    outline(ctx);
  }

  function drawContext() {
    const p = state.y * w + state.x, k = state.hover;
    if (k >= 0 && k < K) {
      const top = 255 * regionScale[k], key = k + ":" + state.scale;
      if (!regionHeat.has(key)) {
        const id = new ImageData(w, h);
        colourise(region.subarray(k * hw, (k + 1) * hw), new Uint32Array(id.data.buffer), top);
        regionHeat.set(key, id);
      }
      const ctx = cCtx.getContext("2d");
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(dimLayer(), 0, 0);
      heatCtx.putImageData(regionHeat.get(key), 0, 0); ctx.drawImage(heatSmall, 0, 0, bw, bh);
      outline(ctx);
      titleC.textContent = `region “${names[k]}”: its spatial-softmax weights (sum to 1 over the image); this pixel gives it ${fmt(sim[p * K + k], 4)}`;
      showScale(top, `region “${names[k]}”'s largest weight`);
      cCtx.dataset.region = String(k); cCtx.dataset.map = "region";
    } else {
      const vals = contextOf(p), own = maxOf(vals);
      const top = state.shared ? Math.max(own, sharedTop(p)) : own;
      drawHeat(vals, top);
      titleC.textContent = "where this pixel's context comes from: Σₖ sim[p,k] · region weightsₖ (sums to 1 over the image)"
        + (currentEdit(p) ? " — with the edited row" : "");
      showScale(top, state.shared ? "largest of this pixel's OCR context and ASPP ERF" : "this pixel's largest context weight");
      cCtx.dataset.region = "all"; cCtx.dataset.map = "context";
    }
  }

  function erfFor(y, x) {
    const cell = model.get("erf_cell") || [-1, -1];
    if (cell[0] === y && cell[1] === x) {
      const q = u8(model.get("erf_map")), sc = model.get("erf_scale");
      if (q.length === hw) { const m = new Float32Array(hw); for (let i = 0; i < hw; i++) m[i] = q[i] * sc; return m; }
    }
    return preErf.get(y + "," + x) || null;
  }

  function drawAsppContext() {
    const erf = erfFor(state.y, state.x), p = state.y * w + state.x;
    const own = erf ? maxOf(erf) : 0, top = state.shared ? Math.max(own, maxOf(contextOf(p, ctxOther))) : own;
    drawHeat(erf, top);
    const ctx = cCtx.getContext("2d"), sx = bw / W, sy = bh / H;
    for (const br of asppTaps(state.y, state.x, rates, s, h, w, H, W)) {   // taps, for reference
      ctx.fillStyle = BRANCH_COLOURS[br.branch % BRANCH_COLOURS.length];
      for (const t of br.taps) if (t.inside) ctx.fillRect(t.x * sx - 1.5 * dpr, t.y * sy - 1.5 * dpr, 3 * dpr, 3 * dpr);
    }
    const status = model.get("erf_status") || "";
    const missing = standalone
      ? `no ERF stored for this cell in this page (${preErf.size} cell${preErf.size === 1 ? " has" : "s have"} one)`
      : "no ERF for this cell: Explorer(..., erf_fn=...) with show_erf=True computes it";
    titleC.textContent = erf ? "ASPP's effective receptive field of this cell (|∂ output / ∂ input|, share per cell; sums to 1)"
      : status || missing;
    if (erf || state.shared) showScale(top || 1, state.shared ? "largest of this pixel's OCR context and ASPP ERF" : "this cell's largest ERF share");
    else { legendText.textContent = "no map"; for (const e of [pC, cCtx]) { e.dataset.vmax = ""; e.dataset.scale = state.scale; } }
    cCtx.dataset.region = String(state.hover >= 0 ? state.hover : "all");
    cCtx.dataset.map = erf ? "erf" : "none";
  }

  function drawTaps() {
    tapsSvg.replaceChildren();
    if (state.mode !== "aspp" || !rates.length) return;
    const R = Math.max(s * 0.45, Math.max(H, W) / 110);
    for (const br of asppTaps(state.y, state.x, rates, s, h, w, H, W)) {
      const colour = BRANCH_COLOURS[br.branch % BRANCH_COLOURS.length];
      if (br.kind === "pool") {
        const inset = R * 0.4;
        tapsSvg.append(svg("rect", { class: "ocrviz-pool", "data-branch": br.branch, x: inset, y: inset, width: W - 2 * inset, height: H - 2 * inset,
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
        c.dataset.r = r; tapsSvg.append(c);
      }
    }
  }

  function updateRegions() {
    const p = state.y * w + state.x, row = rowOf(p);
    // influence of region k: the predicted class's logit drop when k is removed (cfAt)
    const res = cfOn ? cfAt(p) : null, influence = res && res.influence;
    const key = state.sort === "influence" && influence ? influence : row;
    const order = Array.from({ length: K }, (_, k) => k);
    order.sort((a, b) => (key[b] - key[a]) || (a - b));          // largest first, ties by k
    const top = Math.max(...row) || 1;
    order.forEach((k, rank) => {
      const v = row[k], r = rows[k];
      r.r.dataset.weight = v.toFixed(6); r.r.dataset.rank = String(rank + 1);
      r.fill.style.width = (100 * v / top).toFixed(2) + "%";
      r.val.textContent = v.toFixed(4);
      if (!influence) { delete r.r.dataset.influence; r.inf.textContent = cfOn ? "…" : ""; }
      else { r.r.dataset.influence = influence[k].toFixed(6); r.inf.textContent = (influence[k] >= 0 ? "+" : "") + influence[k].toFixed(3); }
      r.r.classList.toggle("ocrviz-hovered", k === state.hover);
      r.r.classList.toggle("ocrviz-dropped", state.dropped.has(k));
      regionList.append(r.r);                                              // re-order in place
    });
    for (const [k, b] of Object.entries(sortBtn)) b.classList.toggle("ocrviz-active", k === state.sort);
    updateCounterfactual(res);
  }

  function updateCounterfactual(res) {
    if (!res) { cfBox.textContent = ""; return; }
    const { base, after, edited, pending } = res;
    resetBtn.disabled = !edited;
    root.dataset.cfSource = cf ? "page" : "kernel";
    if (pending) root.dataset.cfPending = "1"; else delete root.dataset.cfPending;
    if (!edited || !after) {
      cfBox.textContent = pending ? "re-running OCR's head in the kernel…"
        : "click a region to drop it from this pixel's sim row, shift-click to keep only it";
      delete root.dataset.cfPred; delete root.dataset.cfLogits; delete root.dataset.cfChanged;
      if (base) root.dataset.baseLogits = JSON.stringify(base.map((v) => +v.toFixed(6)));
      else delete root.dataset.baseLogits;
      return;
    }
    const b = argmax(base), a = argmax(after);
    const what = [];
    if (state.dropped.size) what.push("without " + [...state.dropped].sort((x, y) => x - y).map((k) => names[k]).join(", "));
    if (state.gain && state.gain.f !== 1) what.push(`${names[state.gain.k]} ×${state.gain.f.toFixed(2)}`);
    cfBox.replaceChildren();
    const head = el("div", "ocrviz-cf-head");
    head.textContent = `${what.join("; ")}: predicts ${names[a]}` + (a === b ? " (unchanged)" : ` (was ${names[b]})`);
    const list = el("div", "ocrviz-cf-logits");
    list.textContent = "logits: " + base.map((v, k) => `${names[k]} ${v.toFixed(2)}→${after[k].toFixed(2)}`).join(" · ");
    cfBox.append(head, list);
    if (editPred && wholeChanged !== null) {     // the same edit on every pixel of the image
      const n = wholeChanged;
      const all = el("div", "ocrviz-cf-logits");
      all.textContent = `the same edit on every cell changes ${n} of ${hw} cells (${(100 * n / hw).toFixed(1)}%); `
        + "see it with the prediction overlay";
      all.className = "ocrviz-cf-all";
      head.after(all);
      root.dataset.cfChanged = String(n);
    } else if (kernelCf && kAnswer && kAnswer.edit === editSig() && (kAnswer.whole_pending || kAnswer.whole_error)) {
      const all = el("div", "ocrviz-cf-all");
      all.textContent = kAnswer.whole_error ? "the same edit on every cell failed in the kernel: " + kAnswer.whole_error
        : "the same edit on every cell: re-running in the kernel…";
      head.after(all);
    }
    root.dataset.cfPred = String(a);
    root.dataset.cfLogits = JSON.stringify(after.map((v) => +v.toFixed(6)));
    root.dataset.baseLogits = JSON.stringify(base.map((v) => +v.toFixed(6)));
  }

  function updateBranches() {
    const p = state.y * w + state.x;
    if (!shares.length) { noteB.textContent = "no per-branch shares in the data"; return; }
    noteB.textContent = "share of each branch in ASPP's 1x1 projection at this cell";
    brows.forEach((row, b) => {
      const v = shares[p * nBranch + b];
      row.r.dataset.share = v.toFixed(6);
      row.fill.style.width = (100 * v).toFixed(2) + "%";
      row.val.textContent = v.toFixed(4);
    });
  }

  function updateInfo() {
    const p = state.y * w + state.x, pr = classAt(maps.pred, state.y, state.x);
    const gt = classAt(maps.gt, state.y, state.x), ap = classAt(maps.aspp, state.y, state.x);
    const name = (k) => (k === null ? "—" : k === IGNORE ? "ignore" : names[k]);
    root.dataset.pred = String(pr); root.dataset.predName = name(pr);
    root.dataset.true = gt === null ? "" : String(gt); root.dataset.trueName = gt === null ? "" : name(gt);
    root.dataset.asppPred = ap === null ? "" : String(ap);
    const y0 = state.y * s, x0 = state.x * s;
    const parts = [`cell (row ${state.y}, col ${state.x}) = pixels y ${y0}–${Math.min(H, y0 + s) - 1}, x ${x0}–${Math.min(W, x0 + s) - 1}`,
      `OCR predicts ${name(pr)}`];
    if (gt !== null) parts.push(`true: ${name(gt)}`);
    if (ap !== null) parts.push(`ASPP predicts ${name(ap)}`);
    parts.push(`top region: ${names[rows.findIndex((r) => r.r.dataset.rank === "1")] ?? "?"}`);
    const bl = classAt(maps.blame, state.y, state.x);          // at the cell's centre pixel
    root.dataset.blame = bl === null || bl === IGNORE || !BLAME[bl] ? "" : BLAME[bl][0];
    if (state.overlay === "errors" && state.mode === "ocr" && root.dataset.blame)
      parts.push(`error blame: ${BLAME[bl][0]} — ${BLAME[bl][1]}`);
    info.textContent = parts.join(" · ");
    pin.textContent = state.pinned ? "pinned: click it again or press Esc to follow the mouse" : "following the mouse: click to pin";
    root.dataset.pinned = String(state.pinned);
  }

  function redraw() {
    const t0 = performance.now();
    const aspp = state.mode === "aspp";
    regionList.hidden = aspp; branchList.hidden = !aspp;
    barTools.hidden = aspp || !cfOn; gainRow.hidden = aspp || !cfOn; barHead.hidden = aspp; cfBox.hidden = aspp;
    titleB.textContent = aspp ? "ASPP branches: fixed context of this cell" : "object regions this pixel draws context from (sim map row)";
    drawImagePanel();
    drawTaps();
    updateRegions();               // also in ASPP mode: the info line names the top region
    if (aspp) { updateBranches(); drawAsppContext(); } else { noteB.textContent = ""; drawContext(); }
    updateInfo();
    for (const [m, b] of Object.entries(modeBtn)) b.classList.toggle("ocrviz-active", m === state.mode);
    for (const [o, b] of Object.entries(overlayBtn)) b.classList.toggle("ocrviz-active", o === state.overlay);
    for (const [sc, b] of Object.entries(scaleBtn)) b.classList.toggle("ocrviz-active", sc === state.scale);
    sharedBtn.classList.toggle("ocrviz-active", state.shared);
    root.dataset.mode = state.mode; root.dataset.overlay = state.overlay;
    root.dataset.drawMs = (performance.now() - t0).toFixed(2);
    root.dataset.y = String(state.y); root.dataset.x = String(state.x);   // last: observers see a finished frame
  }

  // ---------------------------------------------------------------- input
  const push = (name, value) => { model.set(name, value); model.save_changes(); };
  function select(y, x, source) {
    y = Math.min(h - 1, Math.max(0, y)); x = Math.min(w - 1, Math.max(0, x));
    if (y === state.y && x === state.x) { if (source !== "hover") updateInfo(); return; }
    state.y = y; state.x = x;
    redraw();
    clearTimeout(syncTimer);
    if (source === "hover") syncTimer = setTimeout(() => push("selected", [state.y, state.x]), 200);
    else push("selected", [y, x]);
  }
  const cellOf = (ev) => {   // offsetX/clientWidth: borders and CSS scaling do not shift the pixel
    const px = Math.min(W - 1, Math.max(0, Math.floor(ev.offsetX / cImg.clientWidth * W)));
    const py = Math.min(H - 1, Math.max(0, Math.floor(ev.offsetY / cImg.clientHeight * H)));
    return [Math.min(h - 1, Math.floor(py / s)), Math.min(w - 1, Math.floor(px / s))];
  };
  const setPinned = (v) => { if (state.pinned !== v) { state.pinned = v; push("pinned", v); } };
  function showTip(ev) {             // the tap under the pointer, if any (all taps at that spot, one line each)
    if (state.mode !== "aspp") { tip.hidden = true; return; }
    const px = ev.offsetX / cImg.clientWidth * W, py = ev.offsetY / cImg.clientHeight * H, lines = [];
    for (const c of tapsSvg.querySelectorAll(".ocrviz-tap")) {
      const dx = +c.getAttribute("cx") - px, dy = +c.getAttribute("cy") - py, r = +c.dataset.r;
      if (dx * dx + dy * dy <= r * r) lines.push(c.dataset.tip);
    }
    tip.hidden = !lines.length;
    if (lines.length) {
      tip.textContent = lines.join("\n");
      tip.style.left = Math.min(ev.offsetX + 14, dispW - 40) + "px"; tip.style.top = ev.offsetY + 14 + "px";
    }
  }
  on(cImg, "mousemove", (ev) => { if (!state.pinned) { const [y, x] = cellOf(ev); select(y, x, "hover"); } showTip(ev); });
  on(cImg, "mouseleave", () => { tip.hidden = true; });
  on(cImg, "mousedown", (ev) => {   // on press, not release: the redraw starts one step earlier
    if (ev.button !== 0) return;
    const [y, x] = cellOf(ev);
    setPinned(!(state.pinned && y === state.y && x === state.x));
    select(y, x, "click");
    cImg.focus({ preventScroll: true });
  });
  // Keys anywhere in the explorer (the image, or a toolbar button just clicked) move the pixel.
  on(root, "keydown", (ev) => {
    const step = ev.shiftKey ? 5 : 1;
    const d = { ArrowUp: [-step, 0], ArrowDown: [step, 0], ArrowLeft: [0, -step], ArrowRight: [0, step] }[ev.key];
    if (d) { ev.preventDefault(); ev.stopPropagation(); setPinned(true); select(state.y + d[0], state.x + d[1], "key"); }
    else if (ev.key === "Escape") { ev.stopPropagation(); setPinned(false); updateInfo(); }
  });
  const refocus = () => cImg.focus({ preventScroll: true });   // after a button, arrow keys still reach the image
  for (const [m, b] of Object.entries(modeBtn)) on(b, "click", () => { if (state.mode !== m) { state.mode = m; redraw(); push("mode", m); } refocus(); });
  for (const [o, b] of Object.entries(overlayBtn)) on(b, "click", () => { if (state.overlay !== o) { state.overlay = o; redraw(); push("overlay", o); } refocus(); });
  for (const [sc, b] of Object.entries(scaleBtn)) on(b, "click", () => { if (state.scale !== sc) { state.scale = sc; redraw(); push("scale", sc); } refocus(); });
  on(sharedBtn, "click", () => { state.shared = !state.shared; redraw(); push("shared_scale", state.shared); refocus(); });
  const setHover = (k) => {
    if (state.hover === k) return;
    state.hover = k;
    rows.forEach((r, j) => r.r.classList.toggle("ocrviz-hovered", j === k));
    if (state.mode === "ocr") drawContext();
    push("hover_region", k);
  };
  rows.forEach((row, k) => on(row.r, "mouseenter", () => setHover(k)));
  if (cfOn) {
    // the edit applied to every cell (about 20k multiply-adds per cell: on a click or a slider release, not per frame)
    const wholeImage = () => {
      const any = state.dropped.size || (state.gain && state.gain.f !== 1);
      if (!any) { editPred = null; return; }
      if (!basePred) basePred = cf.predictAll(rowOf);
      editPred = cf.predictAll((p) => currentEdit(p) || rowOf(p));
      let n = 0; for (let i = 0; i < hw; i++) n += editPred[i] !== basePred[i];
      wholeChanged = n;
    };
    // the pixel first (one frame), the whole image right after, in its own task (in the kernel: its answer)
    let wholeTimer = 0;
    cleanups.push(() => clearTimeout(wholeTimer));
    const edited = () => {
      editPred = null; wholeChanged = null; redraw();
      if (!cf) return;
      clearTimeout(wholeTimer);
      wholeTimer = setTimeout(() => {
        const t0 = performance.now(); wholeImage(); redraw();
        root.dataset.wholeMs = (performance.now() - t0).toFixed(1);     // the whole-image re-run and its redraw
      }, 0);
    };
    rows.forEach((row, k) => on(row.r, "click", (ev) => {
      if (ev.shiftKey) state.dropped = new Set(names.map((_, j) => j).filter((j) => j !== k));   // keep only k
      else if (state.dropped.has(k)) state.dropped.delete(k);
      else if (state.dropped.size < K - 1) state.dropped.add(k);
      edited(); refocus();
    }));
    for (const [k, b] of Object.entries(sortBtn)) on(b, "click", () => { state.sort = k; redraw(); refocus(); });
    on(resetBtn, "click", () => {
      state.dropped = new Set(); state.gain = null; gainSlider.value = "1"; gainText.textContent = "×1.00"; edited(); refocus();
    });
    const readGain = () => { state.gain = { k: +gainPick.value, f: +gainSlider.value }; gainText.textContent = "×" + state.gain.f.toFixed(2); };
    on(gainSlider, "input", () => { readGain(); editPred = null; wholeChanged = null; redraw(); });   // this pixel at once
    on(gainSlider, "change", () => { readGain(); edited(); });                   // the whole image on release
    on(gainPick, "change", () => { readGain(); edited(); });
  }
  on(regionList, "mouseleave", () => setHover(-1));

  // ---------------------------------------------------------------- Python -> view
  onModel("change:selected", () => {       // a cell set from Python stays pinned: the mouse does not move it
    const v = model.get("selected") || [0, 0];
    if (v[0] !== state.y || v[1] !== state.x) {
      state.y = Math.min(h - 1, Math.max(0, v[0])); state.x = Math.min(w - 1, Math.max(0, v[1]));
      state.pinned = true; redraw();
    }
  });
  onModel("change:pinned", () => { const v = !!model.get("pinned"); if (v !== state.pinned) { state.pinned = v; updateInfo(); } });
  onModel("change:scale", () => { const v = model.get("scale"); if (SCALES[v] && v !== state.scale) { state.scale = v; redraw(); } });
  onModel("change:shared_scale", () => { const v = !!model.get("shared_scale"); if (v !== state.shared) { state.shared = v; redraw(); } });
  const resized = () => { if (applySize()) { layers.clear(); redraw(); } };
  onModel("change:width", resized);
  if (typeof ResizeObserver !== "undefined") {
    let raf = 0;
    const ro = new ResizeObserver(() => { cancelAnimationFrame(raf); raf = requestAnimationFrame(resized); });
    ro.observe(root);
    cleanups.push(() => { ro.disconnect(); cancelAnimationFrame(raf); });
  }
  onModel("change:mode", () => { const m = model.get("mode"); if (m !== state.mode && (m === "ocr" || rates.length)) { state.mode = m; redraw(); } });
  onModel("change:overlay", () => { const o = model.get("overlay"); if (o !== state.overlay && OVERLAYS.includes(o)) { state.overlay = o; redraw(); } });
  onModel("change:hover_region", () => { const k = model.get("hover_region"); if (k !== state.hover) { state.hover = k; redraw(); } });
  onModel("change:cf_answer", () => {
    const ans = model.get("cf_answer") || {};
    if (!kernelCf || !ans.key) return;
    if (ans.key !== kAsked) {      // another view of this widget asked since: ask again while ours is unanswered
      if (kRequest && !(kAnswer && kAnswer.key === kAsked)) { model.set("cf_request", { ...kRequest }); model.save_changes(); }
      return;
    }
    if (ans.error) { cfBox.textContent = "the kernel could not re-run the head: " + ans.error; delete root.dataset.cfPending; return; }
    adopt(ans);
    if (ans.key === editSig() + "@" + (state.y * w + state.x)) redraw();
  });
  const erfChanged = () => { if (state.mode === "aspp") drawAsppContext(); };
  onModel("change:erf_cell", erfChanged);
  onModel("change:erf_status", erfChanged);

  redraw();
  return () => { for (const f of cleanups.splice(0).reverse()) f(); };
}

export default { render, decode };
