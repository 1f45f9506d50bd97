"""error_blame on hand-built OCR models whose repairs are known, and on the shipped model against hooks.

The hand-built model: the "backbone" averages the [0, 1] image per 8 x 8 cell,
the image is three pure-colour stripes (class c = colour channel c), so every
cell's pixel feature is e_c.  All BN layers are the identity; weights are set
so that the soft regions (aux gain A), the query (identity or a permutation),
a key threshold tau and a pixel-path bias towards the wrong class (gamma) make
each counterfactual's outcome computable by hand (see each case).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ocrviz
from ocrviz.analysis import CATEGORIES, error_blame
from ocrviz.data.dataset import MEAN, STD
from ocrviz.models import OCRHead, SegModel

from ocr_helpers import hooked_logits

K, S = 3, 8
PERM = torch.eye(K)[[2, 0, 1]]          # PERM @ e_c = e_{(c+1) % 3}: the wrong class sigma(c)


class UnitImage(nn.Module):
    """B x 3 x H x W normalised -> the [0, 1] image averaged per cell, B x 3 x H/8 x W/8."""

    out_channels, output_stride = 3, S

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
        return F.avg_pool2d(x * std + mean, S)


def _conv(conv: nn.Conv2d, w: torch.Tensor) -> None:
    conv.weight.zero_()
    conv.weight[:, :, conv.kernel_size[0] // 2, conv.kernel_size[1] // 2] = w
    if conv.bias is not None:
        conv.bias.zero_()


def hand_model(aux_gain: float, query: torch.Tensor, tau: float, beta: float, gamma: float) -> SegModel:
    head = OCRHead(3, K, mid_channels=3, key_channels=3, dropout=0.0)
    eye = torch.eye(K)
    with torch.no_grad():
        for m in head.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1), m.bias.zero_(), m.running_mean.zero_(), m.running_var.fill_(1)
                m.eps = 0.0
        _conv(head.conv3x3_ocr[0], eye)                                  # pixel feature = e_c
        _conv(head.aux_head[0], eye)
        _conv(head.aux_head[3], aux_gain * eye)                          # soft regions: A * e_c
        blk = head.ocr_distri_head.object_context_block
        _conv(blk.f_pixel[0], query)
        _conv(blk.f_pixel[2], eye)                                       # query = query @ e_c
        _conv(blk.f_object[0], eye)
        blk.f_object[1][0].bias.fill_(-tau)                              # key = beta * relu(proxy - tau)
        _conv(blk.f_object[2], beta * eye)
        _conv(blk.f_down[0], eye)                                        # value = proxy
        _conv(blk.f_up[0], eye)                                          # object context = context
        _conv(head.ocr_distri_head.conv_bn_dropout[0], torch.cat([eye, gamma * PERM], 1))
        _conv(head.cls_head, eye)                                        # logits = obj + gamma e_sigma(c)
    return SegModel(UnitImage(), head, arch="ocrnet").eval()


def stripes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """32 x 96 image of three 32-px stripes (red, green, blue = classes 0, 1, 2); labels; interior mask."""
    h, w = 32, 96
    labels = np.repeat(np.arange(K), 32)[None].repeat(h, 0)              # H x W
    image = (np.eye(3, dtype=np.uint8)[labels] * 255).astype(np.uint8)    # H x W x 3
    # Pixels whose bilinear (align_corners) interpolation reads two cells of their own stripe only.
    pos = np.arange(w) * (w // S - 1) / (w - 1)
    lo, hi = np.floor(pos).astype(int) // 4, np.ceil(pos).astype(int) // 4
    interior = (lo == labels[0]) & (hi == labels[0])
    return image, labels, np.broadcast_to(interior, (h, w))


CASES = {
    # good regions, query points at sigma(c): only a one-hot row on the true class repairs
    "relation": (dict(aux_gain=10.0, query=PERM, tau=0.0, beta=30.0, gamma=0.0), "relation", False),
    # uniform regions (all values = the mean), good query, pixel path biased: only true regions repair
    "region": (dict(aux_gain=0.0, query=torch.eye(K), tau=0.0, beta=30.0, gamma=0.5), "region", False),
    # regions 70 % pure: keys thresholded to 0 (uniform sim), but value_c is still class c:
    # true regions repair (keys back), a one-hot row repairs (value_c) -> both
    "both": (dict(aux_gain=math.log(2 * 0.7 / 0.3), query=torch.eye(K), tau=0.8, beta=100.0, gamma=0.3),
             "both", False),
    # uniform regions AND a wrong query: each edit alone fails, the two together repair
    "joint": (dict(aux_gain=0.0, query=PERM, tau=0.0, beta=30.0, gamma=0.3), "neither", True),
    # the pixel path dominates: nothing in the context can repair
    "neither": (dict(aux_gain=0.0, query=PERM, tau=0.0, beta=30.0, gamma=2.0), "neither", False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hand_built_cases(case: str) -> None:
    kwargs, expected, joint = CASES[case]
    model = hand_model(**kwargs)
    image, labels, interior = stripes()
    blame = error_blame(model, image, labels)
    assert (blame.prediction[interior] == (labels[interior] + 1) % K).all()   # every interior pixel wrong
    assert (blame.category[interior] == CATEGORIES.index(expected)).all(), np.unique(blame.category[interior])
    assert (blame.joint[interior] == joint).all()
    wrong = blame.prediction != labels
    assert blame.counts.sum() == wrong.sum() and ((blame.category >= 0) == wrong).all()
    assert blame.counts[:, CATEGORIES.index(expected)].sum() >= interior.sum()
    assert blame.joint_counts.sum() == blame.joint.sum()


def test_shipped_model_matches_hooked_forwards() -> None:
    from ocrviz.data.dataset import normalize
    from ocrviz.data.toycity import make_scene

    model = ocrviz.load_model("toycity-ocr")
    scene = make_scene(11, 64, 128)
    blame = error_blame(model, scene.image, scene.labels)
    x = normalize(scene.image)[None]
    k = model.num_classes
    cell = scene.labels[S // 2::S, S // 2::S].ravel()                    # cell-centre labels (64 x 128 -> 8 x 16)
    onehot = torch.where(torch.from_numpy(cell != 255)[:, None],
                         F.one_hot(torch.from_numpy(np.where(cell == 255, 0, cell)), k).float(), torch.zeros(1))
    keep = torch.from_numpy(cell == 255)[:, None]
    pred_s = hooked_logits(model, x, {"hook_sim_map": lambda out: torch.where(keep, out, onehot[None])})
    assert (pred_s.argmax(1)[0].numpy() == blame.pred_relation).all()
    assert (hooked_logits(model, x, {}).argmax(1)[0].numpy() == blame.prediction).all()
    wrong = (scene.labels != 255) & (blame.prediction != scene.labels)
    rel = (blame.pred_relation == scene.labels) & wrong
    assert ((blame.category == 1) | (blame.category == 2))[wrong].sum() == rel.sum()
    assert blame.to_dict()["n_errors"] == int(wrong.sum())
