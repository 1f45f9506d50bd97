# Source of notebooks/02_click_a_pixel.ipynb (build with: python notebooks/build.py).
#
# The JupyterLab browser test runs this notebook: it reads explorer_expected.npz (written by the
# collapsed last cell, tagged course-test, ONLY when OCRVIZ_COURSE_TEST_DIR is set, into that
# folder: a student's run writes nothing) and the `.ocrviz-py-echo` label (a lesson of its own: the
# selection reaches Python).  Keep both.  The overlay colours and their names
# come from ocrviz.widgets.colours; tests/notebooks checks that the text names match.

# %% [markdown]
# # 2 · Click a pixel: where does its context come from?
#
# **What you will learn.** How to read the ocrviz **explorer** for a trained OCRNet on ToyCity
# street scenes: click (or hover) a pixel and see
#
# * the **regions** it attends to (its row of the HW × K sim map, as bars),
# * its **context map** `c_p = Σ_k sim[p, k] · region_weights_k` — where in the image its context
#   comes from (notebook 1 derives this), with a **mass strip** under it that says on which
#   classes that mass lies ("62 % road · 14 % pole · ...": the share of the map on the cells the
#   model predicts as road, as pole, ...),
# * in the row below, for the same pixel, the fixed dilated **taps** the ASPP model reads and
#   ASPP's gradient **receptive field** (ERF), each with its own strip, so the three maps compare
#   class by class.
#
# Then we measure how much of each pixel's context comes from its **own object** — for nearly
# every pixel, very little — and visit the pixels where it is least.
#
# **How to use the explorer.** Hover to follow the mouse; click to pin a pixel (click again or
# press Esc to release); arrow keys move a pinned pixel (Shift: 5 cells).  Hover a bar to see that
# region's weights alone.  The predicted and true class of the pixel are written under the image.
# The first buttons switch the overlay (image, prediction, ground truth, errors, and
# **cue-free**: the road and sidewalk pixels with nothing but paving within 77 px, where only
# context from further away can decide).  The next two switch how the maps are drawn: **by class
# (mass)**, the default, colours each source cell by its predicted class, as strong as that
# class's share of the map (the strip) times the cell's own value; **per cell (density)** draws each cell's own value on the
# colour scale the buttons after it pick (√, log, linear).  For a projector, open the explorer with
# `size="large"`.

# %%
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display
from matplotlib.patches import Patch

import ocrviz
from ocrviz.analysis.cells import labels_at_cells
from ocrviz.analysis import region_influence
from ocrviz.analysis.context_share import ocr_own_object_share
from ocrviz.analysis.erf import make_erf_fn
from ocrviz.data.ambiguity import cue_free
from ocrviz.data.dataset import normalize
from ocrviz.data.samples import load_sample
from ocrviz.data.toycity import CLASSES, PALETTE, colorize
from ocrviz.context import strip_text          # a panel's mass strip as the explorer writes it
from ocrviz.widgets.colours import ERROR_NAME, ERROR_RGB, MARK_NAME, RIGHT_NAME, RIGHT_RGB, rgb01

%matplotlib inline
# Figures are drawn at the notebook's width: 12 in at 80 dpi = 960 px, the output area of a 1400-px
# browser window, so they are shown 1:1 and a 10-pt title is 11 px tall on screen.
WIDTH = 12
plt.rcParams.update({"figure.dpi": 80, "axes.titlesize": 10, "image.interpolation": "nearest"})

ocr = ocrviz.load_model("toycity-ocr")        # OCRNet trained on ToyCity
aspp = ocrviz.load_model("toycity-aspp")      # DeepLabV3-ASPP, same backbone, same training


def to_input(image):
    """H x W x 3 uint8 -> 1 x 3 x H x W, normalised as in training (ImageNet mean / std)."""
    return normalize(image)[None]

# %% [markdown]
# ## The explorer on one street
#
# `ocrviz.Explorer(model, image, labels, aspp_model=...)` runs both models once with capture and
# ships the captured tensors to the browser; every click is redrawn there, without a round trip to
# Python.  The image and OCR's context map sit side by side, the region bars to their right; with
# an ASPP model, ASPP's taps panel sits under the image, and with `erf_fn` and `show_erf=True` a
# fourth panel, under OCR's map, shows ASPP's gradient receptive field (ERF) of the selected pixel,
# computed in Python for every pixel you click (about a second each).

# %% ocrviz={"erf_cells": [[7, 14], [16, 32]]}
sample = load_sample("street_0")             # a validation scene (never seen in training)
x = to_input(sample.image)
explorer = ocrviz.Explorer(ocr, sample.image, sample.labels, aspp_model=aspp, transform=to_input,
                           erf_fn=make_erf_fn(aspp, x), show_erf=True,
                           mark=cue_free(sample.ambiguity), mark_name="cue-free")

echo = widgets.Label()                       # written by Python on every click: the selection reaches the kernel
echo.add_class("ocrviz-py-echo")


def show_selection(change=None):
    r, c = explorer.selected
    d = explorer.data
    echo.value = f"Python: selected: {r},{c} · predicted {d.class_names[d.pred_at(r, c)]}"


