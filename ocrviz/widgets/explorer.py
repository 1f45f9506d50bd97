"""Explorer: click a pixel, see which object regions supply its context.

The Python side only ships data (``payload.to_payload``) and answers what
the browser cannot: syncing ``selected`` back, the ASPP effective receptive
field on demand (``erf_fn``), and counterfactual re-runs of heads too large
to ship (``kernel_cf``).  Everything per-pixel (ranked
regions, the context map sum_k sim[p, k] * region_k, ASPP taps) is computed
in ``static/explorer.js`` from the buffers, so a click redraws without a
kernel round trip.

Example:
    >>> import ocrviz
    >>> ex = ocrviz.Explorer(model, image, labels)                  # doctest: +SKIP
    >>> ex.selected = [10, 20]      # feature cell (row, col)       # doctest: +SKIP
    >>> ex.save_html("explorer.html")   # standalone, offline      # doctest: +SKIP
"""
from __future__ import annotations

import asyncio
import pathlib
from collections import OrderedDict
from typing import Any, Callable, Sequence

import anywidget
import numpy as np
import traitlets as t

from .explorer_input import PreparedImage, _model_input, prepare_image  # noqa: F401  (_model_input: old callers)
from .kernel_cf import KernelCounterfactuals
from .payload import (ExplorerData, cf_fits_page, class_mass, encode_erf, erf_to_cells, from_cache, pack_for_widget,
                      to_payload)
from .site_payload import MAX_SITE_CELLS

STATIC = pathlib.Path(__file__).parent / "static"
MODES = ("ocr", "aspp")
OVERLAYS = ("image", "prediction", "ground truth", "errors", "marked")
SCALES = ("sqrt", "log", "linear")
COUNTERFACTUALS = ("auto", "browser", "kernel", "off")
SIZES = ("normal", "large")
VIEWS = ("mass", "density")
ErfFn = Callable[[int, int], Any]
REOPEN_NOTE = "run the cell again to bring the explorer back."
# Shown only right after JupyterLab's "Error displaying widget: model not found" (the widget renderer
# classes itself .jupyter-widgets only when it fails; a rendered view is a child), see _ipython_display_.
REOPEN_HTML = (
    "<style>.jp-OutputArea-child:has(> .jp-OutputArea-output.jupyter-widgets) + .jp-OutputArea-child "
    ".ocrviz-reopen{display:block !important}</style>"
    '<div class="ocrviz-reopen" style="display:none;font-family:sans-serif;padding:4px 0">This explorer\'s '
    f'data lived in a Python kernel that is gone: {REOPEN_NOTE}</div>')


