"""The import direction of docs/ARCHITECTURE.md holds in the code: every aipc module imports only
from its own package or from a lower layer (module-level and function-level imports alike), and
the estimator's packages never import torch, transformers or the measuring layers."""

import ast
from pathlib import Path

import aipc

ROOT = Path(aipc.__file__).parent

LAYERS = {
    0: {"errors"},
    1: {"paths", "datafile", "rules", "runtime", "measure", "render", "mdsection", "cpu_gemm"},
    2: {"hardware", "spec", "privacy"},
    3: {"models"},
    4: {"estimate"},
    5: {"engines"},
    6: {"bench"},
    7: {"serve", "train", "validation", "cost"},
    8: {"report"},
    9: {"commands"},
    10: {"cli"},
    11: {"__main__"},
}
LEVEL = {unit: lvl for lvl, units in LAYERS.items() for unit in units}


def _unit(path: Path) -> str:
    rel = path.relative_to(ROOT).parts
    return rel[0].removesuffix(".py")


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from ((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno


def _modules():
    return [p for p in ROOT.rglob("*.py") if p.name != "__init__.py" or p.parent != ROOT]


def test_every_package_has_a_layer():
    units = {_unit(p) for p in _modules()}
    assert units - set(LEVEL) == set(), "add new packages to docs/ARCHITECTURE.md and LAYERS here"


def test_imports_go_down_only():
    bad = []
    for path in _modules():
        src = _unit(path)
        for mod, line in _imports(path):
            parts = mod.split(".")
            if parts[0] != "aipc" or len(parts) < 2 or parts[1] == src:
                continue
            if LEVEL[parts[1]] >= LEVEL[src]:
                bad.append(f"{path.relative_to(ROOT)}:{line} ({src}, layer {LEVEL[src]}) imports {mod} "
                           f"(layer {LEVEL[parts[1]]})")
    assert bad == []


def test_the_estimator_never_imports_torch_or_measuring_layers():
    heavy = ("torch", "transformers", "llama_cpp", "openvino", "openvino_genai")
    bad = []
    for path in (ROOT / "estimate").rglob("*.py"):
        for mod, line in _imports(path):
            top = mod.split(".")[0]
            if top in heavy:
                bad.append(f"estimate/{path.name}:{line} imports {mod}")
    assert bad == []
