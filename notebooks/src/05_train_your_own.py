# Source of notebooks/05_train_your_own.ipynb (build with: python notebooks/build.py).

# %% [markdown]
# # 5 · Train your own OCRNet
#
# **What you will learn.** What it takes to train an OCRNet, in a run short enough to watch
# (about 15 seconds on a laptop CPU):
#
# * the loss: cross-entropy on the main output **plus 0.4 × cross-entropy on the soft object
#   regions** (the auxiliary head), as in the official HRNet-OCR — without it the "regions" would
#   not need to look like objects at all;
# * a poly learning-rate schedule, AdamW, random ToyCity scenes from seeds validation never uses;
# * the **model card** every run writes (config, exact command, machine, metrics);
# * and the explorer on *your* model: after a few dozen steps, where does its context come from?
#
# The shipped `toycity-ocr` was trained the same way with many more steps on larger scenes
# (`make models`; its model card records the exact command and the time it took).

# %%
import dataclasses
import json
import shlex
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

import ocrviz
from ocrviz.analysis.context_share import context_map
from ocrviz.analysis.mass_panel import class_legend, mass_panel
from ocrviz.context import strip_text          # a panel's mass strip as the explorer writes it
from ocrviz.data.dataset import VAL_SEEDS, normalize
from ocrviz.data.toycity import CLASSES, PALETTE, colorize, make_scene
from ocrviz.train import TrainConfig, train, training_stages
from ocrviz.zoo import model_card

%matplotlib inline
# Figures at most 12 in wide at 80 dpi (960 px, the output area of a 1400-px window): shown 1:1.
plt.rcParams.update({"figure.dpi": 80, "axes.titlesize": 10, "image.interpolation": "nearest"})

# %% [markdown]
# ## A short run
#
# The same architecture as the shipped model (its card's `model_kwargs`), but small scenes
# (128 × 256), batches of 4 and 30 steps: 120 training images, each rendered on the fly.
# Raise `STEPS` (and the size) for a better model; the progress bar shows the loss and the speed.
# `threads` is what this kernel runs with: one under `make lab`, the course's setting
# (`ocrviz.tools.course_env`: on a small shared machine one thread was the fastest).
#
# The cell also prints the same run as a **command line**.  Run it from the repository root, in the
# course's environment (`.venv/bin/python` if `python` is not that one), and it trains the same
# model and writes `my-ocr.safetensors` and its model card `my-ocr.json` there.

# %%
STEPS = 30
shipped = model_card("toycity-ocr")
config = TrainConfig(arch="ocrnet", steps=STEPS, batch_size=4, height=128, width=256, lr=5e-3,
                     val_images=8, val_every=STEPS, threads=torch.get_num_threads(), out=None,
                     model_kwargs=shipped.get("model_kwargs", {}))


def command_line(config):
    """The `python -m ocrviz.train` command that runs `config` (only the options that differ from the defaults)."""
    defaults, args = TrainConfig(), []
    for f in dataclasses.fields(TrainConfig):
        value = getattr(config, f.name)
        if value == getattr(defaults, f.name):
            continue
        text = json.dumps(value) if isinstance(value, dict) else str(value)
        args += ["--" + f.name.replace("_", "-"), text]
    return "python -m ocrviz.train " + " ".join(shlex.quote(a) for a in args)


print(config)
command = command_line(dataclasses.replace(config, out="my-ocr"))
print("the same run from a terminal:")
print(command)
result = train(config, command=command)
model, card = result.model, result.card          # the model comes back in eval mode

# %% [markdown]
# ## The model card
#
# `card` is what `python -m ocrviz.train --out ...` writes next to the weights as JSON.  Its
# metrics come from the first `val_images` validation scenes.  Compare with the shipped model,
# trained far longer on larger scenes (its numbers are for its own scene size).

# %%
print(f"{'':14s} {'yours':>8s} {'shipped':>8s}")
for key in ("miou", "pixel_acc", "ambiguous_acc"):
    print(f"{key:14s} {card['metrics'][key]:8.3f} {shipped['metrics'][key]:8.3f}")
