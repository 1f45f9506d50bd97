"""FlowExplorer: a click on a context-flow matrix cell opens its example pixels in the explorer."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import ocrviz
from ocrviz.analysis import context_flow
from ocrviz.data.dataset import val_split
from ocrviz.data.toycity import make_scene
from ocrviz.widgets.flow_view import FlowExplorer


@pytest.fixture(scope="module")
def setup():
    model = ocrviz.load_model("toycity-ocr")
    scenes = [make_scene(seed=s, height=64, width=128) for s in val_split(2)]
    images, labels = [sc.image for sc in scenes], [sc.labels for sc in scenes]
    return model, images, labels, context_flow(model, images, labels)


def test_a_click_opens_the_example_cell(setup) -> None:
    model, images, labels, flow = setup
    fe = FlowExplorer(flow, model, images, labels)
    (t, s), cells = next((k, v) for k, v in flow.examples.items() if v)
    names = list(flow.class_names)
    # what plotly hands a trace's on_click: the clicked x (source) and y (true) labels
    fe._on_click(fe.figure.data[0], SimpleNamespace(xs=[names[s]], ys=[names[t]]))
    i, r, c = cells[0]
    assert fe.explorer is not None and fe.explorer.selected == [r, c] and fe.explorer.pinned
    np.testing.assert_array_equal(fe.explorer.data.image, images[i])
    assert len(fe.examples.children) == len(cells) and names[t] in fe.status.value
    if len(cells) > 1:                                   # the list's buttons open the others
        fe.examples.children[1].click()
        assert fe.explorer.selected == [cells[1][1], cells[1][2]]


def test_empty_pairs_and_wrong_images_are_explained(setup) -> None:
    model, images, labels, flow = setup
    fe = FlowExplorer(flow, model, images, labels)
    k = len(flow.class_names)
    empty = next(((t, s) for t in range(k) for s in range(k) if not flow.examples.get((t, s))), None)
    if empty is not None:
        assert fe.show(*empty) is None and "no example cells" in fe.status.value
    with pytest.raises(ValueError, match="computed on 2 images but 1"):
        FlowExplorer(flow, model, images[:1], labels[:1])
