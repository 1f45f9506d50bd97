// A fake anywidget model: get / set / on / off / save_changes, with a log of what the view sent.
export function fakeModel(traits) {
  const state = { ...traits }, handlers = new Map(), sent = [];
  const emit = (ev) => (handlers.get(ev) || []).slice().forEach((f) => f());
  return {
    state, sent,
    get: (k) => state[k],
    set: (k, v) => { state[k] = v; sent.push([k, v]); },
    save_changes: () => {},
    on: (ev, f) => { if (!handlers.has(ev)) handlers.set(ev, []); handlers.get(ev).push(f); },
    off: (ev, f) => handlers.set(ev, (handlers.get(ev) || []).filter((g) => g !== f)),
    listeners: (ev) => (handlers.get(ev) || []).length,
    // Python changes a trait: the view hears change:<k>
    python: (k, v) => { state[k] = v; emit("change:" + k); },
  };
}

// timers run by hand: setTimeout / clearTimeout and advance(ms)
export function fakeTimers() {
  let now = 0, id = 0;
  const due = new Map();
  return {
    setTimeout: (f, ms) => { due.set(++id, [now + ms, f]); return id; },
    clearTimeout: (i) => due.delete(i),
    advance(ms) {
      now += ms;
      for (const [i, [t, f]] of [...due].sort((a, b) => a[1][0] - b[1][0])) if (t <= now) { due.delete(i); f(); }
    },
    pending: () => due.size,
  };
}
