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
2. ``surface`` -- road and sidewalk are ONE surface: same colour, same
   low-frequency blotches, same grain.  They are told apart only by a thin
   kerb line (1-4 px, labelled sidewalk as in Cityscapes, not ambiguous), by
   the perspective layout, and by what stands on them (cars on the road;
   persons, poles and trees on the sidewalk).  Lane dashes appear in some
   scenes; their pixels are not ambiguous.
3. ``panel`` -- traffic-sign panels and posters on the ground floor of
   buildings are painted by ONE function (``_panel``) from one colour set:
   flat colour, light border, dark symbol.  A sign stands on a pole; a poster
   is surrounded by facade.

Everything else (walls, car bodies, wheels, persons, poles, foliage, sky,
kerbs, lane dashes) has its own local appearance.  Ambiguous share of pixels
over the first 100 validation scenes (256 x 512): 45% on average (5th-95th
percentile 33-55%): surface 40%, window 5%, panel 0.3%.  A linear classifier
on 5 x 5 patch colour statistics separates the pairs at near chance (balanced
accuracy about 0.50 road/sidewalk, 0.62 car/building windows, 0.56 sign/poster;
see tests/data/test_toycity.py).

Instances: every object gets its own id > 0 (each building, car, person,
pole, sign panel, tree); road, sidewalk and sky are 0.  ``THING_CLASSES``
lists the Cityscapes "things" (person, car), which always have instances.

    >>> scene = make_scene(0)
    >>> scene.image.shape, scene.labels.shape, scene.ambiguous.dtype
    ((256, 512, 3), (256, 512), dtype('bool'))
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

CLASSES: list[str] = ["road", "sidewalk", "building", "pole", "traffic sign",
                      "vegetation", "sky", "person", "car"]
PALETTE: list[tuple[int, int, int]] = [
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (153, 153, 153), (220, 220, 0),
    (107, 142, 35), (70, 130, 180), (220, 20, 60), (0, 0, 142)]
CITYSCAPES_TRAIN_IDS: list[int] = [0, 1, 2, 5, 7, 8, 10, 11, 13]
NUM_CLASSES = len(CLASSES)
IGNORE_INDEX = 255
THING_CLASSES: tuple[str, ...] = ("person", "car")
AMBIGUITY_KINDS: tuple[str, ...] = ("none", "window", "surface", "panel")
ROAD, SIDEWALK, BUILDING, POLE, SIGN, VEGETATION, SKY, PERSON, CAR = range(NUM_CLASSES)
_WINDOW, _SURFACE, _PANEL = 1, 2, 3

_GLASS = np.array([[40, 55, 75], [62, 78, 94], [34, 42, 52], [70, 92, 112], [48, 70, 70]], np.float32)
_PANEL_COLOURS = np.array([[200, 40, 40], [30, 80, 170], [230, 200, 30], [30, 130, 70], [230, 120, 20]], np.float32)
_PAVING = np.array([[72, 72, 78], [112, 112, 116], [160, 158, 150], [150, 88, 72], [182, 166, 132],
                    [96, 106, 126], [118, 128, 104]], np.float32)
_WALLS = np.array([[190, 170, 140], [160, 90, 70], [200, 200, 195], [140, 140, 150],
                   [215, 190, 150], [120, 95, 80], [175, 185, 160]], np.float32)
_CAR_BODIES = np.array([[225, 225, 225], [150, 150, 155], [30, 30, 35], [150, 20, 25],
                        [25, 50, 120], [90, 110, 70], [200, 170, 50]], np.float32)


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


@lru_cache(maxsize=16)
def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """n_out x n_in linear interpolation weights (smooth upsampling of a coarse grid)."""
    pos = (np.arange(n_out, dtype=np.float32) + 0.5) / n_out * (n_in - 1)
    lo = np.minimum(pos.astype(np.int64), n_in - 2)
    frac = pos - lo
    m = np.zeros((n_out, n_in), np.float32)
    m[np.arange(n_out), lo] = 1 - frac
    m[np.arange(n_out), lo + 1] = frac
    return m


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """H x W low-frequency noise, unit-ish amplitude, features about ``cell`` px."""
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return _interp_matrix(h, gh) @ grid @ _interp_matrix(w, gw).T  # H x W


