"""Showing jitlib's own source in the book: the page displays the code that runs, never a copy of it.

`show_source(obj)` reads a function's or class's source with `inspect` and returns a `SourceView`, which a notebook
displays as a Markdown code fence (highlighted by Jupyter, Colab and the built book alike) under a caption naming the
file and lines. For a long class, `methods=["forward"]` keeps the class line, its docstring and the named methods.
A listing longer than `FOLD_AFTER` lines shows its first `FOLD_AFTER` lines; the rest is in a collapsed `<details>`
block under them (a toggle in the built book and in Jupyter), so a page shows the part the reader needs first.
"""

from __future__ import annotations

import ast
import inspect
import io
import re
import textwrap
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jitlib

_PACKAGE_ROOT = Path(jitlib.__file__).resolve().parent.parent
FOLD_AFTER = 20  # lines shown before the rest of a long listing is folded
FOLD_MIN = 8  # fold only when at least this many lines would be hidden


@dataclass(frozen=True)
class SourceView:
    """Source text of `name` read from `path`, lines `spans` (inclusive pairs), displayed as a Markdown code fence."""

    name: str
    path: str
    spans: tuple[tuple[int, int], ...]
    code: str

    def caption(self) -> str:
        """One line naming the object and where it lives: "`jitlib.nn.model.modulate` — `jitlib/nn/model.py`, lines 3–5"."""
        where = ", ".join(f"{start}–{end}" if end > start else f"{start}" for start, end in self.spans)
        return f"`{self.name}` — `{self.path}`, {'line' if where.isdigit() else 'lines'} {where}"

    def _repr_markdown_(self) -> str:
        # A fence longer than any run of backticks in the code, so the code can never close it early.
        fence = "`" * max(3, 1 + max((len(run) for run in re.findall("`+", self.code)), default=0))
        lines = self.code.splitlines()
        cut = _fold_line(self.code)
        if cut is None:
            return f"{self.caption()}\n\n{fence}python\n{self.code}\n{fence}\n"
        shown, rest = "\n".join(lines[:cut]), "\n".join(lines[cut:])
        return (
            f"{self.caption()}\n\n{fence}python\n{shown}\n{fence}\n\n"
            f"<details><summary>the other {len(lines) - cut} lines</summary>\n\n"
            f"{fence}python\n{rest}\n{fence}\n\n</details>\n"
        )

    def __str__(self) -> str:
        return self.code


def _fold_line(code: str) -> int | None:
    """Where to fold a listing: the first line from FOLD_AFTER on that does not start inside a string (so both parts
    highlight as Python), or None when the listing is short or no such line leaves FOLD_MIN lines to fold."""
    count = len(code.splitlines())
    if count < FOLD_AFTER + FOLD_MIN:
        return None
    inside: set[int] = set()  # 0-based lines that begin within a multi-line string
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type == tokenize.STRING and token.end[0] > token.start[0]:
                inside.update(range(token.start[0], token.end[0]))
    except (tokenize.TokenError, SyntaxError):
        return None
    return next((line for line in range(FOLD_AFTER, count - FOLD_MIN + 1) if line not in inside), None)


def _first_line(node: ast.stmt) -> int:
    """The line a definition starts on, counting its decorators."""
    decorators = getattr(node, "decorator_list", [])
    return decorators[0].lineno if decorators else node.lineno


def _class_spans(cls: type, methods: Sequence[str]) -> list[tuple[int, int]]:
    """1-based line spans, within the class's source, of its header (class line and docstring) and of each method."""
    node = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
    if not isinstance(node, ast.ClassDef):
        raise TypeError(f"{cls!r} does not read back as a class definition")
    defined = {
        item.name: item for item in node.body if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    unknown = [name for name in methods if name not in defined]
    if unknown:
        raise ValueError(
            f"{cls.__name__} defines no method {unknown[0]!r}; methods defined in its body: {', '.join(defined)}"
        )
    first = node.body[0]
    docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    # Without a docstring the header is everything before the first statement of the body.
    header = (_first_line(node), first.end_lineno if docstring else _first_line(first) - 1)
    return [header] + [(_first_line(defined[name]), defined[name].end_lineno) for name in methods]


def _join(lines: list[str], spans: list[tuple[int, int]], offset: int) -> str:
    """The spans' text, each left-out stretch that holds code marked by a comment at the next block's indentation."""
    blocks = []
    for i, (start, end) in enumerate(spans):
        block = "".join(lines[start - 1 : end]).rstrip()
        hidden = [n for n in range(spans[i - 1][1] + 1, start) if lines[n - 1].strip()] if i else []
        if hidden:
            indent = block[: len(block) - len(block.lstrip())]
            block = (
                f"{indent}# … (lines {offset + hidden[0] - 1}–{offset + hidden[-1] - 1} not shown)\n{block}"
            )
        blocks.append(block)
    return textwrap.dedent("\n\n".join(blocks))


def show_source(obj: object, methods: Sequence[str] | None = None) -> SourceView:
    """The verbatim source of function or class `obj` (with `methods`: the class header and those methods only).

    The text is read from the installed jitlib when the cell runs, so the book can never drift from the library.
    Decorated functions (e.g. ``@torch.no_grad()``) are unwrapped to the function that was written.
    """
    obj = inspect.unwrap(obj) if callable(obj) else obj
    if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj)):
        raise TypeError(f"show_source expects a function or a class, got {type(obj).__name__} {obj!r}")
    if isinstance(methods, str):
        raise TypeError(f"methods must be a list of method names such as [{methods!r}], not a string")
    if methods is not None and not inspect.isclass(obj):
        raise TypeError(f"methods= is for classes only; {obj.__qualname__} is not a class")
    try:
        lines, offset = inspect.getsourcelines(obj)
        path = Path(inspect.getsourcefile(obj) or "").resolve()
    except OSError as error:  # e.g. a class defined in an interactive session has no file to read
        raise TypeError(f"no source code is available for {obj!r}: {error}") from None
    spans = [(1, len(lines))] if methods is None else _class_spans(obj, methods)  # type: ignore[arg-type]
    return SourceView(
        name=f"{obj.__module__}.{obj.__qualname__}",
        path=path.relative_to(_PACKAGE_ROOT).as_posix() if path.is_relative_to(_PACKAGE_ROOT) else path.name,
        spans=tuple((offset + start - 1, offset + end - 1) for start, end in spans),
        code=_join(lines, spans, offset),
    )
