"""The standalone page every ``ocrviz`` command writes: one template, offline by construction.

The Content-Security-Policy ``default-src 'none'`` lets the page run its own
inline scripts and styles and show ``data:`` images, and nothing else: a page
that tried to fetch anything would be refused by the browser, which makes
"offline" checkable (tests/test_cli.py, tests/test_report_page.py).

Example::

    write_atomic("out.html", page("ocrviz report", "<p>...</p>"))
"""
from __future__ import annotations

import html

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ margin: 16px; background: #fff; font: 13px system-ui, sans-serif; color: #222; }}
h1 {{ font-size: 17px; }} h2 {{ font-size: 15px; margin-top: 28px; }} h3 {{ font-size: 13px; margin-top: 18px; }}
table {{ border-collapse: collapse; margin: 6px 0 12px; }}
th, td {{ border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f6f6f6; font-weight: 600; }} td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.note {{ color: #666; font-size: 12px; }}
{extra_css}
</style>
</head><body>
<h1>{title}</h1>
{body}
</body></html>
"""


def page(title: str, body: str, extra_css: str = "") -> str:
    """A whole HTML document: ``title`` (escaped here) over ``body`` (HTML, already escaped by the caller)."""
    return _PAGE.format(title=html.escape(title), body=body, extra_css=extra_css)
