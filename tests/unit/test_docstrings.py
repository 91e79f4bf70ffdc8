"""Module docstrings stay short, and no docstring or comment points at a document outside the repository.

A module docstring says what the module is for and why it exists, in a few lines; the long explanations
belong in docs/ or beside the code they explain. A reader of the repository can open only what the
repository holds, so docstrings and comments cite public URLs or files of the repository, never a path
outside it (a parent directory, a shared folder, a document that only the authors had).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import exporter

PACKAGE_DIR = Path(exporter.__file__).parent
REPO = PACKAGE_DIR.parent
MAX_LINES = 10

_URL = re.compile(r"https?://\S+")
_OUTSIDE = re.compile(
    r"(?<![.\w])\.\./"  # a parent directory (``.../x`` as an ellipsis is fine)
    r"|\breference/|\bshared/|/work/"  # folders outside the repository
    r"|\bcontract(?:\.md|\s+section)",  # the project's contract document
    re.IGNORECASE,
)
_MARKDOWN = re.compile(r"[\w./-]+\.md\b")


def module_paths() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def module_docstring_lines(path: Path) -> int | None:
    """How many source lines the module's docstring spans (quotes included), or None without one."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    first = tree.body[0] if tree.body else None
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        return None
    return (first.end_lineno or first.lineno) - first.lineno + 1


def prose(path: Path) -> Iterator[tuple[int, str]]:
    """Every docstring (module, class, function) and every comment of a module, with its line."""
    text = path.read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc is not None:
                yield (node.body[0].lineno, doc)
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            yield (token.start[0], token.string)


def outside_references(text: str) -> list[str]:
    """The pieces of ``text`` that point outside the repository (public URLs are fine)."""
    text = _URL.sub(" ", text)
    found = [m.group(0) for m in _OUTSIDE.finditer(text)]
    found += [m.group(0) for m in _MARKDOWN.finditer(text) if not (REPO / m.group(0)).is_file()]
    return found


def test_every_module_has_a_short_docstring() -> None:
    """Each module under exporter/ opens with a docstring of at most MAX_LINES lines."""
    paths = module_paths()
    assert len(paths) > 40  # the whole package was read
    report = []
    for path in paths:
        lines = module_docstring_lines(path)
        if lines is None or lines > MAX_LINES:
            report.append(f"{path.relative_to(REPO)}: {'no docstring' if lines is None else f'{lines} lines'}")
    assert report == []


def test_no_docstring_or_comment_refers_outside_the_repository() -> None:
    """Docstrings and comments cite public URLs or files in the repository, nothing else."""
    report = [f"{path.relative_to(REPO)}:{line}: {ref}"
              for path in module_paths() for line, text in prose(path) for ref in outside_references(text)]
    assert report == []


def test_the_reference_check_tells_outside_from_inside() -> None:
    """The patterns catch what they are for and leave URLs, ellipses and the repository's own docs alone."""
    assert outside_references("see reference/alikafka-api.md") == ["reference/", "reference/alikafka-api.md"]
    assert outside_references("flags (contract section 2)") == ["contract section"]
    assert outside_references("as in ../shared/style.md") == ["../", "shared/", "../shared/style.md"]
    assert outside_references("rules in notes.md") == ["notes.md"]
    assert outside_references("https://help.aliyun.com/zh/ram/developer-reference/api-sts-errorcodes") == []
    assert outside_references("GET .../<role> returns the role, the ..data symlink") == []
    assert outside_references("rules in docs/lag.md, and README.md") == []
