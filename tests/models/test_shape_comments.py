"""Keep the shape comments true (nanoGPT style: ``x = ...  # B x HW x K``).

Two checks, for every model file that carries shape comments:

* HookPoint declarations ``self.hook_x = HookPoint()  # B x C x h x w``: the
  comment is the documented shape of that hook; the tensor the hook sees in a
  real forward must have it.
* Every other commented line inside a function (``name = ...  # shape`` or
  ``return ...  # shape``): ``sys.settrace`` records the value right after the
  line ran and its shape must match.  Every such comment must be checked at
  least once, so a comment on dead code fails too.

Sizes are all different (B=2, h=3, K=5, Ck=6, w=7, ...) so that swapped axes
are caught.  Symbols: ``5C`` means 5 * C, ``H/4`` is an exact division.
"""
from __future__ import annotations

import io
import re
import sys
import tokenize
from pathlib import Path

import pytest
import torch

import ocrviz.models as models_pkg
from ocrviz.models import create_model

MODELS_DIR = Path(models_pkg.__file__).parent
FILES = ("ocr.py", "aspp.py", "fcn.py", "backbone.py", "segmodel.py",
         "self_attention.py", "psp.py", "danet.py", "criss_cross.py")
ARCHS = ("ocrnet", "aspp", "fcn", "sa", "psp", "da", "cc")
SHAPE = re.compile(r"^#\s*([\w/+]+(?:\s+x\s+[\w/+]+)+)")
HOOK_DECL = re.compile(r"self\.(hook_\w+)\s*=\s*HookPoint\(\)")
RESHAPING = re.compile(r"\.(reshape|view|permute|flatten|unsqueeze|squeeze|expand|transpose)\(")
WIDTHS = (9, 10, 11, 13)
B, H, W, K, C, CK = 2, 24, 56, 5, 12, 6


def shape_comments(path: Path) -> dict[int, str]:
    """line number -> shape string, from real comments (tokenize; docstrings are not comments)."""
    found = {}
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type == tokenize.COMMENT and (m := SHAPE.match(tok.string)):
            found[tok.start[0]] = m.group(1)
    return found


def evaluate(shape: str, symbols: dict[str, int]) -> tuple[int, ...]:
    dims = []
    for token in re.split(r"\s+x\s+", shape):
        expr = re.sub(r"(?<![\w])(\d+)([A-Za-z_])", r"\1*\2", token)   # 5C -> 5*C, Cf+4C -> Cf+4*C
        num, _, den = expr.partition("/")
        value = eval(num, {"__builtins__": {}}, dict(symbols))         # noqa: S307 - test-only, own source
        if den:
            d = eval(den, {"__builtins__": {}}, dict(symbols))         # noqa: S307
            assert value % d == 0, f"{token}: {value} not divisible by {d}"
            value //= d
        dims.append(int(value))
    return tuple(dims)


def symbols_for(stride: int) -> dict[str, int]:
    h, w = H // stride, W // stride
    return {"B": B, "H": H, "W": W, "h": h, "w": w, "HW": h * w, "K": K, "C": C, "C_out": C, "Ck": CK,
            "Cf": WIDTHS[-1], "s": stride, **{f"w{i}": c for i, c in enumerate(WIDTHS)}}


def build(arch: str, stride: int) -> torch.nn.Module:
    kw = {"ocrnet": {"mid_channels": C, "key_channels": CK}, "aspp": {"channels": C}, "fcn": {"channels": C},
          "sa": {"channels": C, "key_channels": CK}, "psp": {"channels": C},
          "da": {"channels": C, "key_channels": CK}, "cc": {"channels": C, "key_channels": CK}}
    return create_model(arch, num_classes=K, output_stride=stride, widths=WIDTHS, **kw[arch]).eval()


class ShapeTracer:
    """Checks commented lines of FILES against the values they produce, via sys.settrace."""

    def __init__(self, symbols: dict[str, int]) -> None:
        self.symbols = symbols
        self.comments = {str(MODELS_DIR / f): shape_comments(MODELS_DIR / f) for f in FILES}
        self.sources = {p: Path(p).read_text().splitlines() for p in self.comments}
        self.checked: set[tuple[str, int]] = set()
        self.errors: list[str] = []

    def __enter__(self) -> "ShapeTracer":
        self._old = sys.gettrace()
        sys.settrace(self._global)
        return self

    def __exit__(self, *exc) -> None:
        sys.settrace(self._old)

    def _global(self, frame, event, arg):
        path = frame.f_code.co_filename
        if event != "call" or path not in self.comments:
            return None
        pending: list[int] = []

        def local(frame, event, arg):
            if event in ("line", "return") and pending:
                self._check(path, pending[0], frame, event, arg)
            if event == "line":
                pending[:] = [frame.f_lineno]
            return local
        return local

    def _check(self, path: str, line: int, frame, event: str, arg) -> None:
        shape = self.comments[path].get(line)
        source = self.sources[path][line - 1].split("#")[0].strip()
        if shape is None or HOOK_DECL.search(source):
            return
        if source.startswith("return "):
            if event != "return":
                return
            values = [arg]
        elif m := re.match(r"^([\w\s,]+?)\s*=(?!=)", source):
            values = [frame.f_locals.get(name.strip()) for name in m.group(1).split(",")]
        else:
            self.errors.append(f"{Path(path).name}:{line}: shape comment on a line that is neither "
                               f"an assignment nor a return: {source!r}")
            return
        tensors = [t for v in values for t in (v if isinstance(v, (tuple, list)) else [v])
                   if isinstance(t, torch.Tensor)]
        if not tensors:
            return
        expected = evaluate(shape, self.symbols)
        for t in tensors:
            if tuple(t.shape) != expected:
                self.errors.append(f"{Path(path).name}:{line}: comment says {shape} = {expected}, "
                                   f"value has {tuple(t.shape)}: {source!r}")
        self.checked.add((path, line))


