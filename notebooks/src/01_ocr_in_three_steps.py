# Source of notebooks/01_ocr_in_three_steps.ipynb (build with: python notebooks/build.py).

# %% [markdown]
# # 1 · OCR in three steps, on real tensors
#
# **What you will learn.** OCRNet (*object-contextual representations*, Yuan, Chen & Wang, ECCV 2020)
# gives every pixel a *context* built from the **objects** in the image, not from a fixed
# neighbourhood.  The short Chinese description this course started from splits it into three steps:
#
# 1. **get_proxy** — a coarse segmentation (*soft object regions*) and the pixel features give one
#    feature vector per class region, the **proxy** (*object region representation*);
# 2. **sim map** — every pixel is compared with every proxy: an **HW × K pixel-region relation**;
# 3. **context** — each pixel's weighted mix of the (transformed) proxies is its **object context**.
#
# That description — a short blog-style text in Chinese, with a PyTorch sketch of the three steps
# (`get_proxy`, `get_sim_map`, `get_context`) — is what this course grew from, so below we call it
# **the seed**: "the seed's code" is that sketch, "the seed's prose" its text.
#
# We run the three steps twice on tensors *captured from a real forward pass*:
#
# * **Part A** with the seed's literal shapes (C = 512 channels, K = 20 classes, a 100 × 100 feature
#   map, so the sim map is 10000 × 20) on an untrained OCR head — shapes only;
# * **Part B** on the trained ToyCity OCRNet and an 800 × 800 street scene (again a 100 × 100 feature
#   map), where the numbers mean something.
#
# Along the way we show the seed's code next to the code that actually runs, say plainly where the
# sketch was loose, and **recompute** every captured quantity with numpy to check it.
#
# Runs top to bottom in well under a minute on a laptop CPU (the course's benchmark times it);
# nothing is downloaded.  Teaching this course live?  `docs/teaching.md` in the repository is a
# 50-minute session plan: which sections, in which order, and the pixels to click.

# %%
import inspect

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.colors import LogNorm
from matplotlib.patches import Patch

import ocrviz
from ocrviz.analysis.cells import deepest_cell, labels_at_cells
from ocrviz.analysis.context_share import context_map, ocr_own_object_share
from ocrviz.analysis.mass_panel import class_legend, mass_panel
from ocrviz.context import strip_text          # a panel's mass strip as the explorer writes it
from ocrviz.data.dataset import normalize
from ocrviz.data.samples import load_sample
from ocrviz.data.toycity import AMBIGUITY_KINDS, CLASSES, PALETTE, colorize
from ocrviz.models.ocr import ObjectAttentionBlock, OCRHead, SpatialGather

%matplotlib inline
# Figures are drawn at the notebook's width: 12 in at 80 dpi = 960 px, the output area of a 1400-px
# browser window, so they are shown 1:1 and a 10-pt title is 11 px tall on screen.
WIDTH = 12
plt.rcParams.update({"figure.dpi": 80, "axes.titlesize": 10, "image.interpolation": "nearest"})
_ = torch.manual_seed(0)


# %% [markdown]
# ## The seed's sketch
#
# Here is the seed's code exactly as written (only the indentation, lost in the source text, is
# restored).  Keep it in mind; below we run it on real tensors and mark where it does not run as
# written.
#
# ```python
# # Step 1: 提取类别区域特征 (extract the class-region features)
# def get_proxy(feats, probs):
#     batch_size, c, h, w = probs.size(0), probs.size(1), probs.size(2), probs.size(3)
#     # 1, 20, 100, 100
#     probs = probs.view(batch_size, c, -1)
#     # (1, 20, 10000)
#     feats = feats.view(batch_size, feats.size(1), -1)
#     # (1, 512, 10000)
#     feats = feats.permute(0, 2, 1) # batch x hw x c
#     # (1, 10000, 512)
#     probs = F.softmax(self.scale * probs, dim=2)# batch x k x hw
#     # (1, 20, 10000)
#     proxy = torch.matmul(probs, feats).permute(0, 2, 1).unsqueeze(3)# batch x k x c
#     # (1, 512, 20, 1)
#     return proxy
#
# # Step 2: 像素区域相似度 (pixel-region similarity)
# def get_sim_map(feats, proxy):
#     x=feats
#     batch_size, h, w = x.size(0), x.size(2), x.size(3)
#     # 1, 100, 100
#     ## qk
#     query = f_pixel(x).view(batch_size, self.key_channels, -1)
#     # (1, 256, 10000)
#     query = query.permute(0, 2, 1)
#     # (1, 256, 10000)
#     key = f_object(proxy).view(batch_size, self.key_channels, -1)
#     # (1, 256, 20)
#     value = self.f_down(proxy).view(batch_size, self.key_channels, -1)
#     # (1, 256, 20)
#     value = value.permute(0, 2, 1)
#     # (1, 20, 256)
#     ## sim
#     sim_map = torch.matmul(query, key)
#     # (1, 10000, 20)
#     sim_map = (self.key_channels**-.5) * sim_map
#     # (1, 10000, 20)
#     sim_map = F.softmax(sim_map, dim=-1)
#     # (1, 10000, 20)
#     return sim_map
#
# # Step 3: 获得上下文表示 (the context representation)
# def get_context(feats, proxy, sim_map):
#     context = torch.matmul(sim_map, value) # hw x k x k x c
#     # (1, 10000, 256)
#     context = context.permute(0, 2, 1).contiguous()
#     # (1, 10000, 256)
#     context = context.view(batch_size, self.key_channels, *x.size()[2:])
#     # (1, 256, 100, 100)
#     context = f_up(context)
#     # (1, 512, 100, 100)
#     output = self.conv_bn_dropout(torch.cat([context, feats], 1))
#     # (1, 512, 100, 100)
#     return output
#
# if __name__ == "__main__":
#     feats = torch.randn((1, 512, 100, 100))
#     proxy = get_proxy(feats, probs)
#     sim_map = get_sim_map(feats, proxy)
#     output = get_context(proxy, sim_map)
# ```

