# Source of notebooks/07_one_pixel_seven_heads.ipynb (build with: python notebooks/build.py).
#
# Every sentence that states a number prints it from this notebook's own results; the notebook
# test (tests/notebooks/test_notebooks.py, PROBES["07..."]) reads them back and checks the claims
# against recomputations of its own.

# %% [markdown]
# # 7 · One pixel, seven heads
#
# **What you will learn.** The OCR paper measures OCR against the context heads that came before
# it: pyramid pooling (PSP), atrous pyramids (ASPP), self-attention, DANet and CCNet.  Each one
# answers the same question differently: *where does this pixel's context come from?*
#
# * **FCN** has no context module: a pixel sees only what its backbone's receptive field reaches;
# * **ASPP** reads fixed taps (its rates) and the image mean: fixed geometry;
# * **PSP** reads average-pooled bins at four scales: fixed geometry;
# * **self-attention** (non-local): every pixel attends to every pixel, an HW × HW softmax;
# * **DANet**: the same position attention (PAM) beside a *channel* attention (CAM);
# * **CCNet**: each pixel attends to its row and column, twice;
# * **OCR**: every pixel attends to K object regions, and each region is a soft mask over pixels.
#
# We take the same three pixels of one street through all seven, draw each head's context map the
# same way, score the maps over validation scenes (own-object share, effective number of cells),
# price each head (parameters, GFLOPs, CPU time), and say which maps are the head's own arithmetic
# (**exact**) and which rest on a **convention** we chose and state.
#
# **Which models.**  The six context heads here were trained the same way: on **toycity-fcn's
# backbone, frozen**, from features computed once (`ocrviz.train_heads`, `make heads`), so only the
# head differs.  The OCR and ASPP of notebooks 02–06 (`toycity-ocr`, `toycity-aspp`) were trained
# end to end; here we use their frozen-backbone twins, `toycity-ocr-fb` and `toycity-aspp-fb`.  FCN
# is `toycity-fcn-fb` when it is shipped (a plain 3 × 3 head trained the same way), else
# `toycity-fcn` itself, trained end to end (its backbone is the one the others share); the first
# cell prints which, with each model's validation mIoU and how it was trained.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Patch
from torch.utils.flop_counter import FlopCounterMode

import ocrviz
from ocrviz.analysis.cells import deepest_cell, labels_at_cells
from ocrviz.analysis.context_share import own_object_share
from ocrviz.analysis.mass_view import mass_view_image, mass_view_rgba
from ocrviz.context import cell_classes, context_maps, criss_cross, find_sites
from ocrviz.data.ambiguity import cue_free
from ocrviz.data.dataset import normalize, val_split
from ocrviz.data.samples import load_sample
from ocrviz.data.toycity import AMBIGUITY_KINDS, CLASSES, PALETTE, make_scene
from ocrviz.zoo import data_dir, model_card

%matplotlib inline
WIDTH = 12                      # 12 in at 80 dpi = 960 px, the output area of a 1400-px window
plt.rcParams.update({"figure.dpi": 80, "axes.titlesize": 9, "image.interpolation": "nearest"})
torch.set_num_threads(1)        # the CPU times below are for one thread

FCN_NAME = "toycity-fcn-fb" if (data_dir() / "checkpoints" / "toycity-fcn-fb.json").exists() else "toycity-fcn"
MODELS = {"FCN": FCN_NAME, "ASPP": "toycity-aspp-fb", "PSP": "toycity-psp", "self-attention": "toycity-sa",
          "DANet": "toycity-da", "CCNet": "toycity-cc", "OCR": "toycity-ocr-fb"}
models = {head: ocrviz.load_model(name) for head, name in MODELS.items()}
cards = {head: model_card(name) for head, name in MODELS.items()}
for head, name in MODELS.items():
    c = cards[head]
    how = c.get("recipe") or f"end to end, {c.get('total_steps')} steps"
    print(f"{head:15s} {name:16s} val mIoU {c['metrics']['miou']:.3f}   trained: {how}")
end_to_end = {name: model_card(name)["metrics"]["miou"] for name in ("toycity-ocr", "toycity-aspp", "toycity-fcn")}
print("for reference, trained end to end (notebooks 02-06): "
      + ", ".join(f"{name} {miou:.3f}" for name, miou in end_to_end.items()))

# %% [markdown]
# ## 1 · Three pixels
#
# From the sample street `street_0` (a validation scene): the building facade at cell (7, 14), the
# deepest car-window cell, and the deepest **cue-free** road cell (nothing but road texture
# around it, so only context can say "road" rather than "sidewalk").

