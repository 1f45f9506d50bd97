"""Standalone HTML export: one file, works offline, hover and click included.

No widget manager, no CDN, no network: the page inlines ``explorer.css``, the
explorer's ESM (its ``export default`` rewritten to a local constant) and the
payload (base64 buffers, deflated), then calls ``render({model, el})`` with a
tiny in-page model (``get / set / on / off / save_changes``).  A
Content-Security-Policy of ``default-src 'none'`` makes "offline" checkable:
the page cannot fetch anything even if it tried.

Buffers are decoded in the page with the browser's own
``DecompressionStream('deflate')``.  The printed numbers (sim map rows, ASPP
branch shares) travel as float32 when the page stays under ``max_bytes``
(3 MiB), else as 24- or 16-bit fixed point (error <= 3e-8 / 7.6e-6): float32
of a 128 x 256 x 19 sim map alone is ~2.7 MB in base64.
"""
from __future__ import annotations

import base64
import dataclasses
import html
import json
import os
import pathlib
import re
import zlib
from typing import Any, Mapping

import numpy as np

from ocrviz.atomic import write_atomic

from .payload import PRECISIONS, ExplorerData, encode_buffer, encode_numbers, png_bytes, to_payload

STATIC = pathlib.Path(__file__).parent / "static"
VIEW_KEYS = ("selected", "mode", "overlay", "hover_region", "width", "show_erf", "pinned", "scale", "shared_scale",
             "size", "context_view", "site_pick")
MAX_BYTES = 3 * 1024 * 1024          # the default page budget without other heads' site maps
SITE_BYTES = 16 * 1024 * 1024        # added to the default budget when the page carries site maps (max_bytes=None)
_SITE_META = ("id", "title", "kind", "site", "grid", "label", "exact", "convention", "partition", "note",
              "rollout_of")

_BOOT = r"""
const __ocrviz_data = JSON.parse(document.getElementById("__DATA_ID__").textContent);
async function __ocrviz_buffer(spec) {           // base64 -> bytes; the view's own decode() does the rest
  const bin = atob(spec.b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return __ocrviz_widget.decode({ ...spec, buf: new DataView(bytes.buffer) });
}
function __ocrviz_model(state) {            // the part of the anywidget model API render() uses
  const handlers = new Map();
  const emit = (ev) => (handlers.get(ev) || []).slice().forEach((f) => f());
  return {
    get: (k) => state[k],
    set: (k, v) => { const old = state[k]; state[k] = v; if (JSON.stringify(old) !== JSON.stringify(v)) emit("change:" + k); },
    on: (ev, f) => { for (const e of ev.split(" ")) { if (!handlers.has(e)) handlers.set(e, []); handlers.get(e).push(f); } },
    off: (ev, f) => { for (const e of (ev || "").split(" ")) handlers.set(e, (handlers.get(e) || []).filter((g) => g !== f)); },
    save_changes: () => {}, send: () => {},
  };
}
(async () => {
  const state = {};
  for (const [k, v] of Object.entries(__ocrviz_data)) state[k] = (v && typeof v === "object" && "b64" in v) ? await __ocrviz_buffer(v) : v;
  const host = document.getElementById("__ROOT_ID__");
  try {
    await __ocrviz_widget.render({ model: __ocrviz_model(state), el: host });
    host.dataset.ready = "true";
  } catch (e) { host.textContent = "ocrviz: could not render: " + e; host.dataset.ready = "error"; throw e; }
})();
"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body {{ margin: 16px; background: #fff; }} h1 {{ font: 600 15px system-ui, sans-serif; }}</style>
<style>{css}</style>
</head><body>
<h1>{title}</h1>
<div id="ocrviz-root"></div>
<p style="font: 11px system-ui, sans-serif; color: #777">{note}</p>
<script type="application/json" id="ocrviz-data">{data}</script>
<script type="module">
{esm}
{boot}
</script>
</body></html>
"""