def _kernel_loop() -> asyncio.AbstractEventLoop | None:
    """The kernel's running event loop when inside a Jupyter kernel, else None.

    Debouncing needs a loop that keeps running between messages: a kernel's.
    Elsewhere (scripts, tests; also under Playwright's sync API, whose loop
    only turns during its own calls) ERFs are computed at once.
    """
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        return None
    if shell is None or getattr(shell, "kernel", None) is None:
        return None
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Explorer(anywidget.AnyWidget):
    """OCR context explorer widget (JupyterLab 4, VS Code, Colab, standalone HTML).

    ``Explorer(model, image, labels=None, *, aspp_model=None, class_names=None,
    palette=None, erf_fn=None, transform=None, width=300)`` runs the capture
    itself; ``Explorer.from_data(data)`` / ``Explorer.from_cache(cache, image)``
    skip the model.

    Synced state: ``selected`` ([row, col] feature cell), ``overlay``
    ("image" | "prediction" | "ground truth" | "errors" | "marked", the
    ``mark`` pixels, labelled by ``mark_name``), ``hover_region`` (-1 or k),
    ``show_erf`` (compute the ASPP ERF of the selected cell with ``erf_fn``;
    for a model shown by its context sites whose map rests on a convention,
    e.g. toycity-psp, its own gradient ERF in a panel "erf" beside the map),
    ``pinned`` (the mouse no longer moves the selection; ``select()`` pins),
    ``context_view`` ("mass": each source cell in its predicted class's
    colour, the classes weighted by their share of the map's mass, each drawn
    relative to its own peak; "density": the map's value per cell),
    ``scale`` ("sqrt" | "log" | "linear": the colour scale of the context
    maps, whose top colour is each map's own maximum), ``shared_scale`` (one
    scale for every context map at the selected pixel: the largest maximum),
    ``width`` (CSS px per picture; 0, the default, fills the output area's
    width, with whole CSS px per feature cell so that cells stay crisp),
    ``size`` ("normal" | "large": larger type and bars for a projector).
    ``mode`` is kept for old notebooks: OCR's context, ASPP's taps and its
    ERF are shown side by side.  Each context panel carries ``data-panel``
    ("ocr-context", "aspp-context", "aspp-erf"), ``data-vmax`` (the value at
    the top colour), ``data-scale`` and ``data-mass`` (JSON {class name:
    share of the drawn map's mass on cells predicted as that class,
    "off-grid": share outside the image}; sums to 1).

    Counterfactuals (click a region bar to drop it, shift-click to keep only
    it, the slider to scale it; OCR models whose head after the sim map is
    per pixel): ``counterfactuals="auto"`` (default) re-runs them in the page
    when the head's pixel features fit ``payload.CF_MAX_BYTES`` (the toy
    models), else in the kernel (HRNet-size models: the page sends
    ``cf_request``, debounced by ``cf_debounce_s``, and Python answers in
    ``cf_answer`` / ``cf_answer_pred`` with ``kernel_cf.KernelCounterfactuals``,
    the same arithmetic).  "browser" / "kernel" force one side, "off" hides
    them.  A standalone page has no kernel: only page-side counterfactuals
    travel there.
    """

    # The contents, not the paths: given a path, anywidget watches the file and connects, per instance, a
    # callback holding the widget to a class-level signal, so that no explorer is ever freed (+2.5 MB each).
    _esm = (STATIC / "explorer.js").read_text(encoding="utf-8")
    _css = (STATIC / "explorer.css").read_text(encoding="utf-8")

    # data (written once)
    image = t.Bytes(b"").tag(sync=True)
    image_mime = t.Unicode("image/png").tag(sync=True)
    image_hw = t.List(t.Int(), []).tag(sync=True)
    feat_hw = t.List(t.Int(), []).tag(sync=True)
    output_stride = t.Int(8).tag(sync=True)
    class_names = t.List(t.Unicode(), []).tag(sync=True)
    palette = t.List(t.List(t.Int()), []).tag(sync=True)
    num_classes = t.Int(0).tag(sync=True)
    pred = t.Bytes(b"").tag(sync=True)
    pred_hw = t.List(t.Int(), []).tag(sync=True)
    gt = t.Bytes(b"").tag(sync=True)
    gt_hw = t.List(t.Int(), []).tag(sync=True)
    sim_map = t.Bytes(b"").tag(sync=True)
    region_q = t.Bytes(b"").tag(sync=True)
    region_scale = t.List(t.Float(), []).tag(sync=True)
    aspp_rates = t.List(t.Int(), []).tag(sync=True)
    aspp_shares = t.Bytes(b"").tag(sync=True)
    aspp_pred = t.Bytes(b"").tag(sync=True)
    aspp_pred_hw = t.List(t.Int(), []).tag(sync=True)
    erf_cells = t.List(t.List(t.Int()), []).tag(sync=True)
    erf_maps = t.Bytes(b"").tag(sync=True)
    erf_scales = t.List(t.Float(), []).tag(sync=True)
    mark = t.Bytes(b"").tag(sync=True)
    mark_hw = t.List(t.Int(), []).tag(sync=True)
    mark_name = t.Unicode("marked").tag(sync=True)
    blame = t.Bytes(b"").tag(sync=True)                 # error_blame category per pixel, 255 = no error
    blame_hw = t.List(t.Int(), []).tag(sync=True)
    cell_class = t.Bytes(b"").tag(sync=True)            # h*w uint8: each cell's predicted class (mass strips)
    region_mass = t.Bytes(b"").tag(sync=True)           # K x K float32: region k's mass on class c's cells
    erf_class_mass = t.List(t.List(t.Float()), []).tag(sync=True)   # per stored ERF: its K class shares
    packed = t.Dict({}).tag(sync=True)   # {trait: {buf, deflate, shuffle, fixed}}: large buffers, compressed
    # OCR's head after the sim map, per pixel (float32; empty for models without it): counterfactuals
    cf_value = t.Bytes(b"").tag(sync=True)
    cf_pixels = t.Bytes(b"").tag(sync=True)
    cf_up_w = t.Bytes(b"").tag(sync=True)
    cf_up_b = t.Bytes(b"").tag(sync=True)
    cf_fuse_w = t.Bytes(b"").tag(sync=True)
    cf_fuse_b = t.Bytes(b"").tag(sync=True)
    cf_cls_w = t.Bytes(b"").tag(sync=True)
    cf_cls_b = t.Bytes(b"").tag(sync=True)
    # ... or re-run in the kernel (models too large for the page): request JS -> Python, answer Python -> JS
    cf_kernel = t.Bool(False).tag(sync=True)
    cf_request = t.Dict({}).tag(sync=True)
    cf_answer = t.Dict({}).tag(sync=True)
    cf_answer_pred = t.Bytes(b"").tag(sync=True)     # h*w uint8: every cell's class under the answered edit
    # view state (synced both ways)
    selected = t.List(t.Int(), [0, 0], minlen=2, maxlen=2).tag(sync=True)
    mode = t.Enum(MODES, "ocr").tag(sync=True)
    overlay = t.Enum(OVERLAYS, "image").tag(sync=True)
    hover_region = t.Int(-1).tag(sync=True)
    show_erf = t.Bool(False).tag(sync=True)
    pinned = t.Bool(False).tag(sync=True)
    scale = t.Enum(SCALES, "sqrt").tag(sync=True)
    shared_scale = t.Bool(False).tag(sync=True)
    width = t.Int(0, min=0).tag(sync=True)
    size = t.Enum(SIZES, "normal").tag(sync=True)        # "large": larger type and bars, for a projector
    context_view = t.Enum(VIEWS, "mass").tag(sync=True)  # the context maps: by class (mass) or per cell (density)
    overlay_colours = t.Dict({}).tag(sync=True)
    standalone = t.Bool(False).tag(sync=True)
    # on-demand ERF of one cell (Python -> JS)
    erf_map = t.Bytes(b"").tag(sync=True)
    erf_scale = t.Float(0.0).tag(sync=True)
    erf_cell = t.List(t.Int(), [-1, -1]).tag(sync=True)
    erf_status = t.Unicode("").tag(sync=True)
    erf_mass = t.List(t.Float(), []).tag(sync=True)     # the on-demand ERF's K class shares (exact strip)
    # {panel: one plain sentence}: why a panel is not drawn for this model ("counterfactuals", "aspp-erf")
    unavailable = t.Dict({}).tag(sync=True)
    # other heads' context sites (site_payload.py): [{label, sites: [entry with base64 buffers]}]
    sites = t.List(t.Dict(), []).tag(sync=True)
    # the site each head's panel shows (its picker: CCNet's passes, SegFormer's layers), one index per head
    site_pick = t.List(t.Int(), []).tag(sync=True)
    # a site too large to ship whole (site_rows.py): the page asks for the selected cell's map, the kernel answers
    site_request = t.Dict({}).tag(sync=True)
    site_answer = t.Dict({}).tag(sync=True)

    def __init__(self, model: Any, image: Any, labels: Any = None, *, aspp_model: Any = None,
                 class_names: Sequence[str] | None = None, palette: Any = None,
                 erf_fn: ErfFn | None = None, transform: Callable[[Any], Any] | None = None,
                 aspp_rates: Sequence[int] | None = None, mark: Any = None, mark_name: str = "marked",
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 logits_fn: Callable[[Any], Any] | None = None, align_corners: bool | None = None,
                 device: Any = None, compare: Any = (), site_cells: int | None = None,
                 **widget_kwargs: Any) -> None:
        """Run ``model`` (and ``aspp_model``) on ``image`` with capture, then show it.

        ``image``: H x W x 3 uint8 (normalised with ImageNet mean / std, the
        input convention of every ocrviz model and of official HRNet-OCR, or
        through ``transform(image) -> 1 x 3 x H x W tensor``), or a 3 x H x W /
        1 x 3 x H x W tensor fed as given.  ``labels``: H x W ints, 255 =
        ignore.  ``class_names``/``palette`` default to the model's.  With
        ``aspp_model`` and no ``erf_fn``, the ERF is Captum's gradient
        saliency of the ASPP model (``ocrviz.analysis.erf.make_erf_fn``),
        computed only for cells selected while ``show_erf=True``.  ``mark``: an H x W bool map that the overlay
        button ``mark_name`` highlights (e.g. ``ocrviz.data.ambiguity.cue_free``).

        Any model in which ``ocrviz.capture`` finds an OCR block works: ocrviz's
        own, the official ``HighResolutionNet`` (returns ``[aux, main]`` at 1/4
        resolution), openseg's OCR nets (``(aux, main)``), an MMSeg
        ``EncoderDecoder`` / ``CascadeEncoderDecoder`` in tensor mode.  The
        prediction is read from the model's output (a tensor, a list/tuple
        whose last item is the main logits, a dict with ``out``) or by
        ``logits_fn(output)``, and upsampled bilinearly to the image with
        ``align_corners`` (default: the model's own setting, found by
        ``ocrviz.capture.outputs.find_align_corners``: its attribute (MMSeg),
        official HRNet-OCR's ``ALIGN_CORNERS``, the value its own forward's
        bilinear resizes use; else False);
        the output stride is the image height over the feature map's.
        ``mean`` / ``std``: per-channel normalisation (0..1 or 0..255 units;
        default: the model's own, ``ocrviz.normalisation_of`` (e.g. read from an
        MMSeg checkpoint's config), else ImageNet's).  Only what the explorer draws is captured.
        ``device``: where the forward runs ("cpu", "cuda"); the models are moved
        there.  Default: the model's own device.  ``site_cells``: the largest context-site grid whose
        every cell's map is sent to the page (default ``site_payload.MAX_SITE_CELLS``); a larger one
        is answered one clicked cell at a time by the kernel (``site_rows``).
        """
        from .site_rows import SiteRows

        if site_cells is None:
            site_cells = MAX_SITE_CELLS
        elif isinstance(site_cells, bool) or not isinstance(site_cells, (int, np.integer)) or site_cells < 1:
            raise ValueError(f"site_cells={site_cells!r}: give a whole number of cells of at least 1 (default "
                             f"{MAX_SITE_CELLS}); larger grids are answered cell by cell by the kernel")
        rows = SiteRows()
        data, x = _capture_data(model, image, labels, aspp_model=aspp_model, class_names=class_names,
                                palette=palette, transform=transform, aspp_rates=aspp_rates,
                                mark=mark, mark_name=mark_name, mean=mean, std=std, logits_fn=logits_fn,
                                align_corners=align_corners, device=device, rows=rows, site_cells=site_cells)
        if erf_fn is None and aspp_model is None and data.sim_map is None and data.sites \
                and rests_on_convention(data.sites[0]):
            # a head whose map is a stated convention (PSP's bins, MMSeg's ASPP taps): its gradient ERF beside it
            import dataclasses

            from ocrviz.analysis.erf import make_erf_fn

            erf_fn = make_erf_fn(model, x, stride=data.output_stride)    # the model's own argmax per pixel
            data = dataclasses.replace(data, sites=[{**data.sites[0], "erf": True}, *data.sites[1:]])
        if compare:
            from .site_payload import MAX_HEADS, head_sites

            if isinstance(compare, (str, bytes)) or len(compare) > MAX_HEADS:
                raise ValueError(f"compare={compare!r}: give a list (or dict) of at most {MAX_HEADS} models or "
                                 f"shipped names, e.g. compare=['toycity-sa', 'toycity-cc']")
            import dataclasses

            data = dataclasses.replace(data, sites=[*(data.sites or []), *head_sites(
                compare, x, data.cell_classes(), data.class_names, rows=rows, first=len(data.sites or []),
                max_cells=site_cells)])
        if erf_fn is None and aspp_model is not None:
            from ocrviz.analysis.erf import make_erf_fn

            erf_fn = make_erf_fn(aspp_model, x, pred=data.aspp_pred)     # the class the view shows
        self._setup(data, erf_fn, widget_kwargs, device=x.device, site_rows=rows)

    # ---- alternative constructors (no model needed) ----
    @classmethod
    def from_data(cls, data: ExplorerData, *, erf_fn: ErfFn | None = None, **widget_kwargs: Any) -> "Explorer":
        """Explorer over precomputed ``ExplorerData``."""
        if not isinstance(data, ExplorerData):
            raise TypeError(f"from_data expects an ExplorerData, got {type(data).__name__}; "
                            f"build one with ocrviz.widgets.from_cache(cache, image)")
        self = cls.__new__(cls)
        self._setup(data, erf_fn, widget_kwargs)
        return self

    @classmethod
    def from_cache(cls, cache: Any, image: Any, *, erf_fn: ErfFn | None = None,
                   widget_kwargs: dict | None = None, **kwargs: Any) -> "Explorer":
        """Explorer over a capture ``Cache``; ``kwargs`` go to ``payload.from_cache``."""
        return cls.from_data(from_cache(cache, image, **kwargs), erf_fn=erf_fn, **(widget_kwargs or {}))

    def _setup(self, data: ExplorerData, erf_fn: ErfFn | None, widget_kwargs: dict, device: Any = "cpu",
               site_rows: Any = None) -> None:
        self._data = data
        self._site_rows = site_rows
        self._erf_fn = erf_fn
        self._erf_cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._erf_handle: asyncio.TimerHandle | None = None
        self.erf_debounce_s = float(widget_kwargs.pop("erf_debounce_s", 0.15))
        self.cf_debounce_s = float(widget_kwargs.pop("cf_debounce_s", 0.05))
        where = widget_kwargs.pop("counterfactuals", "auto")
        if where not in COUNTERFACTUALS:
            raise ValueError(f"counterfactuals={where!r}; allowed: {', '.join(map(repr, COUNTERFACTUALS))}")
        if data.pixel_head is None or where == "off":
            where = "off"
        elif where == "auto":
            where = "browser" if cf_fits_page(data) else "kernel"
        self.counterfactuals = where
        self._kcf = (KernelCounterfactuals(data.pixel_head, data.sim_map, data.feat_hw, device=device)
                     if where == "kernel" else None)
        self._cf_handle: asyncio.Handle | None = None
        h, w = data.feat_hw
        if "selected" in widget_kwargs:       # chosen by the caller: the mouse does not move it away
            widget_kwargs.setdefault("pinned", True)
        widget_kwargs.setdefault("selected", [h // 2, w // 2])
        # PNG when small, else JPEG (a 1024 x 2048 street is 4 MB as PNG): the export's rule
        payload = to_payload(data, image_format="auto", cf_in_page=where == "browser", live=True)
        if where == "off" and data.pixel_head is not None:
            payload["unavailable"]["counterfactuals"] = "Counterfactuals are switched off for this explorer."
        if data.sim_map is None and any(hd.get("erf") for hd in data.sites or []) and erf_fn is None \
                and not data.erf_maps:
            payload["unavailable"]["erf"] = "No ERF here: this explorer was given no model to compute it with."
        if data.aspp_rates is not None and erf_fn is None and not data.erf_maps:
            payload["unavailable"]["aspp-erf"] = ("No ERF here: this explorer was given no ASPP model or "
                                                  "gradient function to compute it with.")
        anywidget.AnyWidget.__init__(self, **pack_for_widget(payload, data), cf_kernel=where == "kernel",
                                     **widget_kwargs)
        self.observe(self._on_erf_inputs, names=["selected", "mode", "show_erf"])
        if self._kcf is not None:
            self.observe(self._on_cf_request, names=["cf_request"])
        if self._site_rows:
            self.observe(self._on_site_request, names=["site_request"])
        self._on_erf_inputs()

    def _ipython_display_(self) -> None:
        """The widget, then a one-line note that only a notebook reopened without the widget's state shows.

        Reopened without its kernel's widget model, JupyterLab's widget renderer writes "Error
        displaying widget: model not found" (hard-coded in @jupyter-widgets/jupyterlab-manager, and
        its renderer outranks every other mime type of the output, so the widget itself cannot
        change that text).  The note's own CSS keeps it hidden unless the output just before it is
        such an error (the renderer adds ``.jupyter-widgets`` to itself only then); in a live
        notebook, VS Code or Colab it never shows.  The plain text (nbviewer, GitHub) says the same."""
        from IPython.display import HTML, display

        data, meta = self._repr_mimebundle_()
        data = {**data, "text/plain": f"ocrviz Explorer (interactive; if you see only this text, {REOPEN_NOTE[:-1]})"}
        display(data, metadata=meta, raw=True)
        display(HTML(REOPEN_HTML))

    def close(self) -> None:
        """Close the widget (its views go blank) and let go of the model: pending ERF / counterfactual
        timers are cancelled and the kernel-side head, ERF function and ERF cache dropped, so that a
        closed explorer that nothing else holds is freed."""
        for name in ("_erf_handle", "_cf_handle"):
            handle = getattr(self, name, None)
            if handle is not None:
                handle.cancel()
            setattr(self, name, None)
        self._kcf = None
        self._erf_fn = None
        getattr(self, "_erf_cache", {}).clear()
        super().close()

    # ---- public helpers ----
    @property
    def data(self) -> ExplorerData:
        """The ExplorerData shown (read-only arrays)."""
        return self._data

    def select(self, y: int, x: int) -> None:
        """Select feature cell (row y, column x) and pin it (the mouse no longer moves it; Esc or a click frees it)."""
        y, x = _whole("select", "feature cell", y, x)
        with self.hold_sync():
            self.selected = [y, x]
            self.pinned = True

    def select_pixel(self, py: int, px: int) -> None:
        """Select (and pin) the feature cell holding image pixel (py, px)."""
        py, px = _whole("select_pixel", "image pixel", py, px)
        H, W = self._data.image_hw
        if not (0 <= py < H and 0 <= px < W):
            raise ValueError(f"select_pixel({py}, {px}) is outside the {H} x {W} image; allowed rows 0..{H - 1}, "
                             f"columns 0..{W - 1}")
        self.select(*self._data.cell_of_pixel(py, px))

    def save_html(self, path: str | pathlib.Path, *, title: str = "ocrviz explorer", image_format: str = "auto",
                  **options: Any) -> pathlib.Path:
        """Standalone offline page (ESM, CSS, data inlined) with this view's state.

        ``options``: ``precision``, ``max_bytes``, ``image_max_width`` of
        ``ocrviz.widgets.export.save_html``.  ERFs computed so far travel too.
        """
        from .export import save_html

        erfs = dict(self._data.erf_maps or {})
        erfs.update(self._erf_cache)          # ERFs computed on demand travel too
        state = {"selected": list(self.selected), "mode": self.mode, "overlay": self.overlay,
                 "width": self.width, "show_erf": self.show_erf, "pinned": self.pinned,
                 "scale": self.scale, "shared_scale": self.shared_scale, "size": self.size,
                 "context_view": self.context_view, "site_pick": list(self.site_pick)}
        return save_html(self._data, path, state=state, title=title, image_format=image_format,
                         erf_maps=erfs, **options)

    @t.validate("selected")
    def _check_selected(self, proposal: dict) -> list[int]:
        y, x = proposal["value"]
        h, w = self.feat_hw or (1 << 30, 1 << 30)
        if not (0 <= y < h and 0 <= x < w):
            raise t.TraitError(f"selected={[y, x]} is outside the {h} x {w} feature grid; "
                               f"give [row, col] in feature cells (pixel // {self.output_stride})")
        return [int(y), int(x)]

    @t.validate("site_pick")
    def _check_site_pick(self, proposal: dict) -> list[int]:
        picks = [int(v) for v in proposal["value"]]
        counts = [len(hd.get("sites", [])) for hd in (self.sites or [])]
        if len(picks) > len(counts) or any(not 0 <= p < n for p, n in zip(picks, counts)):
            raise t.TraitError(f"site_pick={picks}; give one site index per head shown ({len(counts)} heads, "
                               f"with {counts} sites each), e.g. [0, 1] for the second site of the second head")
        return picks

    @t.validate("feat_hw")
    def _check_feat_hw(self, proposal: dict) -> list[int]:
        value = list(proposal["value"])
        data = getattr(self, "_data", None)
        want = list(data.feat_hw) if data is not None else None
        if len(value) != 2 or any(isinstance(v, bool) or int(v) < 1 for v in value) or (want and value != want):
            raise t.TraitError(f"feat_hw={value}; it is the feature grid of the shown data, "
                               f"{want or '[h, w] positive ints'}, and cannot be changed: build a new Explorer "
                               f"for another grid")
        return [int(v) for v in value]

    @t.validate("class_names")
    def _check_class_names(self, proposal: dict) -> list[str]:
        names = list(proposal["value"])
        k = self.num_classes
        if k and len(names) != k:
            raise t.TraitError(f"{len(names)} class names given; this model has {k} classes: give one name per "
                               f"class, in the model's class order")
        return names

    @t.validate("palette")
    def _check_palette(self, proposal: dict) -> list[list[int]]:
        pal = [list(c) for c in proposal["value"]]
        k = self.num_classes
        ok = all(len(c) == 3 and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in c)
                 for c in pal)
        if (k and len(pal) != k) or not ok:
            raise t.TraitError(f"palette has {len(pal)} colours; give {k or 'K'} [r, g, b] triples of ints "
                               f"0..255, one per class (e.g. [[128, 64, 128], ...])")
        return pal

    # ---- ERF on demand (debounced; only with show_erf) ----
    def _on_erf_inputs(self, change: dict | None = None) -> None:
        if self._erf_fn is None or not self.show_erf:
            return
        cell = (int(self.selected[0]), int(self.selected[1]))
        if list(cell) == list(self.erf_cell):
            return
        if cell in self._erf_cache:
            self._send_erf(cell, self._erf_cache[cell])
            return
        loop = _kernel_loop()
        if loop is None or self.erf_debounce_s <= 0:
            self._compute_erf()
            return
        if self._erf_handle is not None:
            self._erf_handle.cancel()
        self.erf_status = f"computing ERF for cell ({cell[0]}, {cell[1]})"
        self._erf_handle = loop.call_later(self.erf_debounce_s, self._compute_erf)

    def _compute_erf(self) -> None:
        self._erf_handle = None
        if self._erf_fn is None or not self.show_erf:
            return
        cell = (int(self.selected[0]), int(self.selected[1]))
        try:
            raw = self._erf_fn(*cell)
            cells = erf_to_cells(raw, self._data.feat_hw, self._data.output_stride, self._data.image_hw)
        except Exception as e:  # shown in the widget; the kernel keeps running
            self.erf_status = f"ERF failed for cell {cell}: {type(e).__name__}: {e}"
            return
        self._erf_cache[cell] = cells
        while len(self._erf_cache) > 64:
            self._erf_cache.popitem(last=False)
        self._send_erf(cell, cells)

    # ---- a site too large for the page: the selected cell's map, read from the stored factors ----
    def _on_site_request(self, change: dict | None = None) -> None:
        """``site_request`` = {key, rows: [{key, head, site, row}, ...]}: each row answered in turn."""
        rows = dict(self.site_request).get("rows")
        for request in rows if isinstance(rows, list) else []:
            try:
                answer = self._site_rows.answer(dict(request))
            except Exception as e:  # shown in the panel; the kernel keeps running
                answer = {"key": dict(request).get("key"), "error": f"{type(e).__name__}: {e}"}
            self.site_answer = answer

    # ---- counterfactuals in the kernel (debounced: the last request wins) ----
    def _on_cf_request(self, change: dict | None = None) -> None:
        loop = _kernel_loop()
        if self._cf_handle is not None:
            self._cf_handle.cancel()
            self._cf_handle = None
        if loop is None or self.cf_debounce_s <= 0:
            self._answer_cf(whole_later=None)
            return
        self._cf_handle = loop.call_later(self.cf_debounce_s, self._answer_cf, loop)

    def _answer_cf(self, whole_later: asyncio.AbstractEventLoop | None) -> None:
        """The selected cell at once; the whole image (slower) in its own turn of the loop, so that
        the pixel's numbers reach the page first, unless a newer request arrived meanwhile."""
        self._cf_handle = None
        request = dict(self.cf_request)
        if not request or self._kcf is None:
            return
        try:
            answer = self._kcf.pixel(request)
        except Exception as e:  # shown in the widget; the kernel keeps running
            self.cf_answer = {"key": request.get("key"), "error": f"{type(e).__name__}: {e}"}
            return
        edited = answer["after"] is not None
        answer["whole"] = None
        answer["whole_pending"] = edited
        self.cf_answer = answer
        if not edited:
            return
        if whole_later is None:
            self._answer_whole(request)
        else:
            self._cf_handle = whole_later.call_soon(self._answer_whole, request)

    def _answer_whole(self, request: dict) -> None:
        self._cf_handle = None
        if dict(self.cf_request) != request or self._kcf is None:
            return                                   # superseded: the newer request answers
        try:
            whole, pred = self._kcf.whole(request)
        except Exception as e:  # e.g. out of memory on a huge image: said in the widget, the kernel lives
            self.cf_answer = {**self.cf_answer, "whole_pending": False, "whole_error": f"{type(e).__name__}: {e}"}
            return
        with self.hold_sync():
            self.cf_answer_pred = pred.tobytes()
            self.cf_answer = {**self.cf_answer, "whole": whole, "whole_pending": False}

    def _send_erf(self, cell: tuple[int, int], cells: np.ndarray) -> None:
        buf, scale = encode_erf(cells)
        if getattr(self, "_cell_class", None) is None:
            self._cell_class = self._data.cell_classes()
        mass = class_mass(cells, self._cell_class, self._data.num_classes)
        with self.hold_sync():
            self.erf_mass = mass
            self.erf_map = buf
            self.erf_scale = scale
            self.erf_cell = list(cell)
            self.erf_status = ""


# What the explorer draws: the OCR block's sim map and region weights and the prediction;
# ASPP's branch outputs, pooling and prediction.  Nothing else is kept (an HRNet-W48 capture of
# every hook at 1024 x 2048 holds about 1.5 GB).
_OCR_DRAWN = frozenset({"sim_map", "region_weights", "logits", "value", "pixel_feats", "head_logits"})


def _drawn_ocr(name: str) -> bool:
    return name.rsplit(".", 1)[-1].removeprefix("hook_") in _OCR_DRAWN


def _drawn_aspp(name: str) -> bool:
    tail = name.rsplit(".", 1)[-1]
    return tail in ("hook_pool", "hook_logits", "hook_project") or (
        tail.startswith("hook_branch") and tail[11:].isdigit())


def _no_ocr_block(model: Any) -> ValueError:
    from ocrviz.capture.foreign import GATHER_CLASSES, MMSEG_BLOCK_CLASSES, OCR_MODULE_CLASSES, OFFICIAL_BLOCK_CLASSES

    looked = sorted(GATHER_CLASSES | OFFICIAL_BLOCK_CLASSES | MMSEG_BLOCK_CLASSES | OCR_MODULE_CLASSES)
    return ValueError(f"{type(model).__name__} has no OCR block that ocrviz.capture can read: it looked for "
                      f"HookPoints named hook_sim_map / hook_region_weights (ocrviz's models) and for modules of "
                      f"the classes {', '.join(looked)} (official HRNet-OCR, openseg, MMSeg), and it found no "
                      f"other context head that ocrviz.context reads either (self-attention, PSP, DANet, CCNet, "
                      f"...). Pass an OCRNet or a model with a context head; an ASPP model goes in aspp_model=")


def _whole(fn: str, what: str, *values: Any) -> tuple[int, ...]:
    """Row and column as ints; a fractional value is refused (it would be truncated silently)."""
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or (isinstance(v, (float, np.floating)) and not float(v).is_integer()):
            hint = "; select() takes feature cells, select_pixel() image pixels" if fn == "select" else ""
            raise ValueError(f"{fn}{tuple(values)}: a {what} is a whole row and column, got {v!r}{hint}")
        out.append(int(v))
    return tuple(out)


def _device(model: Any, device: Any) -> Any:
    """The torch device to run on: ``device`` when given (checked), else the model's own."""
    import torch

    if device is None:
        return next((p.device for p in model.parameters()), torch.device("cpu"))
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but torch sees no CUDA GPU here; use device='cpu'")
    return dev


def _run_drawn(m: Any, x: Any, keep: Callable[[str], bool], logits_fn: Any, align_corners: bool | None) -> Any:
    """Capture what is drawn on one forward; (cache, logits at the image size or None when cached)."""
    import torch

    from ocrviz.capture import capture
    from ocrviz.capture.outputs import BilinearCalls, find_align_corners, main_logits, upsample_logits

    was_training = m.training
    m.eval()
    try:
        with torch.no_grad(), capture(m, names=keep) as cache, BilinearCalls() as calls:
            out = m(x)
    finally:
        m.train(was_training)
    if "logits" in cache and logits_fn is None:
        return cache, None
    ac = find_align_corners(m, observed=calls.seen) if align_corners is None else bool(align_corners)
    return cache, upsample_logits(main_logits(out, logits_fn), tuple(x.shape[-2:]), ac)


def _blame(model: Any, prep: PreparedImage, labels: Any) -> Any:
    """error_blame's category map when it applies: labels given, a model rerun_head supports, and
    the picture normalised as the model's own default (error_blame normalises it the same way)."""
    if labels is None or not prep.model_default:
        return None
    from ocrviz.analysis import error_blame
    from ocrviz.analysis.counterfactual import ocr_parts

    try:
        ocr_parts(model)
    except ValueError:
        return None
    return error_blame(model, prep.picture, np.asarray(labels)).category


def _names_from(model: Any) -> tuple[Any, Any]:
    """Class names and palette the model carries (ocrviz attributes, or MMSeg's dataset_meta)."""
    meta = getattr(model, "dataset_meta", None) or {}
    names = getattr(model, "class_names", None) or meta.get("classes")
    pal = getattr(model, "palette", None)
    if pal is None:
        pal = meta.get("palette")
    return (list(names) if names is not None else None), pal


def _capture_data(model: Any, image: Any, labels: Any, *, aspp_model: Any, class_names: Any,
                  palette: Any, transform: Any, aspp_rates: Any, mark: Any = None,
                  mark_name: str = "marked", mean: Any = None, std: Any = None, logits_fn: Any = None,
                  align_corners: bool | None = None, device: Any = None, rows: Any = None,
                  site_cells: int = MAX_SITE_CELLS) -> tuple[ExplorerData, Any]:
    from ocrviz.memory import check_image_fits, image_hw

    if image_hw(image) is not None:              # an image too large for this machine: refused before any work
        check_image_fits(model, image_hw(image))
    prep = prepare_image(model, image, transform=transform, mean=mean, std=std)   # the one conversion
    x = prep.x
    dev = _device(model, device)
    model.to(dev)
    if aspp_model is not None:
        aspp_model.to(dev)
    x = x.to(dev)
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"one image at a time: model input has shape {tuple(x.shape)}; expected 1 x 3 x H x W")
    from ocrviz.capture.capture import NothingToCapture

    try:
        cache, logits = _run_drawn(model, x, _drawn_ocr, logits_fn, align_corners)
    except NothingToCapture:            # no OCR hook (e.g. MMSeg's NLHead, SegFormer): its context sites
        cache = None
    if cache is None or not cache.has("sim_map") or not cache.has("region_weights"):
        if aspp_model is not None:
            raise _no_ocr_block(model)
        return _sites_data(model, prep, x, labels, class_names=class_names, palette=palette, mark=mark,
                           mark_name=mark_name, logits_fn=logits_fn, align_corners=align_corners, rows=rows,
                           site_cells=site_cells), x
    kw: dict[str, Any] = {}
    if aspp_model is not None:
        rates = aspp_rates or getattr(getattr(aspp_model, "head", None), "rates", None) \
            or getattr(aspp_model, "rates", None)
        if rates is None:
            raise ValueError("could not find the ASPP rates on aspp_model (head.rates); pass aspp_rates=(...)")
        aspp_cache, aspp_logits = _run_drawn(aspp_model, x, _drawn_aspp, None, align_corners)
        kw.update(aspp_cache=aspp_cache, aspp_rates=tuple(int(r) for r in rates), aspp_logits=aspp_logits)
    from ocrviz.analysis.pixel_head import Unavailable, explain_pixel_head

    try:
        head, why = explain_pixel_head(model, cache), {}
    except Unavailable as e:
        head, why = None, {"counterfactuals": str(e)}
    own_names, own_pal = _names_from(model)
    names = class_names if class_names is not None else own_names
    k = int(cache.sim_map.shape[-1])                                  # B x HW x K: the model's classes
    if names is not None and len(names) != k:
        raise ValueError(f"{len(names)} class names given, but the model has {k} classes (its sim map has {k} "
                         f"regions); give {k} names, one per class, in the model's order")
    pal = palette if palette is not None else own_pal
    return from_cache(cache, prep.picture, labels=labels, class_names=names, palette=pal, logits=logits,
                      pixel_head=head, unavailable=why,
                      blame=_blame(model, prep, labels),
                      output_stride=getattr(model, "output_stride", None), mark=mark, mark_name=mark_name,
                      **kw), x


