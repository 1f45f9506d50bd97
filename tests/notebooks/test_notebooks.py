"""The course notebooks: committed clean, built from their sources, and each one runs top to
bottom in a fresh kernel, headless, without network; their times are recorded (artifacts/notebook_times.json).

Each notebook runs in a copy inside ``tmp_path`` (the kernel's working directory), so what it
writes never lands in the repository (02 writes ``explorer_expected.npz`` only into
``OCRVIZ_COURSE_TEST_DIR``, which the tests set), and with its own
empty ``TMPDIR``, which must hold no ``ocrviz_*`` folder after the run.  The kernel imports this
checkout (``PYTHONPATH``) and uses the shipped checkpoints in ``data/`` (or ``OCRVIZ_DATA`` when
the caller sets it).  Threads: ``ocrviz.tools.course_env`` (``COURSE_THREADS`` unless the caller
set ``OMP_NUM_THREADS``), as ``make lab`` runs them.

**Claims.**  After the last cell, a probe (``PROBES``) runs in the same kernel and reads the
notebook's own variables; the ``test_claims_*`` tests check what the narrative and the folded
answers say against those numbers.  The probe is not part of the notebook, so the student sees
no test scaffolding.  The colour names in the markdown must be those of
``ocrviz.widgets.colours``.

Timings go to ``artifacts/notebook_times.json`` together with the load average.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from ocrviz.tools.course_env import course_env
from ocrviz.tools.strip_notebooks import problems
from ocrviz.widgets import colours

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
STEMS = ["01_ocr_in_three_steps", "02_click_a_pixel", "03_aspp_vs_ocr", "04_your_model_your_image",
         "05_train_your_own", "06_does_the_attention_matter", "07_one_pixel_seven_heads"]
SHIPPED = ("toycity-ocr", "toycity-aspp", "toycity-fcn")
CELL_TIMEOUT_S = 120
BUDGET_S = 120.0                      # the whole set, on 2 CPU cores
TIMES: dict[str, float] = {}
LOADS: list[float] = []


def _read(stem: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)


# ---------------------------------------------------------------------------- committed state
def test_the_course_is_complete() -> None:
    found = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    assert found == STEMS, f"notebooks/ holds {found}; expected exactly {STEMS}"


@pytest.mark.parametrize("stem", STEMS)
def test_committed_without_outputs(stem: str) -> None:
    nb = _read(stem)
    nbformat.validate(nb)
    assert problems(nb) == [], f"{stem}.ipynb is not clean; run `make clean-notebooks`"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.cells[0].cell_type == "markdown" and "What you will learn" in nb.cells[0].source, \
        f"{stem} must open with what it teaches"


def test_notebooks_match_their_sources() -> None:
    proc = subprocess.run([sys.executable, str(NOTEBOOKS / "build.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_strip_tool_cleans_an_executed_notebook(tmp_path: Path) -> None:
    nb = _read("01_ocr_in_three_steps")
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.execution_count = 7
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    code.metadata["execution"] = {"iopub.status.idle": "2024-01-01T00:00:00Z"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    path = tmp_path / "dirty.ipynb"
    nbformat.write(nb, path)
    from ocrviz.tools import strip_notebooks

    assert strip_notebooks.main(["--check", str(tmp_path)]) == 1
    assert strip_notebooks.main([str(tmp_path)]) == 0
    cleaned = nbformat.read(path, as_version=4)
    assert problems(cleaned) == []
    assert [c.source for c in cleaned.cells] == [c.source for c in nb.cells]
    assert strip_notebooks.main(["--check", str(tmp_path)]) == 0


# ---------------------------------------------------------------------------- execution
def _data_dir() -> Path:
    env = os.environ.get("OCRVIZ_DATA")
    return Path(env) if env else REPO / "data"


@pytest.fixture(scope="module")
def kernel_env() -> dict[str, str]:
    missing = [n for n in SHIPPED if not (_data_dir() / "checkpoints" / f"{n}.safetensors").is_file()]
    if missing:
        pytest.fail(f"shipped checkpoints missing in {_data_dir() / 'checkpoints'}: {missing}; "
                    f"train them with `make models`")
    env = course_env()                          # the course's threads, as `make lab` runs the kernels
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("OCRVIZ_HRNET_CKPT", None)         # the headless run takes the no-checkpoint path
    return env


# What each notebook's claims are computed from: code run in the notebook's kernel after its last
# cell; it sets ``_probe`` (a JSON-able dict) from the notebook's own variables.
PROBES = {
    "01_ocr_in_three_steps": """
