// Counterfactuals of one cell's sim row: in the page (pixel_head.js) or asked of the kernel (kernel.js).
// Holds what the current edit does to the whole image (every cell with the same edit).
import { argmax, editRow, editSig, NO_EDIT } from "./edits.js";
import { kernelClient } from "./kernel.js";
import { pixelHead } from "./pixel_head.js";

export function counterfactuals(data, model) {
  const { K, w, hw, rowOf } = data;
  const page = pixelHead(data.cfArrays, K, hw);
  const kernel = !page && !!model.get("cf_kernel") && !data.standalone ? kernelClient(model, w) : null;
  let basePred = null;
  const cf = {
    on: !!page || !!kernel, page: !!page, kernel,
    editPred: null, wholeChanged: null,        // every cell's class with the current edit, how many changed
    edit: (p, st) => editRow(rowOf(p), st.dropped, st.gain),
    sig: (st) => editSig(st.dropped, st.gain),
    // {base, influence, after, edited, pending} of cell p under the state's edit
    at(p, st) {
      if (page) {
        const row = rowOf(p), base = page(row, p), c = argmax(base), e = cf.edit(p, st);
        const influence = row.map((_, k) => { const r = editRow(row, new Set([k])); return r ? base[c] - page(r, p)[c] : 0; });
        return { base, influence, after: e ? page(e, p) : null, edited: !!e, pending: false };
      }
      const res = kernel.at(p, cf.sig(st));
      cf.editPred = kernel.wholePred; cf.wholeChanged = kernel.wholeChanged;
      return res;
    },
    clearWhole() { cf.editPred = null; cf.wholeChanged = null; if (kernel) { kernel.wholePred = null; kernel.wholeChanged = null; } },
    // the edit applied to every cell (about 20k multiply-adds per cell: on a click or a slider release)
    wholeImage(st) {
      if (!page) return;
      if (cf.sig(st) === NO_EDIT) { cf.editPred = null; return; }
      if (!basePred) basePred = page.predictAll(rowOf);
      cf.editPred = page.predictAll((p) => cf.edit(p, st) || rowOf(p));
      let n = 0; for (let i = 0; i < hw; i++) n += cf.editPred[i] !== basePred[i];
      cf.wholeChanged = n;
    },
    onAnswer(p, st) {
      const r = kernel.onAnswer(cf.sig(st) + "@" + p, cf.sig(st));
      cf.editPred = kernel.wholePred; cf.wholeChanged = kernel.wholeChanged;
      return r;
    },
  };
  return cf;
}
