"""The names every layer agrees on: choice lists of the options, how a model declares an option of its own,
and how a label palette option reads.

Keras-free and TensorFlow-free, so that config, the command-line tools, networks and bench can all import
it without loading TensorFlow. A choice list lives here once; networks check against the same tuples.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cyclegan_tf.errors import UserError

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


def parse_palette(value: str, flag: str = "--palette") -> list[list[int]]:
    """A palette option ('R,G,B;R,G,B;…' or a JSON file of [[R, G, B], …]) as a list of [R, G, B], class 0
    first (one-line UserError naming `flag` otherwise)."""
    if not value:
        return []
    try:
        if value.endswith(".json"):
            colours = json.loads(Path(value).read_text())
        else:
            colours = [[int(c) for c in item.split(",")] for item in value.replace(" ", "").split(";") if item]
    except (OSError, ValueError) as e:
        raise UserError(f"{flag}={value}: unreadable ({e})") from None
    if not colours or not all(isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255
                                                                            for v in c) for c in colours):
        raise UserError(f"{flag}={value}: expected colours R,G,B of 0…255, e.g. '0,0,0;128,64,128'")
    return colours
