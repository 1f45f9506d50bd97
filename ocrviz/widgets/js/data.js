// What the widget model carries, decoded once into plain typed arrays (see ocrviz.widgets.payload).
import { classAt, decode, dequantise, f32, u8 } from "./codecs.js";

// overlay colours: sent by Python (ocrviz.widgets.colours); these fallbacks match it
const COLOURS = { error: { rgb: [228, 26, 28], name: "red" }, right: { rgb: [60, 170, 70], name: "green" },
  ignore: { rgb: [128, 128, 128], name: "grey" }, mark: { rgb: [255, 215, 0], name: "yellow" } };

export async function loadData(model) {
  const [H, W] = model.get("image_hw"), [h, w] = model.get("feat_hw"), s = model.get("output_stride");
  const hw = h * w, names = model.get("class_names"), K = names.length, palette = model.get("palette");
  const unpacked = {};                                       // the compressed buffers, decoded once
  for (const [k, spec] of Object.entries(model.get("packed") || {})) unpacked[k] = await decode(spec);
  const buf = (k) => unpacked[k] || model.get(k);
  const regionScale = model.get("region_scale");
  const maps = {
    pred: { data: u8(buf("pred")), hw: model.get("pred_hw") },
    gt: { data: u8(buf("gt")), hw: model.get("gt_hw") },
    aspp: { data: u8(buf("aspp_pred")), hw: model.get("aspp_pred_hw") },
    mark: { data: u8(buf("mark")), hw: model.get("mark_hw") },
    blame: { data: u8(buf("blame")), hw: model.get("blame_hw") || [] },
  };
  let markCount = 0;
  for (let i = 0; i < maps.mark.data.length; i++) markCount += maps.mark.data[i];
  const rates = model.get("aspp_rates") || [];
  const preErf = new Map(), preErfMass = new Map();         // "y,x" -> Float32Array(hw), its K class shares
  {
    const cells = model.get("erf_cells") || [], all = dequantise(u8(model.get("erf_maps")), model.get("erf_scales") || [], hw);
    const masses = model.get("erf_class_mass") || [];
    cells.forEach(([cy, cx], n) => { preErf.set(cy + "," + cx, all.subarray(n * hw, (n + 1) * hw)); if (masses[n]) preErfMass.set(cy + "," + cx, masses[n]); });
  }
  let bitmap = null;
  try {
    const blob = new Blob([u8(model.get("image"))], { type: model.get("image_mime") || "image/png" });
    bitmap = await createImageBitmap(blob);
  } catch (e) { console.warn("ocrviz: image decode failed", e); }
  const sim = f32(buf("sim_map"));                           // HW x K
  // each cell's predicted class (what the mass strips count by); older payloads: the cell's centre pixel
  let cellClass = u8(buf("cell_class"));
  if (cellClass.length !== hw) {
    cellClass = new Uint8Array(hw);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) cellClass[y * w + x] = classAt(maps.pred, y, x, h, w, s);
  }
  return {
    H, W, h, w, s, hw, names, K, palette, bitmap, maps, rates, preErf, regionScale,
    sim, cellClass,
    ocr: sim.length > 0,                                     // else a model shown by its context sites only
    // whose prediction the picture and the info line show: OCR's, or that model's (site_payload label)
    predBy: sim.length ? "OCR" : (((model.get("sites") || [])[0] || {}).label || "the model"),
    regionMass: f32(buf("region_mass")),                     // K x K: region k's mass on class c's cells (exact strips)
    unavailable: model.get("unavailable") || {},             // {panel: one plain sentence}: why it is not drawn
    region: dequantise(u8(buf("region_q")), regionScale, hw), // K x HW
    markName: model.get("mark_name") || "marked",
    markPct: maps.mark.data.length ? (100 * markCount / maps.mark.data.length).toFixed(1) : "0.0",
    shares: f32(buf("aspp_shares")), nBranch: rates.length + 2,
    colours: { ...COLOURS, ...(model.get("overlay_colours") || {}) },
    standalone: !!model.get("standalone"),                   // an exported page: no kernel, no Python hints
    cfArrays: (n) => f32(buf("cf_" + n)),
    rowOf: (p) => Array.from(sim.subarray(p * K, (p + 1) * K)),   // the sim row of cell p
    // the ASPP ERF of cell (y, x): the one computed on demand by the kernel, else one stored in the page
    erfFor(y, x) {
      const cell = model.get("erf_cell") || [-1, -1];
      if (cell[0] === y && cell[1] === x) {
        const q = u8(model.get("erf_map"));
        if (q.length === hw) return dequantise(q, [model.get("erf_scale")], hw);
      }
      return preErf.get(y + "," + x) || null;
    },
    // its K class shares, sent with it (the map itself travels as 8-bit codes); null when not sent
    erfMassFor(y, x) {
      const cell = model.get("erf_cell") || [-1, -1], m = model.get("erf_mass") || [];
      if (cell[0] === y && cell[1] === x) return m.length === K ? m : null;
      return preErfMass.get(y + "," + x) || null;
    },
  };
}
