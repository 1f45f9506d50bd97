// Small DOM helpers shared by the panels.

export function el(tag, cls, attrs) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

const SVGNS = "http://www.w3.org/2000/svg";  // a namespace name, never fetched
export function svg(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

export function fmt(v, d) { return Number.isFinite(v) ? v.toFixed(d) : String(v); }

export function canvas(h, w) { const c = document.createElement("canvas"); c.width = w; c.height = h; return c; }

// a coloured key: swatch + text
export function swatch(rgb, text) {
  const e = el("span", "ocrviz-key"), sw = el("span", "ocrviz-swatch");
  sw.style.background = `rgb(${rgb.join(",")})`; e.append(sw, document.createTextNode(text)); return e;
}

// listeners that one call removes (the view's cleanup)
export function listeners() {
  const cleanups = [];
  return {
    on(target, ev, fn, opts) { target.addEventListener(ev, fn, opts); cleanups.push(() => target.removeEventListener(ev, fn, opts)); },
    add(fn) { cleanups.push(fn); },
    dispose() { for (const f of cleanups.splice(0).reverse()) f(); },
  };
}
