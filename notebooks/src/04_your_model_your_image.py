# Source of notebooks/04_your_model_your_image.ipynb (build with: python notebooks/build.py).

# %% [markdown]
# # 4 · Your model, your image
#
# **What you will learn.** How to point ocrviz at *your* data and *your* OCRNet:
#
# 1. load any image (upload it, or give a path) and fit it to a model's output stride;
# 2. use the official **HRNetV2-W48 + OCR** Cityscapes checkpoint, if you have the file;
# 3. read a **Cityscapes** or **ADE20K** folder you already have on disk;
# 4. capture an OCR module tree **written by someone else** (official HRNet-OCR, openseg,
#    MMSegmentation).
#
# Nothing here downloads anything: every file comes from you or is created in a temporary folder,
# removed again at the end.
# Without your own files the notebook still runs top to bottom on ToyCity stand-ins.

# %%
import io
import os
import tempfile
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import display
from PIL import Image
from torch import nn

import ocrviz
from ocrviz.data.dataset import normalize
from ocrviz.data.folders import (ADE20K_CLASSES, ADE20K_PALETTE, CITYSCAPES_CLASSES, CITYSCAPES_PALETTE,
                                 LABELID_TO_TRAINID, ADE20KFolder, CityscapesFolder, MaskFolder)
from ocrviz.data.images import load_image, prepare_image
from ocrviz.data.samples import load_sample
from ocrviz.data.toycity import CITYSCAPES_TRAIN_IDS, CLASSES, colorize

%matplotlib inline
# Figures at most 12 in wide at 80 dpi (960 px, the output area of a 1400-px window): shown 1:1.
plt.rcParams.update({"figure.dpi": 80, "axes.titlesize": 10, "image.interpolation": "nearest"})
# A scratch folder for the files this notebook makes.  The last cell removes it; if the kernel stops
# before that, Python removes it when the kernel exits.  Nothing is left behind either way.
scratch = tempfile.TemporaryDirectory(prefix="ocrviz_nb04_")
WORK = Path(scratch.name)


def to_input(image):
    """H x W x 3 uint8 -> 1 x 3 x H x W with ImageNet mean / std (ToyCity models and official HRNet-OCR)."""
    return normalize(np.array(image))[None]     # np.array: a writable copy (Pillow's arrays are read-only)

# %% [markdown]
# ## 1 · An image of your own
#
# **Upload an image with the button**: the box under it — the image, the `toycity-ocr` prediction
# and the explorer — updates as soon as the upload finishes; nothing to re-run.  (Or set
# `IMAGE_PATH` to a file on disk and re-run this cell.)  Until then the box shows a ToyCity street
# written to a temporary PNG — deliberately an awkward one: 250 × 501 pixels with an alpha channel.

# %%
IMAGE_PATH = None                     # e.g. "my_street.jpg"
toy_ocr = ocrviz.load_model("toycity-ocr")

street = load_sample("street_3").image[:250, :501]                     # 250 x 501, not a multiple of 8
default_path = WORK / "street_rgba.png"
Image.fromarray(np.dstack([street, np.full(street.shape[:2], 255, np.uint8)]), "RGBA").save(default_path)


