// The view's state store: synced with the widget model both ways, debounced while following the pointer.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createStore, HOVER_SYNC_MS, initialState } from "../../ocrviz/widgets/js/store.js";
import { fakeModel, fakeTimers } from "./fake_model.mjs";

const dims = { h: 4, w: 9 };                                       // a non-square grid
const make = (traits = {}) => {
  const model = fakeModel({ selected: [1, 2], context_view: "mass", overlay: "image", hover_region: -1, pinned: false, scale: "sqrt",
    shared_scale: false, ...traits });
  const timers = fakeTimers(), store = createStore(model, initialState(model, dims), dims, timers), seen = [];
  store.subscribe((changed) => seen.push([...changed].sort()));
  return { model, timers, store, seen };
};

test("initial state: the model's traits, clamped to the grid, invalid values replaced", () => {
  const model = fakeModel({ selected: [10, -3], context_view: "pretty", overlay: "nonsense", scale: "cubic", pinned: 1 });
  const st = initialState(model, dims);
  assert.deepEqual([st.y, st.x], [3, 0]);
  assert.equal(st.view, "mass");                                  // the default view: by class
  assert.equal(st.overlay, "image"); assert.equal(st.scale, "sqrt"); assert.equal(st.pinned, true);
  assert.equal(initialState(fakeModel({ context_view: "density" }), dims).view, "density");
});

test("a click sends selected and pinned at once; subscribers hear what changed", () => {
  const { model, store, seen } = make();
  store.set({ pinned: true, y: 3, x: 8 });
  assert.deepEqual(model.sent, [["selected", [3, 8]], ["pinned", true]]);
  assert.deepEqual(seen, [["pinned", "x", "y"]]);
  store.set({ y: 3, x: 8 });                                       // nothing changed: nothing sent, nobody told
  assert.equal(model.sent.length, 2); assert.equal(seen.length, 1);
});

test("following the pointer: the selection reaches Python once, after the pointer stops", () => {
  const { model, timers, store, seen } = make();
  for (let x = 0; x < 5; x++) { store.set({ y: 0, x }, { push: "debounce" }); timers.advance(HOVER_SYNC_MS / 4); }
  assert.equal(model.sent.length, 0);
  assert.equal(seen.length, 5);                                    // every move redraws at once
  timers.advance(HOVER_SYNC_MS);
  assert.deepEqual(model.sent, [["selected", [0, 4]]]);
  store.set({ y: 2, x: 2 }, { push: "debounce" });
  store.set({ y: 1, x: 1 });                                       // a click cancels the pending hover sync
  timers.advance(HOVER_SYNC_MS * 2);
  assert.deepEqual(model.sent.slice(1), [["selected", [1, 1]]]);
});

test("Python -> view: a cell set from Python is pinned, invalid values are ignored, nothing is sent back", () => {
  const { model, store, seen } = make();
  model.python("selected", [3, 7]);
  assert.deepEqual([store.state.y, store.state.x, store.state.pinned], [3, 7, true]);
  model.python("scale", "log"); model.python("scale", "cubic"); model.python("context_view", "x"); model.python("overlay", "errors");
  assert.equal(store.state.scale, "log"); assert.equal(store.state.view, "mass"); assert.equal(store.state.overlay, "errors");
  model.python("hover_region", 2); model.python("shared_scale", true);
  assert.equal(store.state.hover, 2); assert.equal(store.state.shared, true);
  assert.equal(model.sent.length, 0);
  assert.deepEqual(seen, [["pinned", "x", "y"], ["scale"], ["overlay"], ["hover"], ["shared"]]);
});

test("view-only keys are not synced; dispose removes every model listener", () => {
  const { model, store } = make();
  store.set({ sort: "influence", dropped: new Set([1]), hover: 2, shared: true, view: "density" });
  assert.deepEqual(model.sent, [["hover_region", 2], ["shared_scale", true], ["context_view", "density"]]);
  assert.ok(model.listeners("change:selected") > 0);
  store.dispose();
  for (const t of ["selected", "pinned", "scale", "shared_scale", "context_view", "overlay", "hover_region"]) assert.equal(model.listeners("change:" + t), 0);
});
