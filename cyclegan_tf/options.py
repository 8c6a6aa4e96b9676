"""The names every layer agrees on: choice lists of the options, and how a model declares an option of its own.

Keras-free and TensorFlow-free, so that config, the command-line tools, networks and bench can all import
it without loading TensorFlow. A choice list lives here once; networks check against the same tuples.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GENERATORS = ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128", "global", "local")
DISCRIMINATORS = ("basic", "n_layers", "pixel", "multiscale")
NORMS = ("instance", "batch", "none")
UPSAMPLES = ("transpose", "resize")
GAN_MODES = ("lsgan", "vanilla", "wgangp", "focal", "ghmc")
PREPROCESS = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
PRECISIONS = ("fp32", "bf16", "fp16")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
DIRECTIONS = ("AtoB", "BtoA")
# The deepest PatchGAN whose receptive field still fits the smallest image a user would train on.
MAX_LAYERS_D = 8


@dataclass(frozen=True)
class Option:
    """An option a model adds to train.py's flags (stored in flags.json like the common ones)."""

    name: str
    default: bool | int | float | str
    help: str
    choices: tuple[str, ...] | None = None

    def check(self, value: Any) -> None:
        """Raises ValueError naming what is wrong with `value`."""
        kind = type(self.default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"--{self.name}={value!r}: expected {kind.__name__}")
        if self.choices and value not in self.choices:
            raise ValueError(f"--{self.name}={value}: choose one of {', '.join(self.choices)}")
