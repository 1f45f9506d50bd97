// The kernel request/answer protocol of counterfactuals (ocrviz.widgets.kernel_cf answers).
import assert from "node:assert/strict";
import { test } from "node:test";
import { kernelClient } from "../../ocrviz/widgets/js/kernel.js";
import { editSig } from "../../ocrviz/widgets/js/edits.js";
import { fakeModel } from "./fake_model.mjs";

const w = 7;                                  // feature grid width: cell p = (p / 7, p % 7)
const none = editSig(new Set(), null), drop1 = editSig(new Set([1]), null);
const answer = (edit, p, extra = {}) => ({ key: edit + "@" + p, edit, cell: [Math.floor(p / w), p % w],
  base: [1, 2, 3], influence: [0.1, 0.2, 0.3], after: edit === none ? null : [3, 2, 1], whole: null, whole_pending: edit !== none, ...extra });

test("one request per key; pending until the answer; then the answer's numbers", () => {
  const model = fakeModel({ cf_request: {}, cf_answer: {} }), k = kernelClient(model, w);
  let r = k.at(10, none);
  assert.equal(r.pending, true); assert.equal(r.base, null);
  assert.deepEqual(model.sent.map(([t, v]) => [t, v.key, v.cell]), [["cf_request", none + "@10", [1, 3]]]);
  k.at(10, none);                                                  // asked already: not sent again
  assert.equal(model.sent.length, 1);
  model.state.cf_answer = answer(none, 10);
  assert.equal(k.onAnswer(none + "@10", none).type, "redraw");
  r = k.at(10, none);
  assert.equal(r.pending, false); assert.deepEqual(r.base, [1, 2, 3]); assert.equal(r.edited, false);
});

test("a stale answer (another cell, an older edit) is never shown; our request is sent again", () => {
  const model = fakeModel({ cf_request: {}, cf_answer: {} }), k = kernelClient(model, w);
  k.at(10, none);
  k.at(11, drop1);                                                 // the user moved on before the answer
  assert.equal(model.sent.length, 2);
  model.state.cf_answer = answer(none, 10);                        // the answer to the first request arrives
  assert.equal(k.onAnswer(drop1 + "@11", drop1).type, "none");
  assert.equal(k.answer, null);                                    // not adopted
  assert.equal(model.sent.length, 3);                              // ours asked again (another view may have overtaken it)
  assert.equal(model.sent[2][1].key, drop1 + "@11");
  const r = k.at(11, drop1);
  assert.equal(r.pending, true); assert.equal(r.after, null);
  model.state.cf_answer = answer(drop1, 11);
  assert.equal(k.onAnswer(drop1 + "@11", drop1).type, "redraw");
  assert.deepEqual(k.at(11, drop1).after, [3, 2, 1]);
});

test("this cell's own numbers stay while an edit of it is re-run", () => {
  const model = fakeModel({ cf_request: {}, cf_answer: {} }), k = kernelClient(model, w);
  k.at(5, none); model.state.cf_answer = answer(none, 5); k.onAnswer(none + "@5", none);
  const r = k.at(5, drop1);
  assert.equal(r.pending, true); assert.deepEqual(r.base, [1, 2, 3]); assert.equal(r.edited, true);
  assert.equal(k.at(6, drop1).base, null);                         // another cell: nothing to show yet
});

test("a failing kernel: the error is reported, the view can ask again", () => {
  const model = fakeModel({ cf_request: {}, cf_answer: {} }), k = kernelClient(model, w);
  k.at(3, drop1);
  model.state.cf_answer = { key: drop1 + "@3", error: "RuntimeError: out of memory" };
  assert.deepEqual(k.onAnswer(drop1 + "@3", drop1), { type: "error", error: "RuntimeError: out of memory" });
  assert.equal(k.answer, null);
  assert.equal(k.at(3, drop1).pending, true);                      // still pending, no numbers invented
  k.at(4, drop1); k.at(3, drop1);                                  // asking again after moving away re-sends
  assert.equal(model.sent.at(-1)[1].key, drop1 + "@3");
});

test("an answer already there for our key (another view asked) is taken without a request", () => {
  const model = fakeModel({ cf_request: { key: drop1 + "@2" }, cf_answer: answer(drop1, 2) });
  const k = kernelClient(model, w), r = k.at(2, drop1);
  assert.equal(r.pending, false); assert.deepEqual(r.after, [3, 2, 1]); assert.equal(model.sent.length, 0);
});

test("the whole image's classes are adopted with their answer, for the edit shown only", () => {
  const pred = new Uint8Array([0, 1, 2, 1]);
  const model = fakeModel({ cf_request: {}, cf_answer: {}, cf_answer_pred: new DataView(pred.buffer) }), k = kernelClient(model, w);
  k.at(1, drop1);
  model.state.cf_answer = answer(drop1, 1, { whole: { changed: 2 }, whole_pending: false });
  k.onAnswer(drop1 + "@1", drop1);
  assert.deepEqual(Array.from(k.wholePred), [0, 1, 2, 1]); assert.equal(k.wholeChanged, 2);
  const m2 = fakeModel({ cf_request: {}, cf_answer: {}, cf_answer_pred: new DataView(pred.buffer) }), k2 = kernelClient(m2, w);
  k2.at(1, drop1);
  m2.state.cf_answer = answer(drop1, 1, { whole: { changed: 2 }, whole_pending: false });
  assert.equal(k2.onAnswer(none + "@1", none).type, "none");      // the user undid the edit meanwhile
  assert.equal(k2.wholePred, null);
});
