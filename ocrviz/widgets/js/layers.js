// Cached picture layers at the display resolution: the image alone or with a class / error / mark
// overlay, the dimmed image under the heat maps, and the selected cell's outline.
import { resample } from "./codecs.js";
import { canvas } from "./dom.js";
import { rgba } from "./scales.js";

const IGNORE = 255;

export function createLayers(data, size) {
  const { H, W, s, K, palette, maps, colours, bitmap } = data;
  const cache = new Map();
  const classCanvas = (m, alpha) => {
    const [mh, mw] = m.hw, c = canvas(mh, mw), ctx = c.getContext("2d"), id = ctx.createImageData(mw, mh);
    const px = new Uint32Array(id.data.buffer), lutc = new Uint32Array(256);
    for (let k = 0; k < K; k++) lutc[k] = rgba(palette[k], alpha);
    for (let i = 0; i < m.data.length; i++) px[i] = lutc[m.data[i]];   // ignore (255) stays transparent
    ctx.putImageData(id, 0, 0); return c;
  };
  const errorCanvas = (pm) => {
    const [gh, gw] = maps.gt.hw, p = resample(pm, gh, gw, s), g = maps.gt.data;
    const c = canvas(gh, gw), ctx = c.getContext("2d"), id = ctx.createImageData(gw, gh), px = new Uint32Array(id.data.buffer);
    const wrong = rgba(colours.error.rgb, 235), ign = rgba(colours.ignore.rgb, 120), right = rgba(colours.right.rgb, 90);
    for (let i = 0; i < g.length; i++) px[i] = g[i] === IGNORE ? ign : (p[i] === g[i] ? right : wrong);
    ctx.putImageData(id, 0, 0); return c;
  };
  const markCanvas = () => {      // marked pixels in the mark colour, the rest dimmed
    const [mh, mw] = maps.mark.hw, c = canvas(mh, mw), ctx = c.getContext("2d"), id = ctx.createImageData(mw, mh);
    const px = new Uint32Array(id.data.buffer), on = rgba(colours.mark.rgb, 170), off = (110 << 24) >>> 0;
    for (let i = 0; i < maps.mark.data.length; i++) px[i] = maps.mark.data[i] ? on : off;
    ctx.putImageData(id, 0, 0); return c;
  };
  const layer = (key, paint) => {
    if (!cache.has(key)) {
      const { bw, bh } = size, c = canvas(bh, bw), ctx = c.getContext("2d");
      ctx.fillStyle = "#222"; ctx.fillRect(0, 0, bw, bh);
      if (bitmap) { ctx.imageSmoothingQuality = "high"; ctx.drawImage(bitmap, 0, 0, bw, bh); }
      ctx.imageSmoothingEnabled = false;
      paint(ctx);
      cache.set(key, c);
    }
    return cache.get(key);
  };
  const over = (c) => (ctx) => ctx.drawImage(c(), 0, 0, size.bw, size.bh);
  return {
    clear: () => cache.clear(),
    image: () => layer("image", () => {}),
    // the image under overlay `o` for the class map `pm` named `which` ("ocr" | "aspp"); editPred: the
    // counterfactual edit applied to every cell (feature grid, not cached)
    overlay(o, pm, which, editPred) {
      const { bw, bh } = size;
      if (o === "prediction" && which === "ocr" && editPred) {
        const c = canvas(bh, bw), ctx = c.getContext("2d");
        ctx.drawImage(layer("image", () => {}), 0, 0); ctx.imageSmoothingEnabled = false;
        ctx.drawImage(classCanvas({ data: editPred, hw: [data.h, data.w] }, 150), 0, 0, bw, bh);
        return c;
      }
      if (o === "prediction") return layer("pred:" + which, over(() => classCanvas(pm, 150)));
      if (o === "ground truth" && maps.gt.data.length) return layer("gt", over(() => classCanvas(maps.gt, 150)));
      if (o === "errors" && maps.gt.data.length) return layer("err:" + which, (ctx) => {
        ctx.fillStyle = "rgba(255,255,255,0.35)"; ctx.fillRect(0, 0, bw, bh); ctx.drawImage(errorCanvas(pm), 0, 0, bw, bh);
      });
      if (o === "marked" && maps.mark.data.length) return layer("mark", over(markCanvas));
      return layer("image", () => {});
    },
    dim: () => layer("dim", (ctx) => { ctx.fillStyle = "rgba(0,0,0,0.62)"; ctx.fillRect(0, 0, size.bw, size.bh); }),
    // the image faded towards white, under the class colours of the mass view
    faded: () => layer("faded", (ctx) => { ctx.fillStyle = "rgba(255,255,255,0.78)"; ctx.fillRect(0, 0, size.bw, size.bh); }),
    // the selected cell (y, x), black then white
    outline(ctx, y, x) {
      const { bw, bh, dpr } = size, sx = bw / W, sy = bh / H;
      for (const [colour, lw] of [["#000", 3 * dpr], ["#fff", 1.2 * dpr]]) {
        ctx.lineWidth = lw; ctx.strokeStyle = colour;
        ctx.strokeRect(x * s * sx, y * s * sy, Math.max(2, s * sx), Math.max(2, s * sy));
      }
    },
  };
}
