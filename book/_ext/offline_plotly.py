"""Sphinx extension: plotly in the offline book, with plotly.js served once for the whole site.

plotly's ``notebook`` renderer (the one that embeds plotly.js in the page, so figures show in the HTML book) writes
the whole library (~5 MB) inline into every page that has a figure, and prepends a ``<script src="https://cdnjs.../
mathjax/...">`` tag to every figure. This extension moves the inline library to one file, ``_static/plotly.min.js``,
that every page loads by a relative path (so the browser fetches it once), and drops the CDN MathJax tag (the book
serves MathJax 3 itself from book/_assets/vendor).

It also adds the book's stylesheet (static/jitbook.css: wrapping code output, figures no wider than the column), a
script that points the ipywidgets static manager at its fonts and lets it typeset with MathJax 3 (static/jitbook.js),
drops inline scripts that a page would otherwise carry twice (sphinx-thebe registers its settings twice, and the
second ``const`` declaration is a console error in every page), and opens the book in light mode (the theme logs a
console error when no mode is set).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_CDN_MATHJAX = re.compile(r'<script src="https://cdnjs\.cloudflare\.com/ajax/libs/mathjax/[^"]*"></script>')
# The inline library: a <script> whose text starts with plotly.js's licence banner. A script element's text cannot
# contain "</script>", so the first one closes it.
_INLINE_PLOTLY = re.compile(r"<script>(/\*\*\s*\n\* plotly\.js v[\d.]+.*?)</script>", re.DOTALL)
STATIC_NAME = "plotly.min.js"


def _serve_plotly_once(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    if "body" not in context:
        return
    body = _CDN_MATHJAX.sub("", context["body"])
    match = _INLINE_PLOTLY.search(body)
    if match:
        target = Path(app.outdir) / "_static" / STATIC_NAME
        library = match.group(1)
        if not target.exists() or target.read_text(encoding="utf-8") != library:
            if target.exists() and getattr(app, "_plotly_written", False):
                raise RuntimeError(
                    f"{pagename}: pages embed different plotly.js builds; rebuild with one plotly"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(library, encoding="utf-8")
        app._plotly_written = True
        src = context["pathto"](f"_static/{STATIC_NAME}", 1)
        body = _INLINE_PLOTLY.sub(lambda _: f'<script src="{src}"></script>', body)
    context["body"] = body


def _drop_duplicate_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    # The theme logs a console error when no colour mode is set ("Got invalid theme mode"); the figures are drawn on
    # white, so the book opens in light mode (a reader can still switch).
    if not context.get("default_mode"):
        context["default_mode"] = "light"
    seen, kept = set(), []
    for script in context.get("script_files", []):
        # An inline script's filename is None or "" depending on who added it: the same script either way.
        name = str(getattr(script, "filename", script) or "")
        key = (name, tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    if "script_files" in context:
        # In place: later handlers (sphinx.ext.mathjax adds MathJax here) append to this very list, which Sphinx
        # resets for every page.
        context["script_files"][:] = kept


def _add_static(app: Any) -> None:
    app.config.html_static_path.append(str(Path(__file__).parent / "static"))


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", _add_static)
    app.add_css_file("jitbook.css")
    app.add_js_file(
        "jitbook.js", priority=100
    )  # before the widget manager: its asset path and a MathJax 3 shim
    app.connect("html-page-context", _serve_plotly_once, priority=100)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": False}