# %% [markdown]
# ## Part A · the seed's shapes, literally
#
# `ocrviz.models.ocr.OCRHead` is the OCR head of the official HRNet-OCR code (same math, same
# parameter names).  We build one with the seed's sizes — C = 512 pixel channels, 256 key channels,
# K = 20 classes — and feed it a random 100 × 100 feature map.  It is untrained: in Part A only the
# **shapes** matter.
#
# `ocrviz.capture(head)` records every intermediate tensor the head computes.  They sit behind
# identity modules called *hook points*, named by their path in the model.

# %%
C_IN, C, CK, K, H, W = 64, 512, 256, 20, 100, 100
head = OCRHead(in_channels=C_IN, num_classes=K, mid_channels=C, key_channels=CK).eval()
backbone_feats = torch.randn(1, C_IN, H, W)          # stands in for a backbone's output

with torch.no_grad(), ocrviz.capture(head) as cache:
    aux_logits, main_logits = head(backbone_feats)

for name, tensor in cache.items():
    print(f"{name:58s} {' x '.join(map(str, tensor.shape))}")

# %% [markdown]
# Now the seed's shape comments, line by line, against the captured tensors (reshaped the way the
# seed's line reshapes them).  Two comments are off: both follow a `permute`, and both repeat the
# shape from *before* the permute.

# %%
seed_vs_real = [
    # (function, the seed's line, the seed's comment, the real shape)
    ("get_proxy", "probs.view(batch_size, c, -1)", (1, 20, 10000), cache.soft_regions.flatten(2).shape),
    ("get_proxy", "feats.view(batch_size, feats.size(1), -1)", (1, 512, 10000), cache.pixel_feats.flatten(2).shape),
    ("get_proxy", "F.softmax(self.scale * probs, dim=2)", (1, 20, 10000), cache.region_weights.flatten(2).shape),
    ("get_proxy", "matmul(...).permute(0, 2, 1).unsqueeze(3)", (1, 512, 20, 1), cache.proxies.unsqueeze(3).shape),
    ("get_sim_map", "query = query.permute(0, 2, 1)", (1, 256, 10000), cache.query.shape),
    ("get_sim_map", "key = f_object(proxy).view(...)", (1, 256, 20), cache.key.shape),
    ("get_sim_map", "value = value.permute(0, 2, 1)", (1, 20, 256), cache.value.shape),
    ("get_sim_map", "F.softmax(sim_map, dim=-1)", (1, 10000, 20), cache.sim_map.shape),
    ("get_context", "torch.matmul(sim_map, value)", (1, 10000, 256), torch.Size([1, H * W, CK])),
    ("get_context", "context.permute(0, 2, 1)", (1, 10000, 256), cache.context.flatten(2).shape),
    ("get_context", "context.view(batch_size, key_channels, h, w)", (1, 256, 100, 100), cache.context.shape),
    ("get_context", "f_up(context)", (1, 512, 100, 100), cache.object_context.shape),
    ("get_context", "conv_bn_dropout(cat([context, feats], 1))", (1, 512, 100, 100), cache.augmented.shape),
]
print(f"{'step':12s} {'line':46s} {'seed says':18s} {'real':18s}")
for step, line, said, real in seed_vs_real:
    real = tuple(real)
    mark = "" if tuple(said) == real else "   <-- the seed's comment is off"
    print(f"{step:12s} {line:46s} {str(tuple(said)):18s} {str(real):18s}{mark}")