def _glass(gu: np.ndarray, gv: np.ndarray, base: np.ndarray, hl: float) -> np.ndarray:
    """Window glass at window coords gu (0..1 across), gv (0..1 bottom-up) -> ... x 3.
    Shared by building and car windows: this IS the 'window' ambiguity."""
    shade = 0.72 + 0.5 * gv
    stripe = (np.abs(gu - 0.7 * gv - hl) < 0.09).astype(np.float32) * 45.0
    return shade[..., None] * base + stripe[..., None]


def _panel(gu: np.ndarray, gv: np.ndarray, colour: np.ndarray, edge: np.ndarray | None = None) -> np.ndarray:
    """Sign / poster face at panel coords -> ... x 3.  Shared: the 'panel' ambiguity.
    ``edge``: distance to the panel's outline in panel units (default: a rectangle)."""
    if edge is None:
        edge = np.minimum(np.minimum(gu, 1 - gu), np.minimum(gv, 1 - gv))
    out = np.broadcast_to(colour, gu.shape + (3,)).copy()
    out[edge < 0.1] = 235.0
    out[(gu - 0.5) ** 2 + (gv - 0.5) ** 2 < 0.03] = 25.0
    return out


class _Canvas:
    """Image, labels, instances and ambiguity codes painted together."""

    def __init__(self, h: int, w: int) -> None:
        self.img = np.zeros((h, w, 3), np.float32)
        self.lab = np.full((h, w), SKY, np.uint8)
        self.inst = np.zeros((h, w), np.int32)
        self.amb = np.zeros((h, w), np.uint8)
        self.next_id = 1

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def frame(self, x0: float, x1: float, y0: float, y1: float):
        """Clip a float box to the image; return slices and local coords u (0..1
        left-right, 1 x w) and t (0..1 bottom-up, h x 1), or None when empty."""
        h, w = self.lab.shape
        xa, xb = max(0, int(np.floor(x0))), min(w, int(np.ceil(x1)))
        ya, yb = max(0, int(np.floor(y0))), min(h, int(np.ceil(y1)))
        if xb <= xa or yb <= ya or x1 - x0 < 1.0 or y1 - y0 < 2.0:
            return None
        u = ((np.arange(xa, xb, dtype=np.float32) + 0.5 - x0) / (x1 - x0))[None, :]  # 1 x w
        t = ((y1 - np.arange(ya, yb, dtype=np.float32) - 0.5) / (y1 - y0))[:, None]  # h x 1
        return (slice(ya, yb), slice(xa, xb)), u, t

    def paint(self, reg, mask, colour, label: int, inst: int, amb=0) -> None:
        """Paint ``mask`` (h x w bool) inside region ``reg`` with colour (h x w x 3 or 3,)."""
        img = self.img[reg]
        img[mask] = np.broadcast_to(colour, mask.shape + (3,))[mask]
        self.lab[reg][mask] = label
        self.inst[reg][mask] = inst
        self.amb[reg][mask] = np.broadcast_to(np.asarray(amb, np.uint8), mask.shape)[mask]


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
    cv = _Canvas(h, w)
    cam = _camera(rng, h, w)
    tex = _smooth_noise(rng, h, w, cell=max(4.0, w / 24))  # shared low-frequency texture
    glass = _GLASS[rng.integers(len(_GLASS))] + rng.uniform(-8, 8, 3).astype(np.float32)
    hl = float(rng.uniform(0.0, 0.5))
    _street(rng, cv, cam, tex, glass, hl)
    _things(rng, cv, cam, tex, glass, hl)
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
                pcol=_PANEL_COLOURS[rng.integers(len(_PANEL_COLOURS), size=n)])


def _paving(rng: np.random.Generator) -> np.ndarray:
    """2 x 3 float32: this scene's road and sidewalk colours, two different
    entries of ONE paving palette (each with a small jitter).  Which one is the
    road is a coin toss per scene, so a colour says nothing on its own."""
    i, j = rng.choice(len(_PAVING), 2, replace=False)
    return (_PAVING[[i, j]] + rng.uniform(-6, 6, (2, 3))).astype(np.float32)


