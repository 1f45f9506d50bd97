// The region bars: the selected pixel's sim row, one bar per object region, with each region's
// influence (Δlogit of the predicted class without it) and the edit tools (click: drop a region,
// shift-click: keep only it, the slider: scale one).
import { el } from "./dom.js";

export function regionBars(v) {
  const { data, store, cf, listen } = v, { K, names, palette } = data;
  const list = el("div", "ocrviz-regions");
  const rows = [];
  for (let k = 0; k < K; k++) {
    const r = el("div", "ocrviz-region", { "data-k": k, "data-name": names[k] });
    const sw = el("span", "ocrviz-swatch"); sw.style.background = `rgb(${palette[k].join(",")})`;
    const nm = el("span", "ocrviz-name"); nm.textContent = names[k];
    const bar = el("span", "ocrviz-bar"), fill = el("span", "ocrviz-bar-fill"); bar.append(fill);
    fill.style.background = `rgb(${palette[k].join(",")})`;
    const val = el("span", "ocrviz-value"), inf = el("span", "ocrviz-value ocrviz-influence");
    r.append(sw, nm, bar, val, inf);
    if (cf.on) r.title = "click: drop this region from the pixel's sim row (again: put it back); shift-click: keep only it";
    rows.push({ r, fill, val, inf });
    list.append(r);
  }
  const tools = el("div", "ocrviz-bar-tools");
  const sortBtn = {};
  for (const [k, label] of [["attention", "sort by sim"], ["influence", "by Δlogit"]]) {
    const b = el("button", "ocrviz-sort-btn", { "data-sort": k, type: "button" }); b.textContent = label; sortBtn[k] = b; tools.append(b);
  }
  const reset = el("button", "ocrviz-reset-btn", { type: "button" }); reset.textContent = "undo";
  tools.append(reset);
  const gainRow = el("div", "ocrviz-gain");
  const gainPick = el("select", "ocrviz-gain-region", { "aria-label": "region to scale" });
  names.forEach((n, k) => { const o = el("option", "", { value: k }); o.textContent = n; gainPick.append(o); });
  const slider = el("input", "ocrviz-gain-slider", { type: "range", min: "0", max: "4", step: "0.05", value: "1",
    "aria-label": "scale this region's weight in the pixel's sim row" });
  const gainText = el("span", "ocrviz-gain-text"); gainText.textContent = "×1.00";
  const gainLabel = el("span"); gainLabel.textContent = "scale ";
  gainRow.append(gainLabel, gainPick, slider, gainText);
  const head = el("div", "ocrviz-bar-head");
  head.append(el("span"), el("span"), el("span"), el("span"), el("span"));
  head.children[3].textContent = "sim"; head.children[4].textContent = cf.on ? "Δlogit" : "";
  head.children[4].title = "influence: how much the predicted class's logit drops when this region is removed from the row (renormalised)";
  if (!cf.on) tools.hidden = true;

  // ---- input
  rows.forEach((row, k) => listen.on(row.r, "mouseenter", () => store.set({ hover: k })));
  listen.on(list, "mouseleave", () => store.set({ hover: -1 }));
  if (cf.on) {
    // the pixel first (one frame), the whole image right after (v.wholeLater)
    const edit = (patch) => { store.set(patch); v.wholeLater(); v.refocus(); };
    rows.forEach((row, k) => listen.on(row.r, "click", (ev) => {
      const dropped = new Set(store.state.dropped);
      if (ev.shiftKey) edit({ dropped: new Set(names.map((_, j) => j).filter((j) => j !== k)) });   // keep only k
      else if (dropped.has(k)) { dropped.delete(k); edit({ dropped }); }
      else if (dropped.size < K - 1) { dropped.add(k); edit({ dropped }); }
    }));
    for (const [k, b] of Object.entries(sortBtn)) listen.on(b, "click", () => { store.set({ sort: k }); v.refocus(); });
    listen.on(reset, "click", () => { slider.value = "1"; gainText.textContent = "×1.00"; edit({ dropped: new Set(), gain: null }); });
    const gain = () => { const g = { k: +gainPick.value, f: +slider.value }; gainText.textContent = "×" + g.f.toFixed(2); return g; };
    listen.on(slider, "input", () => store.set({ gain: gain() }));                 // this pixel at once
    listen.on(slider, "change", () => { store.set({ gain: gain() }); v.wholeLater(); });   // the whole image on release
    listen.on(gainPick, "change", () => { store.set({ gain: gain() }); v.wholeLater(); });
  }

  return {
    nodes: [tools, gainRow, head, list],
    watches: ["hover"],
    draw(f) {
      const { st } = f;
      tools.hidden = gainRow.hidden = !cf.on;
      if (f.only && f.only.has("hover")) { rows.forEach((r, j) => r.r.classList.toggle("ocrviz-hovered", j === st.hover)); return; }
      const row = f.row, res = f.cf(), influence = res && res.influence;
      const key = st.sort === "influence" && influence ? influence : row;
      const order = Array.from({ length: K }, (_, k) => k);
      order.sort((a, b) => (key[b] - key[a]) || (a - b));          // largest first, ties by k
      const top = Math.max(...row) || 1;
      order.forEach((k, rank) => {
        const val = row[k], r = rows[k];
        r.r.dataset.weight = val.toFixed(6); r.r.dataset.rank = String(rank + 1);
        r.fill.style.width = (100 * val / top).toFixed(2) + "%";
        r.val.textContent = val.toFixed(4);
        if (!influence) { delete r.r.dataset.influence; r.inf.textContent = cf.on ? "…" : ""; }
        else { r.r.dataset.influence = influence[k].toFixed(6); r.inf.textContent = (influence[k] >= 0 ? "+" : "") + influence[k].toFixed(3); }
        r.r.classList.toggle("ocrviz-hovered", k === st.hover);
        r.r.classList.toggle("ocrviz-dropped", st.dropped.has(k));
        list.append(r.r);                                              // re-order in place
      });
      f.topRegion = order[0];
      for (const [k, b] of Object.entries(sortBtn)) b.classList.toggle("ocrviz-active", k === st.sort);
      reset.disabled = !(res && res.edited);
    },
  };
}
