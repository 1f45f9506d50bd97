"""Context flow you can click: the K x K matrices, and a click opens example pixels in the explorer.

``FlowExplorer(flow, model, images, labels)`` shows ``flow.figure()`` as a plotly
FigureWidget.  Clicking the matrix cell (true class t, source class s) lists
the example cells ``context_flow`` kept for it (image, row, col) and opens the
first one in an :class:`~ocrviz.widgets.Explorer` below, selected and pinned;
the list's buttons open the others.  ``show(t, s, n)`` does the same from code.

    >>> flow = context_flow(model, images, labels, aspp_model=aspp)   # doctest: +SKIP
    >>> FlowExplorer(flow, model, images, labels, aspp_model=aspp)    # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any, Sequence

import ipywidgets as widgets


class FlowExplorer(widgets.VBox):
    """The context-flow matrices (plotly, clickable) above an explorer of the clicked examples."""

    def __init__(self, flow: Any, model: Any, images: Sequence[Any], labels: Sequence[Any] | None = None, *,
                 aspp_model: Any = None, **explorer_kwargs: Any) -> None:
        import plotly.graph_objects as go

        if len(images) != flow.n_images:
            raise ValueError(f"the flow was computed on {flow.n_images} images but {len(images)} were given; "
                             f"pass the same images (and labels) as to context_flow")
        self.flow, self.model, self.images = flow, model, list(images)
        self.labels = None if labels is None else list(labels)
        self.aspp_model, self.explorer_kwargs = aspp_model, explorer_kwargs
        self.figure = go.FigureWidget(flow.figure())
        for trace in self.figure.data:
            trace.on_click(self._on_click)
        self.status = widgets.HTML("Click a matrix cell: its example pixels open in the explorer below.")
        self.examples = widgets.HBox()
        self.holder = widgets.Output()
        self.explorer: Any = None
        self._explorers: dict[int, Any] = {}
        super().__init__([self.figure, self.status, self.examples, self.holder])

    def _on_click(self, trace: Any, points: Any, state: Any = None) -> None:
        if not points.xs:
            return
        names = list(self.flow.class_names)
        self.show(names.index(points.ys[0]), names.index(points.xs[0]))

    def show(self, true_class: int, source_class: int, n: int = 0) -> Any:
        """Open example ``n`` of matrix cell (true class, source class) in the explorer; returns it."""
        names = self.flow.class_names
        found = self.flow.examples.get((int(true_class), int(source_class)), [])
        head = f"true <b>{names[true_class]}</b> ← source <b>{names[source_class]}</b>: "
        if not found:
            self.status.value = head + "no example cells were kept for this pair."
            return None
        buttons = []
        for j, (i, r, c) in enumerate(found):
            b = widgets.Button(description=f"image {i}, cell ({r}, {c})", layout=widgets.Layout(width="auto"))
            b.on_click(lambda _, j=j: self.show(true_class, source_class, j))
            buttons.append(b)
        self.examples.children = buttons
        i, r, c = found[n]
        if i not in self._explorers:
            from .explorer import Explorer

            self._explorers[i] = Explorer(self.model, self.images[i], None if self.labels is None else self.labels[i],
                                          aspp_model=self.aspp_model, **self.explorer_kwargs)
        self.explorer = self._explorers[i]
        self.explorer.select(r, c)
        self.status.value = head + f"{len(found)} example cells; showing image {i}, cell ({r}, {c})."
        self.holder.clear_output()
        with self.holder:
            from IPython.display import display

            display(self.explorer)
        return self.explorer