def _module_source() -> str:
    """explorer.js with its single ``export default`` turned into a local constant."""
    src = (STATIC / "explorer.js").read_text(encoding="utf-8")
    if len(re.findall(r"^export default ", src, flags=re.M)) != 1 or re.search(r"^\s*import\s", src, flags=re.M):
        raise RuntimeError("explorer.js must have exactly one top-level `export default` and no imports "
                           "to be inlined into the standalone page")
    return re.sub(r"^export default ", "const __ocrviz_widget = ", src, flags=re.M)


def _b64(spec: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in spec.items() if k != "buf"}
    out["b64"] = base64.b64encode(spec["buf"]).decode("ascii")
    return out


def _buffer(raw: bytes, *, shuffle: int = 1, fixed: int = 0) -> dict[str, Any]:
    return _b64(encode_buffer(raw, shuffle=shuffle, fixed=fixed))


def _number_buffer(a: np.ndarray, precision: str) -> dict[str, Any]:
    """Probabilities in [0, 1] as float32 (bit-exact) or fixed point (``fixed24``/``fixed16``)."""
    return _b64(encode_numbers(a, precision))


def _size(spec: dict[str, Any] | None) -> int:
    return 0 if spec is None else len(spec["b64"])


def _choose_precisions(data: ExplorerData, precision: str, budget: int) -> dict[str, dict[str, Any]]:
    """Encode sim_map (and aspp_shares): finest precision that fits ``budget`` bytes, sim map first."""
    arrays = {"sim_map": data.sim_map if data.sim_map is not None else np.zeros(0, np.float32)}  # none: no OCR
    if data.aspp_shares is not None:
        arrays["aspp_shares"] = data.aspp_shares
    if precision != "auto":
        return {k: dict(_number_buffer(a, precision), precision=precision) for k, a in arrays.items()}
    cache: dict[tuple[str, str], dict[str, Any]] = {}

    def enc(k: str, p: str) -> dict[str, Any]:
        if (k, p) not in cache:
            cache[k, p] = dict(_number_buffer(arrays[k], p), precision=p)
        return cache[k, p]

    order = list(PRECISIONS)                                   # finest first
    coarsest = order[-1]
    sim_p = next((p for p in order if _size(enc("sim_map", p)) + (
        _size(enc("aspp_shares", coarsest)) if "aspp_shares" in arrays else 0) <= budget), coarsest)
    out = {"sim_map": enc("sim_map", sim_p)}
    if "aspp_shares" in arrays:
        rest = budget - _size(out["sim_map"])
        out["aspp_shares"] = enc("aspp_shares", next((p for p in order if _size(enc("aspp_shares", p)) <= rest),
                                                     coarsest))
    return out


_NOTES = {"float32": "printed numbers are the captured float32 values",
          "fixed24": "printed numbers within 3e-8 of the captured values",
          "fixed16": "printed numbers within 8e-6 of the captured values"}


def _boot(root_id: str, data_id: str) -> str:
    return _BOOT.replace("__DATA_ID__", data_id).replace("__ROOT_ID__", root_id)


def page_budget(data: ExplorerData, max_bytes: int | None) -> int:
    """``max_bytes`` as given, or the default: ``MAX_BYTES``, plus ``SITE_BYTES`` when ``data`` carries site maps."""
    if max_bytes is None:
        return MAX_BYTES + (SITE_BYTES if data.sites else 0)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 1:
        raise ValueError(f"max_bytes={max_bytes!r}; give a positive number of bytes (e.g. 8 * 1024 * 1024), "
                         f"or None for the default ({MAX_BYTES} bytes, {SITE_BYTES} more with other heads' maps)")
    return int(max_bytes)