def _sites_data(model: Any, prep: PreparedImage, x: Any, labels: Any, *, class_names: Any, palette: Any,
                mark: Any, mark_name: str, logits_fn: Any, align_corners: bool | None, rows: Any = None,
                site_cells: int = MAX_SITE_CELLS) -> ExplorerData:
    """A model without an OCR block, shown by its context sites (``site_payload``): every site's map of
    every cell; the strips count by this model's own argmax at feature resolution."""
    from ocrviz import context

    from .explorer_data import default_palette
    from .payload import _np
    from .site_payload import head_sites

    from ocrviz.context.hooks import find_context_sites
    from ocrviz.models.hook_point import HookPoint

    if not find_context_sites(model) and not any(isinstance(m, HookPoint) for m in model.modules()):
        raise _no_ocr_block(model)                      # nothing capture could read: say what was looked for
    cache, logits = _run_drawn(model, x, lambda name: True, logits_fn, align_corners)
    if not context.find_sites(cache):
        raise _no_ocr_block(model)
    logits = _np(cache["logits"] if logits is None else logits)[0]                       # K x H x W
    k = logits.shape[0]
    own_names, own_pal = _names_from(model)
    names = list(class_names if class_names is not None else own_names or [f"class {i}" for i in range(k)])
    if len(names) != k:
        raise ValueError(f"{len(names)} class names given, but the model has {k} classes; give {k} names")
    # the explorer's grid: the finest site grid (SegFormer: MiT's first stage, where its head predicts)
    grid = max((s.grid for _, s in context.find_sites(cache)), key=lambda g: g[0] * g[1])
    try:
        cell_class = context.cell_classes(cache)                                          # h x w
    except ValueError:
        cell_class = None
    if cell_class is None or cell_class.shape != tuple(grid):   # the prediction at each cell's centre pixel
        H, W = logits.shape[1:]
        ys = np.minimum((np.arange(grid[0]) + 0.5) * H / grid[0], H - 1).astype(int)
        xs = np.minimum((np.arange(grid[1]) + 0.5) * W / grid[1], W - 1).astype(int)
        cell_class = logits.argmax(0)[np.ix_(ys, xs)]
    sites = head_sites([model], x, cell_class, names, cache=cache, rows=rows, max_cells=site_cells)
    pal = palette if palette is not None else own_pal
    gt = None if labels is None else _np(labels).astype(np.int64)
    stride = getattr(model, "output_stride", None) or max(1, round(prep.picture.shape[0] / grid[0]))
    return ExplorerData(image=prep.picture, feat_hw=tuple(grid), output_stride=int(stride),
                        class_names=tuple(names), palette=default_palette(k) if pal is None else pal,
                        pred=logits.argmax(0), sim_map=None, region_weights=None, gt=gt,
                        mark=None if mark is None else _np(mark).astype(bool), mark_name=mark_name,
                        cell_class=cell_class, sites=sites)


def rests_on_convention(head: dict) -> bool:
    """Whether a head's context sites (``site_payload`` entries) are drawn by a stated convention rather than
    read exactly (PSP's pooling bins, MMSeg's ASPP taps); a rollout of exact passes (CCNet) does not count."""
    return any(not e.get("exact", True) and "rollout_of" not in e and not e.get("why")
               for e in head.get("sites", []))
