// The toolbar: overlay, how the context maps are drawn (mass / density), colour scale, "same scale", the pin state.
import { el } from "./dom.js";
import { SCALES } from "./scales.js";
import { OVERLAYS, VIEWS } from "./store.js";

export function toolbar(v) {
  const { data, store, listen } = v, { maps, markName } = data;
  const bar = el("div", "ocrviz-toolbar");
  const group = (cls, title) => el("span", cls, title ? { title } : {});
  const buttons = [];         // [button, state key, value]
  const button = (parent, cls, attr, key, value, label) => {
    const b = el("button", cls, { [attr]: value, type: "button" });
    b.textContent = label; parent.append(b); buttons.push([b, key, value]);
    listen.on(b, "click", () => { store.set({ [key]: value }); v.refocus(); });
    return b;
  };
  const views = group("ocrviz-views", "how the context maps are drawn");
  const VIEW_LABELS = { mass: "by class (mass)", density: "per cell (density)" };
  for (const m of VIEWS) button(views, "ocrviz-view-btn", "data-view", "view", m, VIEW_LABELS[m]);
  const overlays = group("ocrviz-overlays");
  for (const o of OVERLAYS) {
    const b = button(overlays, "ocrviz-overlay-btn", "data-overlay", "overlay", o, o === "marked" ? markName : o);
    if ((o === "ground truth" || o === "errors") && !maps.gt.data.length) { b.disabled = true; b.title = "no labels given"; }
    if (o === "marked" && !maps.mark.data.length) b.hidden = true;        // only with a mark= map
  }
  const scales = group("ocrviz-scales", "colour scale of the context maps");
  for (const [sc, label] of Object.entries(SCALES)) button(scales, "ocrviz-scale-btn", "data-scale", "scale", sc, label);
  const shared = el("button", "ocrviz-shared-btn", { type: "button",
    title: "one colour scale for every context map at this pixel (the largest maximum at the top)" });
  shared.textContent = "same scale for all maps";
  scales.append(shared);
  listen.on(shared, "click", () => { store.set({ shared: !store.state.shared }); v.refocus(); });
  v.pin = el("span", "ocrviz-pin");
  bar.append(overlays, views, scales, v.pin);
  return {
    el: bar,
    draw(f) {
      for (const [b, key, value] of buttons) b.classList.toggle("ocrviz-active", f.st[key] === value);
      shared.classList.toggle("ocrviz-active", f.st.shared);
    },
  };
}
