// ASPP's effective receptive field of the selected cell: |∂ output / ∂ input| summed per feature cell
// (a distribution, computed in the kernel on demand or stored in the page).  One plain sentence when
// there is none for this cell.  The same panel (id "erf") beside a head whose map rests on a convention
// (PSP's bins, MMSeg's ASPP: site_payload's head entry with `erf`), with that head's name.
export function erfSource(v, id = "aspp-erf", who = "ASPP") {
  const { data, model } = v, { preErf } = data;
  return {
    id,
    legendNote: () => "gradient saliency",
    watches: ["erf"],
    map(f, out) {
      const erf = data.erfFor(f.st.y, f.st.x);
      if (!erf) {
        const status = model.get("erf_status") || "";
        const stored = preErf.size ? ` (${preErf.size} cell${preErf.size === 1 ? " has" : "s have"} one)` : "";
        return { why: status || data.unavailable[id] && (data.unavailable[id] + stored)
          || (data.standalone ? `This page holds no ERF for this cell${stored}.`
            : model.get("show_erf") ? "No ERF for this cell yet." : "The ERF is computed for each clicked cell when show_erf is on.") };
      }
      out.set(erf);
      return { off: 0, map: "erf", topWhat: "this cell's largest ERF share", shares: data.erfMassFor(f.st.y, f.st.x) };
    },
    title: () => `${who}'s effective receptive field (|∂ output / ∂ input| per cell; sums to 1)`,
  };
}
