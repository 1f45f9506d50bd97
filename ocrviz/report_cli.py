"""``ocrviz report``'s output step: run the models, write the page, its JSON and the worst images' explain pages.

``cli.cmd_report`` checks the arguments and opens the data; this module does
the rest, so that the command line itself stays a list of checks.  The explain
pages of the worst images go to a folder beside the page (``OUT_explain/``),
one page per image, each made by ``explain_page.explain_section`` with the
first OCR model of the report (and its first ASPP model to compare with).
"""
from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ocrviz.atomic import write_atomic
from ocrviz.html_page import page
from ocrviz.report_page import report_html
from ocrviz.report_run import no_ocr_reason, run_report


def image_names(dataset: Any) -> list[str]:
    """A name per image, in the dataset's order: ToyCity's scene seeds, a folder's file names."""
    if hasattr(dataset, "seeds"):
        return [f"scene {int(s)}" for s in dataset.seeds]
    pairs = getattr(getattr(dataset, "folder", None), "pairs", None)
    if pairs is not None:
        return [str(p[2]) for p in pairs[:len(dataset)]]
    return [f"image {i}" for i in range(len(dataset))]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:60] or "image"


def write_explain_pages(models: Sequence[tuple[str, Any]], rep: dict, scenes: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]],
                        folder: Path, n_worst: int, device: Any, warn: Callable[[str], None]) -> dict[int, str]:
    """Explain pages of each model's ``n_worst`` worst images -> {image index: href relative to the report}."""
    from ocrviz.explain_page import explain_section
    from ocrviz.normalisation import input_normalisation

    wanted = list(dict.fromkeys(i for m in rep["models"] for i in m["worst"][:n_worst]))
    ocr = next(((n, m) for n, m in models if no_ocr_reason(m) is None), None)
    if not wanted or n_worst <= 0:
        return {}
    if ocr is None:
        warn("no explain pages: the explorer reads an OCR head, and none of the models has one")
        return {}
    aspp = next((m for _, m in models if getattr(m, "arch", None) == "aspp"), None)
    mean, std = input_normalisation(ocr[1])
    folder.mkdir(exist_ok=True)
    links: dict[int, str] = {}
    names = rep["models"][0]["per_image"]
    for i, (image, labels) in enumerate(scenes()):
        if i not in wanted:
            continue
        name = names[i]["image"]
        scores = "; ".join(f"mIoU {m['per_image'][i]['miou']:.3f} ({m['name']})" for m in rep["models"])
        try:
            section, _ = explain_section(ocr[1], image, labels, name=name, anchor="image-0", aspp_model=aspp,
                                         device=device, mean=mean, std=std, max_side=None)
        except ValueError as e:
            warn(f"no explain page for {name}: {e}")
            continue
        intro = (f'<p class="note">Image #{i} of the report ({name}): {scores}. Explorer of {ocr[0]}'
                 + (" with the ASPP model beside it" if aspp is not None else "") + ". Click a pixel to see its "
                 "regions.</p>")
        path = folder / f"{i:04d}_{_slug(name)}.html"
        write_atomic(path, page(f"ocrviz explain: {name} (report image #{i})", intro + section))
        links[i] = f"{folder.name}/{path.name}"
        if len(links) == len(wanted):
            break
    return links


def write_report(args: Any, models: Sequence[tuple[str, Any]], dataset: Any, scenes: Any, names: Sequence[str] | None,
                 what: str, device: Any, batch: int, out: Path, out_json: Path | None) -> int:
    """Run ``run_report`` and write the page (and JSON, and explain pages); returns the exit status 0."""
    warn = lambda line: print(f"ocrviz report: {line}", file=sys.stderr)  # noqa: E731
    rep = run_report(models, dataset, scenes, image_names(dataset), data=what, class_names=names, device=device,
                     batch_size=batch, analyses=not args.no_analyses, progress=not args.quiet,
                     n_boot=args.bootstrap, seed=args.seed, n_worst=args.explain_worst or 3, warn=warn)
    links = write_explain_pages(models, rep, scenes, out.with_name(out.stem + "_explain"), args.explain_worst,
                                device, warn)
    for m in rep["models"]:
        for row in m["per_image"]:
            row["explain"] = links.get(row["index"])
    title = args.title or f"ocrviz report: {', '.join(Path(n).name for n, _ in models)} on {args.data}"
    html_text = report_html(title, rep, links)
    write_atomic(out, html_text)
    if out_json is not None:
        write_atomic(out_json, json.dumps(rep, indent=1) + "\n")
    for m in rep["models"]:
        ci = m["miou_ci"] or [float("nan")] * 2
        print(f"{m['name']}: mIoU {m['miou']:.4f} [{ci[0]:.4f}, {ci[1]:.4f}], pixel accuracy {m['pixel_acc']:.4f} "
              f"on {rep['n_images']} images", file=sys.stderr)
    print(f"wrote {out}" + (f" and {out_json}" if out_json else "")
          + (f" and {len(links)} explain page(s) in {out.stem}_explain/" if links else ""), file=sys.stderr)
    return 0
