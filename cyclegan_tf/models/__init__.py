"""The model registry: name → model class. Adding a model is one module beside this file and one line below.

Built-in models are imported on first use (each brings TensorFlow). Plug-ins outside the package register
themselves with `@register` when imported: name their modules in the environment variable
CYCLEGAN_TF_PLUGINS (comma-separated), or declare them as entry points of the group `cyclegan_tf.models`,
and every tool (train.py, export_graph.py, bench, the Python API) sees them.
"""
from __future__ import annotations

import importlib
import os
from importlib import metadata
from typing import TYPE_CHECKING

from cyclegan_tf.errors import UserError

if TYPE_CHECKING:
    from cyclegan_tf.models.base import Model

BUILTIN = {
    "cycle_gan": "cyclegan_tf.models.cycle_gan",
    "pix2pix": "cyclegan_tf.models.pix2pix",
    "pix2pixhd": "cyclegan_tf.models.pix2pixhd",
    "cut": "cyclegan_tf.models.cut",
    "fastcut": "cyclegan_tf.models.cut",
}
DEFAULT = "cycle_gan"

_registered: dict[str, type[Model]] = {}
_plugins_loaded = False


def register(cls: type[Model]) -> type[Model]:
    """Class decorator: makes `cls` trainable as `train.py --model <cls.name>`."""
    other = _registered.get(cls.name)
    if other is not None and other.__qualname__ != cls.__qualname__:
        raise ValueError(f"model name {cls.name!r} is taken by {other.__module__}.{other.__qualname__}")
    _registered[cls.name] = cls
    return cls


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for module in filter(None, (m.strip() for m in os.environ.get("CYCLEGAN_TF_PLUGINS", "").split(","))):
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise UserError(f"CYCLEGAN_TF_PLUGINS: cannot import {module} ({e})") from None
    for entry in metadata.entry_points(group="cyclegan_tf.models"):
        entry.load()


def names() -> list[str]:
    """Every model that can be trained: the built-in ones, then plug-ins."""
    _load_plugins()
    return list(BUILTIN) + sorted(set(_registered) - set(BUILTIN))


def get(name: str) -> type[Model]:
    """The model class registered as `name`; a one-line error naming the choices otherwise."""
    if name in BUILTIN and name not in _registered:
        importlib.import_module(BUILTIN[name])
    if name not in _registered:
        _load_plugins()
    if name not in _registered:
        raise UserError(f"--model={name}: no such model; choose one of {', '.join(names())}")
    return _registered[name]


def for_official(family: str) -> type[Model]:
    """The first model that declares the official generator family `family` (Model.official_generators)."""
    found = next((m for m in all_models() if family in m.official_generators), None)
    if found is None:
        raise UserError(f"no model takes official generators of the family {family!r}")
    return found


def all_models() -> list[type[Model]]:
    return [get(n) for n in names()]


def flag_reference() -> str:
    """docs/flags.md: every train.py option, from TrainConfig's field metadata and each model's declarations
    (`make docs` writes it; a test fails when it is stale)."""
    from cyclegan_tf.config import fields

    def row(name: str, default: object, values: str, meaning: str) -> str:
        cells = [f"`--{name}`", "''" if default == "" else str(default), values, meaning]
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    header = ["| flag | default | values | meaning |", "|---|---|---|---|"]
    lines = ["# train.py's options", "",
             "Generated from `TrainConfig` (cyclegan_tf/config.py) and each model's declarations by `make docs`; "
             "do not edit by hand. `python train.py --helpfull` lists the same flags (a plug-in model's too) with "
             "their help.", "", "## Every model", "", *header]
    for f in fields():
        values = ", ".join(c for c in f.metadata["choices"] or () if c) or f.metadata["valid"] or ""
        lines.append(row(f.name, f.default, values, f.metadata["help"]))
    for model in (get(name) for name in BUILTIN):  # plug-ins document themselves
        lines += ["", f"## `--model {model.name}`", ""]
        if model.defaults:
            given = ", ".join(f"`--{k}={v}`" for k, v in model.defaults.items())
            lines += [f"Its defaults where they differ (flags given win): {given}.", ""]
        if model.options:
            lines += [*header, *(row(o.name, o.default, ", ".join(o.choices or ()), o.help) for o in model.options)]
        elif not model.defaults:
            lines.append("No options of its own.")
    return "\n".join(lines) + "\n"
