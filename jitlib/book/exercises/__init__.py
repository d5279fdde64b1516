"""Auto-checks for the book's exercises, one module per chapter (chNN.py)."""
