# Source of notebooks/06_does_the_attention_matter.ipynb (build with: python notebooks/build.py).
#
# Every sentence that states a number prints it from this notebook's own results; the notebook
# test (tests/notebooks/test_notebooks.py, PROBES["06..."]) reads them back and checks the claims.

# %% [markdown]
# # 6 · Does the attention matter?
#
# **What you will learn.** A similarity map is *attention*: it says where a pixel looks, not what
# the looking changes.  Attention can mislead (Jain & Wallace, *Attention is not Explanation*,
# 2019), and OCRNet users report exactly that: similarity maps near 1/19 everywhere with the
# official Cityscapes checkpoint
# ([openseg.pytorch issue 22](https://github.com/openseg-group/openseg.pytorch/issues/22)).
# Here we ask the model itself, with **counterfactuals**: the model's own computation with one
# tensor replaced.
#
# 1. an **attention report** over validation scenes: how spread out the sim rows are, whether
#    their top region is the right class, whether the soft regions sit on their objects — and
#    what the mIoU becomes when every sim row is replaced (uniform, one-hot, shuffled);
# 2. **influence against attention**: for every cell and region, how much the predicted class's
#    logit drops when that region is removed from the row (`region_influence`);
# 3. **error blame**: for each misclassified pixel, which counterfactual would repair it — the
#    ground-truth regions, a one-hot relation on the true class, either, or neither;
# 4. **context flow**: over the dataset, which classes each class takes its context from, for
#    OCR's attention, OCR's influence and ASPP's fixed taps;
# 5. the live explorer, whose bars show attention and influence, and where you can drop regions.
#
# For researchers: set `MODEL_PATH` below to your own checkpoint (MMSeg, official HRNet-OCR or
# ocrviz) and your images to see the same report for your model.

# %%
import matplotlib.pyplot as plt
from IPython.display import display
import numpy as np
import torch

import ocrviz
from ocrviz.analysis import attention_report, context_flow, error_blame, region_influence
from ocrviz.analysis.blame import CATEGORIES
from ocrviz.analysis.verdicts import attention_verdicts
from ocrviz.data.dataset import normalize, val_split
from ocrviz.data.samples import load_sample
from ocrviz.data.toycity import CLASSES, make_scene
from ocrviz.context import strip_text          # a panel's mass strip as the explorer writes it
from ocrviz.widgets.flow_view import FlowExplorer

%matplotlib inline
plt.rcParams.update({"figure.dpi": 80, "axes.titlesize": 10})

MODEL_PATH = None          # e.g. "ocrnet_hr18_cityscapes.pth" (then also give your own IMAGES / LABELS)
model = ocrviz.from_checkpoint(MODEL_PATH) if MODEL_PATH else ocrviz.load_model("toycity-ocr")
names = list(model.class_names)
K = len(names)
scenes = [make_scene(seed=s) for s in val_split(12)]      # validation scenes: never seen in training
IMAGES = [sc.image for sc in scenes]
LABELS = [sc.labels for sc in scenes]
print(f"{len(IMAGES)} validation scenes of {IMAGES[0].shape[0]} x {IMAGES[0].shape[1]}, K = {K} classes")

# %% [markdown]
# ## 1 · The attention report
#
# `attention_report(model, images, labels)` streams the images through the model once and through
# three counterfactual re-runs of the head: every sim row replaced by the **uniform** row 1/K, by a
# **one-hot** row on the pixel's own soft-region class (what the paper's picture suggests the
# attention does), and by the rows of **other pixels** of the same image (shuffled).  The re-runs
# are exact: `ocrviz.analysis.rerun_head` with the edited sim map equals a full forward in which a
# hook makes the same replacement (tested).

# %%
rep = attention_report(model, IMAGES, LABELS, progress=False)
print(rep.to_markdown())
rep.plot()

# %%
verdicts = attention_verdicts(rep)          # the same sentences `ocrviz report` writes into its page
uniform_drop, onehot_drop, shuffled_drop = verdicts.uniform_drop, verdicts.onehot_drop, verdicts.shuffled_drop
verdict = verdicts.verdict
print("\n".join(verdicts.sentences))

# %% [markdown]
# **How to read it.**  A uniform row gives every pixel the same context (the mean of the region
# values), so the drop to the uniform mIoU is what the pixel-specific *relation* carries; the
# rest of OCR's gain comes from the region values themselves, which every pixel still receives.
# Shuffled rows give each pixel some other pixel's mix: a drop larger than the uniform one means a
# wrong relation is worse than none.  A one-hot row is the "each pixel attends to its own object"
# story of the paper's figures: a model that worked that way would lose nothing there.  The three
# printed sentences above say which of these hold for the model you loaded.