# %% [markdown]
# (The `matmul(sim_map, value)` result is not behind a hook point; the model reshapes it at once.
# Its shape follows from the two factors: 1 × 10000 × 20 times 1 × 20 × 256.)
#
# ### The sketch, made runnable
#
# As written, the seed's functions cannot run: they use names they never define.  Here they are
# with the **fewest changes** that make them run, each marked `# FIX`.  The learned layers
# (`f_pixel`, `f_object`, `f_down`, `f_up`) are taken from the head we built, so the result must equal
# what the head computed — and we check that it does, to the last bit allowed by float32.

# %%
block = head.ocr_distri_head.object_context_block      # holds f_pixel, f_object, f_down, f_up


def get_proxy(feats, probs, scale=1.0):                # FIX: the seed used self.scale (scale = 1 in HRNet-OCR)
    batch_size, c, h, w = probs.size(0), probs.size(1), probs.size(2), probs.size(3)
    probs = probs.view(batch_size, c, -1)                          # 1 x 20 x 10000
    feats = feats.view(batch_size, feats.size(1), -1)              # 1 x 512 x 10000
    feats = feats.permute(0, 2, 1)                                 # 1 x 10000 x 512
    probs = F.softmax(scale * probs, dim=2)                        # 1 x 20 x 10000: softmax over PIXELS
    proxy = torch.matmul(probs, feats).permute(0, 2, 1).unsqueeze(3)  # 1 x 512 x 20 x 1
    return proxy


def get_sim_map(feats, proxy, block):                  # FIX: f_pixel, f_object, key_channels come from the block
    x = feats
    batch_size, h, w = x.size(0), x.size(2), x.size(3)
    query = block.f_pixel(x).view(batch_size, block.key_channels, -1)   # 1 x 256 x 10000
    query = query.permute(0, 2, 1)                                     # 1 x 10000 x 256 (seed: 1 x 256 x 10000)
    key = block.f_object(proxy).view(batch_size, block.key_channels, -1)  # 1 x 256 x 20
    sim_map = torch.matmul(query, key)                                 # 1 x 10000 x 20
    sim_map = (block.key_channels ** -.5) * sim_map
    sim_map = F.softmax(sim_map, dim=-1)                               # 1 x 10000 x 20: softmax over REGIONS
    return sim_map                                     # FIX: the seed computed value here and dropped it


def get_context(feats, proxy, sim_map, block):         # FIX: value, x, batch_size, f_up were undefined here
    x = feats
    batch_size = x.size(0)
    value = block.f_down(proxy).view(batch_size, block.key_channels, -1)  # 1 x 256 x 20
    value = value.permute(0, 2, 1)                                     # 1 x 20 x 256
    context = torch.matmul(sim_map, value)                             # 1 x 10000 x 256
    context = context.permute(0, 2, 1).contiguous()                    # 1 x 256 x 10000 (seed: 1 x 10000 x 256)
    context = context.view(batch_size, block.key_channels, *x.size()[2:])  # 1 x 256 x 100 x 100
    context = block.f_up(context)                                      # 1 x 512 x 100 x 100
    return context                                     # FIX: the fusion below belongs to SpatialOCR, one level up


with torch.no_grad():
    pixel_feats = cache.pixel_feats                     # X = conv3x3_ocr(backbone features), 1 x 512 x 100 x 100
    probs = cache.soft_regions                          # the aux head's logits, 1 x 20 x 100 x 100
    proxy = get_proxy(pixel_feats, probs)
    sim_map = get_sim_map(pixel_feats, proxy, block)
    context = get_context(pixel_feats, proxy, sim_map, block)
    output = head.ocr_distri_head.conv_bn_dropout(torch.cat([context, pixel_feats], 1))

torch.testing.assert_close(proxy[..., 0], cache.proxies)
torch.testing.assert_close(sim_map, cache.sim_map)
torch.testing.assert_close(context, cache.object_context)
torch.testing.assert_close(output, cache.augmented)
print("the repaired sketch reproduces the head: proxies, sim map, object context, output  ✓")