# %%
sample = load_sample("street_0")
x = normalize(sample.image)[None]                                  # 1 x 3 x 256 x 512
S, (h, w) = 8, (32, 64)
true_cells = labels_at_cells(sample.labels, S, (h, w))
amb_cells = labels_at_cells(sample.ambiguity, S, (h, w))
free_cells = labels_at_cells(cue_free(sample.ambiguity).astype(np.uint8), S, (h, w)).astype(bool)
CELLS = {"facade": (7, 14),
         "car window": deepest_cell((true_cells == CLASSES.index("car")) & (amb_cells == AMBIGUITY_KINDS.index("window"))),
         "cue-free road": deepest_cell(free_cells & (true_cells == CLASSES.index("road")))}
caches, preds = {}, {}
for head, model in models.items():
    _, caches[head] = ocrviz.run_with_cache(model, x)
    preds[head] = cell_classes(caches[head]) if find_sites(caches[head]) else None
for label, (r, c) in CELLS.items():
    print(f"{label:14s} cell ({r}, {c}), pixel ({r * S + S // 2}, {c * S + S // 2}), true class {CLASSES[true_cells[r, c]]}")

# %% [markdown]
# ## 2 · Seven context maps per pixel, drawn the same way
#
# `ocrviz.context_maps(cache, (y, x))` returns one `ContextMap` per context site: weights over the
# 32 × 64 feature cells plus the mass that fell off the image, summing to 1.  Each panel is the
# explorer's **mass view** (`ocrviz.analysis.mass_view`): a source cell's **colour is the class the
# head's model predicts there**, its **strength is that class's share of the map's mass** relative
# to the largest class share (so the class holding the most context is drawn at full strength),
# times the cell's value relative to the strongest cell of its class (square-root scale), which
# shows where inside the class the mass sits.  A large region that holds most of the mass with a
# low value per cell is drawn strongly — a density picture (each cell's value) would make it
# look faint beside a small bright spot.  Each panel is scaled to its own map: compare the
# classes and the shapes between panels, and read the amounts off the strips.
# The outlined square marks the pixel.  Under each panel, its **mass strip**: the share of the map on
# each predicted class (top three), and off the image.
#
# CCNet has two maps per pixel (one per pass, each exact); we draw the second pass and, in an
# extra column, the two passes composed by **rollout** (a convention, said in its title).  FCN has
# no context site, so its panel is empty.