# %% [markdown]
# ## 2 · Influence against attention
#
# For one scene, `region_influence(model, cache)` gives, for **every cell and every region**, the
# drop of the cell's predicted-class logit when that region is removed from the row and the rest
# renormalised — all of them in one vectorised pass (the head after the sim map is per pixel).
# In the scatter, look below the zero line: points there are regions whose removal *raises* the
# predicted logit, many of them with large attention weights — attention says nothing about the
# sign of a region's effect (notebook 3, point 5, counts the cells whose own-class region works
# against them).

# %%
sample = load_sample("street_0")
x = normalize(sample.image)[None]
with torch.no_grad():
    _, cache = ocrviz.run_with_cache(model, x)
infl = region_influence(model, cache)[0].numpy()           # HW x K
att = cache.sim_map[0].numpy()                             # HW x K
corr = float(np.corrcoef(att.ravel(), infl.ravel())[0, 1])
top_att = att.argmax(1)
top_inf = infl.argmax(1)
agree = float((top_att == top_inf).mean())

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for k in range(K):
    colour = np.asarray(model.palette[k]) / 255
    axes[0].scatter(att[:, k], infl[:, k], s=3, alpha=0.35, color=colour, label=names[k])
axes[0].axhline(0, color="k", lw=0.5)
axes[0].set_xlabel("attention: sim[p, k]")
axes[0].set_ylabel("influence: predicted logit drop without region k")
axes[0].set_title(f"every cell x region of street_0 (correlation {corr:.2f})")
axes[0].legend(markerscale=4, fontsize=8, ncol=3)
counts = np.bincount(top_inf, minlength=K) / len(top_inf)
counts_att = np.bincount(top_att, minlength=K) / len(top_att)
xs = np.arange(K)
axes[1].bar(xs - 0.2, counts_att, 0.4, label="most attended", color="tab:gray")
axes[1].bar(xs + 0.2, counts, 0.4, label="most influential", color="tab:orange")
axes[1].set_xticks(xs, names, rotation=45, ha="right")
axes[1].set_ylabel("share of cells")
axes[1].set_title("which region each cell attends to most vs which one matters most")
axes[1].legend()
plt.tight_layout()
plt.show()
print(f"The most attended region is also the most influential one for {agree:.0%} of the cells; "
      f"correlation of attention and influence over all cell x region pairs: {corr:.2f}.")

# %% [markdown]
# ## 3 · Whom to blame for an error
#
# `error_blame(model, image, labels)` re-runs the head twice for every pixel of an image: once
# with the **soft regions** replaced by the ground truth's (a region edit: proxies, values and
# the sim map are recomputed), once with the pixel's **sim row** replaced by a one-hot row on its
# true class (a relation edit).  A misclassified pixel is blamed on `region` if only the first
# repairs it, `relation` if only the second does, `both` if either does, `neither` if neither
# does (then the pixel features or the classifier are at fault).

# %%
blames = [error_blame(model, im, lb) for im, lb in zip(IMAGES[:6], LABELS[:6])]
counts = sum(b.counts for b in blames)                   # K x 4: true class x category
totals = dict(zip(CATEGORIES, counts.sum(0).tolist()))
n_err = int(counts.sum())
fig, ax = plt.subplots(figsize=(10, 3.5))
bottom = np.zeros(K)
for j, cat in enumerate(CATEGORIES):
    ax.bar(names, counts[:, j], bottom=bottom, label=f"{cat} ({totals[cat]:,})")
    bottom += counts[:, j]
ax.set_ylabel("misclassified pixels")
ax.set_title(f"error blame over {len(blames)} validation scenes ({n_err:,} misclassified pixels)")
ax.tick_params(axis="x", rotation=45)
ax.legend()
plt.tight_layout()
plt.show()
worst = max(totals, key=totals.get)
print(f"{n_err:,} misclassified pixels: " + ", ".join(f"{c} {totals[c] / n_err:.0%}" for c in CATEGORIES)
      + f"; most are '{worst}'.")

# %% [markdown]
# ## 4 · Context flow over the dataset
#
# Rows: the true class of a cell.  Columns: the class of the pixels its context comes from.
# **OCR mass** is where the context map `Σ_k sim[p,k] · region_k` puts its weight; **OCR influence**
# is the mean logit drop when the regions of that class are removed; **ASPP mass** is where its
# taps (weighted by the branch shares) land.  Hover a matrix cell for its value; **click** it: the
# cells of that true class whose context comes from that source class are listed, and the first
# opens in an explorer below the matrices, selected — so you can see *which* pixels make a matrix
# entry large.  (Clicking needs a kernel; a handout shows the matrices without it.)
#
# The OCR influence matrix is the dataset-wide version of section 2's scatter: a negative entry on
# the diagonal means that, on average, removing a cell's *own* class region raises its predicted
# logit — attention to a region says nothing about the sign of its effect.