def _street(rng, cv: _Canvas, c: dict, tex: np.ndarray, glass: np.ndarray, hl: float) -> None:
    """Sky, ground (road / sidewalk / kerb / dashes) and both facades, per pixel."""
    h, w, f, cx, yh, hc = c["h"], c["w"], c["f"], c["cx"], c["yh"], c["hc"]
    rows = (np.arange(h, dtype=np.float32) + 0.5)[:, None]       # H x 1
    px = np.arange(w, dtype=np.float32) + 0.5                     # W
    xs = px - cx
    left = xs < 0
    # sky: vertical gradient plus soft clouds
    zen = rng.uniform([40, 90, 150], [110, 150, 220]).astype(np.float32)
    hor = rng.uniform([150, 170, 190], [215, 225, 235]).astype(np.float32)
    k = np.clip(rows / max(yh, 1.0), 0, 1)[..., None]             # H x 1 x 1
    cloud = (np.clip(tex - 0.3, 0, 1) * np.float32(rng.uniform(0, 0.8)))[..., None]  # H x W x 1
    cv.img[:] = zen + (hor - zen) * k
    cv.img += (235 - cv.img) * cloud
    # ground: one surface for road and sidewalk (the 'surface' ambiguity); rows below the horizon
    g0 = min(h, max(0, int(np.ceil(yh - 0.5))))
    dy = np.maximum(rows[g0:, 0] - yh, 1e-3)                       # G (ground rows)
    ground = np.s_[g0:, :]
    xl, xr = (cx - c["rl"] * dy / hc)[:, None], (cx + c["rr"] * dy / hc)[:, None]  # G x 1 road edges
    road = (px >= xl) & (px <= xr)                                 # G x W
    kw = (0.8 + 2.5 * dy / h)[:, None]
    kerb = ((px < xl) & (px >= xl - kw)) | ((px > xr) & (px <= xr + kw))
    pave = _paving(rng)                                           # 2 x 3: road, sidewalk
    surface = pave[np.where(road, 0, 1)] + (9.0 * tex[g0:])[..., None]  # G x W x 3
    cv.img[ground] = surface
    cv.lab[ground] = np.where(road, ROAD, SIDEWALK)
    cv.amb[ground] = np.where(kerb, 0, _SURFACE)
    cv.img[ground][kerb] = np.minimum(pave.max() + 50, 245) + (9.0 * tex[g0:])[kerb][:, None]
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
    Y = np.float32(hc) + (np.float32(yh) - rows) * (depth / np.float32(f))  # H x W: height on the facade
    aa = a - b["start"][bi]
    scale = np.where(side, f * xside / np.maximum(z, 1e-3) ** 2, f / c["z_end"])  # px per metre along
    gf, fh = b["gf"][bi], b["fh"][bi]
    rel = Y - gf                                                  # H x W: height above the ground floor
    floor_no = np.floor(rel / fh)
    fm = rel - floor_no * fh                                      # height within the floor (np.mod is 10x slower)
    one, dark = np.float32(1.0), np.float32(0.8)
    shade = (1 + 0.05 * tex) * np.where((fm < 0.15) & (Y > gf), dark, np.where(Y < gf, np.float32(0.88), one))
    shade *= np.where((aa < 0.2) | (aa > b["length"][bi] - 0.2), dark, one)  # H x W
    wall = b["wall"][bi] * shade[..., None]                        # H x W x 3
    np.copyto(cv.img, wall, where=fac[..., None])
    np.copyto(cv.lab, BUILDING, where=fac)
    np.copyto(cv.inst, (1 + bi).astype(np.int32), where=fac)
    np.copyto(cv.amb, 0, where=fac)
    cv.next_id = len(b["start"]) + 1
    # windows: the 'window' ambiguity, same _glass as the cars
    ww, sp, wh, sill = b["ww"][bi], b["sp"][bi], b["wh"][bi], b["sill"][bi]
    m = np.mod(aa, sp) - (sp - ww) / 2
    colwin = (m >= 0) & (m < ww) & (aa - m + ww < b["length"][bi] - 0.3) & (ww * scale >= 2.5) \
        & (wh * f / depth >= 3)
    rowwin = (Y > gf) & (fm >= sill) & (fm < sill + wh) & (Y - fm + sill + wh < b["height"][bi] - 0.4)
    win = fac & rowwin & colwin
    if win.any():
        cell = np.broadcast_to(np.floor(aa / sp) * 7 + bi * 5, (h, w))[win] + floor_no[win] * 13
        jit = (cell % 9 - 4) * 2.0                               # per-window brightness jitter
        gu = np.broadcast_to(m / ww, (h, w))[win]
        cv.img[win] = _glass(gu, ((fm - sill) / wh)[win], glass, hl) + jit[:, None]
        cv.amb[win] = _WINDOW
    # posters on the ground floor: the 'panel' ambiguity, same _panel as the signs
    pa, pw = b["pa"][bi], b["pw"][bi]
    colpos = b["poster"][bi] & (aa >= pa) & (aa < pa + pw) & (pw * scale >= 3)
    py, ph = b["py"][bi], b["ph"][bi]
    pos = fac & colpos & (Y >= py) & (Y < py + ph)
    if pos.any():
        gu = np.broadcast_to((aa - pa) / pw, (h, w))[pos]
        pcol = np.broadcast_to(b["pcol"][bi][None], (h, w, 3))[pos]
        cv.img[pos] = _panel(gu, ((Y - py) / ph)[pos], pcol)
        cv.amb[pos] = _PANEL


