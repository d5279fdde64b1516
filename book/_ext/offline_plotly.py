"""Sphinx extension: keep plotly figures from loading MathJax off a CDN.

plotly's ``notebook`` renderer (the one that embeds plotly.js in the page, so figures show in the HTML book) always
prepends a ``<script src="https://cdnjs.../mathjax/...">`` tag to every figure. The book already serves MathJax 3
itself (book/_assets/vendor), so the tag is dropped from each page's body.
"""

from __future__ import annotations

import re
from typing import Any

_CDN_MATHJAX = re.compile(r'<script src="https://cdnjs\.cloudflare\.com/ajax/libs/mathjax/[^"]*"></script>')


def _strip_cdn_mathjax(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    if "body" in context:
        context["body"] = _CDN_MATHJAX.sub("", context["body"])


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", _strip_cdn_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
