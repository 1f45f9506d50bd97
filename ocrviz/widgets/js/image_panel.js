// The image panel: the picture under its overlay, the selected cell, what the model predicts there and
// the true class (directly under the picture), the overlay's colour key.  Pointer input picks the cell.
import { classAt } from "./codecs.js";
import { el, swatch } from "./dom.js";

// The selection follows the pointer at once; when the pointer leaves the picture (on its way to the bars)
// the selection goes back to the last cell where it rested this long: the cells crossed on the way out
// do not count.
export const REST_MS = 120;

export function imagePanel(v) {
  const { data, store, layers, size } = v, { H, W, h, w, s, maps, names, palette, markName, markPct, colours } = data;
  const panel = el("div", "ocrviz-panel ocrviz-panel-image");
  const title = el("div", "ocrviz-title");
  const stack = el("div", "ocrviz-stack");
  const image = el("canvas", "ocrviz-image");
  image.tabIndex = 0;
  image.setAttribute("data-lm-suppress-shortcuts", "true");   // arrow keys move the pixel, not notebook cells
  image.setAttribute("aria-label", "image: click or hover to pick a pixel; arrow keys move it");
  stack.append(image);
  const classes = el("div", "ocrviz-classes");
  const legend = el("div", "ocrviz-overlay-legend");
  panel.append(title, stack, classes, legend);
  v.image = image;

  function drawLegend(o) {     // names the colours of the overlay shown (same height for every overlay)
    const keys = [];
    if (o === "errors") keys.push(swatch(colours.error.rgb, `${colours.error.name}: wrong`),
      swatch(colours.right.rgb, `${colours.right.name}: right`), swatch(colours.ignore.rgb, `${colours.ignore.name}: not scored`));
    else if (o === "marked") keys.push(swatch(colours.mark.rgb, `${colours.mark.name}: ${markName} pixels (${markPct}%)`));
    else if (o === "prediction" || o === "ground truth") keys.push(document.createTextNode("class colours as in the region bars"));
    else keys.push(document.createTextNode("\u00a0"));
    legend.replaceChildren(...keys);
    legend.dataset.overlay = o;
  }
  function drawClasses(st) {   // predicted (OCR, ASPP) and true class of the selected cell
    const at = (m) => classAt(m, st.y, st.x, h, w, s), parts = [];
    const key = (label, k) => {
      if (k === null) return;
      const e = k < names.length ? swatch(palette[k], `${label} ${names[k]}`) : el("span", "ocrviz-key");
      if (k >= names.length) e.textContent = `${label} ignore`;
      parts.push(e);
    };
    key(`${data.predBy}:`, at(maps.pred));
    if (maps.aspp.data.length) key("ASPP:", at(maps.aspp));
    key("true:", at(maps.gt));
    classes.replaceChildren(...parts);
  }

  // ---- input: hover follows the pointer until a click pins the cell
  const cellOf = (ev) => {   // offsetX/clientWidth: borders and CSS scaling do not shift the pixel
    const px = Math.min(W - 1, Math.max(0, Math.floor(ev.offsetX / image.clientWidth * W)));
    const py = Math.min(H - 1, Math.max(0, Math.floor(ev.offsetY / image.clientHeight * H)));
    return [Math.min(h - 1, Math.floor(py / s)), Math.min(w - 1, Math.floor(px / s))];
  };
  let rested = null, restTimer = 0;
  v.listen.add(() => clearTimeout(restTimer));
  v.listen.on(image, "mouseenter", () => { rested = [store.state.y, store.state.x]; });
  v.listen.add(store.subscribe((changed) => { if (changed.has("pinned")) rested = [store.state.y, store.state.x]; }));
  v.listen.on(image, "mousemove", (ev) => {
    if (store.state.pinned) return;
    const [y, x] = cellOf(ev);
    store.set({ y, x }, { push: "debounce" });
    clearTimeout(restTimer);
    restTimer = setTimeout(() => { rested = [y, x]; }, REST_MS);
  });
  v.listen.on(image, "mouseleave", () => {
    clearTimeout(restTimer);
    if (!store.state.pinned && rested) store.set({ y: rested[0], x: rested[1] }, { push: "debounce" });
  });
  v.listen.on(image, "mousedown", (ev) => {   // on press, not release: the redraw starts one step earlier
    if (ev.button !== 0) return;
    clearTimeout(restTimer);
    const [y, x] = cellOf(ev), st = store.state;
    store.set({ pinned: !(st.pinned && y === st.y && x === st.x), y, x });
    rested = [y, x];
    image.focus({ preventScroll: true });
  });

  return {
    el: panel,
    resize() {
      if (image.width !== size.bw || image.height !== size.bh) { image.width = size.bw; image.height = size.bh; }
      image.style.width = size.dispW + "px"; image.style.height = size.dispH + "px";
      panel.style.width = size.dispW + 2 + "px";                        // titles wrap inside the picture's width
    },
    draw(f) {
      const st = f.st, ctx = image.getContext("2d");
      ctx.drawImage(layers.overlay(st.overlay, maps.pred, "ocr", v.cf.editPred), 0, 0);
      layers.outline(ctx, st.y, st.x);
      const shown = st.overlay === "marked" ? `${markName}: ${markPct}% of the image`
        : st.overlay === "prediction" && v.cf.editPred ? "OCR's prediction with the edit, per cell"
          : st.overlay === "prediction" || st.overlay === "errors" ? `${st.overlay}, ${data.predBy}` : st.overlay;
      drawLegend(st.overlay);
      drawClasses(st);
      title.textContent = `image (${shown}) · selected cell = ${s}x${s} px`;
    },
  };
}