def png(array):
    """H x W x 3 uint8 -> PNG bytes (for an ipywidgets.Image)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def use_image(source, label):
    """Load `source`, fit it to stride 8, predict, and show image, prediction and explorer in `box`."""
    global image, notes, fitted, prep, pred, explorer
    image, notes = load_image(source)
    fitted, prep = prepare_image(image, output_stride=8, max_side=512, policy="pad")
    with torch.no_grad():
        logits = toy_ocr(to_input(fitted))                              # 1 x K x H' x W'
    pred = prep.restore(logits.argmax(1))[0].numpy()                    # back to the original H x W
    assert pred.shape == image.shape[:2]
    explorer = ocrviz.Explorer(toy_ocr, fitted, transform=to_input)
    status.value = f"{label}: {image.shape[0]} x {image.shape[1]} pixels" + (f" ({'; '.join(notes)})" if notes else "")
    box.children = [status, widgets.HBox([widgets.Image(value=png(image), width=360),
                                          widgets.Image(value=png(colorize(pred)), width=360)]), explorer]


def on_upload(change):
    if change["new"]:                                                   # ipywidgets 8: a tuple of dicts
        use_image(change["new"][0]["content"].tobytes(), change["new"][0]["name"])


upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload image")
upload.observe(on_upload, names="value")
status = widgets.Label()
box = widgets.VBox()
if IMAGE_PATH:
    use_image(IMAGE_PATH, IMAGE_PATH)
else:
    use_image(default_path, f"{default_path.name} (ToyCity stand-in; left: image, right: prediction)")
display(upload, box)

# %% [markdown]
# What happened to the image on its way to the model.  `load_image` accepts anything Pillow reads,
# in any mode (RGBA, greyscale, palette, 16-bit, CMYK, ...), applies the EXIF orientation, and
# **says what it did** (the line at the top of the box).  It always returns H × W × 3 uint8 RGB.
#
# A model with output stride s needs H and W divisible by s.  `prepare_image` shrinks big images
# (longer side ≤ `max_side`) and then either **resizes** to the nearest multiple of s (a tiny aspect
# change) or **pads** the bottom and right with the mean colour (which normalises to exactly 0).  The
# returned `Prepared` record maps results back to the original pixels: the box shows the
# prediction restored to the original size.  Re-run the cell below after an upload to see your
# image fitted both ways.

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 2.9))
axes[0].imshow(image)
axes[0].set_title(f"as loaded: {image.shape[0]} x {image.shape[1]}")
for ax, policy in zip(axes[1:], ("resize", "pad")):
    shown, how = prepare_image(image, output_stride=8, max_side=512, policy=policy)
    ax.imshow(shown)
    ax.set_title(f"{policy}: {shown.shape[0]} x {shown.shape[1]}\n{'; '.join(how.notes) or 'nothing to do'}",
                 fontsize=9)
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# The explorer in the box works on any image the model accepts.  (The ToyCity model only knows
# ToyCity's nine classes; on a real photo expect nonsense labels — but you still see *where* the
# context comes from.)

# %% [markdown]
# ## 2 · Your own OCRNet checkpoint (official HRNet-OCR, MMSegmentation, openseg)
#
# `ocrviz.from_checkpoint(path)` turns a checkpoint file into an eval-mode model, whatever wrote it:
# the official HRNet-OCR release `hrnet_ocr_cs_8162_torch11.pth` (81.6 mIoU on Cityscapes val), an
# MMSegmentation OCRNet such as `ocrnet_hr48_4xb2-40k_cityscapes-512x1024.pth` (its class names,
# palette and input normalisation come from the file), openseg's HRNet_W48_OCR, or ocrviz's own.
# The sizes are read from the tensor shapes.  ocrviz never downloads anything: if you have a file,
# set `HRNET_CKPT` (or the environment variable `OCRVIZ_HRNET_CKPT`) to its path.
#
# Checkpoints load from safetensors, or from torch files with `weights_only=True`: a checkpoint
# that would need to run pickled code is refused, never executed.
#
# An HRNet-W48 head is too large to ship to the page, so the explorer's counterfactuals (click a
# bar to drop a region) are answered by the kernel instead; the line under the explorer says which.

# %%
HRNET_CKPT = os.environ.get("OCRVIZ_HRNET_CKPT", "hrnet_ocr_cs_8162_torch11.pth")

if Path(HRNET_CKPT).is_file():
    hrnet = ocrviz.from_checkpoint(HRNET_CKPT)
    k = hrnet.num_classes
    names = getattr(hrnet, "class_names", None) or (CITYSCAPES_CLASSES if k == len(CITYSCAPES_CLASSES) else None)
    hr_input, hr_prep = prepare_image(image, output_stride=hrnet.output_stride, max_side=1024)
    layout = getattr(hrnet, "checkpoint_layout", "ocrviz")
    print(f"loaded {HRNET_CKPT} ({layout} layout, {type(hrnet).__name__}, {k} classes); "
          f"running on {hr_input.shape[0]} x {hr_input.shape[1]} (this takes a while on a CPU)")
    hr_explorer = ocrviz.Explorer(hrnet, hr_input, class_names=names,
                                  palette=CITYSCAPES_PALETTE if names is CITYSCAPES_CLASSES else None)
    display(hr_explorer)
    print(f"Counterfactuals run {'in the page' if hr_explorer.counterfactuals == 'browser' else 'in the kernel'} "
          f"for this model ({hr_explorer.data.pixel_head.pixels.nbytes / 2 ** 20:.0f} MiB of pixel features).")
else:
    hrnet = ocrviz.create_model("hrnet_w48_ocr", num_classes=19, class_names=CITYSCAPES_CLASSES,
                                palette=CITYSCAPES_PALETTE).eval()
    state = hrnet.state_dict()
    n_params = sum(p.numel() for p in hrnet.parameters())
    print(f"No checkpoint at {HRNET_CKPT!r}: skipping the pretrained model.\n"
          f"To use one, put the file there or set HRNET_CKPT / OCRVIZ_HRNET_CKPT to its path.\n"
          f"Meanwhile: HRNetV2-W48 + OCR with the official key layout ({len(state)} state-dict entries, "
          f"{n_params:,} parameters, output stride {hrnet.output_stride}), untrained, on a small crop:")
    small, _ = prepare_image(image, output_stride=hrnet.output_stride, max_side=64)
    with torch.no_grad():
        _, hr_cache = ocrviz.run_with_cache(hrnet, to_input(small))
    print(f"input {small.shape[0]} x {small.shape[1]} -> feature map {hr_cache.feature_size} at stride 4")
    for role in ("features", "region_weights", "proxies", "sim_map", "object_context", "logits"):
        print(f"   cache.{role:15s} {' x '.join(map(str, getattr(hr_cache, role).shape))}")

# %% [markdown]
# ## 3 · A Cityscapes or ADE20K folder
#
# The folder readers expect the datasets' own layouts and yield `(image, labels, name)` with
# **train ids** (Cityscapes' 19 evaluated classes, ADE20K's 150; 255 = ignore):

# %%
print("CityscapesFolder(root, split='val'):\n" + CityscapesFolder.LAYOUT)
print("ADE20KFolder(root, split='validation'):\n" + ADE20KFolder.LAYOUT)
print("MaskFolder(root) for anything else:\n" + MaskFolder.LAYOUT)

# %% [markdown]
# We do not ship either dataset, so we make a **tiny fake tree** in a temporary folder from two
# ToyCity scenes, with the labels written in each dataset's own convention (Cityscapes
# `*_gtFine_labelIds.png`, ADE20K annotations with 0 = "other" and class i stored as i + 1), and
# read it back.  Point `CITYSCAPES_ROOT` at your real copy to use it instead.

# %%
TRAINID_TO_LABELID = {int(t): label_id for label_id, t in enumerate(LABELID_TO_TRAINID) if t != 255}
TOY_TO_ADE = [ADE20K_CLASSES.index(n) for n in
              ("road", "sidewalk", "building", "pole", "signboard", "tree", "sky", "person", "car")]

fake = WORK / "fake_datasets"
for i, name in enumerate(["street_0", "street_1"]):
    scene = load_sample(name)
    stem = f"toytown_{i:06d}_000019"
    city_img = fake / "cityscapes" / "leftImg8bit" / "val" / "toytown" / f"{stem}_leftImg8bit.png"
    city_gt = fake / "cityscapes" / "gtFine" / "val" / "toytown" / f"{stem}_gtFine_labelIds.png"
    label_ids = np.vectorize(lambda c: TRAINID_TO_LABELID[CITYSCAPES_TRAIN_IDS[c]])(scene.labels)
    ade_img = fake / "ade" / "ADEChallengeData2016" / "images" / "validation" / f"ADE_val_{i + 1:08d}.jpg"
    ade_ann = fake / "ade" / "ADEChallengeData2016" / "annotations" / "validation" / f"ADE_val_{i + 1:08d}.png"
    for path in (city_img, city_gt, ade_img, ade_ann):
        path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(scene.image).save(city_img)
    Image.fromarray(label_ids.astype(np.uint8)).save(city_gt)
    Image.fromarray(scene.image).save(ade_img, quality=95)
    Image.fromarray((np.array(TOY_TO_ADE)[scene.labels] + 1).astype(np.uint8)).save(ade_ann)

for path in sorted(fake.rglob("*.*")):
    print("  ", path.relative_to(WORK))

# %%
CITYSCAPES_ROOT = fake / "cityscapes"          # your copy: e.g. Path("/data/cityscapes")
ADE20K_ROOT = fake / "ade"                     # your copy: the folder holding ADEChallengeData2016

cityscapes = CityscapesFolder(CITYSCAPES_ROOT, split="val")
ade = ADE20KFolder(ADE20K_ROOT, split="validation")
print(cityscapes, "|", ade)

(city_image, city_labels, city_name), (ade_image, ade_labels, ade_name) = cityscapes[0], ade[0]
toy_in_cityscapes = np.array(CITYSCAPES_TRAIN_IDS)[load_sample("street_0").labels]
assert (city_labels == toy_in_cityscapes).all()          # labelIds -> train ids, as written
assert (ade_labels == np.array(TOY_TO_ADE)[load_sample("street_0").labels]).all()


def paint(labels, palette):
    lut = np.zeros((256, 3), np.uint8)
    lut[:len(palette)] = palette
    return lut[labels]


fig, axes = plt.subplots(1, 3, figsize=(12, 2.6))
axes[0].imshow(city_image)
axes[0].set_title(city_name)
axes[1].imshow(paint(city_labels, CITYSCAPES_PALETTE))
axes[1].set_title("CityscapesFolder labels (train ids)")
axes[2].imshow(paint(ade_labels, ADE20K_PALETTE))
axes[2].set_title(f"ADE20KFolder labels ({ade_name})")
for ax in axes:
    ax.axis("off")
plt.show()
print("Cityscapes classes present:", ", ".join(CITYSCAPES_CLASSES[k] for k in np.unique(city_labels) if k != 255))
print("ADE20K classes present:    ", ", ".join(ADE20K_CLASSES[k] for k in np.unique(ade_labels) if k != 255))

# %% [markdown]
# A Cityscapes model (the HRNet-OCR above) predicts train ids, so you can compare its prediction
# with `city_labels` directly, or open it in the explorer with the labels as ground truth:
# `ocrviz.Explorer(hrnet, image, labels)` (normalised as the checkpoint says).
#
# ## 4 · An OCR module tree written by someone else
#
# Our models carry *hook points*.  The official HRNet-OCR code, openseg.pytorch and MMSegmentation
# do not, and none of them keeps the similarity map.  `ocrviz.capture` recognises their OCR modules
# by class and attribute names (`SpatialGather_Module`, `_ObjectAttentionBlock` with `f_pixel`,
# `f_object`, `f_down`, `f_up`, `SpatialOCR_Module`; MMSeg's `ObjectAttentionBlock`), hooks the
# submodules they do have, **recomputes** the sim map, and checks that the context recomputed from
# it equals the module's own output.  If it does not, capture raises instead of drawing a wrong
# picture.
#
# Below, a compact re-creation of the official layout (written from its public structure; with the
# real code you would simply `import` it and build the model).

# %%
def bn_relu(c):
    return nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())


class SpatialGather_Module(nn.Module):
    def __init__(self, cls_num=0, scale=1):
        super().__init__()
        self.cls_num, self.scale = cls_num, scale

    def forward(self, feats, probs):
        b, k = probs.shape[:2]
        probs = F.softmax(self.scale * probs.view(b, k, -1), dim=2)                    # B x K x HW
        feats = feats.view(b, feats.shape[1], -1).permute(0, 2, 1)                      # B x HW x C
        return torch.matmul(probs, feats).permute(0, 2, 1).unsqueeze(3)                 # B x C x K x 1


class _ObjectAttentionBlock(nn.Module):
    def __init__(self, in_channels, key_channels, scale=1):
        super().__init__()
        self.scale, self.in_channels, self.key_channels = scale, in_channels, key_channels
        conv = lambda i, o: nn.Conv2d(i, o, 1, bias=False)  # noqa: E731
        self.f_pixel = nn.Sequential(conv(in_channels, key_channels), bn_relu(key_channels),
                                     conv(key_channels, key_channels), bn_relu(key_channels))
        self.f_object = nn.Sequential(conv(in_channels, key_channels), bn_relu(key_channels),
                                      conv(key_channels, key_channels), bn_relu(key_channels))
        self.f_down = nn.Sequential(conv(in_channels, key_channels), bn_relu(key_channels))
        self.f_up = nn.Sequential(conv(key_channels, in_channels), bn_relu(in_channels))

    def forward(self, x, proxy):
        b, h, w = x.size(0), x.size(2), x.size(3)
        query = self.f_pixel(x).view(b, self.key_channels, -1).permute(0, 2, 1)         # B x HW x Ck
        key = self.f_object(proxy).view(b, self.key_channels, -1)                       # B x Ck x K
        value = self.f_down(proxy).view(b, self.key_channels, -1).permute(0, 2, 1)      # B x K x Ck
        sim_map = F.softmax((self.key_channels ** -.5) * torch.matmul(query, key), dim=-1)  # B x HW x K
        context = torch.matmul(sim_map, value).permute(0, 2, 1).contiguous()            # B x Ck x HW
        return self.f_up(context.view(b, self.key_channels, h, w))                      # B x C x h x w


class SpatialOCR_Module(nn.Module):
    def __init__(self, in_channels, key_channels, out_channels, scale=1, dropout=0.05):
        super().__init__()
        self.object_context_block = _ObjectAttentionBlock(in_channels, key_channels, scale)
        self.conv_bn_dropout = nn.Sequential(nn.Conv2d(2 * in_channels, out_channels, 1, bias=False),
                                             bn_relu(out_channels), nn.Dropout2d(dropout))

    def forward(self, feats, proxy_feats):
        context = self.object_context_block(feats, proxy_feats)
        return self.conv_bn_dropout(torch.cat([context, feats], 1))


class TheirOCRHead(nn.Module):
    """The OCR part of the official HighResolutionNet, on any feature map."""

    def __init__(self, in_channels=48, num_classes=19, mid=64, key=32):
        super().__init__()
        self.conv3x3_ocr = nn.Sequential(nn.Conv2d(in_channels, mid, 3, padding=1), nn.BatchNorm2d(mid), nn.ReLU())
        self.ocr_gather_head = SpatialGather_Module(num_classes)
        self.ocr_distri_head = SpatialOCR_Module(mid, key, mid)
        self.cls_head = nn.Conv2d(mid, num_classes, 1)
        self.aux_head = nn.Sequential(nn.Conv2d(in_channels, in_channels, 1), nn.BatchNorm2d(in_channels),
                                      nn.ReLU(), nn.Conv2d(in_channels, num_classes, 1))

    def forward(self, x):
        out_aux = self.aux_head(x)
        feats = self.conv3x3_ocr(x)
        proxies = self.ocr_gather_head(feats, out_aux)
        return [out_aux, self.cls_head(self.ocr_distri_head(feats, proxies))]


theirs = TheirOCRHead().eval()
with torch.no_grad(), ocrviz.capture(theirs) as foreign_cache:
    theirs(torch.randn(1, 48, 32, 64))
for name in foreign_cache.names():
    print(f"   {name:48s} {' x '.join(map(str, foreign_cache[name].shape))}")
print("rows of the recomputed sim map sum to 1:", torch.allclose(foreign_cache.sim_map.sum(-1), torch.ones(1)))

# %% [markdown]
# The names are `<module path>.<role>`, and the same `cache.sim_map`, `cache.region_weights`, ...
# properties work, so everything in notebooks 1–3 applies to their model too.
#
# **The safety net.** Suppose a port softmaxes the soft regions over the *classes* instead of the
# pixels (an unmerged upstream pull request did exactly that).  ocrviz's recomputation, which
# follows the official math, no longer matches the module's output, and capture refuses:

# %%
class WrongGather(SpatialGather_Module):
    def forward(self, feats, probs):
        b, k = probs.shape[:2]
        probs = F.softmax(self.scale * probs.view(b, k, -1), dim=1)                    # over classes: wrong
        feats = feats.view(b, feats.shape[1], -1).permute(0, 2, 1)
        return torch.matmul(probs, feats).permute(0, 2, 1).unsqueeze(3)


wrong = TheirOCRHead().eval()
wrong.ocr_gather_head = WrongGather(19)
try:
    with torch.no_grad(), ocrviz.capture(wrong):
        wrong(torch.randn(1, 48, 32, 64))
except Exception as err:                       # ocrviz.capture.CaptureMismatchError
    print(f"{type(err).__name__}: {str(err)[:400]}")
else:
    raise AssertionError("capture should have refused the wrong gather")

# %% [markdown]
# ## Tidy up
#
# The temporary folder with the stand-in PNG and the fake dataset trees goes away here (re-run the
# notebook from the top to make it again).

# %%
scratch.cleanup()
print(f"removed {WORK}: {not WORK.exists()}")
