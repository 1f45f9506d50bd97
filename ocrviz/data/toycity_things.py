"""ToyCity's things: cars on the road; persons, poles with signs and trees on
the sidewalks, painted far to near in world units (metres) through the
camera of :func:`ocrviz.data.toycity.make_scene`.
"""
from __future__ import annotations

import numpy as np

from .toycity_paint import (CAR, CAR_BODIES, PANEL, PANEL_COLOURS, PERSON, POLE, SIGN, VEGETATION, WINDOW,
                            Canvas, paint_glass, paint_panel, pixels)


def paint_things(rng, cv: Canvas, c: dict, tex: np.ndarray, glass: np.ndarray, hl: float) -> None:
    """Cars on the road; persons, poles (+ signs) and trees on the sidewalks; far to near."""
    rl, rr, xl, xr = c["rl"], c["rr"], c["xl"], c["xr"]

    def on_sidewalk(n: int, margin: float) -> np.ndarray:
        right = rng.random(n) < 0.5
        return np.where(right, rng.uniform(rr + margin, max(xr - margin, rr + margin + 0.01), n),
                        -rng.uniform(rl + margin, max(xl - margin, rl + margin + 0.01), n))

    items = []
    n = int(rng.integers(1, 8))
    for X, z in zip(rng.uniform(-rl + 1.1, rr - 1.1, n), rng.uniform(4.0, 70.0, n)):
        items.append((z, _car, X, dict(side=rng.random() < 0.35, hl=hl, glass=glass + rng.integers(-4, 5) * 2.0,
                                       body=CAR_BODIES[rng.integers(len(CAR_BODIES))] + rng.uniform(-10, 10, 3))))
    n = int(rng.integers(0, 8))
    for X, z in zip(on_sidewalk(n, 0.4), rng.uniform(3.0, 35.0, n)):
        items.append((z, _person, X, dict(height=rng.uniform(1.55, 1.95), skin=rng.uniform([90, 60, 40], [230, 190, 160]),
                                          shirt=rng.uniform(20, 235, 3), legs=rng.uniform(15, 140, 3))))
    n = int(rng.integers(1, 6))
    kerbside = rng.uniform(0.3, 0.7, n)
    for X, z, k in zip(on_sidewalk(n, 0.0), rng.uniform(4.0, 50.0, n), kerbside):
        X = (rr + k) if X > 0 else -(rl + k)
        items.append((z, _pole, X, dict(height=rng.uniform(3.5, 7.0), grey=rng.uniform(110, 175),
                                        sign=rng.random() < 0.65, size=rng.uniform(0.9, 1.4),
                                        shape=int(rng.integers(4)), colour=PANEL_COLOURS[rng.integers(len(PANEL_COLOURS))])))
    n = int(rng.integers(0, 6))
    for X, z in zip(on_sidewalk(n, 0.6), rng.uniform(5.0, 90.0, n)):
        items.append((z, _tree, X, dict(r=rng.uniform(1.2, 2.6), trunk=rng.uniform(2.0, 3.5),
                                        green=rng.uniform([40, 80, 20], [90, 140, 60]))))
    for z, draw, X, p in sorted(items, key=lambda it: -it[0]):
        if z < c["z_end"] - 1.0:                                  # behind the end building: hidden
            draw(rng, cv, c, tex, X, z, p)


# Thin things are drawn at least this wide (pixels): a stride-8 model cannot
# resolve a 2 px pole, and ToyCity is about context, not sub-cell detail.
MIN_POLE_PX = 7.0
MIN_THING_PX = 12.0


def _box(cv: Canvas, c: dict, X: float, z: float, width: float, height: float, base: float = 0.0):
    """Frame of a world box (metres) standing at (X, base, z), or None if off-screen/tiny."""
    s = c["f"] / z
    xc, y1 = c["cx"] + X * s, c["yh"] + (c["hc"] - base) * s
    if height * s < 4:
        return None
    return cv.frame(xc - width * s / 2, xc + width * s / 2, y1 - height * s, y1)


