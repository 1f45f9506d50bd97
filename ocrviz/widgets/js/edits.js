// Edits of one cell's sim row (the counterfactual panel's rule; ocrviz.widgets.kernel_cf.edit_rows in Python).

// the sim row `row` with the regions in `dropped` removed, region gain.k scaled by gain.f, and the
// rest renormalised (null: no edit, or nothing left)
export function editRow(row, dropped, gain) {
  const scaledK = gain && gain.f !== 1;
  if (!dropped.size && !scaledK) return null;
  const r = row.map((v, k) => (dropped.has(k) ? 0 : scaledK && k === gain.k ? v * gain.f : v));
  const t = r.reduce((a, b) => a + b, 0);
  return t > 0 ? r.map((v) => v / t) : null;
}

// the edit as a string key: sorted dropped regions and the gain (when it changes anything)
export function editSig(dropped, gain) {
  return JSON.stringify([[...dropped].sort((a, b) => a - b), gain && gain.f !== 1 ? [gain.k, gain.f] : null]);
}
export const NO_EDIT = "[[],null]";

export const argmax = (v) => v.reduce((b, x, i) => (x > v[b] ? i : b), 0);

// "without road, sky" / "only sidewalk" / "car ×1.50", joined by "; "
export function describeEdit(dropped, gain, names) {
  const what = [], K = names.length;
  if (dropped.size === K - 1) {
    const kept = names.findIndex((_, k) => !dropped.has(k));
    what.push("only " + names[kept]);
  } else if (dropped.size) what.push("without " + [...dropped].sort((x, y) => x - y).map((k) => names[k]).join(", "));
  if (gain && gain.f !== 1) what.push(`${names[gain.k]} ×${gain.f.toFixed(2)}`);
  return what.join("; ");
}
