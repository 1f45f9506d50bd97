// The selected cell's map of a site too large to ship whole, asked of the kernel (ocrviz.widgets.site_rows):
// the page sets `site_request` {key, rows: [{key, head, site, row}, ...]} (every row one redraw wants, so
// that all heads' panels ask in one message: ipywidgets sends only the latest of quick successive
// changes of one trait); Python answers each row in turn in `site_answer` {key, head, site, row, maps
// (8-bit codes, a buffer spec), scale, off, shares, sources?, source_row?} or {key, error}.
// Answers are kept (the last 64) and shared by every panel and view of the widget.
import { decodeB64, dequantise, f32, u8 } from "./codecs.js";

const KEEP = 64;
const clients = new WeakMap();

export const rowKey = (head, site, row) => `${head}/${site}/${row}`;

// one answer -> {row (Float32Array over the site's grid), off, shares, sources, sourceRow}
export async function decodeAnswer(ans) {
  const codes = u8(await decodeB64(ans.maps));
  return { row: dequantise(codes, [ans.scale], codes.length), off: ans.off, shares: ans.shares,
    sources: ans.sources || null, sourceRow: ans.source_row ? f32(await decodeB64(ans.source_row)) : null };
}

function client(model) {
  const got = new Map(), failed = new Map(), views = new Set();
  let batch = new Map(), scheduled = false, lastSent = new Set();     // the rows of the last request sent
  async function take() {
    const ans = model.get("site_answer") || {};
    if (!ans.key || got.has(ans.key)) return;
    if (ans.error) failed.set(ans.key, ans.error);
    else {
      got.set(ans.key, await decodeAnswer(ans));
      while (got.size > KEEP) got.delete(got.keys().next().value);
    }
    views.forEach((f) => f());
  }
  function flush() {
    scheduled = false;
    const rows = [...batch.values()].filter((r) => !got.has(r.key) && !failed.has(r.key));
    batch = new Map();
    if (rows.every((r) => lastSent.has(r.key))) return;             // all asked already (and not superseded)
    lastSent = new Set(rows.map((r) => r.key));
    model.set("site_request", { key: rows.map((r) => r.key).join("|"), rows }); model.save_changes();
  }
  return {
    at(head, site, row) {
      const key = rowKey(head, site, row);
      if (got.has(key)) return got.get(key);
      if (failed.has(key)) return { error: failed.get(key) };
      if ((model.get("site_answer") || {}).key === key) { take(); return null; }     // another view asked
      batch.set(key, { key, head, site, row });
      if (!scheduled) { scheduled = true; queueMicrotask(flush); }
      return null;
    },
    view(onArrived) {
      if (!views.size) model.on("change:site_answer", take);
      views.add(onArrived);
      return () => { views.delete(onArrived); if (!views.size) model.off("change:site_answer", take); };
    },
  };
}

// a panel's handle on the widget's one client: {at(head, site, row) -> answer | {error} | null (asked), dispose()}
export function siteKernel(model, onArrived) {
  if (!clients.has(model)) clients.set(model, client(model));
  const c = clients.get(model), dispose = c.view(onArrived);
  return { at: c.at, dispose };
}