# %% [markdown]
# ### Where the sketch was loose
#
# | # | the seed | what really happens |
# |---|---|---|
# | 1 | `get_proxy` is a free function but uses `self.scale` | it is the `forward` of `SpatialGather_Module`; `scale = 1` |
# | 2 | the prose of step 1 calls the rows of the 20 × 10000 matrix "the probability that a pixel belongs to a class" | the softmax runs over `dim=2`, the **pixels**: each row is a set of **weights over the 10000 pixels that sums to 1**, not class probabilities (the confusion of MMSegmentation issue #883) |
# | 2b | the overview says the pixel-region similarity gives "the likelihood that each pixel belongs to each class" | it is an attention weight over the K region summaries, softmaxed over K; no loss ties it to the classes (Part B measures how often the two agree) |
# | 3 | comment after `proxy = ...permute(0, 2, 1).unsqueeze(3)` says `batch x k x c` | the next comment is right: 1 × 512 × 20 × 1 (B × C × K × 1) |
# | 4 | `query.permute(0, 2, 1)` is commented `(1, 256, 10000)` | 1 × 10000 × 256; otherwise `query @ key` could not be 10000 × 20 |
# | 5 | `get_sim_map` uses `f_pixel`, `f_object`, `self.key_channels`, `self.f_down` | they are layers of the object-attention block |
# | 6 | `value` is computed in `get_sim_map` and thrown away | it is needed in step 3 |
# | 7 | `get_context` uses `value`, `x`, `batch_size`, `f_up`, none defined there; `__main__` calls it with two arguments (`proxy, sim_map`) for three parameters, and step 2's `__main__` uses an undefined `probs` | pass them in, as above |
# | 8 | `context.permute(0, 2, 1)` is commented `(1, 10000, 256)` | 1 × 256 × 10000, so that `view(1, 256, 100, 100)` gives a feature map |
# | 9 | step 3's prose: the sim map "multiplies each class-region feature (proxy)" | it multiplies `value = f_down(proxy)` (256 channels); `f_up` then returns to 512 |
#
# And here is the code that really runs in `ocrviz` (`ocrviz/models/ocr.py`), read straight from the
# installed package.  Compare it line by line with the repaired sketch above.

# %%
print(inspect.getsource(SpatialGather.forward))
print(inspect.getsource(ObjectAttentionBlock.forward))

# %% [markdown]
# ## Part B · a trained OCRNet on an 800 × 800 street
#
# `toycity-ocr` is an OCRNet trained on **ToyCity**, synthetic streets built so that *context
# decides*: car windows and building windows are painted by the same function; road and sidewalk
# share one texture, and their colours come from one paving palette (red brick may be the road in
# one scene, the sidewalk in the next).  A pixel in the middle of a car window cannot tell from its
# own colour whether it is `car` or `building`; the object around it must decide.
#
# The backbone has output stride 8: an 800 × 800 image gives a **100 × 100 feature map**, so the
# sim map is again 10000 × K, now with the K = 9 ToyCity classes.  (The model was trained on
# 256 × 512 scenes; a square 800 × 800 street is larger than anything it saw, so expect more errors
# than on the 256 × 512 streets of notebook 2.)

# %%
model = ocrviz.load_model("toycity-ocr")                 # eval mode, shipped weights, class names
sample = load_sample("street_800")                       # a validation scene: never seen in training
x = normalize(sample.image)[None]                        # 1 x 3 x 800 x 800, ImageNet mean / std

with torch.no_grad():
    logits, cache = ocrviz.run_with_cache(model, x)

h, w = cache.feature_size
stride = model.output_stride
K = model.num_classes
pred = logits[0].argmax(0).numpy()                       # 800 x 800 class ids
print(f"feature map {h} x {w}, stride {stride}; K = {K}: {', '.join(CLASSES)}")
print(f"sim_map {tuple(cache.sim_map.shape)}, region_weights {tuple(cache.region_weights.shape)}, "
      f"proxies {tuple(cache.proxies.shape)}")
print(f"pixel accuracy on this image: {(pred == sample.labels).mean():.3f}")

legend = [Patch(color=np.array(c) / 255, label=n) for n, c in zip(CLASSES, PALETTE)]
fig, axes = plt.subplots(1, 3, figsize=(WIDTH, 4.6))
for ax, img, title in zip(axes, [sample.image, colorize(sample.labels), colorize(pred)],
                          ["image (800 x 800)", "ground truth", "OCRNet prediction"]):
    ax.imshow(img)
    ax.set_title(title)
    ax.axis("off")
fig.legend(handles=legend, loc="lower center", ncol=K, frameon=False, fontsize=9)
plt.tight_layout(rect=(0, 0.07, 1, 1))
plt.show()

# %% [markdown]
# We follow four pixels through the three steps: one in a **car window**, one in a **building
# window** (same paint!), one on the **road** and one on the **sidewalk** (same texture, paving colours from one palette).
# A pixel here means a *feature cell*: one of the 100 × 100 positions, an 8 × 8 block of the image.

# %%
WINDOW, SURFACE = AMBIGUITY_KINDS.index("window"), AMBIGUITY_KINDS.index("surface")
cell_labels = labels_at_cells(sample.labels, stride, (h, w))       # h x w: class at each cell's centre
cell_ambiguity = labels_at_cells(sample.ambiguity, stride, (h, w))


wanted = {"car window": (CLASSES.index("car"), WINDOW), "building window": (CLASSES.index("building"), WINDOW),
          "road": (CLASSES.index("road"), SURFACE), "sidewalk": (CLASSES.index("sidewalk"), SURFACE)}
