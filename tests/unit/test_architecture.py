"""The layering the README draws holds in the code: server -> domain -> {models, storage};
the inference core (models/) imports no feature and no storage; generated protobuf code is
used only by the server; and no module imports itself back through others."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("server", "domain", "models", "storage")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
            if "migrations" not in p.parts}


def _imports(path: Path, name: str) -> set[str]:
    """Every module this file imports, wherever the import statement is (functions and
    TYPE_CHECKING blocks included: a cycle through them is still a cycle)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import sub` imports the submodule; `from mod import name` the module.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path, name):
            # "a.b.c" may name a module or an attribute of module "a.b": keep the longest module.
            parts = imported.split(".")
            for end in range(len(parts), 0, -1):
                candidate = ".".join(parts[:end])
                if candidate in modules:
                    if candidate != name:
                        targets.add(candidate)
                    break
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _violations(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    modules = _modules()
    return sorted(f"{name} imports {imported}" for name, path in modules.items() if name.split(".")[0] == layer
                  for imported in _imports(path, name) if imported.split(".")[0] in forbidden)


def test_the_inference_core_imports_no_feature_and_no_storage():
    assert _violations("models", ("domain", "storage", "server", "llmserve")) == []


def test_features_do_not_import_the_server_or_wire_types():
    assert _violations("domain", ("server", "llmserve")) == []


def test_storage_imports_no_other_layer():
    assert _violations("storage", ("models", "domain", "server", "llmserve")) == []


def test_servicers_reach_storage_only_through_the_composition_root():
    # The composition roots (the server's wiring, the admin command line) build the
    # repositories; the one error table maps storage's errors.
    allowed = ("server.wiring imports ", "server.app imports ", "server.admin imports ",
               "server.errors imports storage.errors")
    offenders = [v for v in _violations("server", ("storage",)) if not v.startswith(allowed)]
    assert offenders == []