def _car(rng, cv, c, tex, X, z, p) -> None:
    fr = _box(cv, c, X, z, 4.3 if p["side"] else 1.8, 1.5)
    if fr is None:
        return
    reg, u, t = fr
    k = np.clip((t - 0.5) / 0.47, 0, 1)
    if p["side"]:
        lo, hi = 0.18 + 0.12 * k, 0.82 - 0.08 * k                  # cabin edges per row
        wheels = ((u - 0.2) / 0.077) ** 2 + ((t - 0.2) / 0.22) ** 2 < 1
        wheels |= ((u - 0.8) / 0.077) ** 2 + ((t - 0.2) / 0.22) ** 2 < 1
        glo, ghi = lo + 0.025, hi - 0.025
        front = u < 0.5
        gu = np.where(front, (u - glo) / (0.48 - glo), (u - 0.52) / (ghi - 0.52))
        glass_m = (u > glo) & (u < ghi) & (np.abs(u - 0.5) > 0.02)
    else:
        lo, hi = 0.04 + 0.1 * k, 0.96 - 0.1 * k
        wheels = (t < 0.12) & (((u > 0.06) & (u < 0.22)) | ((u > 0.78) & (u < 0.94)))
        glo, ghi = lo + 0.05, hi - 0.05
        gu = (u - glo) / (ghi - glo)
        glass_m = (u > glo) & (u < ghi)
    body = (t >= 0.1) & (t < 0.5) & (u >= 0.01) & (u <= 0.99)
    cabin = (t >= 0.5) & (t < 0.97) & (u >= lo) & (u <= hi)
    glass_m = glass_m & (t >= 0.54) & (t < 0.92) & cabin
    mask = body | cabin | wheels
    shade = (p["body"] * (0.78 + 0.4 * t)[..., None]).astype(np.float32)  # h x 1 x 3, as the canvas stores it
    col = np.broadcast_to(shade, mask.shape + (3,)).copy()
    col[wheels & ~body | wheels & p["side"]] = 28.0
    if not p["side"]:
        col[(t > 0.36) & (t < 0.44) & ((u < 0.18) | (u > 0.82)) & body] = (200, 30, 30)
        col[(t > 0.2) & (t < 0.28) & (np.abs(u - 0.5) < 0.12)] = 230.0
    gv = np.broadcast_to((t - 0.54) / 0.38, mask.shape)
    col[glass_m] = paint_glass(np.broadcast_to(gu, mask.shape)[glass_m], gv[glass_m], p["glass"], p["hl"])
    cv.paint(reg, mask, col, CAR, cv.new_id(), np.where(glass_m, WINDOW, 0))


def _person(rng, cv, c, tex, X, z, p) -> None:
    fr = _box(cv, c, X, z, max(0.75, MIN_THING_PX / (c["f"] / z)), p["height"])
    if fr is None:
        return
    reg, u, t = fr
    legs = (t < 0.47) & ((np.abs(u - 0.36) < 0.12) | (np.abs(u - 0.64) < 0.12))
    torso = (t >= 0.47) & (t < 0.83) & (np.abs(u - 0.5) < 0.4 - 0.15 * (t < 0.6))
    head = ((u - 0.5) * 0.62) ** 2 + ((t - 0.91) * p["height"]) ** 2 < 0.115 ** 2
    mask = legs | torso | head
    part = np.where(head, 2, torso.view(np.uint8))[mask]          # per painted pixel: legs 0, torso 1, head 2
    kit = pixels(np.array([p["legs"], p["shirt"], p["skin"]], np.float32))
    cv.paint(reg, mask, kit.take(part).view(np.float32).reshape(-1, 3), PERSON, cv.new_id())


def _pole(rng, cv, c, tex, X, z, p) -> None:
    fr = _box(cv, c, X, z, max(0.3, MIN_POLE_PX / (c["f"] / z)), p["height"])
    if fr is not None:
        reg, u, t = fr
        col = p["grey"] * (0.75 + 0.45 * np.sin(np.pi * np.clip(u, 0, 1)))   # 1 x w: one colour per column
        cv.paint(reg, None, col.astype(np.float32)[..., None], POLE, cv.new_id())
    s = max(p["size"], MIN_THING_PX / (c["f"] / z))
    fr = _box(cv, c, X, z, s, s, base=p["height"] - 1.05 * s) if p["sign"] else None
    if fr is None:
        return
    reg, u, t = fr
    u, t = np.broadcast_arrays(u, t)
    edge = [np.minimum(np.minimum(u, 1 - u), np.minimum(t, 1 - t)),          # square
            0.5 - np.sqrt((u - 0.5) ** 2 + (t - 0.5) ** 2),                     # circle
            np.minimum(t, (0.5 * (1 - t) - np.abs(u - 0.5)) * 0.9),             # triangle
            (0.5 - np.abs(u - 0.5) - np.abs(t - 0.5)) * 0.7][p["shape"]]        # diamond
    mask = (edge > 0) & (u >= 0) & (u <= 1)
    col = paint_panel(u, t, p["colour"], edge)
    cv.paint(reg, mask, col, SIGN, cv.new_id(), PANEL)


def _tree(rng, cv, c, tex, X, z, p) -> None:
    r, th = p["r"], p["trunk"]
    height = th + 1.9 * r
    fr = _box(cv, c, X, z, 2 * r, height)
    if fr is None:
        return
    reg, u, t = fr
    noise = tex[reg]
    trunk = (np.abs(u - 0.5) * 2 * r < 0.15) & (t * height < th + 0.5 * r)
    crown = ((u - 0.5) * 2) ** 2 + ((t * height - th - 0.9 * r) / (0.95 * r)) ** 2 < 1 + 0.35 * noise
    mask = trunk | crown
    vary = (1 + 0.25 * noise + 0.15 * rng.standard_normal(mask.shape, np.float32))[mask]   # K painted pixels
    leaf = crown[mask]
    col = np.empty((len(vary), 3), np.float32)                    # trunk brown, or the crown's leaves:
    pixels(col)[...] = pixels(np.array([85, 65, 45], np.float32))
    col[leaf] = p["green"] * vary[leaf][:, None]                  # green float64 x vary, as float32
    cv.paint(reg, mask, col, VEGETATION, cv.new_id())
