"""Features by name: the layers define_G and define_D name (CUT's PatchNCE layers, pix2pixHD's feature
matching read them), and CUT's projection heads H that map sampled features."""
from __future__ import annotations

import re
from collections.abc import Sequence

import keras

from cyclegan_tf.networks.layers import _init

# The names define_G and define_D give; Keras' automatic names (conv2d_3, re_lu_7) never match.
_FEATURE_NAME = re.compile(
    r"input_pad|stem(_conv|_norm)?|output|score|(block|up|layer|enhancer)\d+|down\d+(_conv|_norm|_relu)?")

def feature_names(model: keras.Model) -> list[str]:
    """The named layers of a define_G or define_D model, in network order."""
    return [layer.name for layer in model.layers if _FEATURE_NAME.fullmatch(layer.name)]

def named_features(model: keras.Model, names: Sequence[str]) -> keras.Model:
    """A model sharing `model`'s layers (and so its weights) that returns the list of the
    outputs of the layers called `names`, in that order (for one name, Keras returns the
    tensor itself).

    Features are in the layers' compute dtype (e.g. bfloat16 under bf16) except `output`
    and `score`, which are float32.
    """
    names = [names] if isinstance(names, str) else list(names)
    available = feature_names(model)
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        problem = f"Unknown feature names {unknown}" if unknown else "No feature names"
        raise ValueError(f"{problem} for {model.name!r}; available: {', '.join(available)}.")
    return keras.Model(model.input, [model.get_layer(n).output for n in names], name=f"{model.name}_features")

generator_features = named_features  # e.g. CUT's PatchNCE layers of G

def define_patch_mlp(channels: Sequence[int], units: int = 256, name: str = "H") -> keras.Model:
    """CUT's H (the official netF, `mlp_sample`): one two-layer MLP per feature layer, Dense(units) →
    ReLU → Dense(units), mapping that layer's sampled patches [n, channels[l]] to [n, units]. The inputs
    and outputs are lists in the order of `channels`; normalising to unit length is the caller's."""
    inputs = [keras.Input((c,), name=f"{name}_in{i}") for i, c in enumerate(channels)]
    outputs = []
    for i, x in enumerate(inputs):
        x = keras.layers.Dense(units, activation="relu", kernel_initializer=_init(), name=f"mlp{i}_1")(x)
        outputs.append(keras.layers.Dense(units, kernel_initializer=_init(), dtype="float32", name=f"mlp{i}_2")(x))
    return keras.Model(inputs, outputs, name=name)
