"""No import cycle among the exporter's modules, counting every import statement wherever it stands.

import-linter's contracts (pyproject.toml, ``make lint``) check the layers and the cycles between the
siblings of each package. This test is the plain rule underneath, for every pair of modules whatever
package they are in: read each module's syntax tree, take every ``import`` and ``from ... import``
(top level, inside a function, under ``if TYPE_CHECKING:``), and fail on any strongly connected
component of more than one module, naming the modules and one cycle through them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import exporter

Graph = Mapping[str, frozenset[str]]


def modules(package_dir: Path, package: str) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, not ``.__init__``)."""
    found: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The module a ``from`` import names, with a relative one (``from . import x``) made absolute."""
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    if not is_package:
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(package_dir: Path, package: str) -> dict[str, frozenset[str]]:
    """Module -> the package's modules it imports anywhere in its text (the root package itself left out:
    ``from exporter import __version__`` runs only the root's ``__init__``, which imports nothing)."""
    known = modules(package_dir, package)

    def owner(name: str) -> str | None:
        """The longest leading part of ``name`` that is one of the package's modules."""
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, frozenset[str]] = {}
    for name, path in known.items():
        named: list[str] = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                named += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _absolute(node, name, path.name == "__init__.py")
                named += [source, *(f"{source}.{alias.name}" for alias in node.names)]
        targets = {owner(n) for n in named}
        graph[name] = frozenset(t for t in targets if t is not None and t not in (name, package))
    return graph


def components(graph: Graph) -> Iterator[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    members = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        members.append(member)
                        if member == node:
                            break
                    if len(members) > 1:
                        yield sorted(members)


def one_cycle(graph: Graph, members: list[str]) -> list[str]:
    """A shortest cycle through the first module of a component, for the failure message."""
    inside = set(members)
    start = members[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                return [*paths[node], start]
            if nxt in inside and nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    return members  # pragma: no cover - a component always has a cycle through each member


def cycle_report(graph: Graph) -> list[str]:
    """One line per component: a cycle through it, then every module it holds."""
    return [f"{' -> '.join(one_cycle(graph, members))} (all tied up: {', '.join(members)})"
            for members in components(graph)]


def test_no_import_cycle_among_the_exporters_modules() -> None:
    """Counting function-local and TYPE_CHECKING imports, no module reaches back to itself."""
    package_dir = Path(exporter.__file__).parent
    graph = import_graph(package_dir, "exporter")
    assert len(graph) > 40 and "exporter.cloud.client" in graph  # the whole package was read
    assert graph["exporter.cloud.client"] >= {"exporter.cloud.transport", "exporter.cloud.signing"}
    assert cycle_report(graph) == []


def test_the_check_sees_cycles_closed_inside_functions_and_type_checking(tmp_path: Path) -> None:
    """A cycle that only a function-local or a type-only import closes is still reported."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from .. import c\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n")
    (package / "d.py").write_text("from pkg import a, c\n")  # imports into the cycle, is not part of it
    graph = import_graph(package, "pkg")
    assert graph["pkg.sub.b"] == {"pkg.c"} and graph["pkg.d"] == {"pkg.a", "pkg.c"}
    assert cycle_report(graph) == ["pkg.a -> pkg.sub.b -> pkg.c -> pkg.a (all tied up: pkg.a, pkg.c, pkg.sub.b)"]
    (package / "c.py").write_text("")
    assert cycle_report(import_graph(package, "pkg")) == []