pixels = {name: deepest_cell((cell_labels == cls) & (cell_ambiguity == kind))
          for name, (cls, kind) in wanted.items() if ((cell_labels == cls) & (cell_ambiguity == kind)).any()}
for name, (r, c) in pixels.items():
    print(f"{name:16s} cell ({r:2d}, {c:2d}) = image pixels y {r * stride}..{r * stride + 7}, "
          f"x {c * stride}..{c * stride + 7}")

# %% [markdown]
# ### Step 1 · soft object regions → region weights → proxies
#
# The **soft object regions** are the logits of an auxiliary head: a coarse segmentation, K maps of
# 100 × 100.  OCR turns them into **region weights** with a softmax over the **pixels** of each map:
#
# $$ m_k(q) = \frac{e^{s_k(q)}}{\sum_{q'} e^{s_k(q')}}, \qquad \sum_q m_k(q) = 1 \text{ for every region } k. $$
#
# **These are not class probabilities.**  A class probability answers "which class is pixel q?" and
# sums to 1 over the K classes *at each pixel*.  A region weight answers "how much does pixel q
# contribute to the summary of region k?" and sums to 1 over the *pixels* of each map.  The top row
# below shows the per-pixel class probability (what the aux head would say if you softmaxed over
# classes), the bottom row the region weights OCR actually uses.  Same logits, different axis.

# %%
soft = cache.soft_regions[0]                                       # K x h x w aux logits
region_weights = cache.region_weights[0].numpy()                   # K x h x w, spatial softmax
class_probs = soft.softmax(0).numpy()                              # K x h x w, softmax over classes
shown = [CLASSES.index(n) for n in ("car", "building", "road", "sidewalk", "sky")]

fig, axes = plt.subplots(2, len(shown) + 1, figsize=(WIDTH - 0.6, 5.4))   # its colour bars stick out
axes[0, 0].imshow(colorize(soft.argmax(0).numpy()))
axes[0, 0].set_title("argmax of the soft regions\n(the coarse segmentation)")
axes[1, 0].imshow(sample.image[::stride, ::stride])
axes[1, 0].set_title("image at 100 x 100")
for col, k in enumerate(shown, start=1):
    im = axes[0, col].imshow(class_probs[k], vmin=0, vmax=1, cmap="viridis")
    axes[0, col].set_title(f"P(class = {CLASSES[k]}) per pixel\nsum over pixels = {class_probs[k].sum():.0f}")
    top = region_weights[k].max()
    axes[1, col].imshow(region_weights[k], cmap="magma", norm=LogNorm(vmin=top / 1e3, vmax=top, clip=True))
    axes[1, col].set_title(f"region weights m_{k} ({CLASSES[k]})\nlog scale; sum over pixels = {region_weights[k].sum():.4f}")
for ax in axes.ravel():
    ax.axis("off")
plt.tight_layout()
plt.show()

print("class probabilities: sum over classes at every pixel = 1:", np.allclose(class_probs.sum(0), 1, atol=1e-5))
print("region weights:      sum over pixels for every region = 1:", np.allclose(region_weights.sum((1, 2)), 1, atol=1e-5))

# %% [markdown]
# **How concentrated are the region weights?**  If region k put its weight evenly on the pixels of
# class k, its proxy would be the average feature of the class.  The softmax does something in
# between: pixels with higher logits get exponentially more weight, so each map has a few bright
# peaks (the pictures above use a log colour scale spanning three orders of magnitude) — but a long
# tail of small weights can still carry much of the mass.  The table counts, for each region, how many of the 10000 pixels carry 90 % of its
# weight, next to how many pixels the aux head assigns to that class.  A class that is (almost)
# absent from the image still has a region, with nearly flat weights: its proxy is then close to
# the average feature of the whole image.

# %%
flat = region_weights.reshape(K, -1)                                   # K x HW
sorted_desc = -np.sort(-flat, axis=1)
n90 = (np.cumsum(sorted_desc, axis=1) < 0.9).sum(1) + 1              # pixels holding 90 % of the weight
coarse = soft.argmax(0).numpy().ravel()
print(f"{'region':13s} {'pixels with 90% of weight':>26s} {'pixels of this class (aux argmax)':>34s}")
for k in range(K):
    print(f"{CLASSES[k]:13s} {n90[k]:26d} {(coarse == k).sum():34d}")
# %% [markdown]
# Each **proxy** is the region-weighted average of the pixel representations X (512 channels in the
# seed, 128 in our small model): `proxy_k = Σ_q m_k(q) · X(q)`.  With the weights summing to 1 it is a
# true average: the typical feature vector of region k.
#
# **Check with numpy:** softmax the captured logits over pixels ourselves, average the captured
# pixel features with those weights, and compare with what the model captured.

