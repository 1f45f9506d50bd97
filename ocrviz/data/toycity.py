"""ToyCity: procedural street scenes in which context decides the label.

``make_scene(seed, height=256, width=512)`` renders one scene (numpy only,
deterministic by seed, any size).  A pinhole camera looks down a street: a
perspective road between two sidewalks, rows of buildings on both sides (and
sometimes one closing the street), sky, and things standing on the ground
(cars, persons, poles, traffic signs, trees), painted far to near.

Classes are a Cityscapes subset, in Cityscapes train-id order, with the
Cityscapes names and colours (``CITYSCAPES_TRAIN_IDS`` maps them back).

Designed ambiguities (the pixels of each are flagged in ``Scene.ambiguous``
and coded in ``Scene.ambiguity`` by ``AMBIGUITY_KINDS``):

1. ``window`` -- building windows and car windows are painted by ONE function
   (``_glass``) from one per-scene glass colour: same base colour, same
   vertical reflection gradient, same highlight stripe, same noise.  Car
   cabins are mostly glass (about a third of a car's box), so a pixel in the
   middle of a car window sees only glass; whether it is ``car`` or
   ``building`` is decided by the object around it (wheels and body below, or
   a facade with more windows).
2. ``surface`` -- road and sidewalk are ONE texture (same low-frequency
   blotches, same grain), and their colours are two different entries of ONE
   paving palette, drawn per scene (``_paving``): the same grey can be road
   in one scene and sidewalk in the next.  Within a scene the two pavings
   differ, so a pixel far from any cue is decided by matching its colour to
   the region that is known to be road (cars stand on it) or sidewalk
   (persons, poles and trees stand on it, kerbs and facades bound it).  They
   are also told apart by a thin kerb line (1-4 px, labelled sidewalk as in
   Cityscapes, not ambiguous) and the perspective layout.  A third of the
   scenes are seen by a pedestrian standing on a wide (5-10 m) sidewalk
   (``_camera``), so the lower image is then sidewalk far from any kerb.
   Lane dashes appear in some scenes; their pixels are not ambiguous.
3. ``panel`` -- traffic-sign panels and posters on the ground floor of
   buildings are painted by ONE function (``_panel``) from one colour set:
   flat colour, light border, dark symbol.  A sign stands on a pole; a poster
   is surrounded by facade.

Everything else (walls, car bodies, wheels, persons, poles, foliage, sky,
kerbs, lane dashes) has its own local appearance.  Ambiguous share of pixels
over the first 100 validation scenes (256 x 512): 45% on average (5th-95th
percentile 32-56%): surface 40%, window 4.5%, panel 0.9%.  A linear classifier
on 5 x 5 patch colour statistics, trained on other scenes, separates the pairs
at near chance (see tests/data/test_toycity.py).  2% of the pixels are
*cue-free* (``ocrviz.data.ambiguity``: nothing but the same ambiguous surface
within 77 px, the whole reach of a model without a context module), 0-9% per
scene.

Instances: every object gets its own id > 0 (each building, car, person,
pole, sign panel, tree); road, sidewalk and sky are 0.  ``THING_CLASSES``
lists the Cityscapes "things" (person, car), which always have instances.

    >>> scene = make_scene(0)
    >>> scene.image.shape, scene.labels.shape, scene.ambiguous.dtype
    ((256, 512, 3), (256, 512), dtype('bool'))
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .toycity_paint import (AMBIGUITY_KINDS, BUILDING, CAR, CITYSCAPES_TRAIN_IDS, CLASSES, GLASS_COLOURS,
                            IGNORE_INDEX, NUM_CLASSES, PALETTE, PANEL, PANEL_COLOURS, PERSON, POLE, ROAD,
                            SIDEWALK, SIGN, SKY, SURFACE, THING_CLASSES, VEGETATION, WINDOW, Canvas,
                            paint_glass, paint_panel, pixels, smooth_noise)
from .toycity_things import MIN_POLE_PX, MIN_THING_PX, paint_things

__all__ = ["make_scene", "Scene", "colorize", "CLASSES", "PALETTE", "CITYSCAPES_TRAIN_IDS", "NUM_CLASSES",
           "IGNORE_INDEX", "THING_CLASSES", "AMBIGUITY_KINDS", "ROAD", "SIDEWALK", "BUILDING", "POLE", "SIGN",
           "VEGETATION", "SKY", "PERSON", "CAR", "MIN_POLE_PX", "MIN_THING_PX"]

_PAVING = np.array([[72, 72, 78], [112, 112, 116], [160, 158, 150], [150, 88, 72], [182, 166, 132],
                    [96, 106, 126], [118, 128, 104]], np.float32)
_WALLS = np.array([[190, 170, 140], [160, 90, 70], [200, 200, 195], [140, 140, 150],
                   [215, 190, 150], [120, 95, 80], [175, 185, 160]], np.float32)


@dataclass(frozen=True, eq=False)
class Scene:
    """One rendered scene.  ``image`` H x W x 3 uint8, ``labels`` H x W int64
    (class ids into CLASSES), ``instances`` H x W int32 (0 = stuff),
    ``ambiguous`` H x W bool, ``ambiguity`` H x W uint8 (AMBIGUITY_KINDS codes)."""
    image: np.ndarray
    labels: np.ndarray
    instances: np.ndarray
    ambiguous: np.ndarray
    ambiguity: np.ndarray
    seed: int


def colorize(labels: np.ndarray) -> np.ndarray:
    """H x W class ids -> H x W x 3 uint8 Cityscapes colours (255/out of range: black)."""
    lut = np.zeros((256, 3), np.uint8)
    lut[:NUM_CLASSES] = PALETTE
    labels = np.asarray(labels)
    return lut[np.where((labels >= 0) & (labels < 256), labels, 255).astype(np.intp)]


def make_scene(seed: int, height: int = 256, width: int = 512) -> Scene:
    """Render ToyCity scene ``seed`` at ``height`` x ``width`` (any size >= 32 x 32).

    The layout is in metres, so the same seed at another size shows the same
    street.  Example: ``make_scene(3, 128, 256).labels.max() < NUM_CLASSES``.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if height < 32 or width < 32:
        raise ValueError(f"scene size must be at least 32 x 32, got {height} x {width}")
    rng = np.random.default_rng([int(seed), 0x70C17])
    h, w = int(height), int(width)
    cv = Canvas(h, w)
    cam = _camera(rng, h, w)
    tex = smooth_noise(rng, h, w, cell=max(4.0, w / 24))  # shared low-frequency texture
    glass = GLASS_COLOURS[rng.integers(len(GLASS_COLOURS))] + rng.uniform(-8, 8, 3).astype(np.float32)
    hl = float(rng.uniform(0.0, 0.5))
    _street(rng, cv, cam, tex, glass, hl)
    paint_things(rng, cv, cam, tex, glass, hl)
    img = _lighting(rng, cv.img, tex)
    return Scene(image=img, labels=cv.lab.astype(np.int64), instances=cv.inst,
                 ambiguous=cv.amb > 0, ambiguity=cv.amb, seed=int(seed))


