"""CycleGAN generators and discriminators (Zhu et al., 2017).

G: X→Y and F: Y→X are generators; D_Y judges G's outputs, D_X judges F's.

Architectures, initialisation and defaults follow the official
junyanz/pytorch-CycleGAN-and-pix2pix code. Models are channels-last, accept any
(H, W) (see `generator_multiple`) and expect inputs in [-1, 1]. Generators end
in tanh; discriminators return raw scores of shape [N, h, w, 1]. The final
layers compute in float32 so mixed-precision policies can be used as is.

Layers whose outputs later models read (CUT's PatchNCE layers, pix2pixHD's
feature matching) have stable names, listed by `feature_names` and read by
`named_features`; the rest keep Keras' automatic names.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from cyclegan_tf.options import DISCRIMINATORS, GENERATORS, NORMS, UPSAMPLES

_RESNET_BLOCKS = {"resnet_9blocks": 9, "resnet_6blocks": 6}
_UNET_DOWNS = {"unet_256": 8, "unet_128": 7}


POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}  # options.PRECISIONS


@contextlib.contextmanager
def precision(name: str):
    """Networks built inside compute in `name` (fp32 | bf16 | fp16) with float32 weights."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(POLICIES[name])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _check(kind: str, value, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"Unknown {kind} {value!r}; expected one of {allowed}.")


def default_netG(image_size: int) -> str:
    """The paper's choice: 6 residual blocks for 128×128 images, 9 for 256×256 and up."""
    return "resnet_9blocks" if image_size > 128 else "resnet_6blocks"


# pix2pixHD's coarse-to-fine generator sizes (the official defaults), for define_G's "global" and "local".
PIX2PIXHD_G = dict(n_downsample_global=4, n_blocks_global=9, n_local_enhancers=1, n_blocks_local=3)


def generator_multiple(netG: str, n_downsample_global: int = 4, n_local_enhancers: int = 1) -> int:
    """H and W must be divisible by this for `netG` to return the input's size."""
    _check("netG", netG, GENERATORS)
    if netG in ("global", "local"):
        return 2 ** (n_downsample_global + (n_local_enhancers if netG == "local" else 0))
    return 4 if netG in _RESNET_BLOCKS else 2 ** _UNET_DOWNS[netG]


@keras.saving.register_keras_serializable(package="cyclegan_tf")
class ReflectionPad2D(keras.layers.Layer):
    """Reflection padding of H and W (Keras has none); fewer border artifacts than zeros."""

    def __init__(self, padding: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, x):
        return reflection_pad(x, self.padding)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        p = 2 * self.padding
        return (n, None if h is None else h + p, None if w is None else w + p, c)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


def reflection_pad(x: tf.Tensor, p: int) -> tf.Tensor:
    """tf.pad(x, mode="REFLECT") of H and W by `p`, forward as one gather of whole pixels (C values each)
    by the mirror-padded [H, W] map of their indices, which TensorFlow's CPU kernels copy faster than its
    MirrorPad of x (docs/benchmarks.md); backward as MirrorPad's own gradient, since the gather's (a segment
    sum) would be slow. The index map's MirrorPad keeps the check that the pad is smaller than the side
    (export.smallest_side relies on its error)."""
    paddings = [[0, 0], [p, p], [p, p], [0, 0]]

    @tf.custom_gradient
    def pad(x):
        s = tf.shape(x)
        pixels = tf.pad(tf.reshape(tf.range(s[1] * s[2]), s[1:3]), paddings[1:3], mode="REFLECT")
        y = tf.gather(tf.reshape(x, [s[0], -1, s[3]]), pixels, axis=1)
        y.set_shape([d if i in (0, 3) or d is None else d + 2 * p for i, d in enumerate(x.shape)])
        return y, lambda dy: tf.raw_ops.MirrorPadGrad(input=dy, paddings=paddings, mode="REFLECT")

    return pad(x)


@keras.saving.register_keras_serializable(package="cyclegan_tf")
class Cropping2D(keras.layers.Cropping2D):
    """Keras' Cropping2D with the crop's gradient as a zero pad: TF's strided-slice gradient
    (StridedSliceGrad) is many times slower than a pad at the generator's upsampling shapes on a CPU
    (docs/benchmarks.md, docs/decisions.md). The forward op is unchanged (so are checkpoints and ONNX
    conversion)."""

    def call(self, inputs):
        (top, bottom), (left, right) = self.cropping

        @tf.custom_gradient
        def crop(x):
            def grad(dy):
                return tf.pad(dy, [[0, 0], [top, bottom], [left, right], [0, 0]])

            return super(Cropping2D, self).call(x), grad

        return crop(inputs)


