"""Imports run one way: every room of the package stands on a floor and imports only from its own floor or
below, no module takes part in an import circle, and no library module imports a command.

The floors are the README's Layout section. Imports inside functions count too: they only delay the
arrow, they do not remove it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "latentpaint"

# room -> floor; a room is a top-level module or subpackage of latentpaint
FLOORS = {
    # the ground: errors, option parsing, atomic files, devices, safe reading of weight files
    "errors": 0, "options": 0, "files": 0, "devices": 0, "storage": 0,
    # what the method is made of
    "models": 1, "masks": 1,
    # metrics: the scores both training's validation and evaluation use
    "data": 2, "losses": 2, "metrics": 2,
    "training": 3,
    "inference": 4,
    # what is built on a trained model
    "evaluation": 5, "viz": 5, "server": 5,
    # entry points
    "demo": 6, "cli": 6, "__init__": 6, "__main__": 6,
}  # fmt: skip
# no known upward imports: validation during training (--val-data) scores with metrics/ (floor 2) and
# predicts with models/apply.py (floor 1), the step the Inpainter runs too. Any upward import fails
KNOWN_UPWARD: set[tuple[str, str]] = set()
# no known circles: the choices of model.refiner_init live in models/refiner_init.py and those of
# optim.schedule in training/optim.py, below the config that asks them; a run folder's checkpoint names
# live in training/callbacks.py
KNOWN_CIRCLE: set[tuple[str, str]] = set()
# command modules: only the entry point (latentpaint.cli) loads them, by name
COMMANDS = ("cli", "experiment_cli", "demo", "__main__")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """The latentpaint modules `path` imports anywhere in its body (`from a import b` counts b when it is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "latentpaint"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "latentpaint":
            subs = {f"{node.module}.{a.name}" for a in node.names} & set(known)
            found |= subs or {node.module}
    return found & set(known)


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def graph() -> dict[str, set[str]]:
    known = modules()
    # the package itself (`latentpaint.__version__`) is loaded before any of its modules anyway: no arrow
    return {name: imports_of(path, known) - {name, "latentpaint"} for name, path in known.items()}


def test_every_room_has_a_floor():
    assert {room(m) for m in modules()} <= set(FLOORS), "add the new room to FLOORS and the README"


def test_no_import_runs_up_a_floor():
    upward = [
        f"{a} (floor {FLOORS[room(a)]}) imports {b} (floor {FLOORS[room(b)]})"
        for a, targets in graph().items()
        for b in sorted(targets)
        if FLOORS[room(b)] > FLOORS[room(a)] and (a, b) not in KNOWN_UPWARD
    ]
    assert not upward, "\n".join(upward)


def test_no_library_module_imports_a_command():
    wrong = [
        f"{a} imports {b}"
        for a, targets in graph().items()
        for b in targets
        if b.rsplit(".", 1)[-1] in COMMANDS and room(a) not in ("cli", "__main__")
    ]
    assert not wrong, "\n".join(wrong)


def find_circle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None (depth-first search, white/grey/black)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (circle := visit(nxt)):
                return circle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (circle := visit(node)):
            return circle
    return None


def test_no_import_circle():
    # any circle fails, outside the known pairs
    known = KNOWN_UPWARD | KNOWN_CIRCLE
    edges = {a: {b for b in targets if (a, b) not in known} for a, targets in graph().items()}
    circle = find_circle(edges)
    assert circle is None, " -> ".join(circle)


@pytest.mark.parametrize(
    ("edges", "expected"),
    [({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]), ({"a": {"b"}, "b": set()}, None)],
)
def test_the_circle_finder_finds_circles(edges, expected):
    assert find_circle(edges) == expected


def test_the_import_reader_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "def f():\n    from latentpaint.inference import checkpoints\n    import latentpaint.masks\n"
    )
    known = modules()
    assert imports_of(source, known) == {"latentpaint.inference.checkpoints", "latentpaint.masks"}


MAX_LINES = 400  # a module longer than this is two modules


def defines_something(tree: ast.Module) -> bool:
    """Whether a module has code of its own beyond its docstring, imports and `__all__`."""
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):  # the docstring
            continue
        targets = node.targets if isinstance(node, ast.Assign) else []
        if targets and all(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            continue
        return True
    return False


def test_every_module_is_the_home_of_what_it_defines():
    # a package's __init__.py may gather its public names; any other module that only passes on names
    # defined elsewhere is a second path to them
    shims = [
        name
        for name, path in modules().items()
        if path.name != "__init__.py" and not defines_something(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert not shims, f"modules that only re-export: {shims}"


def test_the_import_reader_tells_a_shim_from_a_module():
    assert not defines_something(ast.parse('"""Moved."""\nfrom a import b\n__all__ = ["b"]\n'))
    assert defines_something(ast.parse("from a import b\nLIMIT = 3\n"))


def test_no_module_is_over_the_line_limit():
    long = {
        name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these modules: {long}"
