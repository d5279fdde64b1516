"""What only the book needs: interactive views, exercises with their checks, the spiral toy, the manifold view,
the conventions translator and source display. The library's core never imports from here."""