@keras.saving.register_keras_serializable(package="cyclegan_tf")
class BlurPool2D(keras.layers.Layer):
    """Anti-aliased 2× downsampling (Zhang 2019) as CUT's `Downsample`: reflection pad 1, then the
    normalised [1, 2, 1] ⊗ [1, 2, 1] filter per channel at stride 2."""

    strides = (2, 2)

    def call(self, x):
        a = tf.constant([1.0, 2.0, 1.0]) / 4.0
        kernel = tf.tile(tf.reshape(a[:, None] * a[None, :], [3, 3, 1, 1]), [1, 1, x.shape[-1], 1])
        padded = reflection_pad(x, 1)
        return tf.nn.depthwise_conv2d(padded, tf.cast(kernel, x.dtype), [1, 2, 2, 1], "VALID")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else (h + 1) // 2, None if w is None else (w + 1) // 2, c)


@keras.saving.register_keras_serializable(package="cyclegan_tf")
class BlurUpsample2D(keras.layers.Layer):
    """CUT's anti-aliased 2× `Upsample` (replicate pad, transposed conv with [1,3,3,1]⊗[1,3,3,1]·4/64,
    cropped), which is bilinear 2× upsampling with half-pixel centres exactly (tests); works at sizes
    unknown until run time, unlike Keras' UpSampling2D in a graph."""

    def call(self, x):
        s = tf.shape(x)
        return tf.cast(tf.image.resize(x, [2 * s[1], 2 * s[2]], "bilinear"), x.dtype)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else 2 * h, None if w is None else 2 * w, c)


@keras.saving.register_keras_serializable(package="cyclegan_tf")
class AvgPoolDown(keras.layers.Layer):
    """pix2pixHD's 2× downsampling between scales: PyTorch's AvgPool2d(3, stride=2, padding=1,
    count_include_pad=False), i.e. each output is the mean of the pixels of its 3×3 window that lie inside
    the image (TF's "SAME" pooling also leaves the padding out, but places its windows one pixel lower)."""

    def call(self, x):
        pad = [[0, 0], [1, 1], [1, 1], [0, 0]]
        total = tf.nn.avg_pool2d(tf.pad(x, pad), 3, 2, "VALID")
        inside = tf.nn.avg_pool2d(tf.pad(tf.ones_like(x[..., :1]), pad), 3, 2, "VALID")
        return total / inside

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else (h + 1) // 2, None if w is None else (w + 1) // 2, c)


@keras.saving.register_keras_serializable(package="cyclegan_tf")
class LabelEncoder(keras.layers.Layer):
    """A label map, given as an image in [-1, 1] (as the input pipeline and an export's input give every
    image), one-hot encoded to `label_nc` channels of 0 and 1 (pix2pixHD's `encode_input`). The class of a
    pixel is its grey value 0…255 (channel 0: a label PNG saved as it is), or with `palette` (class 0's RGB
    colour first) the index of the nearest palette colour. A class id ≥ label_nc encodes as all zeros.
    Computes in float32 whatever the precision: bf16 cannot hold the grey values exactly."""

    def __init__(self, label_nc: int, palette: Sequence[Sequence[int]] = (), **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.label_nc, self.palette = int(label_nc), [list(map(int, c)) for c in palette]

    def call(self, x):
        value = (tf.cast(x, tf.float32) + 1.0) * 127.5
        if self.palette:
            distance = tf.reduce_sum(tf.square(value[..., None, :] - tf.constant(self.palette, tf.float32)), -1)
            ids = tf.argmin(distance, axis=-1, output_type=tf.int32)
        else:
            ids = tf.cast(tf.round(value[..., 0]), tf.int32)
        return tf.one_hot(ids, self.label_nc, dtype=tf.float32)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.label_nc)

    def get_config(self):
        return {**super().get_config(), "label_nc": self.label_nc, "palette": self.palette}