# ---------------------------------------------------------------- layout ---
def _camera(rng: np.random.Generator, h: int, w: int) -> dict:
    """Camera and street cross-section (metres; X to the right, z forward).

    Two viewpoints: a car on the road (65 %), or a pedestrian on a wide
    sidewalk (35 %), whose lower image is then sidewalk far from any kerb."""
    road = rng.uniform(6.0, 14.0)
    sw = rng.uniform(1.5, 7.0, 2)                    # sidewalk widths, left and right
    if rng.random() < 0.35:                          # on a sidewalk: side, width, place on it
        side = int(rng.integers(2))
        sw[side] = rng.uniform(5.0, 10.0)
        off = (road / 2 + rng.uniform(1.0, sw[side] - 1.0)) * (1 if side else -1)
    else:
        off = rng.uniform(-0.35, 0.35) * road        # camera offset from road centre
    end = bool(rng.random() < 0.5)
    return dict(h=h, w=w, f=w * rng.uniform(0.45, 0.85), cx=w * rng.uniform(0.4, 0.6),
                yh=h * rng.uniform(0.35, 0.55), hc=rng.uniform(1.3, 2.4),
                rl=road / 2 + off, rr=road / 2 - off, xl=road / 2 + off + sw[0],
                xr=road / 2 - off + sw[1], z_end=rng.uniform(45.0, 160.0) if end else 1500.0, end=end)


