// OCR's head after the sim map, re-run for one cell in the page (ocrviz.analysis.pixel_head), float64.
// pixelHead(arrays, K, hw) -> logits(row, p) (K logits of cell p for sim row `row`), or null when the
// payload carries no head; logits.predictAll(rowFn) gives every cell's class under rows rowFn(p).

export function pixelHead(get, K, hw) {
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
  const logits = (row, p) => {
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
  logits.predictAll = (rowFn) => {
    const out = new Uint8Array(hw);
    for (let p = 0; p < hw; p++) { const l = logits(rowFn(p), p); let b = 0; for (let k = 1; k < K; k++) if (l[k] > l[b]) b = k; out[p] = b; }
    return out;
  };
  return logits;
}
