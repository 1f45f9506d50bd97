"""docs/teaching.md: the committed page is a fresh rendering of the shipped models' numbers, and
every number it quotes is recomputed here another way (a full forward with the sim map edited
by a hook, Captum's saliency, the own object's cover counted pixel by pixel), its sentences
hold for those numbers, and notebook 03 prints the same scene-level rates
(tests/notebooks/test_notebooks.py::test_teaching_numbers_are_notebook_03s)."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import ocrviz
from ocrviz.analysis.erf import gradient_erf
from ocrviz.data.dataset import normalize
from ocrviz.data.samples import load_sample
from ocrviz.data.toycity import CLASSES
from ocrviz.tools import teaching

SIM = "head.ocr_distri_head.object_context_block.hook_sim_map"


@pytest.fixture(scope="module")
def numbers():
    torch.set_num_threads(1)
    return teaching.numbers()


@pytest.fixture(scope="module")
def models():
    return ocrviz.load_model("toycity-ocr"), ocrviz.load_model("toycity-aspp")


def test_the_committed_page_is_a_fresh_rendering(numbers) -> None:
    page = teaching.DOC.read_text()
    assert page == teaching.render(numbers), "docs/teaching.md is stale: run python -m ocrviz.tools.teaching"
    assert "{" not in page.replace("{{", "")                          # no field left unformatted
    assert "docs/teaching.md" in (teaching.REPO / "README.md").read_text()


def _cell_logits(model, x, cell, row=None) -> np.ndarray:
    """The head's logits (feature resolution) at ``cell`` from a full forward in which a forward hook
    on the sim map's HookPoint replaces the cell's row by ``row`` (None: unedited)."""
    hook_point = dict(model.named_modules())[SIM]
    r, c = cell

    def edit(module, inputs, output):                                  # output: B x HW x K
        if row is None:
            return output
        out = output.clone()
        out[0, r * (x.shape[-1] // model.output_stride) + c] = torch.as_tensor(row, dtype=out.dtype)
        return out

    handle = hook_point.register_forward_hook(edit)
    try:
        with torch.no_grad():
            _, cache = ocrviz.run_with_cache(model, x, names=["head.hook_head_logits", SIM])
    finally:
        handle.remove()
    return cache["head.hook_head_logits"][0, :, r, c].numpy(), cache[SIM][0].numpy()


def _own_cover(scene, cell, stride=8) -> np.ndarray:
    """h x w: the share of each 8 x 8 block covered by the object under ``cell``'s centre pixel,
    counted pixel by pixel (instance for things, class for stuff)."""
    y, x = cell[0] * stride + stride // 2, cell[1] * stride + stride // 2
    inst, lab = scene.instances, scene.labels
    mask = (inst == inst[y, x]) & (lab == lab[y, x]) if inst[y, x] > 0 else (lab == lab[y, x]) & (inst == 0)
    h, w = lab.shape[0] // stride, lab.shape[1] // stride
    return mask.reshape(h, stride, w, stride).mean((1, 3))


@pytest.mark.parametrize("key", ["facade", "road", "window", "cuefree"])
def test_each_pixels_numbers_recomputed(numbers, models, key) -> None:
    ocr, aspp = models
    n = numbers[key]
    scene = load_sample(n["scene"])
    x = normalize(scene.image)[None]
    cell = tuple(n["cell"])
    logits, sim = _cell_logits(ocr, x, cell)
    row = sim[cell[0] * 64 + cell[1]]
    np.testing.assert_allclose([n["row"][c] for c in CLASSES], row, atol=1e-6)
    assert n["pred"] == CLASSES[int(np.argmax(logits))]
    assert n["true"] == CLASSES[scene.labels[cell[0] * 8 + 4, cell[1] * 8 + 4]]
    pred = int(np.argmax(logits))
    for k, name in enumerate(CLASSES):                                 # influence: the logit drop without k
        dropped = row.copy()
        dropped[k] = 0
        after, _ = _cell_logits(ocr, x, cell, dropped / dropped.sum())
        assert abs(n["influence"][name] - (logits[pred] - after[pred])) < 2e-3, (name, n["influence"][name])
        if name == n["top"]:
            np.testing.assert_allclose([n["after_drop_top"][c] for c in CLASSES], after, atol=2e-3)
    # own-object share of the context map: sum_k row[k] * (region k's weight on the object)
    with torch.no_grad():
        _, cache = ocrviz.run_with_cache(ocr, x)
    cover = _own_cover(scene, cell)
    ctx = np.tensordot(row.astype(np.float64), cache.region_weights[0].numpy().astype(np.float64), axes=1)
    assert abs(n["ocr_own"] - float((ctx * cover).sum())) < 1e-4
    # ASPP's ERF by Captum's saliency at the cell's centre pixel, summed over each 8 x 8 block
    erf = gradient_erf(aspp, x, y=cell[0] * 8 + 4, x=cell[1] * 8 + 4).pixels
    blocks = erf.reshape(32, 8, 64, 8).sum((1, 3))
    assert abs(n["erf_own"] - float((blocks / blocks.sum() * cover).sum())) < 1e-3
    assert 0 <= n["aspp_own"] <= 1
    # the mass strips: each map's mass summed over the cells the OCR model predicts as each class
    # (argmax of its main logits at feature resolution, read from the head's logits hook)
    with torch.no_grad():
        _, hc = ocrviz.run_with_cache(ocr, x, names=["head.hook_head_logits"])
    cls = hc["head.hook_head_logits"][0].argmax(0).numpy().ravel()     # HW
    by_class = lambda m: np.bincount(cls, weights=np.ravel(m), minlength=len(CLASSES))  # noqa: E731
    mass = n["mass"]
    np.testing.assert_allclose([mass["ocr-context"][c] for c in CLASSES], by_class(ctx), atol=1e-5)
    np.testing.assert_allclose([mass["aspp-erf"][c] for c in CLASSES], by_class(blocks / blocks.sum()), atol=1e-3)
    taps, off = _taps_map(cell, n["aspp_shares"], aspp.head.rates, (32, 64))
    np.testing.assert_allclose([mass["aspp-context"][c] for c in CLASSES], by_class(taps), atol=1e-6)
    assert abs(mass["aspp-context"]["off-grid"] - off) < 1e-6 and mass["ocr-context"]["off-grid"] == 0


def _taps_map(cell, shares, rates, hw):
    """h x w and off-grid mass: the 1x1 branch's share on the cell, each dilated branch's share split
    over its nine taps (a tap off the grid reads padding: off-grid), image pooling spread evenly."""
    (r, c), (h, w) = cell, hw
    m = np.full((h, w), shares[-1] / (h * w))
    m[r, c] += shares[0]
    off = 0.0
    for b, rate in enumerate(rates, start=1):
        for dy in (-rate, 0, rate):
            for dx in (-rate, 0, rate):
                if 0 <= r + dy < h and 0 <= c + dx < w:
                    m[r + dy, c + dx] += shares[b] / 9
                else:
                    off += shares[b] / 9
    return m, off


def _strip_parts(strip: str) -> list[tuple[int, str]]:
    return [(int(p.split(" % ")[0]), p.split(" % ")[1]) for p in strip.split(" · ")]


@pytest.mark.parametrize("key", ["facade", "road", "window", "cuefree"])
def test_the_quoted_strips_are_the_masses(numbers, key) -> None:
    """Each strip the page quotes: the largest shares (at most four, each >= 3 %), in order, each
    the rounded mass, then "other" with the rest, as the explorer draws it."""
    fields = teaching.fields(numbers)
    prefix = {"facade": "f", "road": "r", "window": "w", "cuefree": "c"}[key]
    page = teaching.DOC.read_text()
    for panel, short in zip(teaching.PANELS, ("ocr", "aspp", "erf")):
        mass = numbers[key]["mass"][panel]
        assert abs(sum(mass.values()) - 1) < 1e-5
        strip = fields[f"{prefix}_strip_{short}"]
        parts = _strip_parts(strip)
        named = [(n, v) for n, v in mass.items() if n in {p[1] for p in parts}]
        top = sorted(mass.values(), reverse=True)
        assert [round(100 * mass[n] + 1e-9) for _, n in parts if n != "other"] == [v for v, n in parts if n != "other"]
        assert [mass[n] for _, n in parts if n != "other"] == top[:len(named)]
        assert len(named) <= 4 and all(v >= 0.03 for _, v in named)
        if parts[-1][1] == "other":
            assert abs(parts[-1][0] - 100 * (1 - sum(v for _, v in named))) <= 0.5 + 1e-9
        if short == "ocr" or key == "window":
            assert strip in page, (key, panel, strip)


def test_the_pages_sentences_hold(numbers) -> None:
    f, r, w, c, s = (numbers[k] for k in ("facade", "road", "window", "cuefree", "scenes"))
    # pixel 1: a building cell, right, whose top region is road, which is also the most influential
    assert f["true"] == f["pred"] == "building" and f["top"] == "road" == f["most_influential"]
    assert f["influence"]["road"] > 0 and f["ocr_own"] < 0.05
    fm = f["mass"]                                                     # its strips: OCR on road, ASPP on building
    assert max(fm["ocr-context"], key=fm["ocr-context"].get) == "road" and fm["ocr-context"]["building"] < 0.05
    assert all(max(fm[p], key=fm[p].get) == "building" for p in ("aspp-context", "aspp-erf"))
    # pixel 2: a road cell, right, attending to road; removing road RAISES the road logit
    assert r["true"] == r["pred"] == "road" and r["influence"]["road"] < 0
    assert r["most_influential"] != "road"
    # pixel 3: both models right; OCR's own-object share below ASPP's taps and ERF
    assert w["true"] == w["pred"] == w["aspp_pred"] == "car"
    assert w["ocr_own"] < w["aspp_own"] and w["ocr_own"] < w["erf_own"]
    wm = w["mass"]                                                     # and on car cells, by the strips
    assert wm["ocr-context"]["car"] < wm["aspp-erf"]["car"] < wm["aspp-context"]["car"]
    assert c["mass"]["aspp-context"]["off-grid"] >= 0.03               # "the taps that fall off the image"
    # pixel 4: cue-free, soft regions right, OCR wrong; dropping the top region raises its own logit
    assert c["soft"] == c["true"] != c["pred"]
    assert c["after_drop_top"][c["top"]] > c["logits"][c["top"]] and c["pred_after_drop_top"] != c["pred"]
    # the figure below chance: both rates at or below 1/K
    assert s["inf_is_true"] < s["top_is_true"] <= 1 / s["K"]


def test_every_number_on_the_page_is_a_field(numbers) -> None:
    """The page's decimals are the rendered fields (no number typed into the template by hand)."""
    template = teaching.TEMPLATE.read_text()
    prose = re.sub(r"\{\w+\}", "", template)
    typed = re.findall(r"(?<![\w.])[-+]?\d+\.\d+", prose)
    assert typed == [], typed