show_selection()
explorer.observe(show_selection, names="selected")
display(explorer, echo)

# %% [markdown]
# The explorer and Python share its state: the line under it is written by Python each time you
# click (`explorer.observe(..., names="selected")`), `explorer.selected` is the pinned feature cell
# (row, column), and `explorer.select(row, col)` moves it from code.  Every number it shows comes
# from `explorer.data`, the strips under the maps included (`panel_masses`: each panel's mass by
# the class predicted at each source cell):

# %%
d = explorer.data
h, w = d.feat_hw
s = d.output_stride
print(f"image {d.image_hw[0]} x {d.image_hw[1]}, feature grid {h} x {w} (one cell = {s} x {s} pixels), "
      f"K = {d.num_classes} regions")
r, c = explorer.selected
print(f"selected cell ({r}, {c}): predicted {d.class_names[d.pred_at(r, c)]}, true {d.class_names[d.gt_at(r, c)]}")
for k, name, weight in d.ranked_regions(r, c)[:3]:
    print(f"   attends to {name:12s} {weight:.6f}")
for panel, mass in d.panel_masses(r, c).items():       # the ERF panel's strip appears once it is computed
    print(f"   {panel} strip: {strip_text(mass)}")

# %% [markdown]
# The same overlays as the explorer's buttons, as a static picture: prediction, ground truth and
# the errors (red, as in the explorer: predicted class ≠ true class).

# %%
errors = (d.pred != sample.labels) & (sample.labels != 255)
fig, axes = plt.subplots(1, 3, figsize=(WIDTH, 2.9))
axes[0].imshow(colorize(d.pred))
axes[0].set_title("OCRNet prediction")
axes[1].imshow(colorize(sample.labels))
axes[1].set_title("ground truth")
axes[2].imshow(sample.image // 2 + 60)
tint = np.zeros((*errors.shape, 4))
tint[errors] = (*rgb01(ERROR_RGB), 1.0)
axes[2].imshow(tint)
axes[2].set_title(f"errors ({ERROR_NAME}): {errors.mean():.1%} of the pixels")
for ax in axes:
    ax.axis("off")
fig.legend(handles=[Patch(color=np.array(col) / 255, label=n) for n, col in zip(CLASSES, PALETTE)],
           loc="lower center", ncol=len(CLASSES), frameon=False, fontsize=9)
plt.tight_layout(rect=(0, 0.09, 1, 1))
plt.show()
print(f"explorer and figures: errors {ERROR_NAME}, cue-free (marked) pixels {MARK_NAME}")

# %% [markdown]
# ## How much of a pixel's context comes from its own object?
#
# The context map of pixel p is a distribution over the image (it sums to 1).  Its **own-object
# share** is the part that falls on p's own object: its instance for things (this car, this
# person), its class region for stuff (road, sky).  `ocrviz.analysis.context_share` computes it for
# every cell at once.  Before running the cell: guess the mean over all cells.  (The printed mean
# says it: for nearly every pixel most of the context comes from *other* objects — the road and
# building summaries above all, as notebook 3 measures.)

# %%
share = ocr_own_object_share(d.sim_map, d.region_weights, sample.labels, sample.instances, stride=s)  # h x w
cell_true = labels_at_cells(sample.labels, s, (h, w))                        # h x w: class at each cell's centre
cell_pred = labels_at_cells(d.pred, s, (h, w))

fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.4), gridspec_kw={"width_ratios": [2, 1]})
im = axes[0].imshow(share, vmin=0, vmax=1, cmap="RdYlGn")
axes[0].set_title("own-object share of each cell's OCR context\n(green: own object, red: elsewhere)")
plt.colorbar(im, ax=axes[0], fraction=0.025)
correct = cell_pred == cell_true
axes[1].hist([share[correct], share[~correct]], bins=20, range=(0, 1), label=["correct cells", "wrong cells"],
             color=[rgb01(RIGHT_RGB), rgb01(ERROR_RGB)], density=True)
axes[1].set_xlabel("own-object share")
axes[1].set_title("correct vs wrong cells")
axes[1].legend()
plt.tight_layout()
plt.show()
print(f"mean own-object share: all cells {share.mean():.2f}; correct cells {share[correct].mean():.2f}, "
      f"wrong cells {share[~correct].mean():.2f}" if (~correct).any() else "no wrong cells")

# %% [markdown]
# For each class in the image, here is the cell whose context comes **least** from its own object
# (the extreme of a common case, not a rare one).
# **Click them in the explorer above** (row and column are feature cells; the line under the explorer
# shows the cell you point at), or run `explorer.select(row, col)`.  For each, ask: which region does
# it attend to, is the prediction right, and would a human need that other object to label the
# pixel?
#
# Attention says where the context is gathered, not what the prediction uses.  The last column asks
# the model: `region_influence` removes each region from the cell's row in turn (the rest
# renormalised) and reports the region whose removal lowers the predicted class's logit the most —
# the explorer's `Δlogit` column.  Where it differs from the top region, the most attended region is
# not the one the prediction leans on.

# %%
with torch.no_grad():
    _, cache = ocrviz.run_with_cache(ocr, x)