from ocrviz.analysis.mass_view import mass_view_rgba as _rgba
from ocrviz.context import context_maps as _context_maps, strip_text as _strip_text
_cls = pred[stride // 2::stride, stride // 2::stride]                  # the class at each cell's centre, again
_yy, _xx = np.mgrid[:h, :w]
_mass_view = {}
for _n, (_r, _c) in pixels.items():                                   # the maps as the explorer builds them
    _m = _context_maps(cache, (_r * stride + stride // 2, _c * stride + stride // 2))[-1]
    _mass_view[_n] = {"again": _m.mass_by_class(_cls, list(CLASSES)), "strip_text": _strip_text(strips[_n]),
                      "n90": int((np.cumsum(np.sort(_m.weights.ravel())[::-1]) < 0.9).sum() + 1),
                      "near": float(_m.weights[np.hypot(_yy - _r, _xx - _c) <= 10].sum())}
    _a = _rgba(_m, _cls, PALETTE, CLASSES)[..., 3]                     # h x w opacity of the mass view
    _mass_view[_n]["building_median_alpha"] = float(np.median(_a[_cls == CLASSES.index("building")]))
    _mass_view[_n]["near_max_alpha"] = float(_a[np.hypot(_yy - _r, _xx - _c) <= 10].max())
_probe = {"K": int(K), "top_is_pred": top_is_pred, "top_is_true": top_is_true,
          "accuracy": float((pred == sample.labels).mean()), "spread_mean": float(spread.mean()),
          "tv_max": float(tv.max()), "wrong4": wrong4, "top4": sorted(top4),
          "strips": strips, "mass_view": _mass_view, "largest": float(largest), "near": near,
          "titles_pred": {_n: CLASSES[int(cell_pred[_r, _c])] for _n, (_r, _c) in pixels.items()}}
""",
    "02_click_a_pixel": """
_first = [int(v) for v in explorer.selected]
_second = [int(v) for v in explorer2.selected]
explorer2.select(0, 0)
_probe = {"second": _second, "second_wanted": [int(r2), int(c2)], "first": _first,
          "first_after_moving_second": [int(v) for v in explorer.selected],
          "top_differs": top_differs,
          "top_differs_check": float((explorer.data.sim_map.argmax(1) != influence.argmax(1)).mean()),
          "influence_shape": list(influence.shape),
          "teach": {f"{_r},{_c}": {"row": {n: float(v) for n, v in zip(CLASSES, d.sim_map[_r * w + _c])},
                                   "inf": {n: float(v) for n, v in zip(CLASSES, influence[_r * w + _c])},
                                   "true": CLASSES[int(cell_true[_r, _c])], "pred": CLASSES[int(cell_pred[_r, _c])]}
                    for _r, _c in ((7, 14), (16, 32))},
          "teach_mass": {f"{_r},{_c}": d.panel_masses(_r, _c) for _r, _c in ((7, 14), (16, 32))},
          "window_mass": window_mass,
          "car_rank": car_rank, "car_window_top": ranked[0][1], "car_window_right": bool(d.pred_at(rw_, cw_) == cell_true[rw_, cw_]),
          "own_mean": float(share.mean())}
""",
    "03_aspp_vs_ocr": """
from ocrviz.widgets.export import explorer_erfs as _erfs
if (int(row), int(col)) not in _erfs(explorer):         # the debounced on-demand ERF has not run yet
    explorer._compute_erf()
_probe = {"strips": strips,
          "explorer_masses": explorer.data.panel_masses(row, col, _erfs(explorer).get((int(row), int(col)))),
          "K": int(K), "top_is_true": top_is_true, "pred_is_true": pred_is_true, "eff_mean": eff_mean,
          "road_building": road_building, "others_road_building": others_road_building,
          "region_on_class": region_on_class, "higher": higher,
          "best_cells": {k: {"class": v["class"], "lead": v["lead"]} for k, v in best_cells.items()},
          "ocr_lead_share": ocr_lead_share, "ocr_lead_classes": ocr_lead_classes,
          "erf_own": erf_own, "ctx_own": ctx_own, "erf_peak": list(erf_peak), "pixel": [int(row), int(col)],
          "ctx_top": ctx_top, "aspp_ahead": len(aspp_ahead), "groups": len(metrics),
          "acc": {n: {m: float(c["metrics"][m]) for m in ("cue_free_acc", "window_acc", "ambiguous_acc")}
                  for n, c in cards.items()},
          "own_mean": {"ocr": float(own["ocr"].mean()), "aspp": float(own["aspp"].mean())},
          "free_top_not_own": free_top_not_own, "free_top_building": float(free_tops[CLASSES.index("building")]),
          "repaired": repaired, "broken": broken,
          "explorer_scene_is_street_2": bool((explorer.data.image == sample.image).all()),
          "explorer_has_aspp": explorer.data.aspp_rates is not None,
          "inf_top_is_true": inf_top_is_true, "inf_top_is_top": inf_top_is_top,
          "inf_check": float((own["inf_top"] == own["cls"])[valid].mean()),
          "own_inf_negative": own_inf_negative, "explorer_selected": [int(v) for v in explorer.selected],
          "explorer_show_erf": bool(explorer.show_erf), "explorer7_selected": [int(v) for v in explorer7.selected],
          "cell7": [int(r7), int(c7)], "top7": CLASSES[top7], "before7": float(before7[top7]), "after7": float(after7[top7]),
          "pred7": CLASSES[int(before7.argmax())], "pred7_after": CLASSES[int(after7.argmax())],
          "soft7": CLASSES[int(p["OCR soft regions"][y7, x7])], "true7": CLASSES[int(cell_true[r7, c7])],
          "ocr_own_px": float(ocr_own[row, col]), "aspp_own_px": float(aspp_own[row, col]),
          "pred_px": [CLASSES[int(ocr_pred[py, px])], CLASSES[int(aspp_pred[py, px])]]}
""",
    "04_your_model_your_image": """
import datetime as _dt
import io as _io
from PIL import Image as _Image
_before = explorer
_buf = _io.BytesIO()
_Image.fromarray(np.full((100, 150, 3), 90, np.uint8)).save(_buf, format="PNG")
upload.value = ({"name": "probe.png", "type": "image/png", "size": len(_buf.getvalue()),
                 "content": memoryview(_buf.getvalue()), "last_modified": _dt.datetime.now()},)
_probe = {"explorer_replaced": explorer is not _before, "explorer_in_box": box.children[-1] is explorer,
          "image_hw": list(image.shape[:2]), "pred_hw": list(pred.shape), "status": status.value,
          "explorer_hw": [int(v) for v in explorer.data.image_hw], "scratch_gone": not WORK.exists()}
""",
    "05_train_your_own": """
_K = len(CLASSES)
_flat = d.sim_map @ d.region_weights.reshape(_K, -1)                  # HW x HW: every cell's context map, at once
_cells = cell_pred.ravel() == BUILDING
_probe = {"learned": learned, "yours": float(np.median(list(yours_on_class.values()))),
          "shipped": float(np.median(list(shipped_on_class.values()))),
          "chosen": {n: list(v) for n, v in chosen.items()}, "strips": strips,
          "explorer_strips": {n: d.panel_masses(r, c)["ocr-context"] for n, (r, c) in chosen.items()},
          "patch": patch, "peaks": {n: list(v) for n, v in peaks.items()},
          "peaks_again": {n: [int(v) for v in np.unravel_index(_flat[r * w + c].argmax(), (h, w))]
                          for n, (r, c) in chosen.items()},
          "patch_again": {n: float(sum(_flat[r * w + c][i * w + j] for i in range(h) for j in range(w)
                                       if (i - peaks[n][0]) ** 2 + (j - peaks[n][1]) ** 2 <= 9))
                          for n, (r, c) in chosen.items()},
          "attends_building": attends_building, "n_cells": int(h * w),
          "on_building": [float(np.median(on_building)), float(on_building.min())],
          "on_building_again": [float(np.median(_flat[:, _cells].sum(1))), float(_flat[:, _cells].sum(1).min())],
          "attends_building_again": int((d.sim_map.argmax(1) == CLASSES.index("building")).sum())}
""",    "06_does_the_attention_matter": """
_probe = {"rep": rep.to_dict(), "uniform_drop": float(uniform_drop), "shuffled_drop": float(shuffled_drop),
          "onehot_drop": float(onehot_drop), "verdict": verdict, "agree": agree, "corr": corr,
          "top_att": top_att.tolist(), "top_inf": top_inf.tolist(),
          "explorer_selected": [int(v) for v in explorer.selected], "explorer_pinned": bool(explorer.pinned),
          "strip_before": strip_before, "strip_after": strip_after, "top5": names[top5],
          "strip_shown": explorer.data.panel_masses(r5, c5)["ocr-context"],
          "explorer_has_head": explorer.data.pixel_head is not None,
          "cf_where": explorer.counterfactuals, "cf_printed": where, "feat_mib": feat_mib,
          "cf_page_ok": bool(explorer.cf_value) == (explorer.counterfactuals == "browser"),
          "totals": totals, "n_err": n_err, "worst": worst,
          "errors_counted": int(sum(((b.prediction != lb) & (lb != 255)).sum() for b, lb in zip(blames, LABELS[:6]))),
          "ocr_diag": ocr_diag, "aspp_diag": aspp_diag,
          "ocr_diag_check": float(np.nanmean(np.diag(flow.ocr_mass))), "mass_rows": np.nansum(flow.ocr_mass, 1).tolist(),
          "flow_opened": (lambda _k: None if _k is None else
                          [list(_k), [int(v) for v in flow_explorer.show(*_k).selected], list(flow.examples[_k][0][1:])])(
              next((k for k, v in flow.examples.items() if v), None))}
""",
    "07_one_pixel_seven_heads": """
import math as _m
def _strip_again(_w, _cls, _off=0.0):      # mass by predicted class, top 3, written again here
    _s = {CLASSES[k]: float(_w[_cls == k].sum()) for k in range(len(CLASSES))}
    _r = sorted(_s.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{k} {v:.2f}" for k, v in _r) + (f", off {_off:.2f}" if _off > 0.005 else "")
_c = caches["self-attention"]
_q, _k = _c["head.hook_query"][0].double(), _c["head.hook_key"][0].double()
_att = torch.softmax(_q @ _k / _m.sqrt(_q.shape[1]), -1)                 # HW x HW, dense
_co = caches["OCR"]
_sim = _co.sim_map[0].double(); _rw = _co.region_weights[0].double()   # HW x K, K x h x w
_again = {}
for _label, (_r0, _c0) in CELLS.items():
    _again[_label + "|self-attention"] = _strip_again(_att[_r0 * w + _c0].reshape(h, w).numpy(), preds["self-attention"])
    _again[_label + "|OCR"] = _strip_again(torch.einsum("k,khw->hw", _sim[_r0 * w + _c0], _rw).numpy(), preds["OCR"])
_sums = [float(m.weights.sum() + m.off_grid) for head in MODELS for lab in CELLS
         for _, m in pixel_maps(head, CELLS[lab]) if m is not None]
_probe = {"strips": {f"{l}|{t}": v for (l, t), v in strips.items()}, "again": _again, "sums": _sums,
          "stats": {k: list(v) for k, v in stats.items()}, "most_own": most_own, "widest": widest,
          "costs": costs, "cheapest": cheapest, "dearest": dearest, "backbone_params": backbone_params,
          "cards": {k: [MODELS[k], cards[k].get("head_params"), cards[k].get("params")] for k in MODELS},
          "kinds": {k: (None if v is None else [bool(v[0]), v[1]]) for k, v in kinds.items()},
          "n_exact": n_exact, "fcn": FCN_NAME, "n_scenes": len(SCENES),
          "recipes": {k: cards[k].get("recipe") for k in MODELS}, "end_to_end": end_to_end}
""",
}


def _probe(client, nb: nbformat.NotebookNode, code: str) -> dict:
    """Run ``code`` (which sets ``_probe``) in the kernel after the notebook; return ``_probe``."""
    cell = nbformat.v4.new_code_cell(code + "\nimport json as _json\nprint('@@PROBE@@' + _json.dumps(_probe))")
    nb.cells.append(cell)
    try:
        client.execute_cell(cell, len(nb.cells) - 1)
    finally:
        nb.cells.pop()
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    return json.loads(text.split("@@PROBE@@", 1)[1])


def _execute(stem: str, workdir: Path, env: dict[str, str],
             probe_code: str | None = None) -> tuple[nbformat.NotebookNode, float, dict]:
    """Run the notebook in ``workdir`` (its own TMPDIR inside); -> (notebook, seconds, probe values)."""
    from nbclient import NotebookClient

    shutil.copy(NOTEBOOKS / f"{stem}.ipynb", workdir)
    (workdir / "tmp").mkdir()
    (workdir / "test").mkdir()
    nb = nbformat.read(workdir / f"{stem}.ipynb", as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, startup_timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    LOADS.append(os.getloadavg()[0])
    with client.setup_kernel(env=dict(env, TMPDIR=str(workdir / "tmp"), OCRVIZ_COURSE_TEST_DIR=str(workdir / "test"))):
        t0 = time.perf_counter()
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)   # raises CellExecutionError on the first failing cell
        seconds = time.perf_counter() - t0
        code = PROBES.get(stem) if probe_code is None else probe_code
        probe = _probe(client, nb, code) if code else {}
    return nb, seconds, probe


def _stderr(nb: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs if o.output_type == "stream" and o.get("name") == "stderr")


@pytest.fixture(scope="module")
def run_notebook(kernel_env, tmp_path_factory):
    """``run(stem) -> (executed notebook, seconds, workdir)``; each notebook runs once per session.
    ``run.probes[stem]``: the values ``PROBES[stem]`` read from the kernel after the last cell."""
    done: dict[str, tuple] = {}

    def run(stem: str) -> tuple[nbformat.NotebookNode, float, Path]:
        if stem not in done:
            workdir = tmp_path_factory.mktemp(stem)
            try:
                nb, seconds, probe = _execute(stem, workdir, kernel_env)
                run.probes[stem] = probe
                done[stem] = (nb, seconds, workdir, None)
            except Exception as err:                       # reported by every test that needs it
                done[stem] = (None, None, workdir, err)
        nb, seconds, workdir, err = done[stem]
        if err is not None:
            raise err
        return nb, seconds, workdir

    run.probes = {}
    return run


def _probed(run_notebook, stem: str) -> dict:
    run_notebook(stem)
    return run_notebook.probes[stem]


@pytest.mark.parametrize("stem", STEMS)
def test_notebook_runs_top_to_bottom(stem: str, run_notebook) -> None:
    before = sorted(p.name for p in NOTEBOOKS.iterdir())
    nb, seconds, workdir = run_notebook(stem)
    TIMES[stem] = seconds
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    assert "Warning" not in _stderr(nb), f"{stem} shows warnings to the student:\n{_stderr(nb)[:2000]}"
    pictures = sum(any(m in o.get("data", {}) for m in ("image/png", "application/vnd.plotly.v1+json"))
                   for c in nb.cells if c.cell_type == "code" for o in c.outputs)   # matplotlib or plotly
    assert pictures >= 2, f"{stem} drew {pictures} pictures"
    assert sorted(p.name for p in NOTEBOOKS.iterdir()) == before, "the run wrote into notebooks/"
    left = sorted(p.name for p in (workdir / "tmp").glob("ocrviz_*"))
    assert not left, f"{stem} left {left} in its temporary folder"


def test_click_a_pixel_writes_the_browser_test_arrays(run_notebook) -> None:
    """02 saves what its first explorer shows: the JupyterLab test compares the page with it."""
    nb, _, workdir = run_notebook("02_click_a_pixel")
    path = workdir / "test" / "explorer_expected.npz"
    assert path.is_file(), "02_click_a_pixel did not write explorer_expected.npz into OCRVIZ_COURSE_TEST_DIR"
    assert not (workdir / "explorer_expected.npz").exists(), "test scaffolding written next to the notebook"
    with np.load(path) as z:
        assert {"sim_map", "region_weights", "pred_cells", "true_cells", "feat_hw", "output_stride", "image_hw",
                "class_names", "aspp_rates"} <= set(z.files)
        h, w = z["feat_hw"].tolist()
        assert (h, w) == (32, 64) and int(z["output_stride"]) == 8 and z["image_hw"].tolist() == [256, 512]
        assert z["sim_map"].shape == (h * w, 9) and np.allclose(z["sim_map"].sum(1), 1, atol=1e-5)
        assert z["pred_cells"].shape == (h, w) and z["pred_cells"].max() < 9
        from ocrviz.data.samples import load_sample

        labels = load_sample("street_0").labels
        assert (z["true_cells"] == labels[4::8, 4::8]).all()          # the first explorer shows street_0
    echo = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if "ocrviz-py-echo" in o.get("data", {}).get("text/plain", "")]
    assert echo, "the selection echo label (class ocrviz-py-echo) is missing"


# ---------------------------------------------------------------------------- what the text says
def _markdown(stem: str) -> str:
    return "\n\n".join(c.source for c in _read(stem).cells if c.cell_type == "markdown")


COLOUR_WORDS = r"red|yellow|green|grey|gray|orange|blue|purple|magenta"
ROLE_WORDS = {  # a colour word next to one of these names the colour of that role
    "error": (r"errors?|mistakes?|wrong", colours.ERROR_NAME),
    "mark": (r"cue-free|marks?|marked", colours.MARK_NAME),
    "right": (r"right answers?|correct", colours.RIGHT_NAME),
}


def colour_claims(text: str, reach: int = 40) -> list[tuple[str, str, str]]:
    """(colour word, role, expected name) for every colour word with a role word within ``reach`` characters
    (the nearest role word decides)."""
    found = []
    for m in re.finditer(rf"\b({COLOUR_WORDS})\b", text, flags=re.I):
        best = None
        for role, (pattern, expected) in ROLE_WORDS.items():
            for r in re.finditer(rf"\b({pattern})\b", text, flags=re.I):
                gap = r.start() - m.end() if r.start() >= m.end() else m.start() - r.end()
                if 0 <= gap <= reach and (best is None or gap < best[0]):
                    best = (gap, role, expected)
        if best:
            found.append((m.group(1).lower(), best[1], best[2]))
    return found


def test_colour_claim_finder() -> None:
    assert colour_claims("Yellow marks the cue-free pixels; errors (red).") == \
        [("yellow", "mark", colours.MARK_NAME), ("red", "error", colours.ERROR_NAME)]
    assert colour_claims("a blue square around the pixel") == []


@pytest.mark.parametrize("stem", ["02_click_a_pixel", "03_aspp_vs_ocr"])
def test_colour_names_in_the_text_are_the_drawn_ones(stem: str) -> None:
    """The markdown names the colours of ocrviz.widgets.colours, and the code draws with them."""
    claims = colour_claims(_markdown(stem))
    assert claims, f"{stem} names no overlay colour in its text"
    wrong = [c for c in claims if c[0] != c[2]]
    assert not wrong, f"{stem}: text colour != drawn colour (word, role, colours.py name): {wrong}"
    code = "\n".join(c.source for c in _read(stem).cells if c.cell_type == "code")
    assert "ocrviz.widgets.colours" in code and "autumn" not in code


def test_click_a_pixel_hides_its_test_scaffolding() -> None:
    """02: what the browser test needs (explorer_expected.npz) is written by one collapsed,
    tagged cell at the end; no other cell writes test files or asserts."""
    nb = _read("02_click_a_pixel")
    visible = [c for c in nb.cells if c.cell_type == "code" and not c.metadata.get("jupyter", {}).get("source_hidden")]
    for cell in visible:
        assert "to_npz" not in cell.source and not re.search(r"^\s*assert\b", cell.source, flags=re.M), cell.source
    last = nb.cells[-1]
    assert last.metadata.get("jupyter", {}).get("source_hidden") and "course-test" in last.metadata.get("tags", [])
    assert "explorer_expected.npz" in last.source and "OCRVIZ_COURSE_TEST_DIR" in last.source


def test_claims_01_the_sim_map_is_not_a_classifier(run_notebook) -> None:
    v = _probed(run_notebook, "01_ocr_in_three_steps")
    assert "**the seed**" in _markdown("01_ocr_in_three_steps")          # says once what the word means
    # "The top region is the predicted class far less often than the prediction is right"
    assert v["top_is_pred"] < v["accuracy"] / 2, v
    # "a cell spreads its row over several regions rather than picking one"
    assert v["spread_mean"] > 3, v
    # "four objects, four nearly identical rows ... the same large regions on top"; the building
    # window is the one mistake, predicted person
    assert v["tv_max"] < 1 / 3 and set(v["top4"]) <= {"road", "building", "sidewalk"}, v
    assert v["wrong4"] == {"building window": "person"}, v
    assert "docs/teaching.md" in _markdown("01_ocr_in_three_steps")


def test_claims_01_the_context_maps_in_the_mass_view(run_notebook) -> None:
    """Step 3's four panels are the explorer's mass view: the strips under them are the maps' mass by
    the class predicted at each cell's centre (recomputed from the explorer's own ContextMaps), and
    the bullets under the table hold."""
    v = _probed(run_notebook, "01_ocr_in_three_steps")
    text = _markdown("01_ocr_in_three_steps")
    assert "Log colour scale" not in text and "mass view" in text and "colour is the class the model" in text
    strips, mv = v["strips"], v["mass_view"]
    assert set(strips) == {"car window", "building window", "road", "sidewalk"}, list(strips)
    for name, strip in strips.items():
        assert abs(sum(strip.values()) - 1) < 1e-5, (name, strip)
        assert all(abs(share - mv[name]["again"][c]) < 1e-5 for c, share in strip.items()), (name, strip, mv[name])
        assert mv[name]["again"]["off-grid"] == 0.0
    # "no class holds more than 40 % of any of the four"; "thousands of the 10000 cells hold 90 %"
    assert v["largest"] == max(max(s.values()) for s in strips.values()) < 0.4, v["largest"]
    assert all(m["n90"] >= 1000 for m in mv.values()), {n: m["n90"] for n, m in mv.items()}
    # "within 10 cells of its pixel: at most 0.16, and almost nothing for the road pixel", whose
    # surroundings stay pale
    assert all(abs(v["near"][n] - mv[n]["near"]) < 1e-6 for n in strips), (v["near"], mv)
    assert max(v["near"].values()) <= 0.16 and v["near"]["road"] < 0.01, v["near"]
    assert mv["road"]["near_max_alpha"] < 0.1, mv["road"]
    # "Road and sidewalk look across"
    road, side = strips["road"], strips["sidewalk"]
    assert road["sidewalk"] > road["road"] and road["building"] > road["road"], road
    assert road["sidewalk"] + road["building"] > 0.5, road
    assert side["road"] > side["sidewalk"] and side["building"] > side["sidewalk"], side
    # "Building is large but pale": a sixth to a third of every map, in every strip; most building
    # cells drawn faint
    assert all(1 / 6 <= s["building"] <= 1 / 3 for s in strips.values()), strips
    assert all("building" in m["strip_text"] for m in mv.values()), mv
    assert all(m["building_median_alpha"] < 0.1 for m in mv.values()), mv
    # the titles' predictions are the table's; the building window is the one mistake
    assert v["titles_pred"]["building window"] == v["wrong4"]["building window"], v["titles_pred"]


def test_claims_02_explorers_are_independent(run_notebook) -> None:
    v = _probed(run_notebook, "02_click_a_pixel")
    # "for nearly every pixel most of the context comes from other objects"
    assert v["own_mean"] < 0.3, v["own_mean"]
    # the car window: car not first, road first, the label still right
    assert v["car_rank"] > 1 and v["car_window_top"] == "road" and v["car_window_right"], v
    assert v["second"] == v["second_wanted"], v
    assert v["first_after_moving_second"] == v["first"], v


def test_claims_03_what_the_shipped_ocr_does(run_notebook) -> None:
    """Section "First, measure": the four numbered findings."""
    v = _probed(run_notebook, "03_aspp_vs_ocr")
    k = v["K"]
    assert v["top_is_true"] < 1 / k, v["top_is_true"]                     # 1. below a random pick
    assert v["pred_is_true"] > 0.9, v["pred_is_true"]                      # "almost always right"
    assert v["eff_mean"] > k / 2, v["eff_mean"]                            # 2. more than half of the nine
    assert v["road_building"] > 0.5 and v["others_road_building"] > 0.5, v  # 3. most cells, other classes too
    purity = v["region_on_class"]                                          # 4. regions sit on their objects,
    assert purity["person"] < 0.5, purity                                  #    person the exception
    assert all(s > 0.5 for n, s in purity.items() if n != "person"), purity
    assert v["higher"] == {"object": "ASPP", "class": "ASPP"}, v["higher"]   # "How to read it"


def test_claims_03_folded_answers(run_notebook) -> None:
    v = _probed(run_notebook, "03_aspp_vs_ocr")
    # 1: ASPP's largest lead on a building cell; OCR leads on a few percent, most of them sky,
    #    its largest lead on a sky cell by close to half of the context.
    assert v["best_cells"]["ASPP"]["class"] == "building", v["best_cells"]
    assert v["best_cells"]["OCR"]["class"] == "sky" and v["best_cells"]["OCR"]["lead"] > 0.4, v["best_cells"]
    assert v["ocr_lead_share"] < 0.1, v["ocr_lead_share"]
    assert v["ocr_lead_classes"].get("sky", 0) > sum(v["ocr_lead_classes"].values()) / 2, v["ocr_lead_classes"]
    # 5: the ERF peaks at the pixel, a large part on its car; the context map almost nothing, road and sidewalk first
    assert v["erf_peak"] == v["pixel"], v
    assert v["ctx_own"] < 0.05 and v["erf_own"] > 0.2, v
    assert v["ctx_top"] == ["road", "sidewalk"], v["ctx_top"]
    # 6: FCN by far the worst on cue-free pixels; windows within a point; ASPP ahead on every group
    acc = v["acc"]
    assert acc["fcn"]["cue_free_acc"] < min(acc["ocr"]["cue_free_acc"], acc["aspp"]["cue_free_acc"]) - 0.1, acc
    windows = [a["window_acc"] for a in acc.values()]
    assert max(windows) - min(windows) < 0.01, windows
    assert v["aspp_ahead"] == v["groups"], v
    assert v["own_mean"]["ocr"] < v["own_mean"]["aspp"], v["own_mean"]
    # 7: the regions are clean; most cue-free paving cells attend most to another class (the
    #    building region); in street_2 the context changed far more pixels for the worse.
    assert v["region_on_class"]["road"] > 0.5 and v["region_on_class"]["sidewalk"] > 0.5
    assert v["free_top_not_own"] > 0.5, v["free_top_not_own"]
    assert v["broken"] > 5 * v["repaired"], v
    # the live explorer shows street_2 (exercise 7's scene) with both models
    assert v["explorer_scene_is_street_2"] and v["explorer_has_aspp"], v


def test_claims_03_names_openseg_issue_22() -> None:
    text = _markdown("03_aspp_vs_ocr")
    assert "github.com/openseg-group/openseg.pytorch/issues/22" in text and "1/19" in text
    assert "If OCR wins" not in text and "should highlight the pixel's object" not in text


def test_upload_updates_prediction_and_explorer(run_notebook) -> None:
    """04: setting the FileUpload's value (what an upload does) replaces image, prediction and explorer."""
    v = _probed(run_notebook, "04_your_model_your_image")
    assert v["explorer_replaced"] and v["explorer_in_box"], v
    assert v["image_hw"] == [100, 150] and v["pred_hw"] == [100, 150], v
    assert v["explorer_hw"] == [104, 152] and v["status"].startswith("probe.png"), v   # padded to stride 8
    assert v["scratch_gone"], v


def test_claims_05_a_short_run(run_notebook) -> None:
    """"only large classes" (IoU >= 0.1) after 30 steps; "soft regions not yet on their objects"."""
    v = _probed(run_notebook, "05_train_your_own")
    assert set(v["learned"]) <= {"road", "sidewalk", "building", "vegetation", "sky"}, v
    assert v["yours"] < 0.5 < v["shipped"], v


def test_claims_05_where_your_context_comes_from(run_notebook) -> None:
    """The two mass-view panels: their strips are the explorer's (panel_masses, what it writes under
    its panel for the same cell); "What it shows" holds for them and for every cell."""
    v = _probed(run_notebook, "05_train_your_own")
    assert "mass view" in _markdown("05_train_your_own")
    strips, shown = v["strips"], v["explorer_strips"]
    assert set(strips) == {"road", "building"}, v["chosen"]          # the text speaks of both cells
    for name, strip in strips.items():
        assert all(abs(share - shown[name][c]) < 1e-6 for c, share in strip.items()), (name, strip, shown[name])
        assert abs(sum(strip.values()) - 1) < 1e-5
        assert strip["building"] > 0.8, strip                          # "nearly all ... from building cells"
    assert strips["road"]["road"] <= strips["building"]["road"], strips   # "no more about the road"
    # "the dark patch the two panels share": one peak, over half of each map within 3 cells of it
    assert v["peaks"] == v["peaks_again"] and v["peaks"]["road"] == v["peaks"]["building"], v
    assert all(abs(v["patch"][n] - v["patch_again"][n]) < 1e-6 for n in strips), v
    assert all(p > 0.5 for p in v["patch"].values()), v["patch"]
    # the last printed line, recomputed from the sim map and region weights in one product
    assert v["attends_building"] == v["attends_building_again"] > 0.9 * v["n_cells"], v
    assert np.allclose(v["on_building"], v["on_building_again"], atol=1e-5), v
    assert v["on_building"][0] > 0.85, v["on_building"]                   # "the median cell ... nearly all"


def _printed_train_commands(nb: nbformat.NotebookNode) -> list[str]:
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream" and o.get("name") == "stdout")
    return [line.strip() for line in text.splitlines() if line.startswith("python -m ocrviz.train ")]


def _tiny(args: list[str], **override: str) -> list[str]:
    """``args`` with the given options replaced (``steps="2"`` -> ``--steps 2``)."""
    args = list(args)
    for key, value in override.items():
        flag = "--" + key.replace("_", "-")
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    return args


def test_train_commands_replay_as_printed(run_notebook, kernel_env, tmp_path: Path) -> None:
    """05 prints the short run as a command and the shipped model's stages as a replayable chain.
    Each parses to the config it claims; the short run and the first two stages run (at two steps)
    from a fresh folder, the second stage from the first one's output, as printed."""
    from ocrviz.train import TrainConfig, _parse, training_stages
    from ocrviz.zoo import model_card

    nb, _, _ = run_notebook("05_train_your_own")
    commands = _printed_train_commands(nb)
    stages = training_stages(model_card("toycity-ocr"))
    assert len(commands) == 1 + len(stages), commands
    own, chain = commands[0], commands[1:]
    argvs = [shlex.split(c)[3:] for c in commands]
    assert _parse(argvs[0]) == TrainConfig(arch="ocrnet", steps=30, batch_size=4, height=128, width=256, lr=5e-3,
                                           val_images=8, val_every=30, threads=int(kernel_env["OMP_NUM_THREADS"]),
                                           out="my-ocr", model_kwargs={"dilated": False})
    previous = None
    for stage, argv in zip(stages, argvs[1:]):
        config = _parse(argv)
        recorded = dict(vars(TrainConfig()), **stage["config"])     # older cards lack newer options
        assert {k: v for k, v in vars(config).items() if k not in ("out", "init_from")} == \
            {k: v for k, v in recorded.items() if k not in ("out", "init_from")}, (argv, recorded)
        assert config.init_from == (None if previous is None else previous + ".safetensors"), argv
        assert config.out.startswith("build/models/"), argv
        previous = config.out
    tiny = dict(steps="2", val_images="1", val_every="2", batch_size="2")
    env = dict(kernel_env, PYTHONPATH=str(REPO))
    for argv in (_tiny(argvs[0], **tiny), _tiny(argvs[1], **tiny), _tiny(argvs[2], **tiny)):
        proc = subprocess.run([sys.executable, "-m", "ocrviz.train", *argv], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{argv}:\n{proc.stderr[-3000:]}"
    assert (tmp_path / "my-ocr.safetensors").is_file() and (tmp_path / "my-ocr.json").is_file()
    assert (tmp_path / (_parse(argvs[2]).out + ".safetensors")).is_file()


def test_whole_course_times_are_recorded() -> None:
    """Writes artifacts/notebook_times.json (the README quotes it); the 120 s budget is a
    benchmark figure, not a timed test."""
    if set(TIMES) != set(STEMS):
        pytest.skip(f"needs all notebooks run in this session (ran {sorted(TIMES)})")
    total = sum(TIMES.values())
    load = max(LOADS) if LOADS else 0.0
    report = {"seconds": {k: round(v, 1) for k, v in TIMES.items()}, "total_s": round(total, 1),
              "budget_s": BUDGET_S, "load_avg_1min_max": round(load, 2), "cpus": os.cpu_count(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "1")}
    (REPO / "artifacts").mkdir(exist_ok=True)
    path = REPO / "artifacts" / "notebook_times.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print("\nnotebook times:", json.dumps(report))
    assert json.loads(path.read_text())["seconds"].keys() == set(STEMS)


def test_does_the_attention_matter_claims(run_notebook) -> None:
    """06 prints its verdicts from the report; they must follow from the report's own numbers."""
    pr = _probed(run_notebook, "06_does_the_attention_matter")
    rep = pr["rep"]
    assert abs(pr["uniform_drop"] - (rep["miou"] - rep["miou_uniform_sim"])) < 1e-9
    assert abs(pr["onehot_drop"] - (rep["miou"] - rep["miou_onehot_sim"])) < 1e-9
    assert pr["verdict"] == ("matters little on average" if pr["uniform_drop"] < 0.05 else "matters")
    assert 1 <= rep["effective_regions"] <= rep["num_classes"]
    # section 2: the printed agreement is the share of cells whose top attention = top influence
    assert abs(pr["agree"] - float(np.mean(np.array(pr["top_att"]) == np.array(pr["top_inf"])))) < 1e-9
    assert -1 <= pr["corr"] <= 1
    # exercise 2's answer says one-hot rows cost more than uniform ones for the shipped model
    assert pr["onehot_drop"] > pr["uniform_drop"]
    assert pr["explorer_selected"] == [14, 20] and pr["explorer_pinned"] and pr["explorer_has_head"]
    # section 5: the printed side is where the counterfactuals really run (the shipped head fits the page)
    assert pr["cf_where"] == "browser" and pr["cf_printed"].startswith("in the page") and pr["cf_page_ok"]
    assert 0 < pr["feat_mib"] <= 8
    # section 3: every misclassified pixel gets exactly one category; the printed 'most' is the largest
    assert sum(pr["totals"].values()) == pr["n_err"] == pr["errors_counted"] > 0
    assert pr["worst"] == max(pr["totals"], key=pr["totals"].get)
    # section 4: the printed diagonal means come from the matrices shown; mass rows are distributions
    assert abs(pr["ocr_diag"] - pr["ocr_diag_check"]) < 1e-12 and 0 <= pr["aspp_diag"] <= 1
    assert all(abs(v - 1) < 1e-6 for v in pr["mass_rows"] if v > 0)
    # the clickable flow view opens a matrix cell's first example, selected
    assert pr["flow_opened"] is not None and pr["flow_opened"][1] == pr["flow_opened"][2]


def test_click_a_pixel_influence_column(run_notebook) -> None:
    """02 prints, beside each cell's top attended region, its most influential one, and the share of
    cells where the two differ; the share is computed from what the explorer shows."""
    pr = _probed(run_notebook, "02_click_a_pixel")
    assert pr["influence_shape"] == [32 * 64, 9]
    assert pr["top_differs"] == pr["top_differs_check"] and 0 < pr["top_differs"] < 1


def test_aspp_vs_ocr_influence_line(run_notebook) -> None:
    """03's line 5: the most influential region, from region_influence over the same cells."""
    pr = _probed(run_notebook, "03_aspp_vs_ocr")
    assert pr["inf_top_is_true"] == pr["inf_check"] and 0 <= pr["inf_top_is_true"] <= 1
    assert 0 < pr["inf_top_is_top"] < 1


def test_your_model_notebook_opens_a_checkpoint_file(kernel_env, tmp_path) -> None:
    """04's section 2 with a file at OCRVIZ_HRNET_CKPT (the headless run takes the no-file path): an
    HRNet-OCR saved in the official release's layout ('model.' keys + 'loss.*', small width so that
    it runs here) is loaded by from_checkpoint and opened in the explorer, Cityscapes names given."""
    import torch

    from ocrviz.models.hrnet import HRNetW48OCR

    torch.manual_seed(0)
    net = HRNetW48OCR(num_classes=19, width=4, ocr_mid_channels=16, ocr_key_channels=8)
    state = {f"model.{k}": v for k, v in net.state_dict().items()}
    state["loss.criterion.weight"] = torch.ones(19)
    path = tmp_path / "hrnet_ocr_small.pth"
    torch.save(state, path)
    code = """
_probe = {"layout": hrnet.checkpoint_layout, "width": int(hrnet.width), "where": hr_explorer.counterfactuals,
          "names": list(hr_explorer.data.class_names[:3]), "shown": [int(v) for v in hr_explorer.data.image_hw]}
"""
    workdir = tmp_path / "run"
    workdir.mkdir()
    nb, _, pr = _execute("04_your_model_your_image", workdir, dict(kernel_env, OCRVIZ_HRNET_CKPT=str(path)), code)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream")
    assert pr["layout"] == "official" and pr["width"] == 4 and pr["names"] == ["road", "sidewalk", "building"]
    assert f"loaded {path}" in text and "No checkpoint" not in text
    assert f"Counterfactuals run {'in the page' if pr['where'] == 'browser' else 'in the kernel'}" in text


def _png_widths(nb: nbformat.NotebookNode) -> list[int]:
    import base64
    import struct

    widths = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            png = o.get("data", {}).get("image/png")
            if png:
                widths.append(struct.unpack(">I", base64.b64decode(png)[16:20])[0])      # IHDR width
    return widths


@pytest.mark.parametrize("stem", STEMS)
def test_static_figures_fit_the_notebook(stem: str, run_notebook) -> None:
    """Drawn at the notebook's width (a 1400-px window shows outputs about 968 px wide), so they are
    shown 1:1 and a 10-pt title at 80 dpi is 11 px tall on screen."""
    nb, _, _ = run_notebook(stem)
    widths = _png_widths(nb)
    assert widths and max(widths) <= 968, widths


def test_claims_03_own_class_influence_is_mostly_negative(run_notebook) -> None:
    """Points 5 and 6: "for most cells the region of the cell's own class has a negative influence"."""
    v = _probed(run_notebook, "03_aspp_vs_ocr")
    assert v["own_inf_negative"] > 0.5, v["own_inf_negative"]
    assert v["inf_top_is_true"] < v["top_is_true"] < 1 / v["K"]


def test_claims_03_explorers_start_where_the_text_says(run_notebook) -> None:
    """The live explorer stays on the car-window cell after Run All, with the ERF on in ASPP mode;
    exercise 7 has its own explorer on its cell; the handout's named ERF cells are those cells."""
    v = _probed(run_notebook, "03_aspp_vs_ocr")
    assert v["explorer_selected"] == v["pixel"] and v["explorer_show_erf"], v
    assert v["explorer7_selected"] == v["cell7"], v
    nb = _read("03_aspp_vs_ocr")
    named = [c.metadata["ocrviz"]["erf_cells"] for c in nb.cells if "ocrviz" in c.metadata]
    assert named == [[v["pixel"]], [v["cell7"]]], named


def _quoted(page: str, text: str) -> None:
    assert text in page, f"docs/teaching.md does not say {text!r}"


def test_teaching_numbers_are_the_notebooks(run_notebook) -> None:
    """Every number docs/teaching.md quotes, as notebooks 02 and 03 print or hold it."""
    from ocrviz.tools import teaching

    page = teaching.DOC.read_text()
    v3 = _probed(run_notebook, "03_aspp_vs_ocr")
    k = v3["K"]
    _quoted(page, f"most attended = true class for **{v3['top_is_true']:.1%}**")
    _quoted(page, f"most influential = true class for **{v3['inf_top_is_true']:.1%}**")
    _quoted(page, f"against **{1 / k:.1%}** for a random")
    # pixel 3, the car window: notebook 03's pixel and its shares
    assert tuple(v3["pixel"]) == teaching.CAR_WINDOW[1]
    _quoted(page, f"cell ({v3['pixel'][0]}, {v3['pixel'][1]})")
    _quoted(page, f"OCR predicts {v3['pred_px'][0]}, ASPP {v3['pred_px'][1]}")
    _quoted(page, f"OCR's context puts **{v3['ocr_own_px']:.2f}** there")
    for who, panel in (("OCR's context", "OCR context"), ("ASPP's taps", "ASPP taps"), ("ASPP's ERF", "ASPP ERF")):
        mass = v3["strips"][panel]
        _quoted(page, f"- {who}: **{int(100 * mass['car'] + 0.5)} % car** ({teaching.strip_text(mass)})")
    _quoted(page, f"ASPP's taps put **{v3['aspp_own_px']:.2f}** on the car")
    # pixel 4: exercise 7's cell, its top region dropped
    _quoted(page, f"a cue-free cell OCR gets wrong, cell ({v3['cell7'][0]}, {v3['cell7'][1]})")
    _quoted(page, f"The soft regions (no\ncontext) say {v3['soft7']}")
    _quoted(page, f"true {v3['true7']}; OCR says **{v3['pred7']}**")
    _quoted(page, f"the {v3['top7']} logit goes\n**from {v3['before7']:.2f} to {v3['after7']:.2f}**")
    _quoted(page, f"the prediction becomes {v3['pred7_after']}")
    # pixels 1 and 2 in notebook 02's first explorer (street_0)
    t = _probed(run_notebook, "02_click_a_pixel")["teach"]
    f, r = t["7,14"], t["16,32"]
    top = max(f["row"], key=f["row"].get)
    _quoted(page, f"true class {f['true']}, predicted {f['pred']} (under the image)")
    _quoted(page, f"The region bars agree: the top bar is **{top}\n({f['row'][top]:.2f})**")
    m2 = _probed(run_notebook, "02_click_a_pixel")["teach_mass"]
    _quoted(page, f"strip reads **{teaching.strip_text(m2['7,14']['ocr-context'])}**")
    _quoted(page, f"ASPP's taps ({teaching.strip_text(m2['7,14']['aspp-context'])})")
    _quoted(page, f"the OCR strip reads {teaching.strip_text(m2['16,32']['ocr-context'])}.")
    _quoted(page, f"The `Δlogit` beside {top} is **{f['inf'][top]:+.2f}**")
    _quoted(page, f"true {r['true']}, predicted {r['pred']}; the OCR strip")
    _quoted(page, f"The road region's weight is {r['row']['road']:.2f}")
    _quoted(page, f"its `Δlogit` is **{r['inf']['road']:+.2f}**")


def test_claims_03_the_strips_are_the_explorers(run_notebook) -> None:
    """03 prints the car window's three mass strips, computed by hand from the figure's maps and
    OCR's class per cell; they are the strips its live explorer draws (ExplorerData.panel_masses, the
    page's data-mass), and the text's reading holds: OCR puts the least on car cells, ASPP's taps the
    most."""
    v = _probed(run_notebook, "03_aspp_vs_ocr")
    got, shown = v["strips"], v["explorer_masses"]
    for name, panel, tol in (("OCR context", "ocr-context", 1e-5), ("ASPP taps", "aspp-context", 1e-5),
                             ("ASPP ERF", "aspp-erf", 1e-3)):
        assert panel in shown, (panel, list(shown))
        for cls, share in got[name].items():
            assert abs(share - shown[panel][cls]) < tol, (name, cls, share, shown[panel][cls])
    car = {n: m["car"] for n, m in got.items()}
    assert car["OCR context"] < car["ASPP ERF"] < car["ASPP taps"], car


def test_claims_02_the_car_window_strip(run_notebook) -> None:
    """02's folded answer: the car window's OCR strip puts less on car cells than on road cells,
    and ASPP's taps beside it far more on car (the strips sum to 1)."""
    m = _probed(run_notebook, "02_click_a_pixel")["window_mass"]
    assert all(abs(sum(v.values()) - 1) < 1e-5 for v in m.values())
    assert m["ocr-context"]["car"] < m["ocr-context"]["road"]
    assert m["aspp-context"]["car"] > 2 * m["ocr-context"]["car"], m


def test_claims_06_a_dropped_region_leaves_the_strip(run_notebook) -> None:
    """06 section 5 prints the strip under the context map before and after the top region's bar is
    clicked: before is the strip the explorer draws; after, the row without that region (rest
    renormalised) puts less of the map on that region's class."""
    v = _probed(run_notebook, "06_does_the_attention_matter")
    before, after, shown = v["strip_before"], v["strip_after"], v["strip_shown"]
    assert all(abs(before[n] - shown[n]) < 1e-5 for n in before), (before, shown)
    assert abs(sum(after.values()) - 1) < 1e-5
    assert after[v["top5"]] < before[v["top5"]], (v["top5"], before, after)


def test_one_pixel_seven_heads_claims(run_notebook) -> None:
    """07: the strips are the maps' mass (recomputed from the captured factors for self-attention and
    OCR), the summary lines follow from the printed tables, exact / convention as the text says."""
    pr = _probed(run_notebook, "07_one_pixel_seven_heads")
    for key, strip in pr["again"].items():                          # dense softmax / sim @ region weights
        assert pr["strips"][key] == strip, key
    assert all(abs(v - 1) < 1e-4 for v in pr["sums"]) and len(pr["sums"]) == 3 * 7
    own = {k: v[0] for k, v in pr["stats"].items() if v[0] is not None}
    eff = {k: v[1] for k, v in pr["stats"].items() if v[1] is not None}
    assert set(own) == {"ASPP", "PSP", "self-attention", "DANet", "CCNet", "OCR"}      # FCN: no site
    assert pr["most_own"] == max(own, key=own.get) and pr["widest"] == max(eff, key=eff.get)
    assert all(0 < v < 1 for v in own.values()) and all(1 <= v <= 2048 for v in eff.values())
    gf = {k: c["head_gflops"] for k, c in pr["costs"].items()}
    assert pr["cheapest"] == min(gf, key=gf.get) and pr["dearest"] == max(gf, key=gf.get)
    for head, (name, head_params, params) in pr["cards"].items():   # parameters agree with the model cards
        if head_params is not None:
            assert pr["costs"][head]["head_params"] == head_params, head
        if params is not None:
            assert pr["costs"][head]["params"] == params, head
    # "the six context heads were trained on toycity-fcn's frozen backbone"
    assert all("frozen backbone" in (pr["recipes"][k] or "") for k in ("ASPP", "PSP", "self-attention", "DANet",
                                                                      "CCNet", "OCR"))
    kinds = pr["kinds"]
    assert kinds["FCN"] is None
    assert [t for t, v in kinds.items() if v and v[0]] == ["self-attention", "DANet", "CCNet pass 2", "OCR"]
    assert {t for t, v in kinds.items() if v and not v[0]} == {"ASPP", "PSP", "CCNet rollout"}
    assert "equally" in kinds["PSP"][1] and "rollout" in kinds["CCNet rollout"][1]
    assert pr["n_exact"] == 4 and pr["n_scenes"] == 3
    from ocrviz.zoo import model_card
    assert pr["end_to_end"] == {n: model_card(n)["metrics"]["miou"] for n in ("toycity-ocr", "toycity-aspp", "toycity-fcn")}