# %%
def softmax(a, axis):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


soft_np = cache.soft_regions[0].double().numpy().reshape(K, h * w)          # K x HW
X = cache.pixel_feats[0].double().numpy().reshape(-1, h * w)                # C x HW
m_np = softmax(soft_np, axis=1)                                             # K x HW, rows sum to 1
proxies_np = X @ m_np.T                                                     # C x K
np.testing.assert_allclose(m_np.reshape(K, h, w), region_weights, atol=1e-6)
np.testing.assert_allclose(proxies_np, cache.proxies[0].numpy(), rtol=1e-4, atol=1e-5)
print(f"region weights and proxies ({proxies_np.shape[0]} x {proxies_np.shape[1]}) recomputed with numpy  ✓")

fig, ax = plt.subplots(figsize=(9, 2.6))
im = ax.imshow(cache.proxies[0].numpy().T, aspect="auto", cmap="magma")
ax.set_yticks(range(K), CLASSES)
ax.set_xlabel("channel of the pixel representation")
ax.set_title("the K proxies: one feature vector per object region")
plt.colorbar(im, ax=ax)
plt.show()

# %% [markdown]
# ### Step 2 · the pixel-region relation: the HW × K sim map
#
# Every pixel's **query** `f_pixel(X)` is compared with every region's **key** `f_object(proxy)`:
# a scaled dot product, then a softmax over the **K regions**.  Row p of the sim map says how
# strongly pixel p relates to each region; **rows sum to 1**.
#
# **Check with numpy:** recompute the whole 10000 × 9 sim map from the captured query and key.

# %%
q = cache.query[0].double().numpy()                 # HW x Ck
k_ = cache.key[0].double().numpy()                  # Ck x K
ck = q.shape[1]
sim_np = softmax(q @ k_ / np.sqrt(ck), axis=1)      # HW x K
sim = cache.sim_map[0].numpy()                      # HW x K, captured
np.testing.assert_allclose(sim_np, sim, atol=1e-5)
assert np.allclose(sim.sum(1), 1, atol=1e-5)
print(f"sim map {sim.shape[0]} x {sim.shape[1]} recomputed from query ({q.shape[0]} x {ck}) and key "
      f"({ck} x {K}); max difference {np.abs(sim_np - sim).max():.1e}  ✓")

# %% [markdown]
# Row p of the sim map for our four pixels: which regions each pixel attends to.

# %%
colours = np.array(PALETTE) / 255
fig, axes = plt.subplots(1, len(pixels), figsize=(WIDTH, 3.4), sharey=True)
for ax, (name, (r, c)) in zip(np.atleast_1d(axes), pixels.items()):
    row = sim[r * w + c]
    ax.bar(range(K), row, color=colours, edgecolor="k", linewidth=0.5)
    ax.set_xticks(range(K), CLASSES, rotation=60, ha="right")
    ax.set_title(f"{name}, cell ({r}, {c})\ntrue {CLASSES[cell_labels[r, c]]}, "
                 f"predicted {CLASSES[pred[min(799, r * stride + 4), min(799, c * stride + 4)]]}")
np.atleast_1d(axes)[0].set_ylabel("sim[p, k]  (row sums to 1)")
plt.tight_layout()
plt.show()
rows4 = np.array([sim[r * w + c] for r, c in pixels.values()])              # 4 x K
tv = 0.5 * np.abs(rows4[:, None] - rows4[None]).sum(-1)                      # 4 x 4 total-variation distances
top4 = {CLASSES[k] for k in rows4.argmax(1)}
wrong4 = {name: CLASSES[pred[r * stride + 4, c * stride + 4]] for name, (r, c) in pixels.items()
          if pred[r * stride + 4, c * stride + 4] != cell_labels[r, c]}
print(f"largest difference between two of the four rows (total variation, 0 = identical, 1 = disjoint): "
      f"{tv.max():.2f}; their top regions: {sorted(top4)}")
print("mispredicted among the four:", wrong4 or "none")

# %% [markdown]
# **Four objects, four similar rows.**  A car window, a building window, the road and the
# sidewalk: four different objects, yet their rows look alike — each spread over all nine regions,
# the largest weights on the big road, building and sidewalk regions (the printed total-variation
# distance says how alike: the share of weight that would have to move to turn one row into
# another; any two differ by less than a third).  If the sim map told a pixel which object it
# belongs to, these four rows would differ most.  And the model is not perfect: check the titles —
# the "building window" pixel is predicted **person**, a mistake the printed line lists (this
# scene is 800 × 800; the model was trained on 256 × 512 scenes).
# The rest of this notebook uses the four pixels to follow the three steps; what their context
# *does* is notebook 3's question.
#
# **Is the sim map a classifier?**  The seed's prose says the pixel-region similarity gives "the
# likelihood that each pixel belongs to each class".  Check it: if that were so, the region a pixel
# attends to most would be the class the model predicts for it.  But nothing in the training loss
# asks for that — only the soft regions (step 1) are supervised with the labels; the sim map is
# free to become whatever mix of region summaries helps the final classifier.  Read the numbers:

