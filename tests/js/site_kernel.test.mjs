// site_kernel.js: a site too large to ship whole asks the kernel for the selected cell's row once per key,
// takes the answer (8-bit codes + scale, decoded within half a code), keeps it, reports errors, and
// frees its listener on dispose.
import assert from "node:assert/strict";
import { test } from "node:test";
import { deflateSync } from "node:zlib";
import { fakeModel } from "./fake_model.mjs";
import { rowKey, siteKernel } from "../../ocrviz/widgets/js/site_kernel.js";

const spec = (bytes) => ({ b64: deflateSync(Buffer.from(bytes)).toString("base64"), deflate: true, shuffle: 1, fixed: 0 });
// resolves when the client reports an arrival (decoding is asynchronous: DecompressionStream)
function arrivals() {
  const waiting = [];
  let count = 0;
  return { get count() { return count; }, on: () => { count++; waiting.splice(0).forEach((r) => r()); },
    next: () => new Promise((r) => waiting.push(r)) };
}

test("asks once, draws the answer, keeps it", async () => {
  const model = fakeModel({ site_request: {}, site_answer: {} });
  const got = arrivals();
  const k = siteKernel(model, got.on);
  assert.equal(k.at(1, 0, 7), null);
  assert.equal(k.at(0, 2, 3), null, "another head's panel in the same redraw");
  await Promise.resolve();
  assert.equal(k.at(1, 0, 7), null, "still waiting");
  await Promise.resolve();
  assert.deepEqual(model.sent.map(([n, v]) => [n, v.key, v.rows.map((r) => [r.head, r.site, r.row])]),
    [["site_request", `${rowKey(1, 0, 7)}|${rowKey(0, 2, 3)}`, [[1, 0, 7], [0, 2, 3]]]], "one request for both, sent once");
  const row = [0.1, 0.6, 0.3, 0], scale = 0.6 / 255, codes = Uint8Array.from(row.map((v) => Math.round(v / scale)));
  const next = got.next();
  model.python("site_answer", { key: "1/0/7", head: 1, site: 0, row: 7, maps: spec(codes), scale, off: 0, shares: [0.4, 0.6] });
  await next;
  assert.equal(got.count, 1);
  const a = k.at(1, 0, 7);
  a.row.forEach((v, i) => assert.ok(Math.abs(v - row[i]) <= scale / 2 + 1e-9));
  assert.deepEqual(a.shares, [0.4, 0.6]);
  assert.equal(k.at(1, 0, 8), null);
  await Promise.resolve();
  assert.equal(model.sent.length, 2, "a new cell is asked");
  assert.deepEqual(model.sent[1][1].rows.map((r) => r.row), [8]);
  assert.ok(k.at(1, 0, 7).row, "the first answer is kept");
  k.dispose();
  assert.equal(model.listeners("change:site_answer"), 0);
});

test("an error is said, an answer for another key is kept for later", async () => {
  const model = fakeModel({ site_request: {}, site_answer: {} });
  const got = arrivals();
  const k = siteKernel(model, got.on);
  k.at(0, 2, 5);
  let next = got.next();
  model.python("site_answer", { key: "0/2/5", error: "ValueError: row 5 is outside" });
  await next;
  assert.match(k.at(0, 2, 5).error, /outside/);
  next = got.next();
  model.python("site_answer", { key: "0/2/6", maps: spec(Uint8Array.of(255)), scale: 1, off: 0.5, shares: [0.5] });
  await next;
  const before = model.sent.length;
  assert.equal(k.at(0, 2, 6).off, 0.5, "taken from the trait, not asked again");
  await Promise.resolve();
  assert.equal(model.sent.length, before);
});
