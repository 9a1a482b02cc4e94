"""The import structure of qbt_lib (issue #11): every module imports on its own in a fresh
interpreter, the module-level import graph has no cycle, and no function imports a qbt_lib
module (the usual way to dodge a cycle); functions may import only optional or heavy
dependencies (cupy, dask, matplotlib, papermill, ...), so the package stays importable and
light without them."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "qbt_lib"

#: ``(module, imported qbt_lib module)`` pairs a function may import, each with its reason.
#: Keep it small: a function-local import of qbt_lib is almost always a cycle being dodged.
LOCAL_IMPORT_ALLOWED: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    """Every module of qbt_lib by dotted name (packages by their ``__init__``)."""
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))
            if "__pycache__" not in p.parts}


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The qbt_lib modules an import statement of ``module`` names: ``from p import x`` is
    ``p.x`` when that is a module, else ``p``; names outside qbt_lib are dropped."""
    if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
    else:
        if node.level:
            pkg = module if _is_package(module) else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                pkg = pkg.rpartition(".")[0]
            base = f"{pkg}.{node.module}" if node.module else pkg
        else:
            base = node.module or ""
        targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                   for a in node.names]
    out = []
    for t in targets:
        while t and t not in MODULES:  # ``import qbt_lib.x.name``: the module that holds it
            t = t.rpartition(".")[0]
        if t and (t == "qbt_lib" or t.startswith("qbt_lib.")):
            out.append(t)
    return out


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(module: str) -> tuple[list[tuple[int, str]], list[tuple[int, str, str]]]:
    """``(module-level imports, function-local imports)`` of qbt_lib modules:
    ``[(line, target)]`` and ``[(line, function, target)]``. Module level is what runs when
    the module is imported (class bodies, ``try``/``if`` included; ``if TYPE_CHECKING``
    blocks and function bodies not)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    top: list[tuple[int, str]] = []
    local: list[tuple[int, str, str]] = []

    def visit(node: ast.AST, func: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, func or getattr(child, "name", "<lambda>"))
            elif isinstance(child, ast.If) and func is None and _is_type_checking(child):
                continue
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                for t in dict.fromkeys(_resolve(module, child)):
                    if func is None:
                        top.append((child.lineno, t))
                    else:
                        local.append((child.lineno, func, t))
            else:
                visit(child, func)

    visit(tree, None)
    return top, local


def import_graph() -> dict[str, set[str]]:
    """Module-level imports between qbt_lib modules. Importing ``a.b.c`` also runs the
    packages ``a`` and ``a.b`` first: an edge to each enclosing package of the target that
    is not already one of the importer's own (those are being imported already)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for m in MODULES:
        mine = set(_ancestors(m)) | {m}
        for _, t in _imports(m)[0]:
            for x in [*_ancestors(t), t]:
                if x not in mine:
                    graph[m].add(x)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a
    readable path ``a -> b -> ... -> a`` through the component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                comps.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return [_cycle_path(graph, c) for c in comps]


def _cycle_path(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    """One cycle through the first module of a component (breadth-first back to it)."""
    members, start = set(comp), comp[0]
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [
                        start, start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp


# ------------------------------------------------------------------ the tests
def _import_alone(module: str) -> tuple[str, int, str]:
    env = dict(os.environ, QBT_PROGRESS="0", PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    return module, p.returncode, p.stderr


def test_every_module_imports_on_its_own_in_a_fresh_interpreter():
    """Each module alone in its own interpreter (in parallel: one process per core), so an
    import that works only after another module was imported, or a cycle that bites only
    from one side, fails here."""
    workers = max(2, (os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_import_alone, sorted(MODULES)))
    failed = [f"{m}: {err.strip().splitlines()[-1] if err.strip() else f'exit {rc}'}"
              for m, rc, err in results if rc != 0]
    assert not failed, "modules that do not import on their own:\n" + "\n".join(failed)


def test_module_level_import_graph_has_no_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles in qbt_lib:\n" + "\n".join(" -> ".join(c) for c in found)


def test_no_function_imports_a_qbt_lib_module():
    """Function-local imports are for optional/heavy dependencies only (cupy, dask,
    distributed, matplotlib, papermill, playwright, talib, arch, ...), never qbt_lib itself:
    a local import of qbt_lib hides a cycle or a layering problem."""
    found = []
    for m, path in MODULES.items():
        for line, func, target in _imports(m)[1]:
            if (m, target) not in LOCAL_IMPORT_ALLOWED:
                found.append(f"{path.relative_to(ROOT)}:{line} {func}() imports {target}")
    assert not found, ("function-local imports of qbt_lib modules (move them to the top of "
                       "the module, or break the cycle they dodge):\n" + "\n".join(found))


# ------------------------------------------------------------------ the checker itself
def test_the_checker_resolves_imports_and_finds_cycles():
    assert _resolve("qbt_lib.profiling.sweep", ast.parse("from .. import paths").body[0]) == [
        "qbt_lib.paths"]
    assert _resolve("qbt_lib.profiling", ast.parse("from .tables import x").body[0]) == [
        "qbt_lib.profiling.tables"]
    assert _resolve("qbt_lib.report.page",
                    ast.parse("from ..bench import history, WORKLOADS").body[0]) == [
        "qbt_lib.bench.history", "qbt_lib.bench"]
    assert _resolve("qbt_lib.fmt", ast.parse("import numpy, qbt_lib.paths").body[0]) == [
        "qbt_lib.paths"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    g = import_graph()
    # a package importing its own submodules is not a cycle; the submodule's parent is not
    # an edge of its own
    assert "qbt_lib.profiling.tables" in g["qbt_lib.profiling"]
    assert "qbt_lib.profiling" not in g["qbt_lib.profiling.tables"]
    # importing qbt_lib.bench.jsons from the report runs qbt_lib.bench first
    assert {"qbt_lib.bench", "qbt_lib.bench.jsons"} <= g["qbt_lib.report.summary"]


FACADES = ("qbt_lib.synth", "qbt_lib.straddles", "qbt_lib.waves", "qbt_lib.marketsim",
           "qbt_lib.walkforward", "qbt_lib.profiling", "qbt_lib.report")


def test_facade_packages_hold_no_logic():
    """Every workload package, ``qbt_lib.profiling`` and ``qbt_lib.report`` are public faces:
    a docstring, imports and ``__all__``, nothing else (the code lives in their modules),
    and every name in ``__all__`` exists."""
    import importlib
    for name in FACADES:
        mod = importlib.import_module(name)
        assert all(hasattr(mod, n) for n in mod.__all__), name
        tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), name
        for node in tree.body[1:]:
            ok = isinstance(node, (ast.Import, ast.ImportFrom)) or (
                isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets]
                == ["__all__"])
            assert ok, f"{name}: line {node.lineno} is not an import or __all__"