# %%
pred_cells = pred[stride // 2::stride, stride // 2::stride].ravel()          # HW: predicted class per cell
true_cells = cell_labels.ravel()                                            # HW: true class per cell
top_region = sim.argmax(1)                                                  # HW: most attended region
top_is_pred = float((top_region == pred_cells).mean())
top_is_true = float((top_region == true_cells)[true_cells != 255].mean())
spread = np.exp(-(sim * np.log(np.clip(sim, 1e-12, 1))).sum(1))             # effective number of regions
print(f"cells whose most attended region is their predicted class: {top_is_pred:.1%}, their true class: "
      f"{top_is_true:.1%} (a random pick: 1/K = {1 / K:.1%}; pixel accuracy of the prediction: "
      f"{(pred == sample.labels).mean():.1%})")
print(f"effective number of regions a cell mixes (exp of the entropy of its row): mean {spread.mean():.1f} of {K}")
print(f"{'predicted class':16s} {'cells':>6s}   most attended region (share of those cells)")
for k in np.unique(pred_cells):
    attended = np.bincount(top_region[pred_cells == k], minlength=K)
    j = int(attended.argmax())
    print(f"{CLASSES[k]:16s} {(pred_cells == k).sum():6d}   {CLASSES[j]} ({attended[j] / attended.sum():.0%})")

# %% [markdown]
# The top region is the predicted class far less often than the prediction is right, and a cell
# spreads its row over several regions rather than picking one: **this sim map is not a
# classifier**.  Notebook 3 measures the same on 12 validation scenes (with the true class, and
# with chance, 1/K, for comparison) and shows what the soft regions do instead.  It is not only
# our model: with the official Cityscapes checkpoint a user found every sim-map value close to
# 1/19 ([openseg.pytorch issue 22](https://github.com/openseg-group/openseg.pytorch/issues/22)).
# The lesson of this course: **measure what a trained model does**; a diagram says what it *could*
# do.
#
# Read the same matrix the other way: column k, reshaped to 100 × 100, shows which pixels attend
# to region k (`cache.sim_map_grid()` does the reshape).

# %%
grid = cache.sim_map_grid()[0].numpy()              # K x h x w
fig, axes = plt.subplots(2, (K + 1) // 2, figsize=(WIDTH, 5.2))
for ax in axes.ravel()[K:]:
    ax.axis("off")
for k, ax in enumerate(axes.ravel()[:K]):
    ax.imshow(grid[k], vmin=0, vmax=1, cmap="viridis")
    ax.set_title(CLASSES[k])
    ax.axis("off")
fig.suptitle("sim map columns: how strongly every pixel attends to region k (0 to 1)")
plt.show()

# %% [markdown]
# ### Step 3 · the context: where does each pixel's context come from?
#
# The context of pixel p is `Σ_k sim[p, k] · value_k` with `value = f_down(proxy)` (then `f_up`).
# Because each proxy is itself a weighted average of pixels, we can push the sum back onto the
# image.  Before the learned `f_down`, the mixture of proxies is exactly
#
# $$ \sum_k \mathrm{sim}[p,k]\,\mathrm{proxy}_k \;=\; \sum_q \underbrace{\Big(\sum_k \mathrm{sim}[p,k]\, m_k(q)\Big)}_{c_p(q)\ \text{: the context map of } p}\, X(q). $$
#
# The **context map** `c_p` is a distribution over the 100 × 100 pixels (it sums to 1): the share of
# p's context drawn from each pixel q.  This is the picture the rest of the course is about.
#
# **Check with numpy:** the identity above for our four pixels, and the captured context (before
# `f_up`) as `sim[p] @ value`.

# %%
value = cache.value[0].double().numpy()                            # K x Ck
ctx = cache.context[0].double().numpy().reshape(ck, h * w)         # Ck x HW, captured (before f_up)
np.testing.assert_allclose(sim.astype(np.float64) @ value, ctx.T, rtol=1e-4, atol=1e-5)
maps = {}
for name, (r, c) in pixels.items():
    p = r * w + c
    maps[name] = context_map(sim[p], region_weights)               # h x w, sums to 1
    mix_of_proxies = proxies_np @ sim[p]                           # C: sum_k sim[p, k] proxy_k
    np.testing.assert_allclose(X @ maps[name].ravel(), mix_of_proxies, rtol=1e-4, atol=1e-6)
    assert abs(maps[name].sum() - 1) < 1e-5
print("context = sim_map @ value for all 10000 pixels; proxy mixture = X @ context map for the four pixels  ✓")

# %%
cell_pred = pred[stride // 2::stride, stride // 2::stride]         # h x w: the class predicted at each cell's centre
strips = {}                                                        # {pixel: {class: share of its context map}}
fig, axes = plt.subplots(1, len(maps), figsize=(WIDTH, 4.6))
for ax, (name, cmap_) in zip(np.atleast_1d(axes), maps.items()):
    r, c = pixels[name]
    strips[name] = mass_panel(ax, sample.image, cmap_, cell_pred, (r, c), PALETTE, CLASSES,
                              title=f"{name}: context map\ntrue {CLASSES[cell_labels[r, c]]}, "
                                    f"predicted {CLASSES[cell_pred[r, c]]}")
class_legend(fig, strips.values(), PALETTE, CLASSES)
plt.tight_layout(rect=(0, 0.12, 1, 1))
plt.show()

own = ocr_own_object_share(sim, region_weights, sample.labels, sample.instances, stride=stride)   # h x w
yy, xx = np.mgrid[:h, :w]                                          # h x w: each cell's row and column
near = {name: float(maps[name][np.hypot(yy - r, xx - c) <= 10].sum()) for name, (r, c) in pixels.items()}
within = f"within {10 * stride} px"                                # 10 cells
print(f"{'pixel':16s} {'predicted':10s} {within:>12s} {'cells with 90%':>14s} {'own-object share':>16s}   "
      f"mass strip (as under the panel)")
for name, (r, c) in pixels.items():
    m = np.sort(maps[name].ravel())[::-1]
    print(f"{name:16s} {CLASSES[cell_pred[r, c]]:10s} {near[name]:12.3f} {(np.cumsum(m) < 0.9).sum() + 1:14d} "
          f"{own[r, c]:16.2f}   {strip_text(strips[name])}")
largest = max(max(s.values()) for s in strips.values())
building = [s["building"] for s in strips.values()]
print(f"largest share of one class in the four maps: {largest:.0%}; building's share: "
      f"{min(building):.0%} to {max(building):.0%}")

# %% [markdown]
# **How to read the panels.**  Each is the live explorer's default **mass view** of a context map
# (`ocrviz.analysis.mass_panel`, as in notebook 3).  A source cell's **colour is the class the model
# predicts there** (at the cell's centre pixel, as in the titles; the legend is under the figure).
# Its **strength is that class's share of the map's mass** — relative to the largest share, so the
# class holding the most context is drawn at full strength — times the cell's value relative to
# the strongest cell of its class (square-root scale), which shows where inside the class the mass
# sits.  Under each panel is its **mass strip**: the shares as numbers, as the explorer writes them
# (the table repeats them).  The outlined square is the pixel.  Why not draw each cell's value (a
# density)?  A large region has a low value per cell yet can hold much of the mass; a density
# picture makes a small bright spot look like the main source.
#
# What to look for:
#
# * The context map is **not a neighbourhood**.  Colour sits wherever the attended regions keep
#   their weight, however far from the outlined pixel — the paving bands along both kerbs, the
#   sky, the cars, the facades: the difference from ASPP's fixed dilated taps (notebook 3).  The
#   table's *within 80 px* column is the share of each map within 10 cells of its pixel: at most
#   0.16, and almost nothing for the road pixel.  Thousands of the 10000 cells hold 90 % of each
#   map, and no class holds more than 40 % of any of the four (the last printed line): every map
#   mixes several classes.
# * **Road and sidewalk look across.**  The road pixel's surroundings stay pale: more than half of
#   its context comes from sidewalk and building cells, and less from road cells than from either.
#   The sidewalk pixel, the other way round, takes more from road cells (the purple bands) and
#   from building cells than from sidewalk cells.
# * **Building is large but pale.**  Most building cells hold far less than the class's strongest
#   cells, so they are drawn faint, dark grey over the faded grey facades; yet the strips give
#   building a sixth to a third of every map (the last printed line).  Read the amounts off the
#   strips; the picture says where inside each class they sit.
# * **How much lands on the pixel's own object?**  The table's **own-object share** is the part of
#   the map on the pixel's own object (its car, the road).  A pixel's context is a mix of *all* K
#   region summaries, weighted by a soft sim-map row; how much of it lands on the pixel's own object
#   is an empirical question, which notebooks 2 and 3 measure over whole images.
# * Compare the **car window** with the **building window** (same paint) and the **road** with the
#   **sidewalk** (same texture): do their strips differ?  Do the predictions?
#
# After step 3 the object context (`f_up` output, 1 × C × 100 × 100) is concatenated with the pixel
# representation and fused by `conv_bn_dropout`, and a 1 × 1 classifier gives the final logits.
#
# **Next:** notebook 2 lets you click any pixel and see its context map live.
