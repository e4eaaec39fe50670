"""The house's arrows (docs/architecture.md): bench -> service -> model, and inside service
server -> app -> runtime -> the shared modules, with no import cycle anywhere. Read from the
source, so a new import that points the wrong way fails here before anyone has to untangle it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("model", "service", "bench")
# Rooms of service/, in the order they may import each other: each only from itself and
# the rooms before it. The shared modules import no room.
SERVICE_ROOMS = ("shared", "runtime", "app", "server", "entry")
SHARED = {"config", "errors", "schemas", "logs", "client", "checklist"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


def _type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imports(path: Path, top_level_only: bool) -> Iterator[str]:
    """Modules `path` imports (absolute names; all of them, or only those run at import)."""
    tree = ast.parse(path.read_text())
    nodes: list[ast.AST] = list(tree.body) if top_level_only else list(ast.walk(tree))
    for node in nodes:
        if top_level_only and isinstance(node, ast.If) and not _type_checking(node):
            nodes.extend(node.body + node.orelse)
        elif top_level_only and isinstance(node, ast.Try):
            nodes.extend(node.body + node.finalbody + [n for h in node.handlers for n in h.body])
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def project_imports(path: Path, known: dict[str, Path], top_level_only: bool = False) -> set[str]:
    return {name for name in imports(path, top_level_only) if name in known}


def room(module: str) -> str:
    parts = module.split(".")
    if module == "service.__main__":
        return "entry"
    if len(parts) <= 2 or parts[1] in SHARED:
        return "shared"
    return parts[1]


MODULES = modules()


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("model")))
def test_the_model_imports_nothing_above_it(name: str) -> None:
    above = {m for m in project_imports(MODULES[name], MODULES) if not m.startswith("model")}
    assert not above, f"{name} imports {sorted(above)}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("service")))
def test_each_service_room_imports_only_rooms_below_it(name: str) -> None:
    found = project_imports(MODULES[name], MODULES)
    assert not {m for m in found if m.startswith("bench")}, f"{name} imports bench"
    mine = SERVICE_ROOMS.index(room(name))
    wrong = {
        m for m in found if m.startswith("service.") and SERVICE_ROOMS.index(room(m)) > mine
    }
    assert not wrong, f"{name} ({room(name)}) imports {sorted(wrong)}"


def test_only_the_model_adapter_in_the_runtime_imports_torch_or_checkpoints() -> None:
    heavy = {"torch", "model.checkpoint", "model.predictor", "model.rnn"}
    for name, path in MODULES.items():
        if name.startswith("service.runtime.") and name != "service.runtime.sentiment_model":
            reached = {i.split(".")[0] if i.startswith("torch") else i for i in imports(path, False)}
            assert not reached & heavy, f"{name} imports {sorted(reached & heavy)}"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` (module -> the modules it imports), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(path: list[str]) -> list[str] | None:
        state[path[-1]] = 1
        for nxt in sorted(graph.get(path[-1], set()) - {path[-1]}):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit([*path, nxt])):
                return cycle
        state[path[-1]] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit([start])):
            return cycle
    return None


def test_there_is_no_import_cycle() -> None:
    graph = {name: project_imports(path, MODULES, top_level_only=True) for name, path in MODULES.items()}
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}"


def test_there_is_no_import_cycle_through_imports_inside_functions_either() -> None:
    # A lazy import only moves a cycle to run time (bench/peers.py and bench/peer_litserve.py
    # were one): the two modules still cannot be understood, or changed, one at a time.
    graph = {name: project_imports(path, MODULES) for name, path in MODULES.items()}
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}"


def test_the_cycle_search_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "a"}, "b": {"c"}, "c": set()}) is None