@pytest.fixture(scope="module")
def traced():
    """Run every toy architecture at both strides under the tracer; returns the tracers."""
    tracers = []
    for stride in (8, 4):
        tracer = ShapeTracer(symbols_for(stride))
        built = [build(arch, stride) for arch in ARCHS]
        x = torch.randn(B, 3, H, W)
        with tracer, torch.no_grad():
            for model in built:
                model(x, return_aux=True)
            built[1].head.projection_weights()
            built[ARCHS.index("da")].head.branch_logits(torch.randn(B, WIDTHS[-1], H // stride, W // stride))
        tracers.append(tracer)
    return tracers


def test_commented_lines_match_runtime_shapes(traced):
    errors = [e for t in traced for e in t.errors]
    assert not errors, "\n".join(errors)


def test_every_line_shape_comment_was_checked(traced):
    checked = set().union(*(t.checked for t in traced))
    tracer = traced[0]
    missing = []
    for path, comments in tracer.comments.items():
        for line in comments:
            if not HOOK_DECL.search(tracer.sources[path][line - 1]) and (path, line) not in checked:
                missing.append(f"{Path(path).name}:{line}: {tracer.sources[path][line - 1].strip()}")
    assert not missing, "shape comments never checked (dead code or uncheckable line):\n" + "\n".join(missing)
    assert len(checked) >= 30


@pytest.mark.parametrize("filename", FILES)
def test_reshaping_lines_carry_a_shape_comment(filename):
    path = MODELS_DIR / filename
    comments = shape_comments(path)
    bare = [f"{filename}:{i}: {line.strip()}" for i, line in enumerate(path.read_text().splitlines(), 1)
            if RESHAPING.search(line.split("#")[0]) and i not in comments]
    assert not bare, "lines that reshape without a `# B x ...` comment:\n" + "\n".join(bare)


@pytest.mark.parametrize("arch", ["ocrnet", "aspp", "sa", "psp", "da", "cc"])
@pytest.mark.parametrize("stride", [8, 4])
def test_hook_declarations_match_captured_shapes(arch, stride):
    """Table from the ``self.hook_x = HookPoint()  # shape`` comments vs the hooked tensors."""
    model = build(arch, stride)
    symbols = symbols_for(stride)
    documented = {}
    head_file = {"ocrnet": "ocr.py", "aspp": "aspp.py", "sa": "self_attention.py", "psp": "psp.py",
                 "da": "danet.py", "cc": "criss_cross.py"}[arch]          # leaf names repeat across heads
    for filename in (head_file, "segmodel.py"):
        lines = (MODELS_DIR / filename).read_text().splitlines()
        for line_no, shape in shape_comments(MODELS_DIR / filename).items():
            if m := HOOK_DECL.search(lines[line_no - 1]):
                documented[m.group(1)] = shape
    seen = {}
    handles = [mod.register_forward_hook(lambda m, i, o, n=name: seen.__setitem__(n, tuple(o.shape)))
               for name, mod in model.named_modules() if name.rsplit(".", 1)[-1].startswith("hook_")]
    try:
        with torch.no_grad():
            model(torch.randn(B, 3, H, W))
    finally:
        for h in handles:
            h.remove()
    # sa: q, k, v, context; psp: 4 levels + bottleneck; da: PAM q, k, v, context + CAM attention;
    # cc: q, k, v, context per pass (2 passes); + features and logits of SegModel
    expected_hooks = {"ocrnet": 14, "aspp": 8, "sa": 6, "psp": 7, "da": 7, "cc": 10}[arch]
    assert len(seen) == expected_hooks, sorted(seen)
    for path, shape in seen.items():
        leaf = path.rsplit(".", 1)[-1]
        assert leaf in documented, f"{path} has no shape comment on its declaration"
        assert shape == evaluate(documented[leaf], symbols), \
            f"{path}: documented {documented[leaf]} = {evaluate(documented[leaf], symbols)}, got {shape}"


def test_evaluate_rejects_wrong_shapes():
    """The checker itself can fail."""
    s = symbols_for(8)
    assert evaluate("B x 5C x h x w", s) == (2, 60, 3, 7)
    assert evaluate("B x w3 x H/s x W/s", s) == (2, 13, 3, 7)
    assert evaluate("B x HW x K", s) != evaluate("B x K x HW", s)
    assert evaluate("B x Cf+4C x h+w", s) == (2, 13 + 48, 3 + 7)
    with pytest.raises(AssertionError):
        evaluate("B x H/5", s)
