// Any head's context sites (ocrviz.widgets.site_payload): every cell's map sent as one 8-bit row with
// its own scale, its exact class masses and off-grid mass, and, where a site mixes a few sources
// (regions, bins, bases), each cell's source row (ranked bars).  One context panel per head
// (data-panel "site-<j>", j = the head's place in the `sites` trait); a picker when the head has
// several sites (CCNet's passes, SegFormer's layers).  The picker changes only this panel's
// contents, never its height.
import { decodeB64, dequantise, u8, f32 } from "./codecs.js";
import { el, fmt } from "./dom.js";
import { cellSpan, siteCellOf, spreadTo } from "./site_grids.js";
import { siteKernel } from "./site_kernel.js";

const NBARS = 5;            // the ranked bars: this many sources, always (a fixed height)


// one site entry -> typed arrays (codes stay 8-bit: a row is dequantised on demand)
export async function loadSite(e) {
  const out = { ...e, hw: e.grid[0] * e.grid[1] };
  if (e.why) return out;
  out.codes = u8(await decodeB64(e.maps));
  out.scales = f32(await decodeB64(e.scales));
  out.off = f32(await decodeB64(e.off_grid));
  out.mass = f32(await decodeB64(e.class_mass));
  out.rows = e.source_rows ? f32(await decodeB64(e.source_rows)) : null;
  return out;
}

// the `sites` trait [{label, sites: [entry, ...]}, ...] -> the same with each entry decoded
export async function loadHeads(heads) {
  return Promise.all((heads || []).map(async (hd) => ({ label: hd.label, erf: !!hd.erf,
    sites: await Promise.all(hd.sites.map(loadSite)) })));
}

// cell p's map at site `s` into `out` (HW); returns its off-grid mass
export function siteRow(s, p, out) {
  out.set(dequantise(s.codes.subarray(p * s.hw, (p + 1) * s.hw), [s.scales[p]], s.hw));
  return s.off[p];
}

// cell p's K class masses (exact: computed in Python from the float map)
export function siteShares(s, p, K) { return Array.from(s.mass.subarray(p * K, (p + 1) * K)); }

// the largest `n` of one source row: [{name, weight, index}] largest first, ties by index
export function rankRow(names, row, n = NBARS) {
  const order = Array.from({ length: names.length }, (_, i) => i).sort((a, b) => (row[b] - row[a]) || (a - b));
  return order.slice(0, n).map((i) => ({ name: names[i], weight: row[i], index: i }));
}

// the largest `n` sources of cell p: [{name, weight}] largest first, ties by index
export function rankedSources(s, p, n = NBARS) {
  if (!s.rows || !s.sources) return [];
  const S = s.sources.length;
  return rankRow(s.sources, s.rows.subarray(p * S, (p + 1) * S), n);
}

// what the legend says the map is: "exact" or its convention
export function exactness(s) { return s.exact ? "exact" : `convention: ${s.convention}`; }

// the row of site `s` that explorer cell (y, x) of grid [h, w] selects: [index, [row, col]] on the
// site's cell grid (a rollout's rows may be cells of another grid than its map's)
export function siteRowOf(s, y, x, grid) {
  const cg = s.cell_grid || s.grid, [r, c] = siteCellOf(y, x, grid, cg);
  return [r * cg[1] + c, [r, c]];
}

// what the panel says under its legend: the site's own note, then how its grid is drawn
export function siteNote(s) { return [s.note, s.grid_note].filter(Boolean).map((t) => t + ".").join(" "); }

// the `site_pick` trait (one site index per head; saved in an exported page) -> head j's pick, 0 when absent or out of range
export function pickOf(picks, j, n) {
  const p = Array.isArray(picks) ? Number(picks[j]) : NaN;
  return Number.isInteger(p) && p >= 0 && p < n ? p : 0;
}

// `picks` with head j's entry set to p (earlier heads without one get 0)
export function withPick(picks, j, p) {
  const out = Array.isArray(picks) ? picks.slice() : [];
  while (out.length <= j) out.push(0);
  out[j] = p;
  return out;
}

