// Colour scales: viridis, the sqrt / log / linear mapping of a value to [0, 1], and how a scale is said.

export const VIRIDIS = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
  [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]];
export const SCALES = { sqrt: "√", log: "log", linear: "linear" };
export const LOG_DECADES = 3;              // log scale: the bottom colour is 10^-3 of the top

// t in [0, 1] for a value v on a scale whose top colour is `top`
export function scaled(v, top, scale) {
  if (!(top > 0) || !(v > 0)) return 0;
  const r = v / top;
  if (r >= 1) return 1;
  if (scale === "linear") return r;
  if (scale === "log") return Math.max(0, 1 + Math.log10(r) / LOG_DECADES);
  return Math.sqrt(r);
}

export function viridis(t) {
  const x = Math.max(0, Math.min(1, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x)), f = x - i;
  return VIRIDIS[i].map((c, n) => Math.round(c + f * (VIRIDIS[i + 1][n] - c)));
}

export const rgba = ([r, g, b], a) => ((a << 24) | (b << 16) | (g << 8) | r) >>> 0;   // little-endian RGBA

export function heatLut() {  // 256 RGBA entries packed little-endian for Uint32 ImageData writes
  const lut = new Uint32Array(256);
  for (let i = 0; i < 256; i++) lut[i] = rgba(viridis(i / 255), Math.round(70 + 185 * i / 255));
  return lut;
}

// vals (n) -> packed colours in `out` on `scale` with top colour `top`
export function colourise(vals, out, top, scale, lut) {
  for (let i = 0; i < vals.length; i++) out[i] = lut[(scaled(vals[i], top, scale) * 255) | 0];
}

export function maxOf(vals) { let m = 0; for (let i = 0; i < vals.length; i++) if (vals[i] > m) m = vals[i]; return m; }

// the legend's sentence for a map whose top colour is `top` (`what`: what the top is)
export function describeScale(top, what, scale) {
  const name = { sqrt: "√ scale", log: "log scale", linear: "linear scale" }[scale];
  const bottom = scale === "log" ? `≤ ${(top * 10 ** -LOG_DECADES).toPrecision(2)} (1/${10 ** LOG_DECADES} of the top)` : "0";
  return `top colour = ${top.toPrecision(3)} (${what}); bottom = ${bottom}; ${name}`;
}
