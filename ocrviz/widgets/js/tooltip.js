// The tooltip over the image: the ASPP taps under the pointer, one line each (SVG titles never show:
// the taps layer takes no pointer events).
import { el } from "./dom.js";

export function tooltip(tapsSvg, image, data) {
  const tip = el("div", "ocrviz-tooltip");
  tip.hidden = true;
  tip.show = (ev, enabled, dispW) => {
    if (!enabled) { tip.hidden = true; return; }
    const px = ev.offsetX / image.clientWidth * data.W, py = ev.offsetY / image.clientHeight * data.H, lines = [];
    for (const c of tapsSvg.querySelectorAll(".ocrviz-tap")) {
      const dx = +c.getAttribute("cx") - px, dy = +c.getAttribute("cy") - py, r = +c.dataset.r;
      if (dx * dx + dy * dy <= r * r) lines.push(c.dataset.tip);
    }
    tip.hidden = !lines.length;
    if (lines.length) {
      tip.textContent = lines.join("\n");
      tip.style.left = Math.min(ev.offsetX + 14, dispW - 40) + "px"; tip.style.top = ev.offsetY + 14 + "px";
    }
  };
  return tip;
}