export function siteSource(v, head, j) {
  const { data, model } = v, { h, w, K } = data;
  let pick = pickOf(model.get("site_pick"), j, head.sites.length);
  const picker = el("select", "ocrviz-site-pick", { "aria-label": `${head.label}: which context site` });
  head.sites.forEach((s, i) => { const o = el("option", "", { value: i }); o.textContent = s.title; picker.append(o); });
  picker.value = String(pick);
  const pickRow = el("div", "ocrviz-site-row");
  pickRow.append(picker);
  pickRow.style.visibility = head.sites.length > 1 ? "" : "hidden";      // kept: the same height for every head
  const few = head.sites.some((s) => s.sources);
  const bars = el("div", "ocrviz-site-bars");
  const rows = [];
  if (few) { const n = el("div", "ocrviz-note"); n.textContent = `the sources this cell mixes: its ${NBARS} largest weights`; bars.append(n); }
  for (let i = 0; i < NBARS && few; i++) {
    const r = el("div", "ocrviz-site-source");
    const sw = el("span", "ocrviz-swatch"), nm = el("span", "ocrviz-name");
    const bar = el("span", "ocrviz-bar"), fill = el("span", "ocrviz-bar-fill"); bar.append(fill);
    const val = el("span", "ocrviz-value");
    r.append(sw, nm, bar, val);
    rows.push({ r, sw, nm, fill, val }); bars.append(r);
  }
  // a site's plain sentence (e.g. DANet's "CAM has no spatial map"), kept in place for every pick of this head
  const said = el("div", "ocrviz-note ocrviz-site-note");
  const noted = head.sites.some((s) => s.note || s.grid_note);
  let row = null;                   // the picked site's row on its own grid, before spreadTo
  // a site too large to ship whole: the selected cell's map from the kernel (a saved page has none)
  const kern = head.sites.some((s) => s.on_demand) && !data.standalone ? siteKernel(model, () => v.redraw()) : null;
  if (kern) v.listen.add(() => kern.dispose());
  const fromKernel = (s, q) => (s.why && s.on_demand && kern ? kern.at(j, pick, q) : null);
  // the selected cell of a coarser grid: a dashed outline over the explorer cells it is drawn on
  function outlineSpan(ctx, [r0, r1, c0, c1]) {
    const { bw, bh, dpr } = v.size, sx = (bw / data.W) * data.s, sy = (bh / data.H) * data.s;
    ctx.save();
    for (const [colour, lw, dash] of [["#000", 3 * dpr, []], ["#fff", 1.5 * dpr, [4 * dpr, 3 * dpr]]]) {
      ctx.lineWidth = lw; ctx.strokeStyle = colour; ctx.setLineDash(dash);
      ctx.strokeRect(c0 * sx, r0 * sy, (c1 - c0) * sx, (r1 - r0) * sy);
    }
    ctx.restore();
  }
  const source = {
    id: `site-${j}`,
    titleNodes: [pickRow],
    after: [...(noted ? [said] : []), ...(few ? [bars] : [])],
    panelClass: "ocrviz-panel-site",
    attach() {
      v.listen.on(picker, "change", () => {
        pick = +picker.value;
        model.set("site_pick", withPick(model.get("site_pick"), j, pick)); model.save_changes();   // kept by save_html
        v.redraw(); v.refocus();
      });
      const fromPython = () => {
        const p = pickOf(model.get("site_pick"), j, head.sites.length);
        if (p !== pick) { pick = p; picker.value = String(p); v.redraw(); }
      };
      model.on("change:site_pick", fromPython);
      v.listen.add(() => model.off("change:site_pick", fromPython));
    },
    site: () => head.sites[pick],
    map(f, out) {
      const s = head.sites[pick], [q] = siteRowOf(s, f.st.y, f.st.x, [h, w]);
      if (s.why && s.on_demand && kern) {
        const a = kern.at(j, pick, q);
        if (!a) return { why: `Asking the kernel for this cell's map (the site's ${s.grid[0]} x ${s.grid[1]} grid is too large to send whole).` };
        if (a.error) return { why: `The kernel could not read this cell's map: ${a.error}` };
        spreadTo(a.row, s.grid, [h, w], out);
        return { off: a.off, map: "site-kernel", topWhat: "this cell's largest context weight", shares: a.shares };
      }
      if (s.why) return { why: s.why };
      if (!row || row.length !== s.hw) row = new Float32Array(s.hw);
      const off = siteRow(s, q, row);
      spreadTo(row, s.grid, [h, w], out);
      return { off, map: "site", topWhat: "this cell's largest context weight", shares: siteShares(s, q, K) };
    },
    title(f, r) {
      const s = head.sites[pick];
      return `${s.title} (${s.exact ? "exact" : "a convention: see the legend"})`;
    },
    legendNote: () => exactness(head.sites[pick]),
    draw(ctx, f, panel) {
      const s = head.sites[pick];
      panel.dataset.site = String(pick); panel.dataset.siteName = s.site;
      panel.dataset.exact = String(!!s.exact); panel.dataset.head = head.label;
      panel.dataset.convention = s.exact ? "" : s.convention;
      panel.dataset.note = s.note || "";
      said.textContent = siteNote(s);
      said.style.visibility = said.textContent ? "" : "hidden";
      const cg = s.cell_grid || s.grid, [q, [r, c]] = siteRowOf(s, f.st.y, f.st.x, [h, w]);
      panel.dataset.siteGrid = `${s.grid[0]}x${s.grid[1]}`;
      const asked = fromKernel(s, q), drawn = !s.why || (asked && !asked.error);
      panel.dataset.siteCell = drawn ? `${r},${c}` : "";
      panel.dataset.cellGrid = `${cg[0]}x${cg[1]}`;
      panel.dataset.onDemand = s.on_demand ? (kern ? "kernel" : "none") : "";
      if (drawn && (cg[0] !== h || cg[1] !== w)) outlineSpan(ctx, cellSpan(r, c, [h, w], cg));
      const top = !drawn ? [] : asked ? (asked.sources ? rankRow(asked.sources, asked.sourceRow) : []) : rankedSources(s, q);
      const mx = top.length ? top[0].weight || 1 : 1;
      rows.forEach((row, i) => {
        const t = top[i];
        row.r.style.visibility = t ? "" : "hidden";
        if (!t) return;
        const k = data.names.indexOf(t.name), rgb = k >= 0 ? data.palette[k] : [150, 150, 150];
        row.sw.style.background = row.fill.style.background = `rgb(${rgb.join(",")})`;
        row.nm.textContent = t.name; row.val.textContent = fmt(t.weight, 4);
        row.fill.style.width = (100 * t.weight / mx).toFixed(2) + "%";
        row.r.dataset.name = t.name; row.r.dataset.weight = t.weight.toFixed(6); row.r.dataset.rank = String(i + 1);
      });
    },
  };
  return source;
}
