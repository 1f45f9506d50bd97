// Where a pixel's context comes from, per feature cell (the page's ContextMap, ocrviz.context.types).

// OCR: sum_k row[k] * region_k over the h x w grid (region: K x HW), into `out` (HW)
export function ocrContext(region, row, hw, out) {
  out.fill(0);
  for (let k = 0; k < row.length; k++) {
    const a = row[k]; if (a === 0) continue;
    const o = k * hw; for (let i = 0; i < hw; i++) out[i] += a * region[o + i];
  }
  return out;
}
