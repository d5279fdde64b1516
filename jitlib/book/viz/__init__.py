"""Book-only views: ipywidgets for a live kernel and their static twins for the rendered book, one module per Part.

Needs the ``book`` extra (ipywidgets, matplotlib, plotly); the rest of jitlib never imports this package.
"""
