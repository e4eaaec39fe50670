"""The packages' import arrows: bench -> service -> model, and no cycle anywhere.

model/ runs without the service (training, offline scoring); a module-level import against
the arrows would load one package with the other. Imports inside a function (a CLI branch that
needs the service's client, say) are allowed by the layering, but count for cycles.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("model", "service", "bench")
# What each package may import at module level, besides itself.
MAY_IMPORT = {"model": set(), "service": {"model"}, "bench": {"model", "service"}}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


def imported(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return set()


def module_level_imports(tree: ast.Module) -> set[str]:
    """Imports that run when the module is imported: not those inside functions or classes."""
    names: set[str] = set()
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        names |= imported(node)
        pending.extend(ast.iter_child_nodes(node))
    return names


def test_module_level_imports_follow_the_arrows() -> None:
    wrong = []
    for name, path in modules().items():
        package = name.split(".")[0]
        for target in module_level_imports(ast.parse(path.read_text())):
            other = target.split(".")[0]
            if other in PACKAGES and other != package and other not in MAY_IMPORT[package]:
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_no_import_cycles() -> None:
    found = modules()
    graph = {
        name: {t for node in ast.walk(ast.parse(path.read_text())) for t in imported(node)
               if t in found and t != name}
        for name, path in found.items()
    }

    def reaches(start: str, goal: str) -> bool:
        seen, pending = set(), list(graph[start])
        while pending:
            name = pending.pop()
            if name == goal:
                return True
            if name not in seen:
                seen.add(name)
                pending.extend(graph[name])
        return False

    cycles = sorted(f"{a} <-> {b}" for a in graph for b in graph[a] if reaches(b, a))
    assert cycles == []
