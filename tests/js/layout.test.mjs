// Picture sizes: whole CSS px per feature cell, the bars beside the pictures while that keeps >= 6 px a cell.
import assert from "node:assert/strict";
import { test } from "node:test";
import { BAR_W, layoutFor } from "../../ocrviz/widgets/js/layout.js";

const toy = { W: 512, s: 8 };                     // 64 cells wide

test("a 1296-px notebook: bars beside two 448-px pictures (7 px a cell)", () => {
  const lay = layoutFor(1296, toy, 0);
  assert.deepEqual(lay, { side: 448, stacked: false });
  assert.equal(lay.side * toy.s / toy.W, 7);
});

test("narrow: the bars go below; very narrow: one picture a row; always whole px a cell", () => {
  for (const avail of [700, 500, 300, 900, 1296, 2000]) {
    const lay = layoutFor(avail, toy, 0), cell = lay.side * toy.s / toy.W;
    assert.equal(cell, Math.floor(cell), `${avail}: ${cell} px a cell`);
    const used = lay.stacked ? 2 * lay.side : 2 * lay.side + BAR_W;
    assert.ok(used <= avail || lay.side * 1 <= avail, `${avail}: ${JSON.stringify(lay)} does not fit`);
  }
  assert.equal(layoutFor(500, toy, 0).stacked, true);
});

test("a fixed width wins; no width known: 300 px", () => {
  assert.deepEqual(layoutFor(1296, toy, 384), { side: 384, stacked: false });
  assert.deepEqual(layoutFor(0, toy, 0), { side: 300, stacked: false });
  assert.equal(layoutFor(2000, toy, 0, 2, Math.round(BAR_W * 1.35)).stacked, false);   // size="large": wider bars
});
