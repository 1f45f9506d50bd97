// The counterfactual box under the bars: what the edited sim row predicts at this pixel, its logits,
// and what the same edit does to every cell.  Also marks the explorer's root with the numbers
// (data-cf-pred, data-cf-logits, data-base-logits, data-cf-changed, data-cf-pending, data-cf-source).
import { argmax, describeEdit } from "./edits.js";
import { el } from "./dom.js";

export function cfPanel(v) {
  const { data, cf, root } = v, { names, hw } = data;
  const box = el("div", "ocrviz-cf");
  const logitsData = (l) => JSON.stringify(l.map((x) => +x.toFixed(6)));
  return {
    nodes: [box],
    draw(f) {
      const res = cf.on ? f.cf() : null;
      if (!res) { box.textContent = data.unavailable.counterfactuals || (cf.on ? "" : "No counterfactuals for this model."); return; }
      const { base, after, edited, pending } = res, st = f.st;
      root.dataset.cfSource = cf.page ? "page" : "kernel";
      if (pending) root.dataset.cfPending = "1"; else delete root.dataset.cfPending;
      if (!edited || !after) {
        box.textContent = pending ? "re-running OCR's head in the kernel…"
          : "click a region to drop it from this pixel's sim row, shift-click to keep only it";
        delete root.dataset.cfPred; delete root.dataset.cfLogits; delete root.dataset.cfChanged;
        if (base) root.dataset.baseLogits = logitsData(base); else delete root.dataset.baseLogits;
        return;
      }
      const b = argmax(base), a = argmax(after);
      box.replaceChildren();
      const head = el("div", "ocrviz-cf-head");
      head.textContent = `${describeEdit(st.dropped, st.gain, names)}: predicts ${names[a]}` + (a === b ? " (unchanged)" : ` (was ${names[b]})`);
      const list = el("div", "ocrviz-cf-logits");
      list.textContent = "logits: " + base.map((x, k) => `${names[k]} ${x.toFixed(2)}→${after[k].toFixed(2)}`).join(" · ");
      box.append(head, list);
      const k = cf.kernel && cf.kernel.answer;
      if (cf.editPred && cf.wholeChanged !== null) {     // the same edit on every pixel of the image
        const n = cf.wholeChanged, all = el("div", "ocrviz-cf-all");
        all.textContent = `the same edit on every cell changes ${n} of ${hw} cells (${(100 * n / hw).toFixed(1)}%); `
          + "see it with the prediction overlay";
        head.after(all);
        root.dataset.cfChanged = String(n);
      } else if (k && k.edit === cf.sig(st) && (k.whole_pending || k.whole_error)) {
        const all = el("div", "ocrviz-cf-all");
        all.textContent = k.whole_error ? "the same edit on every cell failed in the kernel: " + k.whole_error
          : "the same edit on every cell: re-running in the kernel…";
        head.after(all);
      }
      root.dataset.cfPred = String(a);
      root.dataset.cfLogits = logitsData(after);
      root.dataset.baseLogits = logitsData(base);
    },
    error(msg) { box.textContent = "the kernel could not re-run the head: " + msg; delete root.dataset.cfPending; },
  };
}