@keras.saving.register_keras_serializable(package="cyclegan_tf")
class InstanceNorm(keras.layers.GroupNormalization):
    """Instance norm as in the official code (PyTorch InstanceNorm2d defaults).

    One group per channel gives per-sample, per-channel statistics over H, W
    (groups=1 would be layer norm). eps 1e-5 and no learnable scale/offset
    (affine=False), so the preceding conv keeps its bias.
    """

    def __init__(
        self, epsilon: float = 1e-5, center: bool = False, scale: bool = False, **kwargs
    ):
        # groups is always -1 (build() turns it into the channel count).
        kwargs.pop("groups", None)
        super().__init__(
            groups=-1, epsilon=epsilon, center=center, scale=scale, **kwargs
        )

    def call(self, inputs):
        if _statistics.get() is not None:  # given or recorded statistics (tiles of a large image)
            return _statistics.get().normalize(self, inputs)
        # Instance norm of [N, H, W, C] is batch norm of the [1, H, W, N·C] view, and TF's fused batch
        # norm kernel (training mode: the batch's own statistics, biased variance, as InstanceNorm2d)
        # does it in one pass with float32 statistics for bf16/fp16 inputs, faster than tf.nn.moments
        # forward and backward (docs/decisions.md). At batch 1 (the paper's) the view is the input itself.
        x = inputs if inputs.dtype in (tf.float32, tf.bfloat16) else tf.cast(inputs, tf.float32)
        batch = inputs.shape[0]
        if batch != 1:
            s = tf.shape(x)
            x = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, s[1], s[2], s[0] * s[3]])
        k = tf.shape(x)[-1]
        y = tf.compat.v1.nn.fused_batch_norm(
            x, tf.ones([k]), tf.zeros([k]), epsilon=self.epsilon, is_training=True
        )[0]
        if batch != 1:
            y = tf.transpose(tf.reshape(y, [s[1], s[2], s[0], s[3]]), [2, 0, 1, 3])
        if self.scale:
            y *= tf.cast(self.gamma, y.dtype)
        if self.center:
            y += tf.cast(self.beta, y.dtype)
        return tf.cast(y, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.pop("groups")
        return config


@keras.saving.register_keras_serializable(package="cyclegan_tf")
class BatchNorm(keras.layers.BatchNormalization):
    """Batch norm that normalises a test image by its own statistics, not the moving averages.

    The official test.py does this by default (it calls model.eval() only with --eval), and the
    pix2pix paper chose it: with the papers' batch size 1, test then matches training exactly.
    The moving averages are still kept and checkpointed.
    """

    def call(self, inputs, training=None, mask=None):
        if training:
            return super().call(inputs, training=True, mask=mask)
        if _statistics.get() is not None:
            return _statistics.get().normalize(self, inputs)
        x = tf.cast(inputs, tf.float32)
        mean, var = tf.nn.moments(x, axes=[1, 2], keepdims=True)
        y = tf.nn.batch_normalization(x, mean, var, tf.cast(self.beta, tf.float32), tf.cast(self.gamma, tf.float32),
                                      self.epsilon)
        return tf.cast(y, self.compute_dtype)


class NormStatistics:
    """The statistics every test-time norm layer (instance norm; batch norm, which at test normalises by the
    image's own statistics) takes from its input, in call order, as one flat float32 vector: per layer its
    per-channel mean, then its variance. Recorded on one image, they can be applied to other images (the tiles
    of that image): each tile is then normalised as the whole image is, so tiles do not drift apart in colour.
    """

    def __init__(self, supplied: tf.Tensor | None = None) -> None:
        self.supplied, self.offset, self.recorded = supplied, 0, []

    def normalize(self, layer: keras.layers.Layer, inputs: tf.Tensor) -> tf.Tensor:
        x = tf.cast(inputs, tf.float32)
        c = x.shape[-1]
        if self.supplied is None:
            mean, var = tf.nn.moments(x, axes=[0, 1, 2])  # a whole image: batch 1
            self.recorded += [mean, var]
        else:
            mean = self.supplied[self.offset:self.offset + c]
            var = self.supplied[self.offset + c:self.offset + 2 * c]
            self.offset += 2 * c
        y = (x - mean) * tf.math.rsqrt(var + layer.epsilon)
        if layer.scale:
            y *= tf.cast(layer.gamma, tf.float32)
        if layer.center:
            y += tf.cast(layer.beta, tf.float32)
        return tf.cast(y, layer.compute_dtype)

    def vector(self) -> tf.Tensor:
        return tf.concat(self.recorded, 0) if self.recorded else tf.zeros([0])


_statistics: contextvars.ContextVar[NormStatistics | None] = contextvars.ContextVar("norm_statistics", default=None)


@contextlib.contextmanager
def norm_statistics(supplied: tf.Tensor | None = None) -> Iterator[NormStatistics]:
    """Within it, test-time norm layers record their statistics (`supplied` None) or use `supplied`."""
    stats = NormStatistics(supplied)
    token = _statistics.set(stats)
    try:
        yield stats
    finally:
        _statistics.reset(token)


_direct: contextvars.ContextVar[bool] = contextvars.ContextVar("direct_convs", default=False)


@contextlib.contextmanager
def direct_convs() -> Iterator[None]:
    """Within it, WinogradConv2D is the direct conv at inference too: for graphs that other runtimes
    convert (LiteRT, ONNX), which bring their own conv kernels and would store Winograd's transformed
    filters, 16/9 the size of the 3×3 ones. Read when a graph is traced: enter it inside the traced
    function (as `export.Translator.translate_portable` does); around a call of an already traced
    tf.function it changes nothing."""
    token = _direct.set(True)
    try:
        yield
    finally:
        _direct.reset(token)


def seed_states(*models: keras.Model) -> list:
    """The random states of the models' dropout layers: tf.train.Checkpoint does not reach them
    through a Keras model, and an exact resume needs them."""
    return [v for m in models for v in m.non_trainable_variables if "seed_generator" in v.path]


# --- building blocks -------------------------------------------------------


INIT_TYPES = ("normal", "xavier")
_initialization = ("normal", 0.02)


@contextlib.contextmanager
def initialization(init_type: str = "normal", gain: float = 0.02):
    """Networks built inside draw their conv and dense kernels as the official `init_weights` does:
    normal(0, gain) (CycleGAN, pix2pix) or xavier_normal with `gain` (CUT's default)."""
    global _initialization
    _check("init_type", init_type, INIT_TYPES)
    previous, _initialization = _initialization, (init_type, float(gain))
    try:
        yield
    finally:
        _initialization = previous


def _init() -> keras.initializers.Initializer:
    # A fresh initializer per layer: a shared unseeded one repeats its values.
    kind, gain = _initialization
    if kind == "xavier":  # torch's xavier_normal_: untruncated, std = gain·sqrt(2 / (fan_in + fan_out))
        return keras.initializers.VarianceScaling(gain**2, "fan_avg", "untruncated_normal")
    return keras.initializers.RandomNormal(0.0, gain)


def _conv(filters, kernel, strides=1, use_bias=True, **kwargs):
    # Always "valid": padding is explicit so that alignment matches PyTorch.
    return keras.layers.Conv2D(
        filters,
        kernel,
        strides,
        use_bias=use_bias,
        kernel_initializer=_init(),
        **kwargs,
    )


def _zero_pad(x):
    return keras.layers.ZeroPadding2D(1)(x)  # PyTorch's padding=1


def _normalize(x, norm, name=None):
    if norm == "instance":
        return InstanceNorm(name=name)(x)
    if norm == "batch":
        # PyTorch's momentum 0.1 is Keras' 0.9; gamma ~ N(1, 0.02) as in init_weights.
        return BatchNorm(
            momentum=0.9,
            epsilon=1e-5,
            gamma_initializer=keras.initializers.RandomNormal(1.0, _initialization[1]),
            name=name,
        )(x)
    return x


def _upsample(x, filters, kernel, upsample, use_bias):
    """Exact 2× upsampling by a transposed conv, or (against checkerboard artifacts)
    by nearest resize + reflect-padded 3×3 conv, whatever `kernel`."""
    if upsample == "transpose":
        x = keras.layers.Conv2DTranspose(
            filters, kernel, 2, use_bias=use_bias, kernel_initializer=_init()
        )(x)
        # Crop the 2H + kernel - 2 rows as PyTorch's padding=1 (+ output_padding=1
        # for kernel 3) does; Keras' "same" would shift kernel 3 by one pixel.
        return Cropping2D(((1, kernel - 3), (1, kernel - 3)))(x)
    return _reflect_conv3(keras.layers.UpSampling2D(2, interpolation="nearest")(x), filters, use_bias)


def _reflect_conv3(x, filters, use_bias):
    """A reflection-padded 3×3 conv (a WinogradConv2D)."""
    return WinogradConv2D(filters, 3, use_bias=use_bias, kernel_initializer=_init())(ReflectionPad2D(1)(x))


@keras.saving.register_keras_serializable(package="cyclegan_tf")
class SubpixelConv2D(keras.layers.Conv2D):
    """A stride-1 "valid" conv with few output channels (the generators' 7×7 RGB head), computed as a
    sub-pixel conv (ESPCN): a stride-2 conv whose (k+1)×(k+1) kernel holds the k×k one once per output
    pixel phase (4× the output channels), then depth_to_space. The same weights and sums: oneDNN, TF's CPU
    convolution library, computes in blocks of 16 output channels, which 3 fill to 3/16 and 12 to 3/4, and
    the head takes about a third of the time (docs/benchmarks.md). Not in training, where the gradient of
    the sub-pixel form made the step slower than the plain conv's."""

    def call(self, inputs, training=None):
        if training or self.strides != (1, 1) or self.dilation_rate != (1, 1) or self.padding != "valid":
            return super().call(inputs)  # in training: the plain conv's gradient is the faster one
        phases = _phase_kernel(self.kernel)  # in an export, from constants: TensorFlow folds it once
        # One zero row below and column right (explicit padding, no copy) make an odd side's last output
        # row or column too, cropped away; a Pad op with computed amounts would break LiteRT's fp16 conversion.
        y = tf.nn.depth_to_space(tf.nn.conv2d(inputs, phases, 2, [[0, 0], [0, 1], [0, 1], [0, 0]]), 2)
        h, w = (inputs.shape[a] or tf.shape(inputs)[a] for a in (1, 2))
        y = y[:, :h - self.kernel_size[0] + 1, :w - self.kernel_size[1] + 1]
        return self.activation(y + self.bias if self.use_bias else y)


def _phase_kernel(kernel: tf.Tensor) -> tf.Tensor:
    """The (k+1)×(k+1) kernel holding the k×k one once per output phase (i, j) as output channels
    (2i + j)·cout + o, depth_to_space's order."""
    kh, kw, cin, cout = kernel.shape
    phases = [tf.pad(kernel, [[i, 1 - i], [j, 1 - j], [0, 0], [0, 0]]) for i in (0, 1) for j in (0, 1)]
    return tf.reshape(tf.stack(phases, -2), [kh + 1, kw + 1, cin, 4 * cout])


@keras.saving.register_keras_serializable(package="cyclegan_tf")
class WinogradConv2D(keras.layers.Conv2D):
    """A 3×3 stride-1 "valid" conv (the residual blocks') computed at inference in float32 by Winograd's
    minimal filtering F(2×2, 3×3) (Lavin & Gray, 2016): each 2×2 output tile is 16 products of a transformed
    4×4 input tile and a transformed filter, 2.25× fewer multiplications than the direct conv's 36. The
    convolutions are most of a generator's time and oneDNN's direct fp32 conv already runs near the cores'
    peak, so fewer multiplications is what is left (docs/benchmarks.md). The same weights; the results
    differ by float rounding only. The plain conv in training (the gather's gradient is a scatter) and
    in half precision (Winograd's transforms cost bits that bf16 and fp16 do not have), and within
    `direct_convs`."""

    def call(self, inputs, training=None):
        plain = (training or _direct.get() or self.compute_dtype != "float32" or self.kernel_size != (3, 3)
                 or self.strides != (1, 1) or self.dilation_rate != (1, 1) or self.padding != "valid"
                 or self.groups != 1 or self.data_format != "channels_last")
        if plain:
            return super().call(inputs)
        y = winograd_conv3x3(inputs, self.kernel)
        return self.activation(y + self.bias if self.use_bias else y)


# F(2×2, 3×3)'s transforms (Lavin & Gray's G, Bᵀ, Aᵀ); a 2-D transform is the Kronecker square of the 1-D one.
# NumPy constants: each is one node of an export's graph.
_WINOGRAD_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float32)
_WINOGRAD_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float32)
_WINOGRAD_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float32)
_WINOGRAD_G2, _WINOGRAD_BT2, _WINOGRAD_AT2 = [np.kron(m, m) for m in (_WINOGRAD_G, _WINOGRAD_BT, _WINOGRAD_AT)]
_TILE_OFFSETS = np.arange(4, dtype=np.int32)[:, None]


