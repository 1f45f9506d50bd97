// The view's state, synced with the widget model: one place that reads the model's traits, writes
// them back, and tells subscribers which keys changed.  Several views of one widget each own a store.
//
// State key -> trait: y, x -> selected; overlay; hover -> hover_region; pinned; scale;
// shared -> shared_scale; view -> context_view.  sort, dropped, gain are the view's own (not synced).
import { SCALES } from "./scales.js";

export const OVERLAYS = ["image", "prediction", "ground truth", "errors", "marked"];
export const VIEWS = ["mass", "density"];
const TRAIT = { overlay: "overlay", hover: "hover_region", pinned: "pinned", scale: "scale", shared: "shared_scale", view: "context_view" };
export const HOVER_SYNC_MS = 200;     // a selection that follows the pointer reaches Python this long after it stops

const clamp = (v, n) => Math.min(n - 1, Math.max(0, v | 0));

// the state a view starts from: the model's traits, checked against the data (h x w grid, ASPP present)
export function initialState(model, { h, w }) {
  const sel = model.get("selected") || [0, 0];
  return {
    y: clamp(sel[0], h), x: clamp(sel[1], w),
    view: VIEWS.includes(model.get("context_view")) ? model.get("context_view") : "mass",
    overlay: OVERLAYS.includes(model.get("overlay")) ? model.get("overlay") : "image",
    hover: model.get("hover_region") ?? -1, pinned: !!model.get("pinned"),
    scale: SCALES[model.get("scale")] ? model.get("scale") : "sqrt", shared: !!model.get("shared_scale"),
    sort: "attention", dropped: new Set(), gain: null,
  };
}

// createStore(model, state, {h, w}): {state, set, subscribe, dispose}
//   set(patch, {push}): apply `patch`; push: false (the change came from Python), true (send at once) or
//   "debounce" (the selection following the pointer: sent HOVER_SYNC_MS after the last move).
//   Subscribers get the Set of keys that changed; nothing changed, nothing is called.
export function createStore(model, state, { h, w }, timers = globalThis) {
  const subs = new Set(), offs = [];
  let syncTimer = null;
  const send = (trait, value) => { model.set(trait, value); model.save_changes(); };
  const store = {
    state,
    set(patch, { push = true } = {}) {
      const changed = new Set();
      for (const [k, v] of Object.entries(patch)) if (state[k] !== v) { state[k] = v; changed.add(k); }
      if (!changed.size) return changed;
      if (push) {
        if (changed.has("y") || changed.has("x")) {
          timers.clearTimeout(syncTimer);
          if (push === "debounce") syncTimer = timers.setTimeout(() => send("selected", [state.y, state.x]), HOVER_SYNC_MS);
          else send("selected", [state.y, state.x]);
        }
        for (const k of changed) if (TRAIT[k]) send(TRAIT[k], state[k]);
      }
      for (const f of [...subs]) f(changed);
      return changed;
    },
    subscribe(f) { subs.add(f); return () => subs.delete(f); },
    // tell subscribers about a change outside the state (e.g. "cf", "erf", "resize")
    touch(...keys) { const changed = new Set(keys); for (const f of [...subs]) f(changed); },
    dispose() { timers.clearTimeout(syncTimer); for (const f of offs.splice(0)) f(); subs.clear(); },
  };
  const onModel = (trait, fn) => { const g = () => fn(model.get(trait)); model.on("change:" + trait, g); offs.push(() => model.off("change:" + trait, g)); };
  // Python -> view.  A cell set from Python stays pinned: the mouse does not move it.
  onModel("selected", (v) => {
    v = v || [0, 0];
    if (v[0] !== state.y || v[1] !== state.x) store.set({ y: clamp(v[0], h), x: clamp(v[1], w), pinned: true }, { push: false });
  });
  onModel("pinned", (v) => store.set({ pinned: !!v }, { push: false }));
  onModel("scale", (v) => { if (SCALES[v]) store.set({ scale: v }, { push: false }); });
  onModel("shared_scale", (v) => store.set({ shared: !!v }, { push: false }));
  onModel("context_view", (v) => { if (VIEWS.includes(v)) store.set({ view: v }, { push: false }); });
  onModel("overlay", (v) => { if (OVERLAYS.includes(v)) store.set({ overlay: v }, { push: false }); });
  onModel("hover_region", (v) => store.set({ hover: v }, { push: false }));
  return store;
}
