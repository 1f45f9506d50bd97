"""Reading the explorer's DOM hooks and timing redraws (shared by the browser tests and the benchmark)."""
from __future__ import annotations

from typing import Any

READ_JS = """
(root) => {
  const a = (e, k) => e.getAttribute(k);
  const ctx = root.querySelector('[data-panel=ocr-context] .ocrviz-context');
  return {
    y: +a(root, 'data-y'), x: +a(root, 'data-x'), pred: a(root, 'data-pred'), predName: a(root, 'data-pred-name'),
    true: a(root, 'data-true'), view: a(root, 'data-view'), overlay: a(root, 'data-overlay'),
    pinned: a(root, 'data-pinned'), drawMs: +a(root, 'data-draw-ms'),
    region: ctx && a(ctx, 'data-region'), map: ctx && a(ctx, 'data-map'),   // null: a model without OCR
    regions: [...root.querySelectorAll('.ocrviz-region')].map((e) => ({
      k: +a(e, 'data-k'), name: a(e, 'data-name'), weight: a(e, 'data-weight'), rank: +a(e, 'data-rank')})),
    taps: [...root.querySelectorAll('.ocrviz-tap')].map((e) => ({
      branch: +a(e, 'data-branch'), y: +a(e, 'data-y'), x: +a(e, 'data-x'), inside: a(e, 'data-inside')})),
    pool: [...root.querySelectorAll('.ocrviz-pool')].map((e) => +a(e, 'data-branch')),
    shares: [...root.querySelectorAll('.ocrviz-branch-share')].map((e) => ({
      branch: +a(e, 'data-branch'), share: a(e, 'data-share')})),
    // each context panel: what it draws, its scale and where its mass lies (JSON {class: share, "off-grid"})
    panels: Object.fromEntries([...root.querySelectorAll('.ocrviz-panel-context')].map((e) => [a(e, 'data-panel'), {
      map: a(e.querySelector('canvas'), 'data-map'), vmax: a(e, 'data-vmax'), scale: a(e, 'data-scale'),
      mass: a(e, 'data-mass') ? JSON.parse(a(e, 'data-mass')) : null,
      strip: e.querySelector('.ocrviz-mass').textContent, why: e.querySelector('.ocrviz-unavailable').hidden ? '' :
        e.querySelector('.ocrviz-unavailable').textContent}])),
    height: root.getBoundingClientRect().height,
  };
}
"""

# Arm a one-shot latency probe on `root`: input event time (event.timeStamp, the
# browser's own input clock) -> data-y/data-x rewritten (the redraw is finished:
# the view writes them last) -> the next animation frame (the redraw is on screen).
ARM_JS = """
(root, kind) => {
  const lat = root.__probe = {input: null, dom: null, frame: null};
  const onInput = (ev) => { if (lat.input === null) lat.input = ev.timeStamp; };
  root.addEventListener(kind, onInput, {capture: true, once: true});
  const mo = new MutationObserver(() => {
    if (lat.input === null || lat.dom !== null) return;
    lat.dom = performance.now(); mo.disconnect();
    requestAnimationFrame(() => { lat.frame = performance.now(); });
  });
  mo.observe(root, {attributes: true, attributeFilter: ['data-y', 'data-x']});
}
"""


def read_state(root) -> dict[str, Any]:
    """All DOM hooks of one `.ocrviz-explorer` (a Playwright locator) in one round trip."""
    return root.evaluate(READ_JS)


def cell_point(canvas, y: int, x: int, stride: int, image_hw: tuple[int, int]) -> dict[str, float]:
    """Position of the centre of feature cell (y, x), relative to the canvas' padding box
    (Playwright's `position` convention; the browser rounds it to whole CSS px)."""
    box = canvas.evaluate("(c) => ({w: c.clientWidth, h: c.clientHeight})")
    H, W = image_hw
    py, px = min(H - 1, y * stride + stride / 2), min(W - 1, x * stride + stride / 2)
    return {"x": px / W * box["w"], "y": py / H * box["h"]}


def timed(page, root, kind: str, act) -> dict[str, float]:
    """Run `act()` (an input of type `kind`) and return input->dom and input->frame in ms."""
    root.evaluate(ARM_JS, kind)
    act()
    page.wait_for_function("(r) => r.__probe.frame !== null", arg=root.element_handle(), timeout=10_000)
    p = root.evaluate("(r) => r.__probe")
    return {"dom_ms": p["dom"] - p["input"], "frame_ms": p["frame"] - p["input"]}