def winograd_conv3x3(x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """The "valid" 3×3 conv of x [N, H, W, C] by `kernel` [3, 3, C, K], by F(2×2, 3×3). One gather lays out
    every tile's 4×4 pixels as [16, tiles, C]; the input transform, the 16 C×K products and the output
    transform are then three matmuls. Odd output sides compute one more row or column, cropped."""
    cin, cout = kernel.shape[2], kernel.shape[3]
    u = tf.reshape(_WINOGRAD_G2 @ tf.reshape(kernel, [9, -1]), [16, cin, cout])  # folded in an export
    n, h, w, _ = tf.unstack(tf.shape(x), num=4)
    # Each tile's rows and columns, [4, tiles along the side]; clamped: an odd side's extra row or column.
    rows = tf.minimum(tf.range(0, h - 2, 2) + _TILE_OFFSETS, h - 1)
    cols = tf.minimum(tf.range(0, w - 2, 2) + _TILE_OFFSETS, w - 1)
    pixels = (tf.reshape(rows, [4, 1, 1, -1, 1]) * w + tf.reshape(cols, [1, 4, 1, 1, -1])
              + tf.reshape(tf.range(0, n * h * w, h * w), [1, 1, -1, 1, 1]))  # [4, 4, n, tiles down, across]
    tiles = tf.gather(tf.reshape(x, [-1, cin]), tf.reshape(pixels, [16, -1]))  # [16, n·tiles, C]
    v = tf.reshape(_WINOGRAD_BT2 @ tf.reshape(tiles, [16, -1]), [16, -1, cin])
    th, tw = tf.shape(rows)[1], tf.shape(cols)[1]  # no -1 in a computed shape: LiteRT's converter takes it literally
    y = tf.reshape(_WINOGRAD_AT2 @ tf.reshape(v @ u, [16, -1]), [2, 2, n * th, tw, cout])
    y = tf.reshape(tf.transpose(y, [2, 0, 3, 1, 4]), [n, 2 * th, 2 * tw, cout])  # the tiles' outputs interleaved
    y = tf.slice(y, [0, 0, 0, 0], [-1, h - 2, w - 2, -1])
    static_n, static_h, static_w = x.shape[:3]  # a slice of computed size loses every static dim: restored
    y.set_shape([static_n, static_h and static_h - 2, static_w and static_w - 2, cout])
    return y


def _relu(x, name=None):
    return keras.layers.ReLU(name=name)(x)


def _lrelu(x, name=None):
    return keras.layers.LeakyReLU(negative_slope=0.2, name=name)(x)  # Keras' default slope is 0.3


def _resnet_block(x, filters, norm, use_dropout, name=None, use_bias=None):
    use_bias = norm != "batch" if use_bias is None else use_bias
    y = _relu(_normalize(_reflect_conv3(x, filters, use_bias), norm))
    if use_dropout:
        y = keras.layers.Dropout(0.5)(y)
    y = _reflect_conv3(y, filters, use_bias)
    return keras.layers.Add(name=name)([x, _normalize(y, norm)])  # no ReLU after the sum


# --- generators ------------------------------------------------------------


def _resnet_generator(
    n_blocks, ngf, norm, upsample, use_dropout, input_nc, output_nc, name, antialias=False, antialias_up=False
):
    """Named features: `input_pad` (the padded input); `stem_conv`, `stem_norm`, `stem`; per downsampling
    level i = 1, 2: `down{i}_conv`, `down{i}_norm` and, where it is not the level's last layer,
    `down{i}_relu`, then `down{i}` (at 1/2 and 1/4 size: the ReLU, or with `antialias` the blur pool
    after a stride-1 conv, as CUT's generator); `block1`…`block{n_blocks}` (each residual sum), `up1`,
    `up2` and `output` (the tanh). `antialias_up` upsamples by CUT's blur then a 3×3 conv."""
    use_bias = norm != "batch"  # batch norm's offset makes a conv bias redundant
    inputs = keras.Input((None, None, input_nc))
    x = _conv(ngf, 7, use_bias=use_bias, name="stem_conv")(ReflectionPad2D(3, name="input_pad")(inputs))
    x = _relu(_normalize(x, norm, name="stem_norm"), name="stem")
    for i, mult in enumerate((2, 4), 1):
        x = _conv(ngf * mult, 3, 1 if antialias else 2, use_bias, name=f"down{i}_conv")(_zero_pad(x))
        x = _relu(_normalize(x, norm, name=f"down{i}_norm"), name=f"down{i}_relu" if antialias else f"down{i}")
        if antialias:
            x = BlurPool2D(name=f"down{i}")(x)
    for i in range(1, n_blocks + 1):
        x = _resnet_block(x, ngf * 4, norm, use_dropout, name=f"block{i}")
    for i, mult in enumerate((2, 1), 1):
        if antialias_up:
            x = BlurUpsample2D()(x)
            x = _conv(ngf * mult, 3, use_bias=use_bias)(_zero_pad(x))
        else:
            x = _upsample(x, ngf * mult, 3, upsample, use_bias)
        x = _relu(_normalize(x, norm), name=f"up{i}")
    return keras.Model(inputs, _rgb_head(x, output_nc), name=name)


def _rgb_head(x, output_nc):
    """The last 7×7 conv to `output_nc` channels (a SubpixelConv2D) and the tanh, in float32."""
    x = SubpixelConv2D(output_nc, 7, kernel_initializer=_init())(ReflectionPad2D(3)(x))
    return keras.layers.Activation("tanh", dtype="float32", name="output")(x)


def _global_generator(input_nc, output_nc, ngf, n_downsample, n_blocks, norm, upsample, name, head=True):
    """pix2pixHD's GlobalGenerator: a resnet generator with `n_downsample` stride-2 levels (4: a 1/16-size
    bottleneck of 16·ngf channels) and every conv biased (the official code's, even before a norm).
    Without `head` it ends at its last upsampling's features: the LocalEnhancer's global part.
    Named features: `stem`, `down1`…, `block1`…, `up1`… and `output`."""
    inputs = keras.Input((None, None, input_nc))
    x = _relu(_normalize(_conv(ngf, 7)(ReflectionPad2D(3)(inputs)), norm), name="stem")
    for i in range(1, n_downsample + 1):
        x = _relu(_normalize(_conv(ngf * 2**i, 3, 2)(_zero_pad(x)), norm), name=f"down{i}")
    for i in range(1, n_blocks + 1):
        x = _resnet_block(x, ngf * 2**n_downsample, norm, False, name=f"block{i}", use_bias=True)
    for i in range(1, n_downsample + 1):
        x = _relu(_normalize(_upsample(x, ngf * 2 ** (n_downsample - i), 3, upsample, True), norm), name=f"up{i}")
    return keras.Model(inputs, _rgb_head(x, output_nc) if head else x, name=name)


def _local_enhancer(input_nc, output_nc, ngf, norm, upsample, name, n_downsample_global, n_blocks_global,
                    n_local_enhancers, n_blocks_local):
    """pix2pixHD's LocalEnhancer. The global generator (ngf·2^n_local_enhancers filters, without its head;
    the nested model `global`, which --load_pretrain fills) runs on the input average-pooled to the
    coarsest scale. Enhancer n = 1…N, on the input at 1/2^(N−n) size: a 7×7 conv and a stride-2 conv,
    whose features are added to the previous net's last feature map, then `n_blocks_local` residual blocks
    and a 2× upsampling; the last enhancer ends with the RGB head."""
    inputs = keras.Input((None, None, input_nc))
    pyramid = [inputs]
    for _ in range(n_local_enhancers):
        pyramid.append(AvgPoolDown()(pyramid[-1]))
    x = _global_generator(input_nc, output_nc, ngf * 2**n_local_enhancers, n_downsample_global, n_blocks_global,
                          norm, upsample, "global", head=False)(pyramid[-1])
    for n in range(1, n_local_enhancers + 1):
        filters = ngf * 2 ** (n_local_enhancers - n)
        y = _relu(_normalize(_conv(filters, 7)(ReflectionPad2D(3)(pyramid[n_local_enhancers - n])), norm))
        y = _relu(_normalize(_conv(2 * filters, 3, 2)(_zero_pad(y)), norm))
        x = keras.layers.Add()([y, x])
        for _ in range(n_blocks_local):
            x = _resnet_block(x, 2 * filters, norm, False, use_bias=True)
        x = _relu(_normalize(_upsample(x, filters, 3, upsample, True), norm), name=f"enhancer{n}")
    return keras.Model(inputs, _rgb_head(x, output_nc), name=name)


def official_layer_names(model: keras.Model, antialias: bool) -> list[str]:
    """The names of a resnet generator's layers at the indices of the official PyTorch `nn.Sequential`
    (CUT's `--nce_layers 0,4,8,12,16` count those), through its last residual block. A norm that is
    an identity (`--norm none`) has no layer: its index names the conv before it, whose output it is."""
    have = set(feature_names(model))
    names = ["input_pad", "stem_conv", "stem_norm", "stem"]
    for i in (1, 2):
        level = [f"down{i}_conv", f"down{i}_norm", f"down{i}_relu", f"down{i}"]
        names += level if antialias else [level[0], level[1], level[3]]
    names += [n for n in feature_names(model) if n.startswith("block")]
    return [n if n in have else names[k - 1] for k, n in enumerate(names)]


def _unet_generator(
    num_downs, ngf, norm, upsample, use_dropout, input_nc, output_nc, name
):
    """The official UnetSkipConnectionBlock recursion, unrolled.

    Block i (0 = outermost) downsamples to filters[i] and, on the way up,
    returns to filters[i - 1] and concatenates its own input (the skip).

    Named features, with N = num_downs: `down1`…`downN`, each encoder level's
    output at 1/2 … 1/2^N size (what its skip carries, before the next level's
    LeakyReLU); `up1`…`up{N-1}`, each decoder level's output from the
    innermost out, `upK` being the concatenation with `down{N-K}`'s skip at
    that level's size; and `output` (the tanh), where the last level ends.
    """
    use_bias = norm != "batch"
    filters = [ngf * min(2**i, 8) for i in range(num_downs)]
    inputs = keras.Input((None, None, input_nc))
    x, skips = inputs, []
    for i, f in enumerate(filters):
        if i > 0:
            x = _lrelu(x)
        # No norm on raw pixels, nor on the 1×1 bottleneck (it would zero it);
        # the level's name goes on whichever layer ends it.
        normed = 0 < i < num_downs - 1 and norm != "none"
        x = _conv(f, 4, 2, use_bias, name=None if normed else f"down{i + 1}")(_zero_pad(x))
        if normed:
            x = _normalize(x, norm, name=f"down{i + 1}")
        skips.append(x)
    for i in range(num_downs - 1, 0, -1):
        x = _upsample(_relu(x), filters[i - 1], 4, upsample, use_bias)
        x = _normalize(x, norm)
        if (
            use_dropout and 4 <= i < num_downs - 1
        ):  # the num_downs - 5 inner 8ngf blocks
            x = keras.layers.Dropout(0.5)(x)
        x = keras.layers.Concatenate(name=f"up{num_downs - i}")([skips[i - 1], x])
    x = _upsample(_relu(x), output_nc, 4, upsample, use_bias=True)
    outputs = keras.layers.Activation("tanh", dtype="float32", name="output")(x)
    return keras.Model(inputs, outputs, name=name)


def define_G(
    netG: str = "resnet_9blocks",
    ngf: int = 64,
    norm: str = "instance",
    upsample: str = "transpose",
    use_dropout: bool = False,
    input_nc: int = 3,
    output_nc: int = 3,
    name: str = "G",
    antialias: bool = False,
    antialias_up: bool = False,
    **pix2pixhd: int,
) -> keras.Model:
    """A generator mapping [N, H, W, input_nc] images to [N, H, W, output_nc] in [-1, 1]. `antialias`
    and `antialias_up` (resnet generators only) are CUT's blurred down- and upsampling; "global" and
    "local" are pix2pixHD's, sized by the keyword arguments of PIX2PIXHD_G (its defaults where not given)."""
    _check("netG", netG, GENERATORS)
    _check("norm", norm, NORMS)
    _check("upsample", upsample, UPSAMPLES)
    if netG in ("global", "local"):
        sizes = {**PIX2PIXHD_G, **pix2pixhd}
        if netG == "global":
            model = _global_generator(input_nc, output_nc, ngf, sizes["n_downsample_global"],
                                      sizes["n_blocks_global"], norm, upsample, name)
        else:
            model = _local_enhancer(input_nc, output_nc, ngf, norm, upsample, name, **sizes)
        model.input_multiple = generator_multiple(netG, sizes["n_downsample_global"], sizes["n_local_enhancers"])
        return model
    args = (ngf, norm, upsample, use_dropout, input_nc, output_nc, name)
    if netG in _RESNET_BLOCKS:
        return _resnet_generator(_RESNET_BLOCKS[netG], *args, antialias, antialias_up)
    if antialias or antialias_up:
        raise ValueError(f"netG {netG!r} has no anti-aliased variant; use a resnet generator.")
    return _unet_generator(_UNET_DOWNS[netG], *args)


# --- discriminators --------------------------------------------------------


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


# --- CUT's patch projection heads ------------------------------------------


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


# --- named features --------------------------------------------------------

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
