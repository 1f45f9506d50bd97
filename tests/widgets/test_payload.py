"""ExplorerData validation, payload round trip (decoded here, independently), from_cache."""
from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch
from PIL import Image

from ocrviz.widgets.payload import ExplorerData, erf_to_cells, from_cache, quantise_u8, to_payload
from ocrviz.widgets.synthetic import synthetic_data


@pytest.fixture(scope="module")
def data() -> ExplorerData:
    d = synthetic_data(h=8, w=16, k=5, output_stride=4, seed=1)
    return dataclasses.replace(d, erf_maps={(2, 3): np.arange(8 * 16, dtype=float).reshape(8, 16)})


def _fields(d: ExplorerData, **change) -> dict:
    f = {fl.name: getattr(d, fl.name) for fl in dataclasses.fields(d)}
    f.update(change)
    return f


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("change, msg", [
    (lambda d: dict(image=d.image.astype(np.float32)), "expected H x W x 3 uint8"),
    (lambda d: dict(feat_hw=(8, 15)), r"expected \(8, 16\) = ceil"),
    (lambda d: dict(output_stride=0), "positive int"),
    (lambda d: dict(sim_map=np.log(d.sim_map)), "negative or non-finite"),
    (lambda d: dict(sim_map=d.sim_map * 2), "each row .* must sum to 1"),
    (lambda d: dict(sim_map=d.sim_map[:, :4]), r"expected \(128, 5\)"),
    (lambda d: dict(region_weights=d.region_weights * 0.5), "each region's map"),
    (lambda d: dict(palette=d.palette[:4]), "one colour per class name"),
    (lambda d: dict(class_names=d.class_names[:4], palette=d.palette[:4]), r"expected \(128, 4\)"),
    (lambda d: dict(pred=d.pred.astype(float)), "integer class indices"),
    (lambda d: dict(pred=np.full(d.pred.shape, 5)), r"values \[5\]; allowed are 0..4$"),
    (lambda d: dict(pred=d.pred[:10]), "expected one of"),
    (lambda d: dict(gt=np.full(d.gt.shape, 254)), r"allowed are 0..4 or 255 \(ignore\)"),
    (lambda d: dict(aspp_rates=None), "aspp_shares given without aspp_rates"),
    (lambda d: dict(aspp_shares=d.aspp_shares[:, :4]), r"expected \(128, 5\)"),
    (lambda d: dict(erf_maps={(8, 0): np.ones((8, 16))}), "outside the 8 x 16 feature grid"),
    (lambda d: dict(erf_maps={(0, 0): np.ones((3, 3))}), "ERF map has shape"),
    (lambda d: dict(mark=np.ones((8, 16), np.int64)), "expected a bool map"),
    (lambda d: dict(mark=np.ones((5, 5), bool)), "expected a bool map"),
    (lambda d: dict(mark_name=""), "short label"),
])
def test_validation_errors_say_what_is_wrong(data: ExplorerData, change, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        ExplorerData(**_fields(data, **change(data)))


def test_ignore_label_and_feature_resolution_pred_are_accepted(data: ExplorerData) -> None:
    gt = np.array(data.gt)
    gt[:4, :4] = 255                                   # the whole of cell (0, 0)
    d = ExplorerData(**_fields(data, gt=gt, pred=np.zeros((8, 16), np.int64)))
    assert d.gt_at(0, 0) == 255 and d.pred.shape == (8, 16) and d.pred.dtype == np.uint8


def test_frozen_and_read_only(data: ExplorerData) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.output_stride = 8  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        data.sim_map[0, 0] = 1.0


# ---------------------------------------------------------------- derived values
def test_cell_lookups_use_the_centre_pixel(data: ExplorerData) -> None:
    s = data.output_stride
    assert data.centre_pixel(2, 3) == (2 * s + s // 2, 3 * s + s // 2)
    assert data.pred_at(2, 3) == data.pred[2 * s + s // 2, 3 * s + s // 2]
    assert data.cell_of_pixel(2 * s + s - 1, 3 * s) == (2, 3)
    ranked = data.ranked_regions(2, 3)
    weights = [wt for _, _, wt in ranked]
    assert weights == sorted(weights, reverse=True)
    assert {k for k, _, _ in ranked} == set(range(5))
    np.testing.assert_allclose(sum(weights), 1.0, rtol=1e-5)
    cm = data.context_map(2, 3)
    assert cm.shape == (8, 16)
    np.testing.assert_allclose(cm.sum(), 1.0, rtol=1e-5)


def test_ranked_regions_ties_keep_class_order() -> None:
    d = synthetic_data(h=2, w=2, k=3, output_stride=2, aspp=False)
    d = ExplorerData(**_fields(d, sim_map=np.tile([0.25, 0.5, 0.25], (4, 1))))
    assert [k for k, _, _ in d.ranked_regions(0, 0)] == [1, 0, 2]


def test_erf_to_cells_sums_pixel_blocks() -> None:
    erf = np.zeros((4, 6))
    erf[0, 0], erf[1, 1], erf[3, 5] = 1.0, -2.0, 1.0     # |.|: cell (0,0) gets 3, cell (1,2) gets 1
    cells = erf_to_cells(erf, (2, 3), 2, (4, 6))
    np.testing.assert_allclose(cells, [[0.75, 0, 0], [0, 0, 0.25]])
    # an image that is not a multiple of the stride: the last cells are partial
    cells = erf_to_cells(np.ones((3, 5)), (2, 3), 2, (3, 5))
    np.testing.assert_allclose(cells * 15, [[4, 4, 2], [2, 2, 1]])


def test_to_npz_round_trip(tmp_path, data: ExplorerData) -> None:
    data.to_npz(tmp_path / "e.npz")
    z = np.load(tmp_path / "e.npz")
    np.testing.assert_array_equal(z["sim_map"], data.sim_map)
    assert z["pred_cells"][2, 3] == data.pred_at(2, 3)
    assert z["true_cells"][2, 3] == data.gt_at(2, 3)
    assert list(z["class_names"]) == list(data.class_names) and tuple(z["aspp_rates"]) == data.aspp_rates
    if data.aspp_shares is not None:
        np.testing.assert_array_equal(z["aspp_shares"], data.aspp_shares)
    assert data.aspp_shares is not None, "the fixture should carry ASPP shares so the round trip covers them"


# ---------------------------------------------------------------- payload round trip
def test_payload_round_trip(data: ExplorerData) -> None:
    p = to_payload(data)
    h, w = data.feat_hw
    k = data.num_classes
    # image: lossless PNG
    img = np.asarray(Image.open(io.BytesIO(p["image"])).convert("RGB"))
    np.testing.assert_array_equal(img, data.image)
    assert p["image_mime"] == "image/png" and p["image_hw"] == list(data.image_hw)
    # sim map: float32 little-endian, bit-exact (these are the printed numbers)
    sim = np.frombuffer(p["sim_map"], "<f4").reshape(h * w, k)
    np.testing.assert_array_equal(sim, data.sim_map)
    # class maps
    np.testing.assert_array_equal(np.frombuffer(p["pred"], np.uint8).reshape(p["pred_hw"]), data.pred)
    np.testing.assert_array_equal(np.frombuffer(p["gt"], np.uint8).reshape(p["gt_hw"]), data.gt)
    np.testing.assert_array_equal(np.frombuffer(p["aspp_pred"], np.uint8).reshape(p["aspp_pred_hw"]),
                                  data.aspp_pred)
    np.testing.assert_array_equal(np.frombuffer(p["aspp_shares"], "<f4").reshape(h * w, 5), data.aspp_shares)
    # region weights: uint8 per map, error bound max_k / 510
    q = np.frombuffer(p["region_q"], np.uint8).reshape(k, h, w)
    dec = q * np.asarray(p["region_scale"], np.float32)[:, None, None]
    bound = data.region_weights.max(axis=(1, 2)) / 510 + 1e-9
    err = np.abs(dec - data.region_weights).max(axis=(1, 2))
    assert (err <= bound).all(), (err, bound)
    assert q.max() == 255                              # each map uses the full range
    from ocrviz.widgets import colours

    assert p["overlay_colours"]["error"] == {"rgb": list(colours.ERROR_RGB), "name": colours.ERROR_NAME}
    assert p["overlay_colours"]["mark"] == {"rgb": list(colours.MARK_RGB), "name": colours.MARK_NAME}
    # ERF: normalised to a distribution over cells, uint8 + scale
    assert p["erf_cells"] == [[2, 3]]
    erf = np.frombuffer(p["erf_maps"], np.uint8).reshape(h, w) * p["erf_scales"][0]
    want = np.arange(h * w, dtype=float).reshape(h, w) / np.arange(h * w).sum()
    np.testing.assert_allclose(erf, want, atol=want.max() / 510 + 1e-9)
    assert p["palette"] == data.palette.tolist() and p["class_names"] == list(data.class_names)


def test_optional_buffers_are_empty(data: ExplorerData) -> None:
    d = ExplorerData(**_fields(data, gt=None, aspp_rates=None, aspp_shares=None, aspp_pred=None, erf_maps=None))
    p = to_payload(d)
    assert p["gt"] == b"" and p["aspp_shares"] == b"" and p["aspp_pred"] == b"" and p["erf_maps"] == b""
    assert p["aspp_rates"] == [] and p["gt_hw"] == []


def test_quantisation_error_bound_on_random_maps() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.random((13, 17)) ** rng.uniform(1, 8)
        q, scale = quantise_u8(a)
        assert np.abs(q * scale - a).max() <= a.max() / 510 + 1e-12


# ---------------------------------------------------------------- from a capture cache
class FakeCache:
    """Duck-typed ocrviz Cache (CONTRACT.md): properties + names() + cache[name]."""

    def __init__(self, tensors: dict[str, torch.Tensor], **props: torch.Tensor) -> None:
        self._t = tensors
        for k, v in props.items():
            setattr(self, k, v)

    def names(self) -> list[str]:
        return list(self._t)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._t[name]


def test_from_cache_reads_the_contract_shapes() -> None:
    b, k, h, w, s = 2, 4, 4, 6, 8
    g = torch.Generator().manual_seed(0)
    sim = torch.softmax(torch.randn(b, h * w, k, generator=g), -1)                       # B x HW x K
    rw = torch.softmax(torch.randn(b, k, h * w, generator=g), -1).reshape(b, k, h, w)   # B x K x h x w
    logits = torch.randn(b, k, h * s, w * s, generator=g)                                # B x K x H x W
    ocr = FakeCache({}, sim_map=sim, region_weights=rw, logits=logits)
    branches = {f"head.hook_branch{i}": torch.rand(b, 3, h, w, generator=g) for i in range(4)}
    branches["head.hook_pool"] = torch.rand(b, 3, 1, 1, generator=g).expand(b, 3, h, w)
    aspp = FakeCache(branches, logits=torch.randn(b, k, h * s, w * s, generator=g))
    image = torch.rand(3, h * s, w * s, generator=g)
    labels = torch.randint(0, k, (h * s, w * s), generator=g)
    d = from_cache(ocr, image, labels=labels, batch_index=1, aspp_cache=aspp, aspp_rates=(1, 2, 3),
                   class_names=list("abcd"))
    np.testing.assert_array_equal(d.sim_map, sim[1].numpy())
    np.testing.assert_array_equal(d.region_weights, rw[1].numpy())
    np.testing.assert_array_equal(d.pred, logits[1].argmax(0).numpy())
    np.testing.assert_array_equal(d.aspp_pred, aspp.logits[1].argmax(0).numpy())
    assert d.feat_hw == (h, w) and d.output_stride == s and d.class_names == tuple("abcd")
    assert d.palette.shape == (k, 3) and d.image.dtype == np.uint8 and d.image.shape == (h * s, w * s, 3)
    np.testing.assert_allclose(d.aspp_shares.sum(1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="aspp_rates"):
        from_cache(ocr, image, aspp_cache=aspp)
    with pytest.raises(KeyError, match="hook_branch0"):
        from_cache(ocr, image, aspp_cache=FakeCache({}, logits=aspp.logits), aspp_rates=(1, 2, 3))


def test_from_cache_with_a_real_model() -> None:
    ocrviz = pytest.importorskip("ocrviz")
    from ocrviz.capture import run_with_cache

    model = ocrviz.create_model("ocrnet", num_classes=3, widths=(8, 8, 16, 16), mid_channels=16,
                                key_channels=8).eval()
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        logits, cache = run_with_cache(model, x)
    d = from_cache(cache, x[0])
    assert d.feat_hw == (4, 6) and d.output_stride == 8 and d.num_classes == 3
    np.testing.assert_array_equal(d.pred, logits[0].argmax(0).numpy())


def test_mark_travels_to_the_payload_and_the_npz(tmp_path, data: ExplorerData) -> None:
    mark = np.zeros(data.image_hw, bool)
    mark[:10, 5:20] = True
    d = ExplorerData(**_fields(data, mark=mark, mark_name="cue-free"))
    p = to_payload(d)
    np.testing.assert_array_equal(np.frombuffer(p["mark"], np.uint8).reshape(p["mark_hw"]), mark)
    assert p["mark_name"] == "cue-free"
    d.to_npz(tmp_path / "m.npz")
    z = np.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(z["mark"], mark)
    assert str(z["mark_name"]) == "cue-free"
    assert to_payload(data)["mark"] == b"" and to_payload(data)["mark_hw"] == []


def test_cell_class_is_the_argmax_of_the_main_logits_at_feature_resolution_and_region_mass_counts_by_it() -> None:
    """The classes the mass strips count by: the head's own main logits at h x w (read by a forward hook,
    independently of the pixel head that from_cache uses), and region_mass = each region's mass on them."""
    import torch

    import ocrviz
    from ocrviz.data.dataset import normalize
    from ocrviz.data.samples import load_sample
    from ocrviz.widgets.payload import to_payload

    torch.set_num_threads(1)
    model = ocrviz.load_model("toycity-ocr")
    sample = load_sample("street_0")
    x = normalize(sample.image)[None]
    main = {}
    hook = model.head.register_forward_hook(lambda m, i, o: main.update(logits=o[1]))   # (aux, main): B x K x h x w
    try:
        ex = ocrviz.Explorer(model, sample.image, sample.labels)
    finally:
        hook.remove()
    want = main["logits"][0].argmax(0).numpy()                                      # h x w
    data = ex.data
    assert want.shape == data.feat_hw
    assert (data.cell_classes() == want).mean() == 1.0
    payload = to_payload(data)
    k = data.num_classes
    got = np.frombuffer(payload["region_mass"], "<f4").reshape(k, k)
    rw = data.region_weights.astype(np.float64)                                      # K x h x w
    expect = np.array([[rw[r][want == c].sum() for c in range(k)] for r in range(k)])
    np.testing.assert_allclose(got, expect, atol=1e-6)
    np.testing.assert_allclose(got.sum(1), 1, atol=1e-5)                             # each region sums to 1
    assert np.frombuffer(payload["cell_class"], np.uint8).tolist() == want.ravel().tolist()