# %%
aspp = ocrviz.load_model("toycity-aspp")
flow = context_flow(model, IMAGES[:6], LABELS[:6], aspp_model=aspp)
flow_explorer = FlowExplorer(flow, model, IMAGES[:6], LABELS[:6], aspp_model=aspp)
# drawn at the notebook's width (960 px: the output area of a 1400-px window), not clipped
flow_explorer.figure.update_layout(width=960, height=400, margin={"l": 90, "r": 10, "t": 70, "b": 80})
display(flow_explorer)

# %%
ocr_diag = float(np.nanmean(np.diag(flow.ocr_mass)))
aspp_diag = float(np.nanmean(np.diag(flow.aspp_mass)))
print(f"Own-class share of the context (mean of the diagonals): OCR {ocr_diag:.2f}, ASPP {aspp_diag:.2f}.")

# %% [markdown]
# ## 5 · Try it: drop a region yourself
#
# In the explorer, each bar shows the attention (`sim`) and the influence (`Δlogit`, positive when
# the region supports the prediction).  **Click a bar** to drop that region from the pixel's row,
# **shift-click** to keep only that region, the **slider** to scale one, **undo** to go back.  The
# pixel is re-run through OCR's own head after the sim map; the prediction and all logits
# before → after appear under the bars, the OCR context map beside the image and the mass strip
# under it are redrawn with the edited row (the dropped region's class loses share: the cell below
# prints the strip before and after), and the prediction overlay shows the same edit on every
# cell.  The predicted and true class of the pixel stay written under the image, for comparison.
# A small head travels with the page, which re-runs it without the kernel; an HRNet-size head
# (yours, with `MODEL_PATH`) stays in the kernel, which answers each edit.  The line under the
# explorer says which.

# %%
explorer = ocrviz.Explorer(model, sample.image, sample.labels)
explorer.select(14, 20)
feat_mib = explorer.data.pixel_head.pixels.nbytes / 2 ** 20
where = {"browser": "in the page (no kernel needed)", "kernel": "in the kernel"}[explorer.counterfactuals]
display(explorer)
print(f"This model's head after the sim map needs {feat_mib:.1f} MiB of pixel features for this image, "
      f"so its counterfactuals run {where}.")

# the strip under the context map, before and after clicking the top region's bar: the map's mass
# on the cells predicted as each class, for the cell's row and for the row without its top region
d5 = explorer.data
r5, c5 = explorer.selected
row5 = d5.sim_map[r5 * d5.feat_hw[1] + c5]                                  # K
top5 = int(np.argmax(row5))
dropped5 = np.where(np.arange(K) == top5, 0.0, row5) / (1 - row5[top5])     # the rest renormalised
cls5 = d5.cell_classes().ravel()                                            # HW: the class of each cell
strip_before, strip_after = ({n: float(v) for n, v in zip(names, np.bincount(
    cls5, weights=np.tensordot(r_, d5.region_weights, axes=1).ravel(), minlength=K))}
    for r_ in (row5, dropped5))
print(f"cell ({r5}, {c5}), strip: {strip_text(strip_before)}\n"
      f"without the {names[top5]} region: {strip_text(strip_after)}")

# %% [markdown]
# ## Exercises
#
# **1.** Sort the bars *by Δlogit* for a few building and road pixels.  Is the most influential
# region always the most attended one?
#
# <details><summary>Answer</summary>
#
# No: over this scene the two agree for the share of cells printed in section 2.  Attention tells
# you where the context is gathered; influence tells you which part of it the prediction uses.
# </details>
#
# **2.** Do one-hot rows on the soft-region class cost more or less mIoU than uniform rows?  What
# does that say about the "each pixel attends to its object" picture?
#
# <details><summary>Answer</summary>
#
# Read the drops printed in section 1.  Where one-hot rows cost more than uniform ones (as for the
# shipped ToyCity model), the head was trained on *mixed* context and a single object's summary is
# outside its experience: the picture is not how this model works, even though its soft regions
# sit on their objects.
# </details>
#
# **3.** (Researchers.)  Set `MODEL_PATH` to your checkpoint and `IMAGES` / `LABELS` to a few of
# your images, and rerun.  Does your model's relation matter more or less than ToyCity's?
