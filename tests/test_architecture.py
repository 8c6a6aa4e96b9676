"""The package's layers (docs/architecture.md): no module imports one above it, and generic code never
names a model. Folders are stages of the workflow; layers are the order of dependence, across folders."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "cyclegan_tf"
# Lowest first; a module may import modules of its own layer or below. A package's name stands for its
# __init__.py; "networks.*" for every module of that folder.
LAYERS = [
    {"errors", "atomic", "options", "console", "compat", "training", "evaluation", "deploy"},
    {"config", "data", "data.imagefiles", "data.pixels", "data.synthetic"},
    {"data.records", "data.pipeline", "data.convert", "data.shapescapes", "data.mni152", "data.doctor", "networks",
     "networks.*",
     "models.losses", "models.adversarial", "models.pool", "models.optim", "evaluation.inception",
     "evaluation.metrics", "evaluation.health"},
    {"models", "models.base", "models.cycle_gan", "models.pix2pix", "models.pix2pixhd", "models.cut"},
    {"training.strategy", "training.runs", "evaluation.during_training"},
    {"training.loop"},
    {"deploy.savedmodel", "deploy.translate", "deploy.litert", "deploy.tiling", "deploy.web", "deploy.frozen",
     "evaluation.score"},
    {"api", "demo", "evaluation.report"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int | None:
    return LAYER.get(module, LAYER.get(module.rsplit(".", 1)[0] + ".*"))


def _is_module(dotted: str) -> bool:
    base = PACKAGE.joinpath(*dotted.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _imports(path: Path) -> set[str]:
    """The package's modules that `path` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "cyclegan_tf":
            base = node.module.removeprefix("cyclegan_tf").lstrip(".")
            for alias in node.names:
                dotted = f"{base}.{alias.name}".lstrip(".")
                found.add(dotted if _is_module(dotted) else base)
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("cyclegan_tf.") for a in node.names if a.name.startswith("cyclegan_tf.")}
    return found - {""}


def test_every_module_has_a_layer_and_imports_none_above_it() -> None:
    for path in PACKAGE.rglob("*.py"):
        own = _module(path)
        if not own:
            continue  # the package's own __init__: installs compat's import hook
        assert _layer(own) is not None, f"{path}: add {own} to a layer here and in docs/architecture.md"
        for other in _imports(path) - {own}:
            assert _layer(other) is not None, f"{path} imports cyclegan_tf.{other}, which is in no layer"
            assert _layer(other) <= _layer(own), f"{path} imports cyclegan_tf.{other}, a layer above it"


def test_every_layer_entry_is_a_module() -> None:
    for name in LAYER:
        assert _is_module(name.removesuffix(".*")), f"{name}: no such module; update LAYERS"


def test_only_the_registry_and_the_model_modules_name_a_model() -> None:
    names = re.compile(r"[\"'](cycle_gan|pix2pix)[\"']")
    files = [*PACKAGE.rglob("*.py"), *ROOT.glob("*.py")]
    naming = {str(p.relative_to(ROOT)) for p in files if names.search(p.read_text())}
    assert naming <= {"cyclegan_tf/models/__init__.py", "cyclegan_tf/models/cycle_gan.py",
                      "cyclegan_tf/models/pix2pix.py"}, naming
