"""Old module names, and the short names of the tools.

The package was one folder of modules until it was arranged by workflow stage (docs/architecture.md).
Code written against the old names (plug-in models, notebooks, scripts) keeps working for one release:
importing an old name gives the module at its new place, with a DeprecationWarning saying where. The tools'
short names (`python -m cyclegan_tf.evaluate`, `.report`, `.web`) are not deprecated: they are the
documented commands. Both are served by one import hook, installed by the package's __init__.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import CodeType, ModuleType

TOOLS = {
    "cyclegan_tf.evaluate": "cyclegan_tf.evaluation.score",
    "cyclegan_tf.report": "cyclegan_tf.evaluation.report",
    "cyclegan_tf.web": "cyclegan_tf.deploy.web",
    "cyclegan_tf.doctor": "cyclegan_tf.data.doctor",
}

MOVED = {  # deprecated; to be removed in the release after 0.2
    "cyclegan_tf.records": "cyclegan_tf.data.records",
    "cyclegan_tf.build": "cyclegan_tf.data.convert",
    "cyclegan_tf.imagefiles": "cyclegan_tf.data.imagefiles",
    "cyclegan_tf.synthetic": "cyclegan_tf.data.synthetic",
    "cyclegan_tf.datasets": "cyclegan_tf.data",
    "cyclegan_tf.datasets.shapescapes": "cyclegan_tf.data.shapescapes",
    "cyclegan_tf.losses": "cyclegan_tf.models.losses",
    "cyclegan_tf.pool": "cyclegan_tf.models.pool",
    "cyclegan_tf.optim": "cyclegan_tf.models.optim",
    "cyclegan_tf.distribute": "cyclegan_tf.training.strategy",
    "cyclegan_tf.runs": "cyclegan_tf.training.runs",
    "cyclegan_tf.loop": "cyclegan_tf.training.loop",
    "cyclegan_tf.metrics": "cyclegan_tf.evaluation.metrics",
    "cyclegan_tf.fid_inception": "cyclegan_tf.evaluation.inception",
    "cyclegan_tf.evaluator": "cyclegan_tf.evaluation.during_training",
    "cyclegan_tf.export": "cyclegan_tf.deploy.savedmodel",
    "cyclegan_tf.litert": "cyclegan_tf.deploy.litert",
    "cyclegan_tf.inference": "cyclegan_tf.deploy.translate",
    "cyclegan_tf.tiling": "cyclegan_tf.deploy.tiling",
}
# `cyclegan_tf.data` was the input pipeline's module and is now the data stage's package: the package hands
# the pipeline's names on, with the same warning (cyclegan_tf/data/__init__.py).
OLD_DATA_MODULE = "cyclegan_tf.data.pipeline"


def moved(old: str, new: str) -> None:
    warnings.warn(f"{old} is now {new}; the old name is kept for one release (docs/architecture.md)",
                  DeprecationWarning, stacklevel=3)


class _Aliases(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old or short name and loads it as the module at its new place (the same module object)."""

    def __init__(self) -> None:
        self._specs: dict[str, importlib.machinery.ModuleSpec] = {}

    def find_spec(self, fullname: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname) or TOOLS.get(fullname)
        if new is None:
            return None
        real = importlib.util.find_spec(new)
        spec = importlib.util.spec_from_loader(fullname, self, origin=real.origin,
                                               is_package=real.submodule_search_locations is not None)
        spec.loader_state = new
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        if spec.name in MOVED:
            moved(spec.name, spec.loader_state)
        module = importlib.import_module(spec.loader_state)
        self._specs[spec.loader_state] = module.__spec__  # importlib now gives it our spec: put back below
        return module

    def exec_module(self, module: ModuleType) -> None:
        """The module is the new one, already executed: only its own spec goes back."""
        real = self._specs.get(getattr(module.__spec__, "loader_state", None))
        if real is not None:
            module.__spec__ = real

    def get_code(self, fullname: str) -> CodeType | None:
        """`python -m cyclegan_tf.evaluate` runs the new module's code as __main__ (runpy asks for it)."""
        new = MOVED.get(fullname) or TOOLS[fullname]
        return importlib.util.find_spec(new).loader.get_code(new)


def install() -> None:
    if not any(isinstance(finder, _Aliases) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Aliases())  # first: an old package name must not find new modules by path
