"""Benchmarks: each script runs in --quick mode and prints its table; full-size counts are exact.

The scripts are run as subprocesses (as a user runs them) at tiny sizes; the
context-head parameter and FLOP counts are checked in-process at the paper's
full size on the meta device (no arithmetic) against numbers derived here by
hand from each head's composition.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"


QUICK = {name: ("--quick", "--threads", "1") for name in
         ("bench_capture_overhead.py", "bench_context_heads.py", "bench_inference.py")}


@pytest.fixture(scope="module")
def quick_runs():
    """Start the three --quick runs together (they are import-bound; overlapping saves wall time)."""
    procs = {name: subprocess.Popen([sys.executable, str(BENCH / name), *args], cwd=REPO, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for name, args in QUICK.items()}
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def quick_stdout(procs: dict, script: str, timeout: float = 120) -> str:
    out, err = procs[script].communicate(timeout=timeout)
    assert procs[script].returncode == 0, f"{script} --quick failed:\n{err[-3000:]}"
    return out


def table(stdout: str, first_header: str) -> tuple[list[str], list[list[str]]]:
    """The markdown table whose header row starts with ``| first_header |``: (headers, rows)."""
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |")), None)
    assert start is not None, f"no table starting with column {first_header!r} in:\n{stdout}"
    assert re.fullmatch(r"\|(---:?\|)+", lines[start + 1]), lines[start + 1]
    cells = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]  # noqa: E731
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(cells(line))
    headers = cells(lines[start])
    assert all(len(r) == len(headers) for r in rows), rows
    return headers, rows


@pytest.fixture(scope="module")
def bench_modules():
    sys.path.insert(0, str(BENCH))
    try:
        import bench_context_heads
        import common
        yield common, bench_context_heads
    finally:
        sys.path.remove(str(BENCH))


def test_capture_overhead_quick(quick_runs):
    out = quick_stdout(quick_runs, "bench_capture_overhead.py")
    headers, rows = table(out, "model")
    assert headers[:6] == ["model", "input", "plain ms (median)", "captured ms (median)", "ratio", "plain ms (p90)"]
    assert headers[-1] == "hooks captured"
    assert [r[0] for r in rows] == ["toy OCRNet", "toy ASPP", "toy self-attention", "toy PSP", "toy DANet",
                                    "toy CCNet", "HRNet-W48-OCR"]
    for r in rows:
        assert r[1] == "1x3x32x64"
        plain, captured, ratio = float(r[2]), float(r[3]), float(r[4])
        assert plain > 0 and captured > 0
        half = lambda cell: 0.5 * 10.0 ** -len(cell.partition(".")[2])  # noqa: E731  (rounding of a cell)
        lo = (captured - half(r[3])) / (plain + half(r[2]))
        hi = (captured + half(r[3])) / (plain - half(r[2]))
        assert lo - 0.001 <= ratio <= hi + 0.001, (r, lo, hi)
        if "OCR" in r[0]:
            assert int(r[-1]) == 14  # every OCR hook of both models: features ... logits
        else:
            assert int(r[-1]) >= 5   # the head's factors, features and logits


def test_context_heads_quick(quick_runs):
    out = quick_stdout(quick_runs, "bench_context_heads.py")
    assert "CPU time is measured at 1 x 2048 x 8 x 8" in out
    headers, rows = table(out, "head")
    assert headers == ["head", "params", "paper params", "memory MiB", "paper memory", "GFLOPs", "paper GFLOPs",
                       "CPU ms @8", "paper ms @128"]
    assert [r[0] for r in rows] == ["PPM", "ASPP", "Self-Attention", "OCR", "**OCR / ASPP**"]
    by_name = {r[0]: r for r in rows}
    assert by_name["OCR"][1] == "10.62M" and by_name["OCR"][5] == "337.8"
    assert by_name["ASPP"][1] == "15.54M" and by_name["ASPP"][5] == "491.8"
    ratio = by_name["**OCR / ASPP**"]
    assert (ratio[1], ratio[2], ratio[5], ratio[6]) == ("0.68", "0.68", "0.69", "0.69")
    assert all(float(r[7]) > 0 for r in rows[:4])


def test_inference_quick(quick_runs):
    out = quick_stdout(quick_runs, "bench_inference.py")
    headers, rows = table(out, "model")
    assert headers == ["model", "arch", "weights", "params", "GFLOPs", "ms / image (NCHW)",
                       "ms / image (channels_last)", "images / s (best)"]
    assert [(r[0], r[1]) for r in rows] == [("toycity-ocr", "ocrnet"), ("toycity-aspp", "aspp"),
                                            ("toycity-fcn", "fcn")]
    for r in rows:
        assert r[2] == "trained" or r[2].startswith("random")
        assert float(r[3].rstrip("M")) > 0.1 and float(r[4]) > 0
        assert float(r[7]) == pytest.approx(1000 / min(float(r[5]), float(r[6])), rel=0.1)
    if (BENCH / "bench_toycity.py").exists():
        assert re.search(r"ToyCity generator .*: [\d.]+ images / CPU-s", out)


def test_context_head_counts_at_full_size(bench_modules):
    common, b = bench_modules
    hw, cin, c, ck, k = 128 * 128, 2048, 512, 256, 19
    conv3x3 = cin * c * 9                                        # 2048 -> 512, 3x3
    # Parameters, by hand from each composition (conv weights + conv biases + 2 per BN channel).
    ocr_block = (c * ck + ck * ck) * 2 + c * ck + ck * c + 2 * c * c   # f_pixel, f_object, f_down, f_up, fuse
    ocr_bn = 2 * (2 * ck + 2 * ck + ck + c + c)
    expected_params = {
        "PPM": 4 * cin * c + (cin + 4 * c) * c * 9 + 2 * 5 * c,
        "ASPP": cin * 256 * (1 + 9 * 3 + 1) + 5 * 256 * 256 + 2 * 6 * 256,
        "Self-Attention": conv3x3 + c + 2 * c + 3 * c * ck + ck * c + 2 * c * c + 2 * (2 * ck + c + c),
        "OCR": conv3x3 + c + 2 * c + ocr_block + ocr_bn,
    }
    # Multiply-adds of convs and matmuls (FlopCounterMode's FLOPs are twice these).
    expected_macs = {
        "PPM": cin * c * (1 + 4 + 9 + 36) + hw * (cin + 4 * c) * c * 9,
        "ASPP": hw * cin * 256 * (1 + 27) + cin * 256 + hw * 5 * 256 * 256,
        "Self-Attention": hw * (conv3x3 + 3 * c * ck + ck * c + 2 * c * c) + 2 * hw * hw * ck,
        "OCR": (hw * (conv3x3 + c * ck + ck * ck + ck * c + 2 * c * c) + k * (c * ck + ck * ck + c * ck)
                + hw * k * c + 2 * hw * ck * k),                 # pixel convs, K-token convs, gather, attention
    }
    paper = {"PPM": (23.1e6, 619), "ASPP": (15.5e6, 492), "Self-Attention": (10.5e6, 619), "OCR": (10.5e6, 340)}
    for head in b.build_heads("meta"):
        params, flops, mem = b.complexity(head)
        assert params == expected_params[head.name], head.name
        assert flops == 2 * expected_macs[head.name], head.name
        assert params == pytest.approx(paper[head.name][0], abs=0.13e6), head.name
        assert flops / 1e9 == pytest.approx(paper[head.name][1], rel=0.01), head.name
        if head.name == "Self-Attention":   # the HW x HW similarity map and its softmax are both live
            assert 2 * hw * hw * 4 <= mem < 2 * hw * hw * 4 + 200 * 2**20
        else:
            assert 32 * 2**20 <= mem < 600 * 2**20, (head.name, mem)
    # Meta-device memory is what real tensors give (at a small size, where real is cheap).
    for name in ("OCR", "Self-Attention"):
        peaks = []
        for device in ("meta", "cpu"):
            head = b.build_head(name, device)
            inputs = head.inputs(16, device)
            peaks.append(common.peak_live_bytes(lambda: head.module(*inputs)))
        assert peaks[1] == pytest.approx(peaks[0], rel=0.01), (name, peaks)
    # The independent count quoted in ocr-facts.md: 10.6 M parameters, 337.8 GFLOPs.
    assert expected_params["OCR"] == pytest.approx(10.6e6, abs=0.1e6)
    assert 2 * expected_macs["OCR"] / 1e9 == pytest.approx(337.8, abs=0.05)


def test_peak_live_tensors_counts_what_is_alive(bench_modules):
    common, _ = bench_modules
    for device in ("cpu", "meta"):
        x = torch.ones(1000, device=device)                  # made before the block: not counted

        def chain() -> torch.Tensor:
            a = x * 2                                        # 4000 B
            b = a + 1                                        # a, b live: 8000 B
            del a
            c = b * 3                                        # b, c live: 8000 B
            v = c.view(10, 100)                              # a view: no new storage
            return v.view(-1) + b                            # b, c, result: 12000 B

        assert common.peak_live_bytes(chain) == 12000, device
    assert common.count_flops(lambda: torch.ones(4, 5) @ torch.ones(5, 6)) == 2 * 4 * 5 * 6
    assert common.p90([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) == 9 and common.p90([3, 1]) == 3


def test_run_all_collects_tables_and_reports_failures(tmp_path):
    (tmp_path / "bench_good.py").write_text(
        "import sys\nprint('## Good\\n')\nprint('| a | b |\\n|---|---:|\\n| x | ' + ' '.join(sys.argv[1:]) + ' |')\n"
        "# takes \"--quick\" and \"--threads\"\n")
    (tmp_path / "bench_bad.py").write_text("import sys\nprint('half a table')\nsys.exit('broken on purpose')\n")
    (tmp_path / "not_a_bench.py").write_text("raise SystemExit(3)\n")
    out = tmp_path / "R.md"
    proc = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--quick", "--threads", "1", "--dir",
                           str(tmp_path), "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr                # one script failed
    text = out.read_text()
    assert text.startswith("# ocrviz benchmark results (QUICK MODE")
    for field in ("- date: ", "- machine: ", "logical CPUs", f"torch {torch.__version__}", "- threads: 1"):
        assert field in text, field
    assert "## `bench_good.py` `--quick --threads 1`" in text
    assert "### Good" in text and "| x | --quick --threads 1 |" in text   # script heading nested one level
    assert "## `bench_bad.py`" in text and "**FAILED** (exit code 1)" in text and "broken on purpose" in text
    assert "no --quick option: ran in full" in text and "half a table" in text
    assert "not_a_bench" not in text
    assert text.index("bench_bad.py") < text.index("bench_good.py")     # name order


def test_stride_share_oracle(bench_modules):
    """The share oracle is exact at stride 1, loses thin stripes at a coarse stride,
    and its script prints a table whose stride-8 row is within [0, 1]."""
    sys.path.insert(0, str(BENCH))
    try:
        import bench_stride_ceiling as b
    finally:
        sys.path.remove(str(BENCH))
    from ocrviz.data.toycity import make_scene

    s = make_scene(10_000_000)
    np.testing.assert_array_equal(b.share_oracle(s.labels, 1), s.labels)
    labels = np.zeros((64, 64), np.int64)
    labels[:, 30:33] = 3                                       # a 3 px pole
    assert (b.share_oracle(labels, 2) == 3).sum() > 0
    assert (b.share_oracle(labels, 16) == 3).sum() == 0         # gone at stride 16
    out = subprocess.run([sys.executable, str(BENCH / "bench_stride_ceiling.py"), "--images", "3"], cwd=REPO,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    row = next(line for line in out.splitlines() if line.startswith("| share oracle, stride 8 |"))
    assert 0.0 < float(row.split("|")[2]) <= 1.0


def test_bench_kernel_cf_prints_its_table() -> None:
    """At a tiny image: the three request rows, with positive times, at HRNet-W48-OCR's head shapes."""
    out = subprocess.run([sys.executable, str(BENCH / "bench_kernel_cf.py"), "--image", "64x128", "--repeats", "1",
                          "--threads", "1"], cwd=REPO, text=True, capture_output=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "C = 512, Ck = 256, K = 19" in out.stdout and "16 x 32 cells" in out.stdout
    rows = [line for line in out.stdout.splitlines() if line.startswith(("| pixel", "| whole"))]
    assert len(rows) == 3 and all(float(r.split("|")[2]) > 0 for r in rows)


def test_bench_row_on_demand_prints_its_table():
    """The self-attention row-on-demand benchmark runs at a tiny size and prints one row whose
    full-matrix size is (h*w)^2 float32 of the grid it states."""
    proc = subprocess.run([sys.executable, str(BENCH / "bench_row_on_demand.py"), "--quick", "--threads", "1"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    headers, rows = table(proc.stdout, "input")
    assert headers[:2] == ["input", "grid"] and len(rows) == 1
    h, w = (int(v) for v in rows[0][1].split(" x "))
    assert (h, w) == (8, 16)
    assert float(rows[0][5]) == round((h * w) ** 2 * 4 / 1024 ** 3, 2)
    assert float(rows[0][6]) > 0