def _buildings(rng: np.random.Generator, z_end: float, n_extra: int) -> dict:
    """Per-building parameters for one side (lengths until z_end) plus n_extra."""
    lengths = rng.uniform(7.0, 28.0, int(z_end / 7.0) + 2)
    n = int(np.searchsorted(np.cumsum(lengths), z_end)) + 1 + n_extra
    lengths = lengths[:n] if n <= len(lengths) else np.resize(lengths, n)
    ww = rng.uniform(0.9, 2.0, n)
    fh = rng.uniform(3.0, 3.8, n)
    wh = np.minimum(rng.uniform(1.2, 2.0, n), fh - 1.2)
    pw = rng.uniform(0.8, 1.8, n)
    return dict(start=np.concatenate([[0.0], np.cumsum(lengths)[:-1]]), length=lengths,
                height=rng.uniform(7.0, 32.0, n), wall=_WALLS[rng.integers(len(_WALLS), size=n)]
                + rng.uniform(-12, 12, (n, 3)), fh=fh, gf=rng.uniform(3.5, 4.6, n),
                sill=rng.uniform(0.7, 1.0, n), wh=wh, ww=ww, sp=ww + rng.uniform(0.8, 2.2, n),
                poster=rng.random(n) < 0.6, pa=rng.uniform(0.5, 3.0, n), pw=pw,
                py=rng.uniform(0.8, 1.5, n), ph=rng.uniform(0.6, 1.4, n),
                pcol=PANEL_COLOURS[rng.integers(len(PANEL_COLOURS), size=n)])


def _paving(rng: np.random.Generator) -> np.ndarray:
    """2 x 3 float32: this scene's road and sidewalk colours, two different
    entries of ONE paving palette (each with a small jitter).  Which one is the
    road is a coin toss per scene, so a colour says nothing on its own."""
    i, j = rng.choice(len(_PAVING), 2, replace=False)
    return (_PAVING[[i, j]] + rng.uniform(-6, 6, (2, 3))).astype(np.float32)


