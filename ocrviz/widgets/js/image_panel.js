// The image panel: the picture under its overlay, the selected cell, ASPP's taps and their tooltip,
// the overlay's colour key.  Pointer input on the picture picks the cell.
import { el, swatch } from "./dom.js";
import { tapsLayer } from "./taps.js";
import { tooltip } from "./tooltip.js";

export function imagePanel(v) {
  const { data, store, layers, size } = v, { H, W, h, w, s, maps, markName, markPct, colours } = data;
  const panel = el("div", "ocrviz-panel ocrviz-panel-image");
  const title = el("div", "ocrviz-title");
  const stack = el("div", "ocrviz-stack");
  const image = el("canvas", "ocrviz-image");
  image.tabIndex = 0;
  image.setAttribute("data-lm-suppress-shortcuts", "true");   // arrow keys move the pixel, not notebook cells
  image.setAttribute("aria-label", "image: click or hover to pick a pixel; arrow keys move it");
  const taps = tapsLayer(data), tip = tooltip(taps, image, data);
  stack.append(image, taps, tip);
  const legend = el("div", "ocrviz-overlay-legend");
  panel.append(title, stack, legend);
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

  // ---- input: hover follows the pointer until a click pins the cell
  const cellOf = (ev) => {   // offsetX/clientWidth: borders and CSS scaling do not shift the pixel
    const px = Math.min(W - 1, Math.max(0, Math.floor(ev.offsetX / image.clientWidth * W)));
    const py = Math.min(H - 1, Math.max(0, Math.floor(ev.offsetY / image.clientHeight * H)));
    return [Math.min(h - 1, Math.floor(py / s)), Math.min(w - 1, Math.floor(px / s))];
  };
  v.listen.on(image, "mousemove", (ev) => {
    const st = store.state;
    if (!st.pinned) { const [y, x] = cellOf(ev); store.set({ y, x }, { push: "debounce" }); }
    tip.show(ev, st.mode === "aspp", size.dispW);
  });
  v.listen.on(image, "mouseleave", () => { tip.hidden = true; });
  v.listen.on(image, "mousedown", (ev) => {   // on press, not release: the redraw starts one step earlier
    if (ev.button !== 0) return;
    const [y, x] = cellOf(ev), st = store.state;
    store.set({ pinned: !(st.pinned && y === st.y && x === st.x), y, x });
    image.focus({ preventScroll: true });
  });

  return {
    el: panel,
    resize() {
      if (image.width !== size.bw || image.height !== size.bh) { image.width = size.bw; image.height = size.bh; }
      image.style.width = taps.style.width = size.dispW + "px";
      image.style.height = taps.style.height = size.dispH + "px";     // the taps over the canvas' content box
      panel.style.width = size.dispW + 2 + "px";                        // titles wrap inside the picture's width
    },
    draw(f) {
      const st = f.st, aspp = st.mode === "aspp" && maps.aspp.data.length;
      const ctx = image.getContext("2d");
      ctx.drawImage(layers.overlay(st.overlay, aspp ? maps.aspp : maps.pred, aspp ? "aspp" : "ocr", v.cf.editPred), 0, 0);
      layers.outline(ctx, st.y, st.x);
      const shown = st.overlay === "marked" ? `${markName}: ${markPct}% of the image`
        : st.overlay === "prediction" && st.mode === "ocr" && v.cf.editPred ? "prediction with the edit, per cell" : st.overlay;
      drawLegend(st.overlay);
      title.textContent = st.mode === "aspp"
        ? `image (${shown}) · ASPP taps of the selected cell (${s}px cells)`
        : `image (${shown}) · selected cell = ${s}x${s} px`;
      taps.draw(st.y, st.x, st.mode === "aspp");
    },
  };
}
