// The toolbar: mode (OCR / ASPP), overlay, colour scale, "same scale", and the pin state.
import { el } from "./dom.js";
import { SCALES } from "./scales.js";
import { OVERLAYS } from "./store.js";

export function toolbar(v) {
  const { data, store, listen } = v, { rates, standalone, maps, markName } = data;
  const bar = el("div", "ocrviz-toolbar");
  const group = (cls, title) => el("span", cls, title ? { title } : {});
  const buttons = [];         // [button, state key, value]
  const button = (parent, cls, attr, key, value, label) => {
    const b = el("button", cls, { [attr]: value, type: "button" });
    b.textContent = label; parent.append(b); buttons.push([b, key, value]);
    listen.on(b, "click", () => { store.set({ [key]: value }); v.refocus(); });
    return b;
  };
  const modes = group("ocrviz-modes");
  for (const [m, label] of [["ocr", "OCR: object regions"], ["aspp", "ASPP: dilated taps"]]) {
    const b = button(modes, "ocrviz-mode-btn", "data-mode", "mode", m, label);
    if (m === "aspp" && !rates.length) {
      b.disabled = true;
      b.title = standalone ? "this page was exported without ASPP data" : "no ASPP data: pass aspp_model= (or aspp_rates) to the Explorer";
    }
  }
  const overlays = group("ocrviz-overlays");
  for (const o of OVERLAYS) {
    const b = button(overlays, "ocrviz-overlay-btn", "data-overlay", "overlay", o, o === "marked" ? markName : o);
    if ((o === "ground truth" || o === "errors") && !maps.gt.data.length) { b.disabled = true; b.title = "no labels given"; }
    if (o === "marked" && !maps.mark.data.length) b.hidden = true;        // only with a mark= map
  }
  const scales = group("ocrviz-scales", "colour scale of the maps on the right");
  for (const [sc, label] of Object.entries(SCALES)) button(scales, "ocrviz-scale-btn", "data-scale", "scale", sc, label);
  const shared = el("button", "ocrviz-shared-btn", { type: "button",
    title: "one colour scale for OCR's context and ASPP's ERF at this pixel (the larger maximum of the two at the top)" });
  shared.textContent = "same scale for OCR & ASPP";
  scales.append(shared);
  listen.on(shared, "click", () => { store.set({ shared: !store.state.shared }); v.refocus(); });
  v.pin = el("span", "ocrviz-pin");
  bar.append(modes, overlays, scales, v.pin);
  return {
    el: bar,
    draw(f) {
      for (const [b, key, value] of buttons) b.classList.toggle("ocrviz-active", f.st[key] === value);
      shared.classList.toggle("ocrviz-active", f.st.shared);
    },
  };
}