# ---------------------------------------------------------------- things ---
def _things(rng, cv: _Canvas, c: dict, tex: np.ndarray, glass: np.ndarray, hl: float) -> None:
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
                                       body=_CAR_BODIES[rng.integers(len(_CAR_BODIES))] + rng.uniform(-10, 10, 3))))
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
                                        shape=int(rng.integers(4)), colour=_PANEL_COLOURS[rng.integers(len(_PANEL_COLOURS))])))
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


def _box(cv: _Canvas, c: dict, X: float, z: float, width: float, height: float, base: float = 0.0):
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
    col = np.broadcast_to(p["body"] * (0.78 + 0.4 * t)[..., None], mask.shape + (3,)).copy()
    col[wheels & ~body | wheels & p["side"]] = 28.0
    if not p["side"]:
        col[(t > 0.36) & (t < 0.44) & ((u < 0.18) | (u > 0.82)) & body] = (200, 30, 30)
        col[(t > 0.2) & (t < 0.28) & (np.abs(u - 0.5) < 0.12)] = 230.0
    gv = np.broadcast_to((t - 0.54) / 0.38, mask.shape)
    col[glass_m] = _glass(np.broadcast_to(gu, mask.shape)[glass_m], gv[glass_m], p["glass"], p["hl"])
    cv.paint(reg, mask, col, CAR, cv.new_id(), np.where(glass_m, _WINDOW, 0))


def _person(rng, cv, c, tex, X, z, p) -> None:
    fr = _box(cv, c, X, z, max(0.75, MIN_THING_PX / (c["f"] / z)), p["height"])
    if fr is None:
        return
    reg, u, t = fr
    legs = (t < 0.47) & ((np.abs(u - 0.36) < 0.12) | (np.abs(u - 0.64) < 0.12))
    torso = (t >= 0.47) & (t < 0.83) & (np.abs(u - 0.5) < 0.4 - 0.15 * (t < 0.6))
    head = ((u - 0.5) * 0.62) ** 2 + ((t - 0.91) * p["height"]) ** 2 < 0.115 ** 2
    mask = legs | torso | head
    col = np.where(head[..., None], p["skin"], np.where(torso[..., None], p["shirt"], p["legs"]))
    cv.paint(reg, mask, col.astype(np.float32), PERSON, cv.new_id())


def _pole(rng, cv, c, tex, X, z, p) -> None:
    fr = _box(cv, c, X, z, max(0.3, MIN_POLE_PX / (c["f"] / z)), p["height"])
    if fr is not None:
        reg, u, t = fr
        col = p["grey"] * (0.75 + 0.45 * np.sin(np.pi * np.clip(u, 0, 1)))[..., None] * np.ones_like(t)[..., None]
        cv.paint(reg, np.ones(col.shape[:2], bool), col, POLE, cv.new_id())
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
    col = _panel(u, t, p["colour"], edge)
    cv.paint(reg, mask, col, SIGN, cv.new_id(), _PANEL)


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
    leaf = p["green"] * (1 + 0.25 * noise + 0.15 * rng.standard_normal(mask.shape, np.float32))[..., None]
    col = np.where(crown[..., None], leaf, np.array([85, 65, 45], np.float32))
    cv.paint(reg, mask, col.astype(np.float32), VEGETATION, cv.new_id())


def _lighting(rng, img: np.ndarray, tex: np.ndarray) -> np.ndarray:
    """Global exposure, colour cast, a left-right light gradient and sensor noise."""
    h, w, _ = img.shape
    gain = rng.uniform(0.7, 1.2) * (1 + rng.uniform(-0.07, 0.07, 3)).astype(np.float32)
    grad = 1 + rng.uniform(-0.25, 0.25) * (np.arange(w, dtype=np.float32) / w - 0.5)
    img *= gain * grad[:, None]
    sigma = np.float32(rng.uniform(2.0, 7.0) * np.sqrt(12.0))       # uniform noise, std 2..7
    img += (rng.random((h, w, 3), np.float32) - np.float32(0.5)) * sigma
    return np.clip(img, 0, 255).astype(np.uint8)