print(f"{'steps':14s} {card['total_steps']:8d} {shipped['total_steps']:8d}")
print(f"{'wall time (s)':14s} {card['total_wall_time_s']:8.1f} {shipped['total_wall_time_s']:8.1f}")
print(f"{'scene size':14s} {config.height:>4d}x{config.width:<3d} {shipped['val_split']['height']:>4d}x{shipped['val_split']['width']}")

# %% [markdown]
# The shipped model was trained in three stages, each from the last one's weights.  Its card records
# each stage's exact command, including where that run wrote its weights (a scratch folder of the
# machine that trained it) and the checkpoint it started from (the shipped file of that day, which
# the next stage replaced).  To replay the chain, each stage must start from the *previous stage's*
# output; the cell below prints the recorded commands with `--out` and `--init-from` rewritten to
# do exactly that, under `build/models/` (the shipped checkpoints are left alone).  Run them in order
# from the repository root — or run `make models`, which does the same for all three models.

# %%
def replayable(stages, name, folder="build/models"):
    """The stages' recorded commands, chained: stage i writes folder/name-i and stage i+1 starts from it."""
    commands, previous = [], None
    for i, stage in enumerate(stages, start=1):
        args = shlex.split(stage["command"])
        assert args[:3] == ["python", "-m", "ocrviz.train"], args[:3]
        out, rest, skip = f"{folder}/{name}-{i}", [], False
        for a, b in zip(args[3:], args[4:] + [None]):
            if skip:
                skip = False
            elif a in ("--out", "--init-from"):
                skip = True
            else:
                rest.append(a)
        rest += (["--init-from", f"{previous}.safetensors"] if previous else []) + ["--out", out]
        commands.append("python -m ocrviz.train " + " ".join(shlex.quote(a) for a in rest))
        previous = out
    return commands


stages = training_stages(shipped)
for stage, line in zip(stages, replayable(stages, "toycity-ocr")):
    print(f"# stage of {stage['steps']} steps (recorded wall time {stage['wall_time_s'] / 60:.0f} min):")
    print(line)

fig, ax = plt.subplots(figsize=(10, 3))
xpos = np.arange(len(CLASSES))
for offset, (who, c) in zip((-0.2, 0.2), [("yours", card), ("shipped", shipped)]):
    ax.bar(xpos + offset, [c["metrics"]["per_class_iou"][n] or 0 for n in CLASSES], width=0.4, label=who)
ax.set_xticks(xpos, CLASSES)
ax.set_ylabel("IoU")
ax.set_title(f"per-class IoU: yours after {card['total_steps']} steps, shipped after {shipped['total_steps']}")
ax.legend()
plt.show()
learned = [n for n in CLASSES if (card["metrics"]["per_class_iou"][n] or 0) >= 0.1]
print(f"classes your model already scores at IoU >= 0.1: {learned or 'none yet'}")

# %% [markdown]
# ## Where does your model's context come from?
#
# A validation scene at the size you trained on.  Open the explorer and click around: after a few
# dozen steps the soft regions are blurry and the region weights are not yet shaped like objects
# (**Measure it**, below the pictures, compares them with the shipped model).  Compare with
# notebook 2.

# %%
scene = make_scene(VAL_SEEDS[0], height=config.height, width=config.width)
explorer = ocrviz.Explorer(model, scene.image, scene.labels, transform=lambda img: normalize(img)[None])
display(explorer)

# %% [markdown]
# The same question as a static picture.  First the scene, your model's prediction and the region
# weights of two classes (each map on its own colour scale: brighter = more weight).