def _fit_sites(heads: list[dict[str, Any]], budget: int) -> tuple[list[dict[str, Any]], int, int]:
    """Other heads' site entries within ``budget`` bytes of JSON, in order: an entry that does not fit keeps
    its title and exactness and carries ``why`` (what it needs, how to fit it) instead of its maps.
    Returns (heads, bytes used, entries dropped)."""
    used, dropped, out = 0, 0, []
    for hd in heads:
        entries = []
        for e in hd["sites"]:
            size = len(json.dumps(e, separators=(",", ":")))
            if "why" in e or used + size <= budget:
                used += size
                entries.append(e)
                continue
            dropped += 1
            slim = {k: e[k] for k in _SITE_META if k in e}
            slim["why"] = (f"This site's maps ({size / 2**20:.1f} MiB) did not fit in this page's max_bytes budget "
                           f"({max(budget - used, 0) / 2**20:.1f} MiB left for them); save the page with a larger "
                           f"max_bytes (e.g. save_html(..., max_bytes={(used + size) * 2 // 2**20 + 4} * 1024 * 1024)).")
            used += len(json.dumps(slim, separators=(",", ":")))
            entries.append(slim)
        out.append({**hd, "sites": entries})
    return out, used, dropped


def _page_data(data: ExplorerData, state: Mapping[str, Any] | None, image_format: str, image_max_width: int | None,
               precision: str, max_bytes: int | None, erf_maps: Mapping[tuple[int, int], np.ndarray] | None,
               ) -> tuple[str, str]:
    """(JSON data block, footer note) of one standalone explorer; ``max_bytes`` bounds a whole page, other
    heads' site maps included (``page_budget``: None is the default)."""
    max_bytes = page_budget(data, max_bytes)
    if precision not in PRECISIONS and precision != "auto":
        raise ValueError(f"precision={precision!r}; allowed: 'auto', {', '.join(map(repr, PRECISIONS))}")
    if image_format not in ("auto", "png", "jpeg"):
        raise ValueError(f"image_format={image_format!r}; allowed: 'auto', 'png', 'jpeg'")
    if erf_maps:
        data = dataclasses.replace(data, erf_maps={**(data.erf_maps or {}), **erf_maps})
    shown = data.image
    if image_max_width and shown.shape[1] > image_max_width:
        # The widget draws the image at `width` CSS px; beyond ~3x that, pixels are invisible weight.
        from PIL import Image

        nh = max(1, round(shown.shape[0] * image_max_width / shown.shape[1]))
        shown = np.asarray(Image.fromarray(shown).resize((image_max_width, nh), Image.LANCZOS))
    fmt = image_format
    if fmt == "auto":
        fmt = "png" if len(png_bytes(shown)) <= 512 * 1024 else "jpeg"
    payload = to_payload(data, image_format=fmt, image_override=shown)
    out: dict[str, Any] = {}
    for k, v in payload.items():
        if k in ("sim_map", "aspp_shares"):
            continue
        if k == "image":
            out[k] = {"b64": base64.b64encode(v).decode("ascii"), "deflate": False, "shuffle": 1, "fixed": 0}
        elif isinstance(v, bytes):
            out[k] = _buffer(v)
        else:
            out[k] = v
    out["aspp_shares"] = {"b64": "", "deflate": False, "shuffle": 1, "fixed": 0}
    fixed_size = len(_PAGE) + len(_BOOT) + len((STATIC / "explorer.js").read_bytes()) \
        + len((STATIC / "explorer.css").read_bytes()) + len(json.dumps({k: v for k, v in out.items() if k != "sites"})) \
        + 4096    # the view state and the footer
    dropped = 0
    if out.get("sites"):
        # other heads' site maps count: what the coarsest printed numbers leave, in order; then the numbers'
        # precision from what the maps leave
        coarsest = _choose_precisions(data, list(PRECISIONS)[-1], 0)
        out["sites"], used, dropped = _fit_sites(out["sites"], max_bytes - fixed_size
                                                 - sum(_size(v) for v in coarsest.values()))
        fixed_size += used
    out.update(_choose_precisions(data, precision, max_bytes - fixed_size))
    h, w = data.feat_hw
    view = {"selected": [h // 2, w // 2], "mode": "ocr", "overlay": "image", "hover_region": -1,
            "width": 0, "show_erf": False, "pinned": False, "scale": "sqrt", "shared_scale": False,
            "size": "normal", "context_view": "mass", "site_pick": [],
            "standalone": True, "erf_map": {"b64": "", "deflate": False, "shuffle": 1, "fixed": 0},
            "erf_scale": 0.0, "erf_cell": [-1, -1], "erf_status": ""}
    view.update({k: v for k, v in (state or {}).items() if k in VIEW_KEYS})
    out.update(view)
    note = f"Standalone ocrviz export: works offline; {_NOTES[out['sim_map']['precision']]}."
    if dropped:
        note += (f" {dropped} context site{'s' if dropped > 1 else ''} left out to stay under max_bytes "
                 f"({max_bytes} bytes): the panel says how to keep it.")
    return script_json(out), note


def script_json(value: Any) -> str:
    """JSON text safe to inline in a ``<script>`` element, whatever its strings hold.

    ``<``, ``>`` and ``&`` are written as ``\\u003c``, ``\\u003e``, ``\\u0026`` (JSON escapes, so
    ``JSON.parse`` gives the same strings): the HTML parser then never sees ``</script>``,
    ``<!--`` or ``<script`` inside the data, which would end the element early or make it
    swallow the rest of the page.  U+2028/U+2029 are escaped too (older JS parsers).
    """
    text = json.dumps(value, separators=(",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def render_html(data: ExplorerData, *, state: Mapping[str, Any] | None = None, title: str = "ocrviz explorer",
                image_format: str = "auto", image_max_width: int | None = 1024, precision: str = "auto",
                max_bytes: int | None = None,
                erf_maps: Mapping[tuple[int, int], np.ndarray] | None = None) -> str:
    """The standalone page as a string.  See ``save_html`` for the options."""
    blob, note = _page_data(data, state, image_format, image_max_width, precision, max_bytes, erf_maps)
    return _PAGE.format(title=html.escape(title), css=(STATIC / "explorer.css").read_text(encoding="utf-8"),
                        data=blob, esm=_module_source(), boot=_boot("ocrviz-root", "ocrviz-data"),
                        note=html.escape(note))


_FRAGMENT = """<div class="ocrviz-fragment" data-ocrviz-id="{uid}">
<style>{css}</style>
<div id="ocrviz-root-{uid}" class="ocrviz-root"></div>
<p class="ocrviz-fragment-note" style="font: 11px system-ui, sans-serif; color: #777">{note}</p>
<script type="application/json" id="ocrviz-data-{uid}">{data}</script>
<script type="module">
{esm}
{boot}
</script>
</div>"""


def render_fragment(data: ExplorerData, *, state: Mapping[str, Any] | None = None, uid: str | None = None,
                    image_format: str = "auto", image_max_width: int | None = 1024, precision: str = "auto",
                    max_bytes: int | None = None,
                    erf_maps: Mapping[tuple[int, int], np.ndarray] | None = None) -> str:
    """One working offline explorer as an HTML fragment, to embed in a page (e.g. a notebook handout).

    A ``<div class="ocrviz-fragment">`` holding the explorer's CSS, its data
    block and an inline ``<script type="module">`` (the ESM and the in-page
    model of ``render_html``); nothing is fetched.  Element ids end in
    ``uid`` (random when not given), so that several fragments share a page;
    the host ``#ocrviz-root-<uid>`` gets ``data-ready="true"`` once drawn.
    The options are ``save_html``'s; ``max_bytes`` bounds this fragment.
    """
    uid = uid or os.urandom(6).hex()
    if not re.fullmatch(r"[A-Za-z0-9_-]+", uid):
        raise ValueError(f"uid={uid!r}: letters, digits, '_' and '-' only")
    blob, note = _page_data(data, state, image_format, image_max_width, precision, max_bytes, erf_maps)
    return _FRAGMENT.format(uid=uid, css=(STATIC / "explorer.css").read_text(encoding="utf-8"), data=blob,
                            esm=_module_source(), boot=_boot(f"ocrviz-root-{uid}", f"ocrviz-data-{uid}"),
                            note=html.escape(note))


def explorer_state(explorer: Any) -> dict[str, Any]:
    """The view state of a live ``Explorer`` that an export keeps (selection, mode, overlay, ...)."""
    return {"selected": list(explorer.selected), "mode": explorer.mode, "overlay": explorer.overlay,
            "width": explorer.width, "show_erf": explorer.show_erf, "pinned": explorer.pinned,
            "scale": explorer.scale, "shared_scale": explorer.shared_scale,
            "site_pick": list(getattr(explorer, "site_pick", []))}


def explorer_erfs(explorer: Any) -> dict[tuple[int, int], np.ndarray]:
    """ERFs an ``Explorer`` carries: its data's and those computed on demand so far."""
    erfs = dict(explorer.data.erf_maps or {})
    erfs.update(getattr(explorer, "_erf_cache", {}) or {})
    return erfs


def explorer_fragment(explorer: Any, **options: Any) -> str:
    """``render_fragment`` of a live ``Explorer`` with its current view state and ERFs."""
    return render_fragment(explorer.data, state=explorer_state(explorer), erf_maps=explorer_erfs(explorer),
                           **options)


def save_html(data: ExplorerData, path: str | os.PathLike, *, state: Mapping[str, Any] | None = None,
              title: str = "ocrviz explorer", image_format: str = "auto", image_max_width: int | None = 1024,
              precision: str = "auto", max_bytes: int | None = None,
              erf_maps: Mapping[tuple[int, int], np.ndarray] | None = None) -> pathlib.Path:
    """Write a standalone, offline explorer page for ``data`` to ``path``.

    ``state``: initial view (``selected``, ``mode``, ``overlay``, ``width``, ...).
    ``image_format``: "png" (lossless), "jpeg" (q90) or "auto" (PNG when it
    is <= 512 KB).  ``image_max_width``: downscale the *displayed* image to
    this width (coordinates and class maps keep full resolution).
    ``precision`` of the printed numbers (sim map rows, ASPP branch shares):
    "float32" (bit-exact), "fixed24" (error <= 3e-8), "fixed16" (error
    <= 7.6e-6, smallest) or "auto" (default): the finest that keeps the page
    under ``max_bytes``, the sim map first.  The page's footer says which.
    ``max_bytes`` counts other heads' site maps (``compare=``, a model shown
    by its sites): after the printed numbers at their coarsest, sites travel
    in order while they fit; one that does not keeps its title and says, in
    its panel, how large a ``max_bytes`` would keep it.  None (default):
    3 MiB, 16 MiB more when the page carries site maps.
    ``state["site_pick"]``: the site each head's panel shows (its picker).
    The file is written atomically (temporary file + rename).

    Example:
        >>> save_html(data, "explorer.html")          # doctest: +SKIP
    """
    page = render_html(data, state=state, title=title, image_format=image_format,
                       image_max_width=image_max_width, precision=precision, max_bytes=max_bytes,
                       erf_maps=erf_maps)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, page)


def read_html_payload(path: str | os.PathLike) -> dict[str, Any]:
    """Decode a saved page's data back to Python; for tests and tooling.

    Buffers come back as bytes, fixed-point numbers as float32 arrays;
    ``_precision`` maps each number buffer to the precision it was saved at.
    """
    text = pathlib.Path(path).read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="ocrviz-data">(.*?)</script>', text, flags=re.S)
    if not m:
        raise ValueError(f"{path} is not an ocrviz standalone page (no ocrviz-data block)")
    out: dict[str, Any] = {"_precision": {}}
    for k, v in json.loads(m.group(1)).items():
        if isinstance(v, dict) and "precision" in v:
            out["_precision"][k] = v["precision"]
        if isinstance(v, dict) and "b64" in v:
            raw = base64.b64decode(v["b64"])
            raw = zlib.decompress(raw) if v["deflate"] else raw
            n = v["shuffle"]
            if n > 1:
                raw = np.frombuffer(raw, np.uint8).reshape(n, -1).T.tobytes()
            if v["fixed"]:
                nb = v["fixed"] // 8
                b = np.frombuffer(raw, np.uint8).reshape(-1, nb).astype(np.uint64)
                q = sum(b[:, i] << np.uint64(8 * i) for i in range(nb))
                out[k] = (q.astype(np.float64) / (2 ** v["fixed"] - 1)).astype(np.float32)
            else:
                out[k] = raw
        else:
            out[k] = v
    return out
