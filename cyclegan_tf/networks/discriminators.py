"""The discriminators: the PatchGAN (70×70 "basic", N layers, 1×1 "pixel"; CUT's anti-aliased form) and
pix2pixHD's multi-scale one. Each is `define_D(netD, ...)`; D_Y judges G's outputs, D_X judges F's.
"""
from __future__ import annotations

import keras

from cyclegan_tf.networks.blocks import _conv, _lrelu, _normalize, _zero_pad
from cyclegan_tf.networks.features import feature_names
from cyclegan_tf.networks.layers import AvgPoolDown, BlurPool2D, _check
from cyclegan_tf.options import DISCRIMINATORS, NORMS


def define_D(
    netD: str = "basic",
    ndf: int = 64,
    n_layers_D: int = 3,
    norm: str = "instance",
    input_nc: int = 3,
    name: str = "D_Y",
    antialias: bool = False,
    num_D: int = 2,
    features: bool = False,
) -> keras.Model:
    """A PatchGAN: one real/fake logit per receptive field ("basic" = 70×70, "pixel" = 1×1), or
    "multiscale": pix2pixHD's `num_D` PatchGANs of `n_layers_D` layers on the input downsampled 0, 1, …
    times (see `_multiscale_discriminator`). With `antialias` (CUT's default) each stride-2 conv becomes a
    stride-1 conv and a blur pool after its activation; the score map keeps its size.

    Named features (for feature matching): `layer1`…`layer{n+1}`, each LeakyReLU's output (n =
    n_layers_D, 3 for "basic"; two layers for "pixel"), and `score`, the output. With `features` (always
    for "multiscale") D returns a list of scales, each the list [layer1, …, score].
    """
    _check("netD", netD, DISCRIMINATORS)
    _check("norm", norm, NORMS)
    if netD == "multiscale":
        return _multiscale_discriminator(num_D, ndf, n_layers_D, norm, input_nc, name)
    model = _patch_discriminator(netD, ndf, n_layers_D, norm, input_nc, name, antialias)
    if not features:
        return model
    layers = [n for n in feature_names(model) if n != "score"] + ["score"]
    return OneScale(keras.Model(model.input, [model.get_layer(n).output for n in layers], name=f"{name}_scale"),
                    name=name)

@keras.saving.register_keras_serializable(package="cyclegan_tf")
class OneScale(keras.Model):
    """A discriminator of one scale whose output is [[features…, score]], as a multi-scale one's (a
    functional Keras model would return a one-element output list unwrapped)."""

    def __init__(self, scale: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, x, training=None):
        return [self.scale(x, training=training)]

    @property
    def input_shape(self):
        return self.scale.input_shape

def _patch_discriminator(netD, ndf, n_layers_D, norm, input_nc, name, antialias) -> keras.Model:
    use_bias = norm != "batch"
    inputs = keras.Input((None, None, input_nc))
    if netD == "pixel":
        x = _lrelu(_conv(ndf, 1)(inputs), name="layer1")
        x = _lrelu(_normalize(_conv(ndf * 2, 1, use_bias=use_bias)(x), norm), name="layer2")
        outputs = _conv(1, 1, dtype="float32", name="score")(x)
        return keras.Model(inputs, outputs, name=name)

    n_layers = 3 if netD == "basic" else n_layers_D
    if n_layers < 1:
        raise ValueError(f"n_layers_D must be >= 1, got {n_layers}.")
    stride = 1 if antialias else 2
    x = _lrelu(_conv(ndf, 4, stride)(_zero_pad(inputs)), name=None if antialias else "layer1")  # no norm here
    x = BlurPool2D(name="layer1")(x) if antialias else x
    for n in range(1, n_layers + 1):
        last = n == n_layers  # grows the field to 70×70, not the stride
        x = _conv(ndf * min(2**n, 8), 4, 1 if last else stride, use_bias)(_zero_pad(x))
        x = _lrelu(_normalize(x, norm), name=None if antialias and not last else f"layer{n + 1}")
        x = BlurPool2D(name=f"layer{n + 1}")(x) if antialias and not last else x
    outputs = _conv(1, 4, dtype="float32", name="score")(_zero_pad(x))
    return keras.Model(inputs, outputs, name=name)

def _pix2pixhd_patchgan(ndf: int, n_layers: int, norm: str, input_nc: int, name: str) -> keras.Model:
    """pix2pixHD's NLayerDiscriminator: the PatchGAN with 4×4 convs padded by 2 (not 1), biases throughout
    and at most 512 filters; returns [layer1, …, layer{n+1}, score]."""
    def pad(t):
        return keras.layers.ZeroPadding2D(2)(t)

    inputs = keras.Input((None, None, input_nc))
    features = [_lrelu(_conv(ndf, 4, 2)(pad(inputs)), name="layer1")]
    filters = ndf
    for n in range(1, n_layers + 1):
        filters = min(filters * 2, 512)
        x = _conv(filters, 4, 1 if n == n_layers else 2)(pad(features[-1]))
        features.append(_lrelu(_normalize(x, norm), name=f"layer{n + 1}"))
    score = _conv(1, 4, dtype="float32", name="score")(pad(features[-1]))
    return keras.Model(inputs, [*features, score], name=name)

def _multiscale_discriminator(num_D: int, ndf: int, n_layers: int, norm: str, input_nc: int,
                              name: str) -> keras.Model:
    """pix2pixHD's MultiscaleDiscriminator. Output i (0: full size) is the list of features and score of
    the PatchGAN on the input average-pooled i times. That PatchGAN is the nested model `scale{num_D−1−i}`,
    as in the official code: so a run with num_D = 2 hands its scales to one with num_D = 3 at the same
    absolute resolutions (staged training, --load_pretrain)."""
    if num_D < 1:
        raise ValueError(f"num_D must be >= 1, got {num_D}.")
    inputs = keras.Input((None, None, input_nc))
    scales = [_pix2pixhd_patchgan(ndf, n_layers, norm, input_nc, f"scale{i}") for i in range(num_D)]
    if num_D == 1:
        return OneScale(scales[0], name=name)
    x, outputs = inputs, []
    for i in range(num_D):
        x = AvgPoolDown()(x) if i else x
        outputs.append(scales[num_D - 1 - i](x))
    return keras.Model(inputs, outputs, name=name)