# %%
d = explorer.data
h, w = d.feat_hw
s = d.output_stride
cell_pred = d.cell_classes()                             # h x w: your model's class per cell, as the explorer counts
fig, axes = plt.subplots(1, 4, figsize=(12, 2.2))
axes[0].imshow(scene.image)
axes[0].set_title("scene")
axes[1].imshow(colorize(d.pred))
axes[1].set_title("your model's prediction")
for ax, name in zip(axes[2:], ("road", "building")):
    ax.imshow(d.region_weights[CLASSES.index(name)], cmap="magma")
    ax.set_title(f"region weights: {name}")
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# Then the context map of one road cell and one building cell, drawn as the explorer draws it (its
# **mass view**, as in notebooks 1 and 3): a source cell's **colour is the class your model
# predicts there** (the legend under the figure), its **strength is that class's share of the
# map's mass** — relative to the largest share, so the class holding the most context is drawn at
# full strength — times the cell's value relative to the strongest cell of its class (square-root
# scale).  Under each panel is its **mass strip**, the shares as numbers, as the explorer writes
# them when you click the same cell.  The outlined square is the cell.

# %%
chosen, strips = {}, {}                                  # {class name: (row, col)}, {class name: mass strip}
fig, axes = plt.subplots(1, 2, figsize=(12, 4.0))
for ax, name in zip(axes, ("road", "building")):
    cells = np.argwhere(cell_pred == CLASSES.index(name))
    if len(cells) == 0:
        ax.set_title(f"no {name} predicted yet")
        ax.axis("off")
        continue
    r, c = (int(v) for v in cells[len(cells) // 2])
    chosen[name] = (r, c)
    strips[name] = mass_panel(ax, scene.image, context_map(d.sim_map[r * w + c], d.region_weights), cell_pred,
                              (r, c), PALETTE, CLASSES, title=f"context map of a {name} cell ({r}, {c})")
class_legend(fig, strips.values(), PALETTE, CLASSES,
             title="colour = the class your model predicts at the source cell; strength = that class's share of "
                   "the map (the strip under the panel) x the cell's value within its class")
plt.tight_layout(rect=(0, 0.14, 1, 1))
plt.show()

maps = {name: context_map(d.sim_map[r * w + c], d.region_weights) for name, (r, c) in chosen.items()}   # h x w each
peaks = {name: tuple(int(v) for v in np.unravel_index(m.argmax(), (h, w))) for name, m in maps.items()}
yy, xx = np.mgrid[:h, :w]                                # h x w: each cell's row and column
patch = {name: float(m[np.hypot(yy - peaks[name][0], xx - peaks[name][1]) <= 3].sum()) for name, m in maps.items()}
for name, (r, c) in chosen.items():
    print(f"{name} cell ({r}, {c}): {strip_text(strips[name])}; the strongest cell is {peaks[name]}, "
          f"{patch[name]:.0%} of the map lies within 3 cells ({3 * s} px) of it")
BUILDING = CLASSES.index("building")
attends_building = int((d.sim_map.argmax(1) == BUILDING).sum())
on_building = np.array([context_map(d.sim_map[p], d.region_weights)[cell_pred == BUILDING].sum()
                        for p in range(h * w)])                                                        # HW
print(f"cells whose most attended region is building: {attends_building} of {h * w}; share of a cell's context "
      f"on building cells, over all cells: median {np.median(on_building):.2f}, smallest {on_building.min():.2f}")

# %% [markdown]
# **What it shows.**  After 30 steps both cells take nearly all of their context from the same
# place: cells your model predicts as **building** (the strips), most of it from the dark patch
# at the right that the two panels share (both maps peak at the same cell, and more than half of
# each map lies within 3 cells of it).  The road cell's context is no more about the
# road than the building cell's.  The last printed line says it is not these two cells only:
# almost every cell attends most to the building region, and the median cell takes nearly all of
# its context from building cells.  The sim map does not yet tell pixels apart; the shipped
# model's maps mix several classes (notebook 1: no class holds more than 40 % of any of its four
# pixels' maps).

# %% [markdown]
# **Measure it.**  Are your model's soft object regions on their objects yet?  For each class with
# at least 5 cells in this scene, the share of its region's weight that lies on cells of that class
# (1 = entirely on the object), for your model and for the shipped one on the same scene.

# %%
def region_on_class(net, image, labels):
    """{class: share of region k's spatial weight on the cells of class k} for classes with >= 5 cells."""
    with torch.no_grad():
        _, cache = ocrviz.run_with_cache(net, normalize(image)[None])
    rw = cache.region_weights[0].numpy()                      # K x h x w, each map sums to 1
    cls = labels[s // 2::s, s // 2::s]                         # true class at each cell's centre
    return {n: float(rw[k][cls == k].sum()) for k, n in enumerate(CLASSES) if (cls == k).sum() >= 5}


yours_on_class = region_on_class(model, scene.image, scene.labels)
shipped_on_class = region_on_class(ocrviz.load_model("toycity-ocr"), scene.image, scene.labels)
fig, ax = plt.subplots(figsize=(8, 2.6))
xpos = np.arange(len(yours_on_class))
ax.bar(xpos - 0.2, list(yours_on_class.values()), width=0.4, label=f"yours ({card['total_steps']} steps)")
ax.bar(xpos + 0.2, [shipped_on_class[n] for n in yours_on_class], width=0.4, label="shipped")
ax.set_xticks(xpos, list(yours_on_class))
ax.set_ylim(0, 1)
ax.set_ylabel("region weight on its class")
ax.legend()
plt.show()
print(f"median share of a region's weight on its own class: yours {np.median(list(yours_on_class.values())):.2f}, "
      f"shipped {np.median(list(shipped_on_class.values())):.2f}")

# %% [markdown]
# ## Save it, load it back
#
# `ocrviz.save_checkpoint` writes safetensors (no pickle) with the class names and palette;
# any `create_model` of the same architecture loads it.

# %%
with tempfile.TemporaryDirectory(prefix="ocrviz_nb05_") as folder:      # removed at the end of the block
    path = Path(folder) / "my-ocr.safetensors"
    ocrviz.save_checkpoint(model, path, metadata={"steps": card["steps"]})
    size_mb = path.stat().st_size / 1e6
    again = ocrviz.create_model("ocrnet", num_classes=len(CLASSES), **config.model_kwargs).eval()
    meta = ocrviz.load_checkpoint(again, path)
x = normalize(scene.image)[None]
with torch.no_grad():
    same = torch.equal(again(x), model(x))
print(f"saved and reloaded {path.name} ({size_mb:.1f} MB); the reloaded model gives the same logits: {same}; "
      f"metadata: arch={meta['arch']}, steps={meta['steps']}, {len(meta['class_names'])} class names")

# %% [markdown]
# ## Exercises
#
# **1.** Set `STEPS = 120` and run again (about four times as long).  Which classes appear in the
# per-class IoU first, and which last?  Why?
#
# <details><summary>Answer</summary>
#
# Large stuff classes (building, road, sky) cover most pixels, so the loss rewards them first.
# Small things (poles, signs, persons) cover a fraction of a percent of the pixels and need many
# more steps; the road/sidewalk split needs *context* (the kerb, what stands on the paving, which
# of the scene's two pavings the cars are on), so it also comes late.
# </details>
#
# **2.** Train with `aux_weight=0.0`.  The model still trains — look at the region weights in the
# explorer.  What changed?
#
# <details><summary>Answer</summary>
#
# Without the auxiliary loss nothing asks the soft regions to be a segmentation: they are just
# whatever K attention maps help the main loss.  They may still be useful, but region k no longer
# means "class k", so the explorer's region names become meaningless.  That is why the official
# recipe supervises them (weight 0.4).
# </details>
#
# **3.** Train `arch="aspp"` and `arch="fcn"` with the same budget and compare
# `card["metrics"]["ambiguous_acc"]`.  Is 30 steps enough to see a difference?
#
# <details><summary>Answer</summary>
#
# Usually not.  After 30 steps your OCR model scores only large classes (the line under the IoU
# bars) and its soft regions are not yet on their objects (the measurement above).  Train the other
# two as briefly and look at their `per_class_iou`: while all three score only the large classes,
# the ambiguous pixels are decided by the same global guesses.  The differences between context
# modules show only once the models learn objects — compare the shipped models' cards in
# notebook 3.
# </details>
