// OCR's context map of the selected pixel: sum_k sim[p,k] * region_k (the edited row when there is an
// edit), or, while a region's bar is hovered, that region's spatial-softmax weights.  Exact.
import { ocrContext } from "./context_maps.js";
import { fmt } from "./dom.js";
import { ocrShares } from "./mass.js";

export function ocrSource(v) {
  const { data } = v, { K, hw, names, sim, region, regionMass } = data;
  const exact = regionMass.length === K * K;          // the class shares from the float maps, not the 8-bit ones
  return {
    id: "ocr-context",
    legendNote: () => "exact",
    watches: ["hover"],
    map(f, out) {
      const k = f.st.hover;
      if (k >= 0 && k < K) {
        out.set(region.subarray(k * hw, (k + 1) * hw));
        return { off: 0, map: "region", region: String(k), topWhat: `region “${names[k]}”'s largest weight`,
          shares: exact ? Array.from(regionMass.subarray(k * K, (k + 1) * K)) : null };
      }
      const row = v.cf.edit(f.p, f.st) || f.row;
      ocrContext(region, row, hw, out);
      return { off: 0, map: "context", topWhat: "this pixel's largest context weight", shares: exact ? ocrShares(row, regionMass, K) : null };
    },
    title(f) {
      const k = f.st.hover;
      if (k >= 0 && k < K) return `OCR: region “${names[k]}”'s spatial-softmax weights (sum to 1); this pixel gives it ${fmt(sim[f.p * K + k], 4)}`;
      return "OCR: where this pixel's context comes from, Σₖ sim[p,k] · regionₖ (sums to 1)" + (v.cf.edit(f.p, f.st) ? " — with the edited row" : "");
    },
  };
}
