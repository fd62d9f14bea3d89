"""The architecture, checked on the source: dependencies run one way, there are no import
cycles, the CLI is thin, and no source file grows past 600 lines."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "densitylab"
WORKFLOWS = {"model1d", "rdm", "tdks", "dft", "density"}
#: the workflows each workflow may import (besides the shared helpers)
ALLOWED = {"model1d": set(), "rdm": {"model1d"}, "tdks": {"model1d"}, "dft": set(), "density": {"dft"}}
TOP = {"cli", "loading"}  # the layers above the workflows


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """densitylab modules imported anywhere in the file (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("densitylab"):
            found.add(node.module)
            for alias in node.names:  # "from densitylab.rdm import demo" imports a module
                if (
                    (PACKAGE.parent / (node.module + "." + alias.name).replace(".", "/"))
                    .with_suffix(".py")
                    .is_file()
                ):
                    found.add(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("densitylab")}
    return found


GRAPH = {_module(path): _imports(path) for path in PACKAGE.rglob("*.py")}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "densitylab"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_dependencies_run_one_way(module):
    layer = _layer(module)
    for imported in GRAPH[module]:
        target = _layer(imported)
        if layer in TOP or target == layer or target not in WORKFLOWS | TOP:
            continue
        if layer in WORKFLOWS:
            assert target in ALLOWED[layer], f"{module} (workflow {layer}) imports {imported}"
        else:
            assert (module == "densitylab" and imported == "densitylab.loading") or False, (
                f"shared helper {module} imports {imported}"
            )


def test_no_import_cycles():
    """Depth-first search over module-level and function-level imports alike."""
    modules = {m: {i for i in imports if i in GRAPH and i != m} for m, imports in GRAPH.items()}
    # a package's __init__ importing its own submodules is not a cycle through them
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in modules[module]:
            if module.startswith(target + ".") or target.startswith(module + "."):
                continue
            if state.get(target) == 1:
                cycle = [*trail[trail.index(target) :], target] if target in trail else [module, target]
                raise AssertionError("import cycle: " + " → ".join(cycle))
            if target not in state:
                visit(target, [*trail, target])
        state[module] = 2

    for module in sorted(modules):
        if module not in state:
            visit(module, [module])


def test_the_cli_is_thin():
    """No function body in cli/ is over 40 lines (its docstring counted; not its signature, where a
    command declares its options, nor its decorators)."""
    long = []
    for path in (PACKAGE / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.body[0].lineno + 1
                if length > 40:
                    long.append(f"{path.name}:{node.name} ({length} lines)")
    assert not long, long


def test_no_source_file_is_over_600_lines():
    sizes = {
        str(path.relative_to(PACKAGE)): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")
    }
    assert not {name: size for name, size in sizes.items() if size > 600}
