"""The layering of ../shared/ARCHITECTURE.md holds: no import reaches up, and there is no import cycle.

Every ``import`` in the library counts, at module level or inside a function, and also under
``TYPE_CHECKING``: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "avalanche_ext"
#: The packages whose imports are checked: the library and the pack's own recipes.
PACKAGES = [PACKAGE, ROOT / "avalanche_ext_recipes"]

#: Layers from the bottom up; a module may import modules of its own layer or of layers below.
#: The first matching prefix decides a module's layer.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("util", ("avalanche_ext._warnings", "avalanche_ext.hparams", "avalanche_ext.devices", "avalanche_ext.protocols")),
    ("benchmarks", ("avalanche_ext.benchmarks",)),
    ("functional", ("avalanche_ext.functional",)),
    ("storage", ("avalanche_ext.storage",)),
    ("models", ("avalanche_ext.models",)),
    ("plugins", ("avalanche_ext.plugins", "avalanche_ext.templates", "avalanche_ext.metrics",
                 "avalanche_ext.evaluation")),
    ("logging", ("avalanche_ext.logging", "avalanche_ext.tracking")),
    ("report", ("avalanche_ext.report",)),
    ("recipes", ("avalanche_ext_recipes", "avalanche_ext.registry", "avalanche_ext.recipe",
                 "avalanche_ext.training")),
    ("runner", ("avalanche_ext.runner", "avalanche_ext.checkpoint", "avalanche_ext.run")),
    ("entry", ("avalanche_ext.cli", "avalanche_ext.taxonomy", "avalanche_ext.sweep", "avalanche_ext.selection",
               "avalanche_ext.leaderboards", "avalanche_ext.executors",
               "avalanche_ext._preload", "avalanche_ext.runs",
               "avalanche_ext.ray_executor")),
]

#: Imports ARCHITECTURE.md forbids although the layer order alone would allow them.
FORBIDDEN = [
    ("avalanche_ext", "avalanche_ext_recipes"),  # the library finds recipes through entry points only
    ("avalanche_ext.report", "avalanche_ext.registry"),  # a result row carries what the report needs
    ("avalanche_ext.models", "avalanche_ext.benchmarks"),  # a model knows no data and no run
    ("avalanche_ext.logging", "avalanche_ext.models"),  # tracking knows runs and metrics, not models
    ("avalanche_ext.logging", "avalanche_ext.plugins"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """The ``avalanche_ext`` modules ``path`` imports (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)  # "from .x import y" may import module x.y
    return {m for m in found if m.split(".")[0] in ("avalanche_ext", "avalanche_ext_recipes")}


def layer_of(module: str) -> int:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return -1


MODULES = {module_name(p): p for package in PACKAGES for p in sorted(package.rglob("*.py"))}


def edges() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        graph[name] = {m for m in imports_of(path) if m in MODULES and m != name}
    return graph


def test_every_module_has_a_layer():
    unplaced = [m for m in MODULES if m not in ("avalanche_ext", "avalanche_ext_recipes") and layer_of(m) < 0]
    assert not unplaced, f"modules outside every layer (add them to LAYERS): {unplaced}"


def test_no_import_reaches_up():
    bad = []
    for src, targets in edges().items():
        for dst in targets:
            if src == "avalanche_ext" or dst == "avalanche_ext":
                continue
            if layer_of(dst) > layer_of(src):
                bad.append(f"{src} ({LAYERS[layer_of(src)][0]}) -> {dst} ({LAYERS[layer_of(dst)][0]})")
            for a, b in FORBIDDEN:
                if (src == a or src.startswith(a + ".")) and (dst == b or dst.startswith(b + ".")):
                    bad.append(f"{src} -> {dst} (forbidden)")
    assert not bad, "imports against the layering:\n" + "\n".join(sorted(bad))


def _package_of(module: str) -> str:
    return module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]


def test_no_import_cycle():
    # A package's __init__ re-exports its modules; an edge into a package is an edge into what it
    # re-exports, so __init__ modules are left out of the cycle search (their own edges still count above).
    graph = {m: {d for d in ds if MODULES[d].name != "__init__.py"} for m, ds in edges().items()
             if MODULES[m].name != "__init__.py"}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("layer", ["plugins", "models"])
def test_method_files_do_not_import_each_other(layer):
    """Sideways imports between two methods' files mean a helper belongs one layer down.

    A method file may import the layer's shared modules (named ``base``, ``common``, ``layers`` or
    starting with ``_``) and, where one method is built on another, the modules listed here.
    """
    allowed = {
        ("avalanche_ext.plugins.generative_latent_replay", "avalanche_ext.plugins.latent_replay"),
        ("avalanche_ext.plugins.gnr", "avalanche_ext.plugins.latent_replay"),
        ("avalanche_ext.models.latent_generator", "avalanche_ext.models.latent_vae"),
    }
    shared = ("base", "common", "layers", "build")
    bad = []
    prefix = f"avalanche_ext.{layer}."
    for src, targets in edges().items():
        if not src.startswith(prefix):
            continue
        for dst in targets:
            if not dst.startswith(prefix) or (src, dst) in allowed:
                continue
            leaf = dst[len(prefix):].split(".")[0]
            if leaf in shared or leaf.startswith("_") or src.endswith(".build"):
                continue
            bad.append(f"{src} -> {dst}")
    assert not bad, "sideways imports between method files:\n" + "\n".join(sorted(bad))