influence = region_influence(ocr, cache)[0].numpy()                     # HW x K: logit drop without region k
print(f"{'cell':10s} {'true':13s} {'predicted':13s} {'top region':20s} {'own-object share':>16s}   "
      f"{'most influential (Δlogit)':26s}")
for k in np.unique(cell_true):
    if k == 255:
        continue
    masked = np.where(cell_true == k, share, np.inf)
    r, c = (int(v) for v in np.unravel_index(np.argmin(masked), share.shape))
    _, name, weight = d.ranked_regions(r, c)[0]
    k_inf = int(np.argmax(influence[r * w + c]))
    print(f"({r:2d}, {c:2d})   {CLASSES[cell_true[r, c]]:13s} {CLASSES[cell_pred[r, c]]:13s} "
          f"{name + f' ({weight:.2f})':20s} {share[r, c]:16.2f}   "
          f"{CLASSES[k_inf] + f' ({influence[r * w + c, k_inf]:+.2f})':26s}")
top_differs = float((d.sim_map.argmax(1) != influence.argmax(1)).mean())
print(f"over all {h * w} cells of this street, the most influential region is not the most attended one "
      f"for {top_differs:.0%}")

# %% [markdown]
# ## A second explorer, on another street
#
# Explorers are independent: each keeps its own data and selection.  This one starts on the
# **errors** overlay and on the cell of this street with the lowest own-object share.

# %%
sample2 = load_sample("street_1")
explorer2 = ocrviz.Explorer(ocr, sample2.image, sample2.labels, aspp_model=aspp, transform=to_input,
                            overlay="errors")
d2 = explorer2.data
share2 = ocr_own_object_share(d2.sim_map, d2.region_weights, sample2.labels, sample2.instances, stride=s)
r2, c2 = (int(v) for v in np.unravel_index(np.argmin(share2), share2.shape))
explorer2.select(r2, c2)
display(explorer2)

print(f"second explorer: cell {tuple(explorer2.selected)}, own-object share {share2[r2, c2]:.2f}; "
      f"first explorer still at {tuple(explorer.selected)}")

# %% [markdown]
# ## Things to try
#
# * Click a **car window** and a **building window**: the same paint, different context.  Does the
#   car window attend to `car`?  What about a window of a car parked in front of a building?
# * Look at the **ASPP taps** panel under the image for the same pixel: the taps sit at fixed
#   distances whatever the object.  Compare the strips class by class.  Notebook 3 compares the
#   two systematically.
# * Pin a pixel on the **road** near the kerb, then step with the arrow keys onto the **sidewalk**:
#   when does the top region change, and does the prediction follow?
# * Switch on the **cue-free** overlay and click inside the yellow area: the backbone sees nothing
#   there but paving.  Which regions does the pixel attend to, and is the prediction right?
#   Compare with ASPP's taps below it, whose widest reach 144 px (taps that fall off the image
#   count as "off-grid" in its strip).
# * Switch the maps to **per cell (density)**: the strip stays, the colours now show how much
#   each single cell contributes, whatever its class.
# * Hover the bars: each region's weights sum to 1 over the image — bright where the region
#   summary is taken from.
#
# <details><summary>Does the car window attend to car? (the cell below prints the answer for this
# street's largest car window)</summary>
#
# Not first.  Its row puts more weight on large stuff regions (road first) than on `car`, and the
# strip under its OCR map puts less of the context on car cells than on road cells (ASPP's taps,
# in the panel below, put far more on car): the pixel's context is mostly a summary of the scene, not of
# its own car.  Its label is
# still right — what the context is used for is what the `Δlogit` column and notebook 3 measure.
# </details>

# %%
from ocrviz.analysis.cells import deepest_cell
from ocrviz.data.toycity import AMBIGUITY_KINDS

cell_amb = labels_at_cells(sample.ambiguity, s, (h, w))
window = (cell_true == CLASSES.index("car")) & (cell_amb == AMBIGUITY_KINDS.index("window"))
rw_, cw_ = deepest_cell(window)
ranked = d.ranked_regions(rw_, cw_)
car_rank = [name for _, name, _ in ranked].index("car") + 1
print(f"car window, cell ({rw_}, {cw_}): predicted {d.class_names[d.pred_at(rw_, cw_)]}; its regions: "
      + ", ".join(f"{name} {weight:.2f}" for _, name, weight in ranked[:4])
      + f" ...; car is number {car_rank} of {d.num_classes}")
window_mass = d.panel_masses(rw_, cw_)                  # {panel: {class: share}}
for panel, mass in window_mass.items():
    print(f"   {panel} strip: {strip_text(mass)}  (car {mass['car']:.0%})")

# %% tags=["course-test"] jupyter={"source_hidden": true}
# For the course's automated browser test (tests/browser) only: it sets OCRVIZ_COURSE_TEST_DIR and
# reads what the first explorer shows from there.  In your own run this cell does nothing.
import os

if os.environ.get("OCRVIZ_COURSE_TEST_DIR"):
    explorer.data.to_npz(os.path.join(os.environ["OCRVIZ_COURSE_TEST_DIR"], "explorer_expected.npz"))
