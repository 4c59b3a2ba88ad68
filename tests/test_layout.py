"""The package's layering, checked on the source (an AST scan that includes imports inside functions):

- `promot.evaluate.*` never imports `promot.api` or `promot.training` (evaluation reads run directories);
- `promot.report.*` and `promot.rundir` never import torch (a report is a pure function of files);
- core modules never import `promot.world` nor reach into its folder by path: the ICL world is an application of
  the library (it registers its `world-tiny` alias), not part of it. Allowed to: `promot.world.*` itself, the CLI
  and the package root, which wires the world in (`import promot` registers the alias, torch-free);
- no import cycle between modules, imports inside functions included (the package root, which only re-exports
  lazily, is left out), and no module over 500 lines.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "promot"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (top level, functions, TYPE_CHECKING blocks)."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # `from promot import api`
    return out


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _hits(module: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(m for m in _imports(MODULES[module]) if any(m == f or m.startswith(f + ".") for f in forbidden))


def test_the_scan_sees_every_module():
    assert {"promot.api", "promot.rundir", "promot.evaluate.runner", "promot.report.tables",
            "promot.models.loading", "promot.world.demo"} <= set(MODULES)
    # imports inside functions count: runner imports lm_eval only inside functions
    assert "lm_eval" in _imports(MODULES["promot.evaluate.runner"])


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith("promot.evaluate")])
def test_evaluate_does_not_import_api_or_training(module):
    assert _hits(module, ("promot.api", "promot.training")) == []


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith("promot.report") or m == "promot.rundir"])
def test_report_and_rundir_do_not_import_torch(module):
    assert _hits(module, ("torch",)) == []


def _core(module: str) -> bool:
    return not (module == "promot" or module.startswith("promot.world") or module == "promot.cli")


@pytest.mark.parametrize("module", [m for m in MODULES if _core(m)])
def test_core_does_not_import_the_world(module):
    assert _hits(module, ("promot.world",)) == []
    text = MODULES[module].read_text()
    assert '"world"' not in text and "'world'" not in text and "world/assets" not in text, \
        f"{module} reaches into promot/world by path"


def test_light_modules_stay_torch_free():
    code = ("import sys, promot, promot.rundir, promot.evaluate.metrics, promot.models.aliases; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _edges(module: str) -> set[str]:
    """The package's own modules `module` imports (`from promot.x import name` is promot.x, or promot.x.name when
    that is a module); the root package is left out: it only re-exports, lazily."""
    return {m for m in _imports(MODULES[module]) if m in MODULES and m not in ("promot", module)}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), each sorted: the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def _package(module: str) -> str:
    """promot.evaluate.runner → promot.evaluate: the layer a module belongs to (a top-level module is its own)."""
    return ".".join(module.split(".")[:2])


def test_no_import_cycles():
    graph = {m: _edges(m) for m in MODULES if m != "promot"}
    assert import_cycles(graph) == []
    layers: dict[str, set[str]] = {}
    for m, deps in graph.items():  # nor between layers: evaluate/ may not need runs.py that needs evaluate/
        layers.setdefault(_package(m), set()).update(_package(d) for d in deps if _package(d) != _package(m))
    assert import_cycles(layers) == []


def test_the_cycle_check_can_fail():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("module", list(MODULES))
def test_modules_stay_small(module):
    assert len(MODULES[module].read_text().splitlines()) <= 400


def _long_functions(source: str, limit: int) -> list[str]:
    return [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(ast.parse(source))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > limit]


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith("promot.training")])
def test_training_functions_stay_short(module):
    """Training is where a change gets expensive: no function there over 60 lines."""
    assert _long_functions(MODULES[module].read_text(), 60) == []


def test_the_function_length_check_can_fail():
    assert _long_functions("def f():\n" + "    x = 1\n" * 60, 60) == ["f (61 lines)"]


def _config_classes(cls: type, seen: set[type] | None = None) -> set[type]:
    """RunConfig and every dataclass its fields hold (sections, method rooms' settings, tasks)."""
    import dataclasses
    import typing

    seen = set() if seen is None else seen
    seen.add(cls)
    for hint in typing.get_type_hints(cls).values():
        for t in (hint, *typing.get_args(hint)):
            if dataclasses.is_dataclass(t) and t not in seen:
                _config_classes(t, seen)
    return seen


def test_every_config_class_is_frozen_so_nothing_downstream_rewrites_the_config():
    import dataclasses

    from promot.config import RunConfig, load_config

    classes = _config_classes(RunConfig)
    assert len(classes) >= 15 and {c.__name__ for c in classes} >= {"StageConfig", "TaskConfig", "SdftConfig"}
    assert [c.__name__ for c in classes if not c.__dataclass_params__.frozen] == []
    cfg = load_config({"model": {"name": "m"}, "data": {"train": "t.jsonl"}})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.data.chat_template = True
