"""The package's import graph: no circles, and every import points down the layers of
docs/architecture.md's package map (cli -> api -> pipeline -> stages -> config -> distribute -> nets -> io,
search -> the leaves). Read from the source (ast), so a new module is checked without being listed."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "convnet_search"

# Lower index = lower layer. A module may import its own layer only inside its own subpackage
# (stages/* import stages/base, search/incremental imports search/neighbors), never a higher one.
LAYERS = (
    {"convnet_search", "convnet_search.runtime", "convnet_search.interrupts"},  # leaves (root: __version__)
    {"convnet_search.search"},  # the math: no I/O, no network, no config
    {"convnet_search.io"},  # files: images, datasets, store, shards, work/bundle folders
    {"convnet_search.nets"},  # networks: registry, weights, pooling, preprocessing, shard extraction
    {"convnet_search.distribute"},  # who runs the heavy work
    {"convnet_search.config"},  # what to compute: validates against the registries below it
    {"convnet_search.stages"},  # one module per stage
    {"convnet_search.pipeline"},  # the run loop
    {"convnet_search.api"},  # the Python API over a finished run (re-exported lazily by the root)
    {"convnet_search.cli"},
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _type_checking_lines(tree: ast.Module) -> set[int]:
    """Lines inside `if TYPE_CHECKING:` blocks: annotations only, never run."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, bool]]:
    """(imported package module, under TYPE_CHECKING) for every import of `name`, relative or absolute,
    at any depth (function-level lazy imports count too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import sub` imports the submodule `pkg.sub` when there is one
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for t in targets:
            if t == "convnet_search" or t.startswith("convnet_search."):
                out.append((t, node.lineno in typing_only))
    return out


def layer_of(name: str) -> int:
    best = max((p for layer in LAYERS for p in layer if name == p or name.startswith(p + ".")), key=len)
    return next(i for i, layer in enumerate(LAYERS) if best in layer)


def subpackage(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:2])


def graph() -> dict[str, list[tuple[str, bool]]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_every_module_is_in_a_layer_and_starts_with_a_docstring():
    for name, path in modules().items():
        layer_of(name)  # raises StopIteration/ValueError for a module outside the map
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert doc and doc.strip(), f"{path}: the first line should say what the module is"


def test_no_import_circles():
    """Run-time imports only: `if TYPE_CHECKING:` blocks (annotations) are never executed."""
    g = graph()
    edges = {n: {t for t, typing_only in targets if not typing_only and t != n} for n, targets in g.items()}
    assert find_cycle(edges) is None, f"import circle: {' -> '.join(find_cycle(edges))}"


def test_imports_point_down_the_layers():
    bad = []
    for name, targets in graph().items():
        for t, _ in targets:
            if t == name:
                continue
            lower, same = layer_of(t) < layer_of(name), layer_of(t) == layer_of(name)
            if t == "convnet_search" and name != "convnet_search":
                lower = True  # the root only gives __version__; test_no_import_circles keeps it a leaf
            if not (lower or (same and subpackage(t) == subpackage(name))):
                bad.append(f"{name} imports {t}")
    assert not bad, "imports against the package map (docs/architecture.md):\n" + "\n".join(bad)


@pytest.mark.parametrize("edges,cycle", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
])
def test_find_cycle_finds_a_circle_and_only_a_circle(edges, cycle):
    assert find_cycle(edges) == cycle


def test_the_checks_see_relative_lazy_and_type_checking_imports(tmp_path):
    """The walker must not miss the import styles the package uses, or the tests above pass vacuously."""
    g = graph()
    assert ("convnet_search.stages.base", False) in g["convnet_search.stages.extract"]  # from .base import
    assert ("convnet_search.distribute.local", False) in g["convnet_search.stages.extract"]  # lazy, in a function
    assert ("convnet_search.stages.outputs", True) in g["convnet_search.stages.base"]  # TYPE_CHECKING
    assert ("convnet_search.search.atlas", False) in g["convnet_search.nets.extractor"]  # from ..search import atlas
    assert layer_of("convnet_search.search.neighbors") < layer_of("convnet_search.io.store")