# %%
def pixel_maps(head, cell):
    """[(title, ContextMap)] drawn for ``head`` at ``cell``: its maps (CCNet: pass 2 and the rollout)."""
    r, c = cell
    maps = context_maps(caches[head], (r * S + S // 2, c * S + S // 2))
    if head == "CCNet":
        return [("CCNet pass 2", maps[-1]), ("CCNet rollout", criss_cross.rollout(caches[head], cell))]
    return [(head, m) for m in maps] or [(head, None)]


def mass_strip(m, classes, top=3):
    shares = m.mass_by_class(classes, CLASSES)
    off = shares.pop("off-grid")
    ranked = sorted(shares.items(), key=lambda kv: -kv[1])[:top]
    return ", ".join(f"{k} {v:.2f}" for k, v in ranked) + (f", off {off:.2f}" if off > 0.005 else "")


def mass_view(ax, m, classes, cell):
    """The explorer's mass view of ContextMap ``m`` (classes: h x w predicted class per cell) over the
    faded street, in cell coordinates; the pixel's cell outlined as in the explorer."""
    rgba = mass_view_rgba(m, classes, PALETTE, CLASSES)                  # h x w x 4, shares: mass_by_class
    ax.imshow(mass_view_image(sample.image, rgba), extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    for edge, lw in (("black", 2.5), ("white", 1)):
        ax.add_patch(plt.Rectangle((cell[1] - 0.5, cell[0] - 0.5), 1, 1, fill=False, ec=edge, lw=lw))


columns = [t for head in MODELS for t, _ in pixel_maps(head, CELLS["facade"])]
fig, axes = plt.subplots(len(CELLS), len(columns), figsize=(WIDTH, 4.3), squeeze=False)
strips = {}
for i, (label, cell) in enumerate(CELLS.items()):
    j = 0
    for head in MODELS:
        for title, m in pixel_maps(head, cell):
            ax = axes[i, j]
            ax.set_xticks([]), ax.set_yticks([])
            if m is None:
                ax.imshow(np.ones((h, w)), cmap="gray", vmin=0, vmax=1)
                ax.set_xlabel("no context site", fontsize=7)
            else:
                mass_view(ax, m, preds[head], cell)
                strips[(label, title)] = mass_strip(m, preds[head])
                ax.set_xlabel(strips[(label, title)].replace(", ", "\n", 2).replace("\n", ", ", 1), fontsize=6)
            if i == 0:
                ax.set_title(title + ("" if m is None else "\n(exact)" if m.exact else "\n(convention)"), fontsize=8)
            if j == 0:
                ax.set_ylabel(label, fontsize=9)
            j += 1
fig.legend(handles=[Patch(color=np.array(c) / 255, label=n) for n, c in zip(CLASSES, PALETTE)], loc="lower center",
           ncol=len(CLASSES), frameon=False, fontsize=8, title="colour = the class the head's model predicts at the "
           "source cell; strength = that class's share of the map x the cell's value within its class", title_fontsize=8)
fig.tight_layout(rect=(0, 0.1, 1, 1))
plt.show()
for (label, title), strip in strips.items():
    print(f"{label:14s} {title:15s} {strip}")

# %% [markdown]
# **How to read it.**  ASPP's and PSP's maps have the same *shape* for every pixel (only their
# position moves): the geometry is fixed, only the numbers say which classes it happens to cover.
# The attention maps (self-attention, DANet's PAM, OCR) change shape with the pixel: they follow
# the content.  CCNet's pass is a cross; its rollout spreads over the image.

# %% [markdown]
# ## 3 · Over validation scenes: own-object share and effective number of cells
#
# Two numbers per head, over the first three validation scenes:
#
# * **own-object share**: the mass of a cell's map on the object under its centre pixel (its
#   instance for cars and people, its class region for stuff), averaged over all cells
#   (`ocrviz.analysis.context_share.own_object_share`, which reads any head through
#   `ocrviz.context.context_masses`);
# * **effective number of cells**: exp(entropy) of a map, averaged over 22 evenly spaced cells
#   per scene: 1 when the map sits on one cell, 2048 when it is uniform over the grid.
#
# For ASPP and PSP both numbers describe the convention (stated below), not the head's own weights.

# %%
SCENES = [make_scene(seed=s) for s in val_split(3)]
SITE = {"CCNet": "head.passes.1"}                  # CCNet: score the second pass (exact)
stats = {}
for head, model in models.items():
    own, eff = [], []
    for sc in SCENES:
        _, cache = ocrviz.run_with_cache(model, normalize(sc.image)[None])
        if not find_sites(cache):
            continue
        own.append(float(own_object_share(cache, sc.labels, sc.instances, S, site=SITE.get(head),
                                          exact_only=False).mean()))
        for q in range(0, h * w, 97):
            m = [m for m in context_maps(cache, ((q // w) * S + S // 2, (q % w) * S + S // 2))
                 if SITE.get(head) in (None, m.site)][-1]
            p = m.weights[m.weights > 0]
            eff.append(float(np.exp(-(p * np.log(p)).sum())))
    stats[head] = (np.mean(own), np.mean(eff)) if own else (None, None)
print(f"{'head':15s} own-object share   effective cells (of {h * w})")
for head, (own, eff) in stats.items():
    print(f"{head:15s} " + ("no context site" if own is None else f"{own:16.2f}   {eff:14.0f}"))
most_own = max((s[0], head) for head, s in stats.items() if s[0] is not None)[1]
widest = max((s[1], head) for head, s in stats.items() if s[1] is not None)[1]
print(f"The largest own-object share: {most_own}; the widest maps: {widest}.")

# %% [markdown]
# ## 4 · What each head costs
#
# The OCR paper's complexity table compares heads by parameters, GFLOPs, memory and time on a
# 2048-channel, 128 × 128 input.  Here the same comparison at ToyCity size, for the **whole model**
# at 256 × 512 (the shared backbone included) and for the **head alone**:
#
# * parameters: counted from the model;
# * GFLOPs: `torch.utils.flop_counter` (multiply-adds of convolutions and matrix products counted
#   as 2 FLOPs; softmax, normalisation and element-wise work are not counted);
# * CPU time: the faster of two forwards at one thread, measured now (so it varies with the
#   machine and its load).

# %%
backbone_params = sum(p.numel() for p in models["FCN"].backbone.parameters())
with FlopCounterMode(display=False) as counter, torch.no_grad():
    feats = models["FCN"].backbone(x)                                             # 1 x 128 x 32 x 64
backbone_gflops = counter.get_total_flops() / 1e9
costs = {}
for head, model in models.items():
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.head(feats)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        with torch.no_grad():
            model(x)
        times.append(time.perf_counter() - t0)
    head_params = sum(p.numel() for p in model.head.parameters())
    costs[head] = {"head_params": head_params, "params": head_params + backbone_params,
                   "head_gflops": counter.get_total_flops() / 1e9, "ms": 1000 * min(times)}
print(f"shared backbone: {backbone_params / 1e3:.0f} k parameters, {backbone_gflops:.2f} GFLOPs at 256 x 512")
print(f"{'head':15s} {'head params':>11s} {'head GFLOPs':>11s} {'model GFLOPs':>12s} {'CPU ms/forward':>14s}")
for head, c in costs.items():
    print(f"{head:15s} {c['head_params'] / 1e3:10.0f}k {c['head_gflops']:11.3f} "
          f"{c['head_gflops'] + backbone_gflops:12.3f} {c['ms']:14.0f}")
cheapest = min(costs, key=lambda k: costs[k]["head_gflops"])
dearest = max(costs, key=lambda k: costs[k]["head_gflops"])
print(f"Head GFLOPs range from {costs[cheapest]['head_gflops']:.3f} ({cheapest}) to "
      f"{costs[dearest]['head_gflops']:.3f} ({dearest}).")

# %%
heads = [k for k in MODELS if stats[k][0] is not None]
fig, axes = plt.subplots(1, 3, figsize=(WIDTH, 2.8))
axes[0].barh(heads, [stats[k][0] for k in heads], color="tab:blue")
axes[0].set_title("own-object share (mean over cells)")
axes[1].barh(heads, [stats[k][1] for k in heads], color="tab:orange")
axes[1].set_xscale("log"), axes[1].set_title(f"effective number of cells (of {h * w}, log scale)")
axes[2].barh(list(costs), [c["head_gflops"] for c in costs.values()], color="tab:gray")
axes[2].set_title("head GFLOPs at 256 x 512")
for ax in axes:
    ax.invert_yaxis()
for ax in axes[1:]:
    ax.tick_params(labelleft=ax is axes[2])
fig.tight_layout()
plt.show()

# %% [markdown]
# **How to read it.**  At ToyCity size (32 × 64 = 2048 cells, 64 channels) the HW × HW attention of
# self-attention and DANet is cheap; it grows with the *square* of the number of cells, so at
# Cityscapes' 128 × 256 cells it is 256 times larger, while OCR's pixel-region relation grows with
# HW × K.  That is the paper's argument; the table shows where each head stands at this size.

# %% [markdown]
# ## 5 · Exact, or a convention?
#
# A `ContextMap` says whether its weights are the head's own arithmetic (`exact`) or rest on a
# choice of ours (`convention`, one sentence).  The table is read from the maps themselves:

# %%
kinds = {}
for head in MODELS:
    for title, m in pixel_maps(head, CELLS["facade"]):
        kinds[title] = None if m is None else (m.exact, m.convention, m.extra.get("note", ""))
for title, k in kinds.items():
    if k is None:
        print(f"{title:15s} no context site (the receptive field of the backbone and a 3 x 3 head)")
    else:
        print(f"{title:15s} {'exact' if k[0] else 'convention: ' + k[1]}" + (f"\n{'':15s} note: {k[2]}" if k[2] else ""))
n_exact = sum(1 for k in kinds.values() if k and k[0])
print(f"{n_exact} of {sum(1 for k in kinds.values() if k)} drawn maps are exact.")

# %% [markdown]
# **Why.**  Attention heads (self-attention, DANet's PAM, each CCNet pass, OCR) compute a
# pixel's context as a weighted sum with weights that sum to 1: those weights *are* the map, and
# `ocrviz` recomputes them from captured factors and checks them against the head's own output.
# ASPP and PSP have no such weights: their branches (or scales) are mixed by learned convolutions,
# so how much each branch counts is a choice we state (ASPP: each branch's share of the
# projection; PSP: equal scales), while *where* the taps and bins land is exact.  DANet's channel
# attention mixes channels, not pixels, so it has no spatial map at all.  Composing CCNet's two
# passes by rollout ignores the residual and value projections: a convention.
#
# **Try it.**  Change `CELLS` to other cells of `street_0` and rerun sections 1–2: which heads'
# maps change shape with the pixel, and which only move?
