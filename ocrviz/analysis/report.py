"""Does OCR's attention matter?  ``attention_report`` over a set of images.

Where each number is computed:

* attention statistics (``effective_regions``, ``kl_from_uniform``,
  ``top_is_*``) over every FEATURE CELL of every image (a sim row belongs to a
  cell); ``top_is_true`` over the cells whose centre pixel is labelled
  (``cells.labels_at_cells``), the predicted class is the argmax of the head
  logits at the cell, the soft-region class the argmax of the aux logits;
* ``region_on_class[k]``: region k's spatial weights (sum 1 per image) times
  the fraction of each cell's pixels that are class k, summed over cells, then
  averaged over the images in which class k occurs (None when it never does);
  ``region_on_class_chance[k]`` is the same for a region spread evenly over
  the cells (the mean fraction of class k per cell: what "on its class" is
  when the region knows nothing), averaged over the same images;
* every mIoU at IMAGE resolution, as ``ocrviz.evaluate`` does: head logits
  (the model's own, or re-run with the edited sim map by :func:`rerun_head`)
  upsampled bilinearly as the model's forward does, argmax, one confusion
  matrix over the whole set (``evaluate._confusion``), and
  ``metrics_from_confusion`` (mean over classes present in labels or prediction).

Counterfactual sim maps: uniform rows ``1/K``; a one-hot row on the cell's
soft-region class; the image's own rows permuted among its cells with
``np.random.default_rng([seed, image index])``.

Per image the report keeps the running sums behind its fractions
(``per_image_sums``, columns ``PER_IMAGE_SUMS``) and its four confusion
matrices (``per_image_conf``), so that confidence intervals over images
(``ocrviz.analysis.bootstrap``) recompute every figure from resampled images.

Example::

    rep = attention_report(load_model("toycity-ocr"), images, labels)
    print(rep.to_markdown()); rep.plot()
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..context import ocr as ocr_context
from ..evaluate import _confusion, metrics_from_confusion
from .cells import class_fractions, labels_at_cells
from .counterfactual import ocr_parts, rerun_head
from .passes import check_labels, image_pass

SIM_EDITS = ("uniform", "onehot", "shuffled")
#: columns of ``AttentionReport.per_image_sums``: cells, sum of exp(entropy), sum of KL, top = predicted hits,
#: top = soft-region hits, top = true hits, labelled cells
PER_IMAGE_SUMS = ("cells", "eff", "kl", "pred", "soft", "true", "true_n")

#: the report's figures in reading order, as a table names them
FIELD_LABELS = {
    "effective_regions": "effective regions (of K)",
    "kl_from_uniform": "KL from uniform (nats)",
    "top_is_pred": "top region = predicted class",
    "top_is_soft": "top region = soft-region class",
    "top_is_true": "top region = true class",
    "miou": "mIoU",
    "miou_uniform_sim": "mIoU, uniform sim rows",
    "miou_onehot_sim": "mIoU, one-hot sim rows on the soft-region class",
    "miou_shuffled_sim": "mIoU, sim rows shuffled among the image's cells",
}
#: one line each: what the figure measures
DEFINITIONS = {
    "effective_regions": "exp(entropy) of a cell's sim row, mean over cells: 1 = one region gives all the "
                         "context, K = all regions give equally",
    "kl_from_uniform": "KL divergence of a cell's sim row from the uniform row 1/K, in nats, mean over cells: "
                       "0 = uniform, log K = one region",
    "top_is_pred": "share of cells whose most-attended region is the class the model predicts at that cell",
    "top_is_soft": "share of cells whose most-attended region is the soft-region class there (aux head argmax)",
    "top_is_true": "share of labelled cells whose most-attended region is the cell's true class (centre pixel)",
    "miou": "mean IoU over the classes present, at image resolution, the model's own forward",
    "miou_uniform_sim": "every sim row replaced by 1/K: every pixel gets the same mean of the region values",
    "miou_onehot_sim": "every sim row one-hot on the cell's soft-region class: 'attend to your own object'",
    "miou_shuffled_sim": "each image's sim rows permuted among its cells (seeded): a wrong relation",
    "region_on_class": "region on its class: the share of soft region k's spatial weight that lies on pixels of "
                       "class k, mean over the images where k occurs; spread evenly = class k's share of the cells",
}


@dataclass(frozen=True)
class AttentionReport:
    """What the sim map looks like and whether the predictions depend on it (see the module docstring).

    Fractions are in [0, 1], ``effective_regions`` in [1, K], ``kl_from_uniform``
    in [0, log K] (nats).  Label-dependent fields are None without labels.
    """

    n_images: int
    n_cells: int
    num_classes: int
    class_names: tuple[str, ...]
    effective_regions: float
    kl_from_uniform: float
    top_is_pred: float
    top_is_soft: float
    top_is_true: float | None
    region_on_class: tuple[float | None, ...] | None
    miou: float | None
    miou_uniform_sim: float | None
    miou_onehot_sim: float | None
    miou_shuffled_sim: float | None
    seed: int
    region_on_class_chance: tuple[float | None, ...] | None = None
    per_image_sums: np.ndarray | None = field(default=None, repr=False, compare=False)   # N x len(PER_IMAGE_SUMS)
    per_image_conf: np.ndarray | None = field(default=None, repr=False, compare=False)   # N x 4 x K x K (model, *SIM_EDITS)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (NaN -> None; region_on_class as {class name: share})."""
        d = asdict(self)
        d.pop("per_image_sums"), d.pop("per_image_conf")
        d["class_names"] = list(self.class_names)
        if self.region_on_class is not None:
            d["region_on_class"] = dict(zip(self.class_names, self.region_on_class))
        if self.region_on_class_chance is not None:
            d["region_on_class_chance"] = dict(zip(self.class_names, self.region_on_class_chance))
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}

    def chance(self) -> dict[str, float | None]:
        """What each attention figure would be for a sim map that knows nothing: uniform rows (1/K each) for
        the spread, a region drawn at random (1/K) for the top-region rates; None where no such level exists."""
        k = self.num_classes
        return {"effective_regions": float(k), "kl_from_uniform": 0.0, "top_is_pred": 1 / k, "top_is_soft": 1 / k,
                "top_is_true": 1 / k}

    def to_markdown(self) -> str:
        """Two markdown tables: the headline numbers (each beside its chance level and defined in one line),
        and region_on_class per class beside a region spread evenly over the image."""
        f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        chance = self.chance()
        rows = [("images / cells", f"{self.n_images} / {self.n_cells}", "", "feature cells: one sim row each")]
        rows += [(FIELD_LABELS[key].replace("K", f"K = {self.num_classes}", 1) if key == "effective_regions"
                  else FIELD_LABELS[key], f(getattr(self, key)), f(chance.get(key)), DEFINITIONS[key])
                 for key in FIELD_LABELS]
        out = ["| field | value | chance | what it is |", "|---|---:|---:|---|"]
        out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
        if self.region_on_class is not None:
            even = self.region_on_class_chance or (None,) * self.num_classes
            out += ["", "| class | region on its class | region spread evenly |", "|---|---:|---:|"]
            out += [f"| {n} | {f(v)} | {f(e)} |" for n, v, e in zip(self.class_names, self.region_on_class, even)]
            out += ["", DEFINITIONS["region_on_class"]]
        return "\n".join(out)

    def plot(self) -> Any:
        """A plotly figure: the four mIoUs, and region_on_class per class."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=1, cols=2, column_widths=[0.35, 0.65],
                            subplot_titles=("Does the relation matter? (mIoU)", "Soft region on its class"))
        names = ["model", "uniform sim", "one-hot sim", "shuffled sim"]
        vals = [self.miou, self.miou_uniform_sim, self.miou_onehot_sim, self.miou_shuffled_sim]
        fig.add_trace(go.Bar(x=names, y=[np.nan if v is None else v for v in vals], name="mIoU",
                             hovertemplate="%{x}: %{y:.3f}<extra></extra>"), 1, 1)
        roc = self.region_on_class or (None,) * self.num_classes
        fig.add_trace(go.Bar(x=list(self.class_names), y=[np.nan if v is None else v for v in roc],
                             name="region on class", hovertemplate="%{x}: %{y:.3f}<extra></extra>"), 1, 2)
        fig.update_yaxes(range=[0, 1])
        fig.update_layout(showlegend=False, height=360, title=(
            f"{self.n_images} images: {self.effective_regions:.2f} effective regions of {self.num_classes}; "
            f"top region = true class for {'-' if self.top_is_true is None else f'{self.top_is_true:.0%}'} of cells"))
        return fig


def _entropy(sim: torch.Tensor) -> torch.Tensor:
    """N x K rows -> N entropies (nats), 0 log 0 = 0."""
    return -(sim * torch.log(sim.clamp_min(1e-30))).sum(-1)


def edited_sims(sim: torch.Tensor, soft: torch.Tensor, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """The three counterfactual sim maps for one image: sim 1 x HW x K, soft classes HW -> {name: 1 x HW x K}."""
    k = sim.shape[-1]
    perm = torch.from_numpy(rng.permutation(sim.shape[1])).to(sim.device)
    return {"uniform": torch.full_like(sim, 1.0 / k),
            "onehot": F.one_hot(soft, k).to(sim.dtype)[None],                # 1 x HW x K
            "shuffled": sim[:, perm]}


@torch.no_grad()
def attention_report(model: torch.nn.Module, images: Iterable[np.ndarray], labels: Iterable[np.ndarray] | None = None,
                     *, progress: bool = True, seed: int = 0) -> AttentionReport:
    """Attention health check over ``images`` (H x W x 3 uint8), streamed one at a time.

    Args:
        model: a supported OCR model (``counterfactual.SUPPORTED``); put in eval
            mode for the call and restored after.
        images: any iterable (a generator is read once).
        labels: H x W class maps in step with ``images`` (255 = ignore), or None:
            the label-dependent fields are then None.
        progress: a tqdm bar.
        seed: for the shuffled-rows counterfactual (same seed, same report).

    Memory is bounded: per image only running sums and four K x K confusion
    matrices are kept.
    """
    parts = ocr_parts(model)                               # unsupported models fail before any work
    k = int(getattr(model, "num_classes", 0) or parts.cls.out_channels)
    names = tuple(getattr(model, "class_names", None) or [str(i) for i in range(k)])
    was_training = model.training
    model.eval()
    conf = {e: torch.zeros(k * k, dtype=torch.int64) for e in ("model", *SIM_EDITS)}
    sums = dict.fromkeys(("eff", "kl", "pred", "soft", "true", "true_n"), 0.0)
    roc_sum, roc_n, roc_chance = np.zeros(k), np.zeros(k), np.zeros(k)
    per_sums: list[list[float]] = []
    per_conf: list[torch.Tensor] = []
    n_img = n_cells = 0
    try:
        total = len(images)  # type: ignore[arg-type]
    except TypeError:
        total = None
    label_iter = iter(labels) if labels is not None else None
    bar = tqdm(total=total, desc="attention_report", unit="img", disable=not progress)
    try:
        for i, image in enumerate(images):
            p = image_pass(model, image, i)
            c = p.cache
            sim = c.sim_map                                                # 1 x HW x K
            if sim.shape[0] != 1 or sim.shape[2] != k:
                raise ValueError(f"image {i}: sim map {tuple(sim.shape)}; expected 1 x HW x {k}")
            rows = sim[0]                                                  # HW x K
            top = rows.argmax(-1)                                          # HW
            pred_cell = c.head_logits[0].flatten(1).argmax(0)              # HW
            soft_cell = c.soft_regions[0].flatten(1).argmax(0)             # HW
            ent = _entropy(rows.double())
            img = dict.fromkeys(PER_IMAGE_SUMS, 0.0)
            img["cells"] = float(rows.shape[0])
            img["eff"] = float(ent.exp().sum())
            img["kl"] = float((math.log(k) - ent).clamp_min(0).sum())
            img["pred"] = float((top == pred_cell).sum())
            img["soft"] = float((top == soft_cell).sum())
            n_cells += rows.shape[0]
            n_img += 1
            if label_iter is not None:
                try:
                    lab = check_labels(next(label_iter), p.image_hw, i)
                except StopIteration:
                    raise ValueError(f"labels ran out at image {i}; give one label map per image") from None
                cell_lab = torch.from_numpy(labels_at_cells(lab, p.stride, p.feat_hw).ravel()).to(top.device)  # HW
                known = cell_lab != 255
                img["true"] = float((top == cell_lab)[known].sum())
                img["true_n"] = float(known.sum())
                frac = class_fractions(lab, k, p.feat_hw)                  # K x h x w
                rw = c.region_weights[0].double().cpu().numpy()            # K x h x w
                present = frac.sum((1, 2)) > 0
                on_own = np.diag(ocr_context.region_mass(rw, frac))          # K: region k's mass on class k
                roc_sum += np.where(present, on_own, 0.0)
                roc_n += present
                roc_chance += np.where(present, frac.mean((1, 2)), 0.0)
                target = torch.from_numpy(lab)
                img_conf = {"model": _confusion(p.pred, target, k)}
                rng = np.random.default_rng([int(seed), i])
                for name, edited in edited_sims(sim, soft_cell, rng).items():
                    pred = p.to_image(rerun_head(model, c, sim_map=edited))[0].cpu()   # H x W
                    img_conf[name] = _confusion(pred, target, k)
                for name, m in img_conf.items():
                    conf[name] += m
                per_conf.append(torch.stack([img_conf[e] for e in ("model", *SIM_EDITS)]).reshape(-1, k, k))
            for key in PER_IMAGE_SUMS[1:]:
                sums[key] += img[key]
            per_sums.append([img[key] for key in PER_IMAGE_SUMS])
            bar.update(1)
    finally:
        bar.close()
        model.train(was_training)
    if n_img == 0:
        raise ValueError("attention_report got no images; give an iterable of H x W x 3 uint8 arrays")
    has_labels = label_iter is not None
    miou = {e: (metrics_from_confusion(m.reshape(k, k).numpy())["miou"] if has_labels else None)
            for e, m in conf.items()}
    return AttentionReport(
        n_images=n_img, n_cells=n_cells, num_classes=k, class_names=names,
        effective_regions=sums["eff"] / n_cells, kl_from_uniform=sums["kl"] / n_cells,
        top_is_pred=sums["pred"] / n_cells, top_is_soft=sums["soft"] / n_cells,
        top_is_true=(sums["true"] / sums["true_n"] if has_labels and sums["true_n"] else None),
        region_on_class=(tuple(float(s / n) if n else None for s, n in zip(roc_sum, roc_n)) if has_labels else None),
        miou=miou["model"], miou_uniform_sim=miou["uniform"], miou_onehot_sim=miou["onehot"],
        miou_shuffled_sim=miou["shuffled"], seed=int(seed),
        region_on_class_chance=(tuple(float(s / n) if n else None for s, n in zip(roc_chance, roc_n))
                                if has_labels else None),
        per_image_sums=np.asarray(per_sums, np.float64),                             # N x 7
        per_image_conf=torch.stack(per_conf).numpy() if per_conf else None)         # N x 4 x K x K
