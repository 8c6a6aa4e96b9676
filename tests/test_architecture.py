"""The package's layers (docs/architecture.md): no module imports one above it, and generic code never
names a model."""
from __future__ import annotations

import ast
import re

from conftest import ROOT

PACKAGE = ROOT / "cyclegan_tf"
# Lowest first; a module may import modules of its own layer or below.
LAYERS = [
    {"errors", "atomic", "options", "console"},
    {"config", "imagefiles", "synthetic"},
    {"records", "data", "networks", "losses", "pool", "optim", "build", "fid_inception", "metrics",
     "datasets"},
    {"models"},
    {"distribute", "runs", "evaluator"},
    {"loop"},
    {"export", "inference", "evaluate", "litert", "tiling", "web"},
    {"api", "demo", "report"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def _imports(path) -> set[str]:
    """The package's top-level modules that `path` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cyclegan_tf"):
            parts = node.module.split(".")
            found |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("cyclegan_tf.")}
    return found


def test_every_module_has_a_layer_and_imports_none_above_it() -> None:
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).parts
        if rel == ("__init__.py",):
            continue
        own = rel[0].removesuffix(".py")
        assert own in LAYER, f"{path}: add it to a layer here and in docs/architecture.md"
        for other in _imports(path) - {own}:
            assert LAYER[other] <= LAYER[own], f"{path} imports cyclegan_tf.{other}, a layer above it"


def test_only_the_registry_and_the_model_modules_name_a_model() -> None:
    names = re.compile(r"[\"'](cycle_gan|pix2pix)[\"']")
    files = [*PACKAGE.rglob("*.py"), *ROOT.glob("*.py")]
    naming = {str(p.relative_to(ROOT)) for p in files if names.search(p.read_text())}
    assert naming <= {"cyclegan_tf/models/__init__.py", "cyclegan_tf/models/cycle_gan.py",
                      "cyclegan_tf/models/pix2pix.py"}, naming