def _street(rng, cv: Canvas, c: dict, tex: np.ndarray, glass: np.ndarray, hl: float) -> None:
    """Sky, ground (road / sidewalk / kerb / dashes) and both facades, per pixel."""
    h, w, f, cx, yh, hc = c["h"], c["w"], c["f"], c["cx"], c["yh"], c["hc"]
    rows = (np.arange(h, dtype=np.float32) + 0.5)[:, None]       # H x 1
    px = np.arange(w, dtype=np.float32) + 0.5                     # W
    xs = px - cx
    left = xs < 0
    # sky: vertical gradient plus soft clouds
    zen = rng.uniform([40, 90, 150], [110, 150, 220]).astype(np.float32)
    hor = rng.uniform([150, 170, 190], [215, 225, 235]).astype(np.float32)
    # (painted once the facades are known, on the pixels above the horizon that no facade covers:
    # the ground overwrites every pixel of its rows, the facades theirs)
    g0 = min(h, max(0, int(np.ceil(yh - 0.5))))                   # the first ground row
    k = np.clip(rows[:g0] / max(yh, 1.0), 0, 1)[..., None]        # S x 1 x 1 (sky rows)
    sky = (zen + (hor - zen) * k).reshape(-1, 3)                  # S x 3: the gradient, per row
    cloud = np.float32(rng.uniform(0, 0.8))
    # ground: one surface for road and sidewalk (the 'surface' ambiguity); rows below the horizon
    dy = np.maximum(rows[g0:, 0] - yh, 1e-3)                       # G (ground rows)
    ground = np.s_[g0:, :]
    xl, xr = (cx - c["rl"] * dy / hc)[:, None], (cx + c["rr"] * dy / hc)[:, None]  # G x 1 road edges
    road = (px >= xl) & (px <= xr)                                 # G x W
    kw = (0.8 + 2.5 * dy / h)[:, None]
    kerb = ((px < xl) & (px >= xl - kw)) | ((px > xr) & (px <= xr + kw))
    pave = _paving(rng)                                           # 2 x 3: road, sidewalk
    grain = 9.0 * tex[g0:]                                        # G x W
    surface = cv.img[ground]                                      # G x W x 3: the paving plus its grain
    pixels(surface)[...] = pixels(pave[1])
    pixels(surface)[road] = pixels(pave[0])
    surface += grain[..., None]
    cv.lab[ground] = SIDEWALK
    cv.lab[ground][road] = ROAD
    cv.amb[ground] = SURFACE
    cv.amb[ground][kerb] = 0
    kerb_grey = np.minimum(pave.max() + 50, 245) + grain[kerb]       # K: one grey per kerb pixel
    pixels(surface)[kerb] = pixels(np.repeat(kerb_grey[:, None], 3, 1))
    if rng.random() < 0.4:                                        # dashed lane line
        zg = f * hc / dy
        on = (((zg + rng.uniform(0, 9)) % 9.0) < 4.0) & (zg < 70)
        lc = cx + ((c["rr"] - c["rl"]) / 2 + rng.uniform(-0.15, 0.15) * (c["rr"] + c["rl"])) * dy / hc
        dash = (np.abs(px - lc[:, None]) < np.maximum(0.08 * dy / hc, 0.5)[:, None]) & on[:, None] & road
        cv.img[ground][dash] = 215.0
        cv.amb[ground][dash] = 0
    # facades: each column sees one side's facade (or the building closing the street)
    bl, br = _buildings(rng, c["z_end"], 0), _buildings(rng, c["z_end"], 1)
    nl = len(bl["start"])
    b = {key: np.concatenate([bl[key], br[key]]).astype(np.float32 if bl[key].dtype.kind == "f" else bl[key].dtype)
         for key in bl}
    b["start"][-1], b["length"][-1] = 0.0, c["xl"] + c["xr"]      # the street's end building
    xside = np.where(left, c["xl"], c["xr"])
    with np.errstate(divide="ignore"):
        z = (f * xside / np.abs(xs)).astype(np.float32)           # W: depth of the side facade
    side = (z >= 0.3) & (z <= c["z_end"])
    cols = side | c["end"]
    depth = np.where(side, z, c["z_end"]).astype(np.float32)
    a = np.where(side, z, xs * c["z_end"] / f + c["xl"]).astype(np.float32)  # along-facade coordinate
    bi = np.where(left, np.searchsorted(bl["start"], z, "right") - 1,
                  nl + np.searchsorted(br["start"], z, "right") - 1)
    bi = np.where(side, np.clip(bi, np.where(left, 0, nl), np.where(left, nl - 1, len(b["start"]) - 2)),
                  len(b["start"]) - 1)
    top = np.where(cols, yh - (b["height"][bi] - hc) * f / depth, yh)
    bot = np.where(cols, yh + hc * f / depth, yh)
    fac = (rows >= top) & (rows < bot)                            # H x W
    img = pixels(cv.img).reshape(-1)                              # H * W whole pixels
    # (whole pixels are gathered with take and written with put: numpy's fancy indexing moves
    # 12-byte items several times slower; the bytes are the same)
    open_sky = ~fac[:g0]                                          # S x W
    sky_at = np.flatnonzero(open_sky)
    blue = pixels(sky).take(np.repeat(np.arange(g0), np.count_nonzero(open_sky, 1))).view(np.float32).reshape(-1, 3)
    blue += (235 - blue) * (np.clip(tex.take(sky_at) - 0.3, 0, 1) * cloud)[:, None]   # soft clouds
    img.put(sky_at, pixels(blue))
    # Per facade pixel from here on (N of them, in row-major order): each value is the one the
    # whole H x W frame would hold there, computed by the same operations on the same numbers.
    at = np.flatnonzero(fac)                                      # N: flat pixel indices
    ci = at - np.repeat(np.arange(h) * w, np.count_nonzero(fac, 1))  # N: their columns
    Y = np.float32(hc) + np.repeat(np.float32(yh) - rows[:, 0], np.count_nonzero(fac, 1)) \
        * (depth / np.float32(f))[ci]                             # N: height on the facade
    aa = a - b["start"][bi]                                       # W
    scale = np.where(side, f * xside / np.maximum(z, 1e-3) ** 2, f / c["z_end"])  # px per metre along
    gf, fh = b["gf"][bi][ci], b["fh"][bi][ci]                     # N
    rel = Y - gf                                                  # N: height above the ground floor
    floor_no = np.floor(rel / fh)
    fm = rel - floor_no * fh                                      # height within the floor (np.mod is 10x slower)
    one, dark = np.float32(1.0), np.float32(0.8)
    above = Y > gf
    shade = (1 + 0.05 * tex.take(at)) * np.where((fm < 0.15) & above, dark, np.where(Y < gf, np.float32(0.88), one))
    shade *= np.where((aa < 0.2) | (aa > b["length"][bi] - 0.2), dark, one)[ci]
    wall = pixels(b["wall"][bi]).take(ci).view(np.float32).reshape(-1, 3)  # N x 3 (gathered as whole pixels)
    wall *= shade[:, None]                                        # the wall colours, shaded
    img.put(at, pixels(wall))
    np.copyto(cv.lab, BUILDING, where=fac)
    np.copyto(cv.inst, (1 + bi).astype(np.int32), where=fac)
    np.copyto(cv.amb, 0, where=fac)
    cv.next_id = len(b["start"]) + 1
    # windows: the 'window' ambiguity, same paint_glass as the cars
    ww, sp, wh, sill = b["ww"][bi], b["sp"][bi], b["wh"][bi], b["sill"][bi]
    m = np.mod(aa, sp) - (sp - ww) / 2
    colwin = (m >= 0) & (m < ww) & (aa - m + ww < b["length"][bi] - 0.3) & (ww * scale >= 2.5) \
        & (wh * f / depth >= 3)
    win = np.flatnonzero(colwin[ci] & above)                      # candidates, then the rows of the windows
    cw, fw = ci[win], fm[win]
    win = win[(fw >= sill[cw]) & (fw < (sill + wh)[cw]) & (Y[win] - fw + sill[cw] + wh[cw] < (b["height"][bi] - 0.4)[cw])]
    if len(win):
        cw = ci[win]
        cell = (np.floor(aa / sp) * 7 + bi * 5)[cw] + floor_no[win] * 13
        jit = (cell % 9 - 4) * 2.0                               # per-window brightness jitter
        img.put(at[win], pixels(paint_glass((m / ww)[cw], (fm[win] - sill[cw]) / wh[cw], glass, hl) + jit[:, None]))
        cv.amb.reshape(-1)[at[win]] = WINDOW
    # posters on the ground floor: the 'panel' ambiguity, same paint_panel as the signs
    pa, pw = b["pa"][bi], b["pw"][bi]
    colpos = b["poster"][bi] & (aa >= pa) & (aa < pa + pw) & (pw * scale >= 3)
    py, ph = b["py"][bi], b["ph"][bi]
    pos = np.flatnonzero(colpos[ci])
    cp = ci[pos]
    pos = pos[(Y[pos] >= py[cp]) & (Y[pos] < (py + ph)[cp])]
    if len(pos):
        cp = ci[pos]
        img.put(at[pos], pixels(paint_panel(((aa - pa) / pw)[cp], (Y[pos] - py[cp]) / ph[cp], b["pcol"][bi][cp])))
        cv.amb.reshape(-1)[at[pos]] = PANEL


def _lighting(rng, img: np.ndarray, tex: np.ndarray) -> np.ndarray:
    """Global exposure, colour cast, a left-right light gradient and sensor noise."""
    h, w, _ = img.shape
    gain = rng.uniform(0.7, 1.2) * (1 + rng.uniform(-0.07, 0.07, 3)).astype(np.float32)
    grad = 1 + rng.uniform(-0.25, 0.25) * (np.arange(w, dtype=np.float32) / w - 0.5)
    img *= gain * grad[:, None]
    sigma = np.float32(rng.uniform(2.0, 7.0) * np.sqrt(12.0))       # uniform noise, std 2..7
    noise = rng.random((h, w, 3), np.float32)
    noise -= np.float32(0.5)
    noise *= sigma
    img += noise
    return np.clip(img, 0, 255, out=np.empty(img.shape, np.uint8), casting="unsafe")  # = clip, then astype
