// site_context.js: a site entry as site_payload.py packs it (base64, deflate, byte planes, 8-bit rows with
// one scale each) decodes back to the float rows within half a code; the strip's shares, the off-grid
// mass and the ranked sources are the sent ones; the legend says "exact" or the convention.
import assert from "node:assert/strict";
import { test } from "node:test";
import { deflateSync } from "node:zlib";
import { exactness, loadHeads, rankedSources, siteRow, siteShares } from "../../ocrviz/widgets/js/site_context.js";

// the packing of site_payload._spec, written again here
function spec(bytes, shuffle = 1, deflate = true) {
  let raw = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (shuffle > 1) {                                   // items -> byte planes
    const n = raw.length / shuffle, out = Buffer.alloc(raw.length);
    for (let i = 0; i < n; i++) for (let b = 0; b < shuffle; b++) out[b * n + i] = raw[i * shuffle + b];
    raw = out;
  }
  const buf = deflate ? deflateSync(raw) : raw;
  return { b64: buf.toString("base64"), deflate, shuffle, fixed: 0 };
}
const f32spec = (a) => spec(Float32Array.from(a), 4);

// a 2 x 3 grid (6 cells), 2 classes, 3 sources; cell q's map: rows[q], off-grid mass off[q]
const h = 2, w = 3, hw = 6, K = 2;
const cls = [0, 0, 1, 1, 0, 1];
const rows = Array.from({ length: hw }, (_, q) => { const r = Array.from({ length: hw }, (_, i) => ((i + 1) * (q + 2)) % 7 + (i === q ? 0 : 1)); return r; });
const off = rows.map((_, q) => (q === 5 ? 0.25 : 0));
const maps = rows.map((r, q) => { const s = r.reduce((a, b) => a + b, 0); return r.map((v) => (v / s) * (1 - off[q])); });
const scales = maps.map((r) => Math.max(...r) / 255);
const codes = Uint8Array.from(maps.flatMap((r, q) => r.map((v) => Math.round(v / scales[q]))));
const mass = maps.flatMap((r) => { const m = [0, 0]; r.forEach((v, i) => { m[cls[i]] += v; }); return m; });
const srcRows = maps.flatMap((_, q) => [0.5, 0.2 + 0.01 * q, 0.3 - 0.01 * q]);
const entry = (extra) => ({ id: "site-0", title: "t: criss-cross at head.passes.0", kind: "criss_cross", site: "head.passes.0",
  exact: true, convention: "", grid: [h, w], label: "t", maps: spec(codes, 1, false), scales: f32spec(scales),
  off_grid: f32spec(off), class_mass: f32spec(mass), ...extra });

test("every row decodes within half a code; shares and off-grid as sent", async () => {
  const [head] = await loadHeads([{ label: "t", sites: [entry({}), entry({ exact: false, convention: "rollout of the two passes",
    sources: ["a", "b", "c"], source_rows: f32spec(srcRows), maps: spec(codes) })] }]);
  assert.equal(head.label, "t");
  for (const s of head.sites) {
    const out = new Float32Array(hw);
    for (let q = 0; q < hw; q++) {
      const o = siteRow(s, q, out);
      assert.ok(Math.abs(o - off[q]) < 1e-7, `off-grid of cell ${q}`);
      for (let i = 0; i < hw; i++) assert.ok(Math.abs(out[i] - maps[q][i]) <= scales[q] / 2 + 1e-7, `cell ${q} source ${i}`);
      const sh = siteShares(s, q, K);
      assert.ok(Math.abs(sh[0] + sh[1] + o - 1) < 1e-6, "shares + off-grid = 1");
      assert.ok(Math.abs(sh[0] - mass[2 * q]) < 1e-7 && Math.abs(sh[1] - mass[2 * q + 1]) < 1e-7);
    }
  }
  assert.equal(exactness(head.sites[0]), "exact");
  assert.equal(exactness(head.sites[1]), "convention: rollout of the two passes");
  assert.deepEqual(rankedSources(head.sites[0], 0), [], "no bars without sources");
  const r = rankedSources(head.sites[1], 4, 2);
  assert.deepEqual(r.map((x) => x.name), ["a", "c"]);          // 0.5, 0.26 > 0.24
  assert.ok(Math.abs(r[1].weight - 0.26) < 1e-6);
});

test("a site too large to ship keeps its sentence and no buffers", async () => {
  const [head] = await loadHeads([{ label: "big", sites: [{ id: "site-0", title: "big", grid: [128, 256], exact: false,
    convention: "", why: "This site's 128 x 256 grid (32768 cells) is too large" }] }]);
  assert.match(head.sites[0].why, /too large/);
  assert.equal(head.sites[0].codes, undefined);
});

test("the site picker's saved state: one index per head, out of range or absent is the first site", async () => {
  const { pickOf, withPick } = await import("../../ocrviz/widgets/js/site_context.js");
  assert.equal(pickOf([0, 2], 1, 3), 2);
  assert.equal(pickOf([0, 3], 1, 3), 0, "out of range");
  assert.equal(pickOf([1], 1, 3), 0, "absent");
  assert.equal(pickOf(undefined, 0, 3), 0);
  assert.equal(pickOf([-1], 0, 3), 0);
  assert.deepEqual(withPick([], 2, 1), [0, 0, 1]);
  assert.deepEqual(withPick([2, 0], 0, 1), [1, 0]);
});
