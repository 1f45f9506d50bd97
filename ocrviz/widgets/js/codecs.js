// Buffer codecs: the widget's binary traits -> typed arrays (the inverse of ocrviz.widgets.payload).

export function u8(dv) {
  if (!dv || !dv.byteLength) return new Uint8Array(0);
  return new Uint8Array(dv.buffer, dv.byteOffset, dv.byteLength);
}

export function f32(dv) {  // copy: a DataView's offset need not be 4-aligned
  if (!dv || !dv.byteLength) return new Float32Array(0);
  return new Float32Array(dv.buffer.slice(dv.byteOffset, dv.byteOffset + dv.byteLength));
}

// A compact buffer {buf: DataView, deflate, shuffle, fixed} (ocrviz.widgets.payload.encode_buffer)
// -> a DataView of the raw little-endian bytes (fixed point becomes float32).
export async function decode(spec) {
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

// uint8 codes with one scale per map (payload.quantise_u8) -> float32, n maps of `size` values each
export function dequantise(q, scales, size) {
  const out = new Float32Array(scales.length * size);
  for (let k = 0; k < scales.length; k++) {
    const sc = scales[k], o = k * size;
    for (let i = 0; i < size; i++) out[o + i] = q[o + i] * sc;
  }
  return out;
}

// class index of feature cell (y, x) in a class map {data, hw} on an h x w grid with stride s:
// the cell itself on a feature-size map, else the cell's centre pixel (ExplorerData._at's rule)
export function classAt(m, y, x, h, w, s) {
  if (!m.data.length) return null;
  if (m.hw[0] === h && m.hw[1] === w) return m.data[y * w + x];
  const py = Math.min(m.hw[0] - 1, y * s + (s >> 1)), px = Math.min(m.hw[1] - 1, x * s + (s >> 1));
  return m.data[py * m.hw[1] + px];
}

// nearest resampling of a class map to another grid (feature <-> image), stride s
export function resample(m, th, tw, s) {
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
}

// {b64, deflate, shuffle, fixed} (site_payload._spec: a buffer spec inside JSON) -> a DataView of the raw bytes
export async function decodeB64(spec) {
  const bin = atob(spec.b64 || ""), bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return decode({ ...spec, buf: new DataView(bytes.buffer) });
}
