"""show_source: the book displays jitlib's real, current source — verbatim, with honest file and line numbers."""

import inspect
from pathlib import Path

import pytest
import torch

from jitlib.book.show import SourceView, show_source
from jitlib.nn.model import JiT, JiTConfig, RMSNorm, modulate

ROOT = Path(__file__).resolve().parents[1]


def quoting() -> str:
    """A function whose source holds a run of backticks: ````python fenced````."""
    return "```"


class NoDocstring:
    size = 3

    def method(self) -> int:
        return self.size


def file_lines(view: SourceView) -> list[str]:
    return (ROOT / view.path).read_text().splitlines()


def test_a_function_is_shown_verbatim_with_its_file_and_lines() -> None:
    view = show_source(modulate)
    assert view.code == inspect.getsource(modulate).rstrip()
    assert view.path == "jitlib/nn/layers.py" and view.name == "jitlib.nn.layers.modulate"
    (start, end), *rest = view.spans
    assert not rest and file_lines(view)[start - 1 : end] == view.code.splitlines()
    assert view.caption() == f"`jitlib.nn.layers.modulate` — `jitlib/nn/layers.py`, lines {start}–{end}"


def test_the_shown_code_is_the_code_that_runs() -> None:
    namespace = dict(vars(inspect.getmodule(modulate)))
    exec(show_source(modulate).code, namespace)  # redefine modulate from the displayed text alone
    x, shift, scale = torch.randn(2, 3, 4), torch.randn(2, 4), torch.randn(2, 4)
    assert namespace["modulate"] is not modulate
    assert torch.equal(namespace["modulate"](x, shift, scale), modulate(x, shift, scale))


def test_methods_keep_the_class_header_and_only_the_named_methods() -> None:
    view = show_source(JiT, methods=["forward"])
    assert view.code.startswith("class JiT(nn.Module):\n    " + '"""')
    assert JiT.__doc__.splitlines()[0] in view.code
    assert "def forward(" in view.code and "def initialize_weights(" not in view.code
    lines = file_lines(view)
    header, body = view.spans
    assert lines[header[0] - 1] == "class JiT(nn.Module):"
    assert lines[body[0] - 1].strip().startswith("def forward(")
    # Every shown line is the file's line; the only addition is the comment that names what was left out.
    marker = f"    # … (lines {header[1] + 2}–{body[0] - 2} not shown)"
    shown = [lines[n - 1] for start, end in view.spans for n in range(start, end + 1)]
    assert [line for line in view.code.splitlines() if line and line != marker] == [
        line for line in shown if line
    ]
    assert marker in view.code.splitlines()


def test_decorated_methods_include_their_decorator_and_keep_their_order() -> None:
    view = show_source(JiTConfig, methods=["has_dropout", "mlp_hidden"])
    assert view.code.startswith("@dataclass(frozen=True)\nclass JiTConfig:")
    assert view.code.index("def has_dropout") < view.code.index("@property\n    def mlp_hidden")
    assert len(view.spans) == 3


def test_a_class_without_docstring_shows_its_class_line() -> None:
    view = show_source(NoDocstring, methods=["method"])
    assert view.code.splitlines()[0] == "class NoDocstring:"
    assert "# … (lines" in view.code and "size = 3" not in view.code
    assert view.path.endswith("test_show.py")


def test_markdown_fence_outlasts_backticks_in_the_code() -> None:
    markdown = show_source(quoting)._repr_markdown_()
    caption, fence_line, *_ = [line for line in markdown.splitlines() if line]
    assert caption.startswith("`tests.test_show.quoting`") or caption.startswith("`test_show.quoting`")
    fence = fence_line.removesuffix("python")
    assert set(fence) == {"`"} and len(fence) == 5  # the source holds a run of four
    assert markdown.rstrip().endswith(fence) and markdown.count(fence) == 2


def test_a_whole_class_is_shown_in_full() -> None:
    view = show_source(RMSNorm)
    assert view.code == inspect.getsource(RMSNorm).rstrip() and len(view.spans) == 1
    assert str(view) == view.code


def test_ipython_displays_it_as_markdown() -> None:
    formatters = pytest.importorskip("IPython.core.formatters")
    data, _ = formatters.format_display_data(show_source(modulate))
    assert data["text/markdown"].startswith("`jitlib.nn.layers.modulate`")
    assert "```python\ndef modulate(" in data["text/markdown"]


@pytest.mark.parametrize(
    ("obj", "methods", "error", "message"),
    [
        (JiT, ["fwd"], ValueError, "defines no method 'fwd'; methods defined in its body: __init__"),
        (modulate, ["forward"], TypeError, "methods= is for classes only"),
        (JiT, "forward", TypeError, "not a string"),
        (3, None, TypeError, "expects a function or a class, got int"),
        (len, None, TypeError, "expects a function or a class"),
    ],
)
def test_bad_input_is_named(obj, methods, error, message) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(")):
        show_source(obj, methods)


def test_code_without_a_file_is_a_type_error() -> None:
    namespace: dict = {}
    exec("def made_up():\n    return 1\n", namespace)
    with pytest.raises(TypeError, match="no source code is available"):
        show_source(namespace["made_up"])


def test_a_long_listing_shows_its_start_and_folds_the_rest() -> None:
    from jitlib.book import show
    from jitlib.nn.model import JiT

    view = show_source(JiT, methods=["forward", "initialize_weights"])
    lines = view.code.splitlines()
    assert len(lines) >= show.FOLD_AFTER + show.FOLD_MIN
    markdown = view._repr_markdown_()
    shown, folded = markdown.split("<details>")
    assert "\n".join(lines[: show.FOLD_AFTER]) in shown and lines[show.FOLD_AFTER] not in shown
    assert f"the other {len(lines) - show.FOLD_AFTER} lines" in folded and lines[-1] in folded
    assert folded.rstrip().endswith("</details>")


def test_a_folded_listing_highlights_as_python_in_both_parts() -> None:
    """Folding inside a docstring would leave the second part unlexable (a Sphinx warning, an error under -W)."""
    from pygments.lexers import PythonLexer
    from pygments.token import Error

    from jitlib.diffusion.sampling import sample

    markdown = show_source(sample)._repr_markdown_()
    assert "<details>" in markdown
    parts = [block.split("\n```")[0] for block in markdown.split("```python\n")[1:]]
    assert len(parts) == 2
    for part in parts:
        assert not [v for t, v in PythonLexer().get_tokens(part) if t in Error], part[:200]
