"""Read a source tree's imports and report where it breaks the project's layering rules.

The rules (DESIGN.md, "Layers"): a layer never imports one above it (core < interface <
hardware < logic < gui); the core imports neither Qt nor ``qudi.core``; the interface imports no
transport; no import circle among modules; no module imports another module's underscore names.
Imports under ``if TYPE_CHECKING:`` are for annotations only and do not count.

Used by ``tests/test_layering.py`` on ``src/`` and on small broken trees that prove each check
can fail.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: Layers bottom up, each a module prefix; a module belongs to the longest prefix it starts with.
LAYERS = (
    "qudi.util.instream",
    "qudi.interface",
    "qudi.hardware",
    "qudi.logic",
    "qudi.gui",
)
#: What the core must not import: a GUI toolkit or a running qudi.
CORE_FORBIDDEN = ("PySide2", "PySide6", "PyQt5", "PyQt6", "qtpy", "pyqtgraph", "qudi.core")
#: What the interface must not import: any transport (and so no zmq at import time).
INTERFACE_FORBIDDEN = (
    "zmq",
    "rpyc",
    "qudi.util.instream.network",
    "qudi.util.instream.sharing",
    "qudi.util.instream.transport",
)


@dataclass(frozen=True)
class Import:
    """One import: ``module`` as resolved, ``names`` taken from it (empty for ``import m``)."""

    module: str
    names: tuple[str, ...]
    line: int


@dataclass
class Module:
    """One source file: its dotted name, its imports and its underscore-attribute uses."""

    name: str
    path: Path
    imports: list[Import] = field(default_factory=list)
    #: (alias of an imported module, underscore attribute, line), e.g. ``ring._CLAIM``
    private_attributes: list[tuple[str, str, int]] = field(default_factory=list)
    #: local alias -> imported module, for modules bound by ``import`` or ``from pkg import mod``
    module_aliases: dict[str, str] = field(default_factory=dict)


def load_tree(root: Path) -> dict[str, Module]:
    """Parse every ``*.py`` below ``root`` (a ``src``-style folder) into :class:`Module` records."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        name = ".".join(parts)
        modules[name] = _parse(name, path, is_package)
    for module in modules.values():
        for imp in module.imports:
            for imported in imp.names:
                if f"{imp.module}.{imported}" in modules:
                    module.module_aliases.setdefault(imported, f"{imp.module}.{imported}")
    return modules


def _parse(name: str, path: Path, is_package: bool) -> Module:
    tree = ast.parse(path.read_text(), filename=str(path))
    module = Module(name, path)
    package = name if is_package else name.rpartition(".")[0]
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                module.imports.append(Import(alias.name, (), node.lineno))
                if alias.asname:
                    module.module_aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(node, package)
            names = tuple(alias.name for alias in node.names)
            module.imports.append(Import(source, names, node.lineno))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            module.private_attributes.append((node.value.id, node.attr, node.lineno))
    return module


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except those inside ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    base = package.split(".")
    if node.level > 1:
        base = base[: -(node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _starts_with(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> int | None:
    """Index of ``module``'s layer in :data:`LAYERS`, or None outside the package's layers."""
    matches = [i for i, prefix in enumerate(LAYERS) if _starts_with(module, prefix)]
    return max(matches, key=lambda i: len(LAYERS[i])) if matches else None


def upward_imports(modules: dict[str, Module]) -> list[str]:
    """Imports from a layer above the importing module's own."""
    found = []
    for module in modules.values():
        own = layer_of(module.name)
        for imp in module.imports:
            target = layer_of(imp.module)
            if own is not None and target is not None and target > own:
                found.append(f"{module.name}:{imp.line} imports {imp.module} (a higher layer)")
    return found


def forbidden_imports(modules: dict[str, Module], prefix: str, forbidden: tuple[str, ...]):
    """Imports of a ``forbidden`` module by any module below ``prefix``."""
    found = []
    for module in modules.values():
        if not _starts_with(module.name, prefix):
            continue
        for imp in module.imports:
            targets = [imp.module] + [f"{imp.module}.{n}" for n in imp.names]
            for bad in forbidden:
                if any(_starts_with(target, bad) for target in targets):
                    found.append(f"{module.name}:{imp.line} imports {bad}")
                    break
    return found


def private_name_imports(modules: dict[str, Module]) -> list[str]:
    """Underscore names one module takes from another module of the tree."""
    found = []
    for module in modules.values():
        for imp in module.imports:
            if imp.module not in modules or imp.module == module.name:
                continue
            for imported in imp.names:
                if imported.startswith("_") and f"{imp.module}.{imported}" not in modules:
                    found.append(f"{module.name}:{imp.line} imports {imp.module}.{imported}")
        for alias, attribute, line in module.private_attributes:
            target = module.module_aliases.get(alias)
            if target in modules and target != module.name:
                found.append(f"{module.name}:{line} uses {target}.{attribute}")
    return found


def import_cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Circles of module-level or function-level imports among the tree's modules."""
    graph = {name: set() for name in modules}
    for module in modules.values():
        for imp in module.imports:
            candidates = [imp.module] + [f"{imp.module}.{n}" for n in imp.names]
            for target in candidates:
                if target in modules and target != module.name:
                    graph[module.name].add(target)
    # A package's __init__ importing its own submodules is how faces work, not a circle.
    for name in graph:
        graph[name] = {t for t in graph[name] if not _starts_with(t, name)}
    return _cycles(graph)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def long_classes(root: Path, limit: int) -> list[str]:
    """Classes longer than ``limit`` lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append(f"{path.relative_to(root)}: {node.name} has {length} lines")
    return found


def files_without_docstring(root: Path) -> list[str]:
    """Source files whose module docstring is missing or empty."""
    return [
        str(path.relative_to(root))
        for path in sorted(root.rglob("*.py"))
        if not (ast.get_docstring(ast.parse(path.read_text())) or "").strip()
    ]
