"""ocrviz.widgets: the click-a-pixel explorer (anywidget + vanilla JS).

    >>> from ocrviz.widgets import Explorer, ExplorerData, from_cache   # doctest: +SKIP
    >>> Explorer.from_data(data).save_html("explorer.html")             # doctest: +SKIP
"""
from __future__ import annotations

from .explorer import Explorer
from .export import render_html, save_html
from .payload import ExplorerData, from_cache, to_payload

__all__ = ["Explorer", "ExplorerData", "from_cache", "render_html", "save_html", "to_payload"]
