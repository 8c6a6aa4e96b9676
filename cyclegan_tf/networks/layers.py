"""The layers the networks are built of that Keras does not have as the official code computes them:
reflection pads, instance norm and test-time batch norm, CUT's blurred sampling, pix2pixHD's pooling and
label encoder; the precision and initialisation the networks are built with.
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence

import keras
import tensorflow as tf

from cyclegan_tf.networks.statistics import _statistics

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
    (savedmodel.smallest_side relies on its error)."""
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
    With `edges`, one more channel: 1 where a pixel's class differs from a 4-neighbour's (pix2pixHD's
    `get_edges`, applied to the classes, since instance maps are not read). Computes in float32 whatever
    the precision: bf16 cannot hold the grey values exactly."""

    def __init__(self, label_nc: int, palette: Sequence[Sequence[int]] = (), edges: bool = False, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.label_nc, self.palette = int(label_nc), [list(map(int, c)) for c in palette]
        self.edges = bool(edges)

    def call(self, x):
        value = (tf.cast(x, tf.float32) + 1.0) * 127.5
        if self.palette:
            distance = tf.reduce_sum(tf.square(value[..., None, :] - tf.constant(self.palette, tf.float32)), -1)
            ids = tf.argmin(distance, axis=-1, output_type=tf.int32)
        else:
            ids = tf.cast(tf.round(value[..., 0]), tf.int32)
        coded = tf.one_hot(ids, self.label_nc, dtype=tf.float32)
        return tf.concat([coded, class_edges(ids)[..., None]], -1) if self.edges else coded

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.label_nc + self.edges)

    def get_config(self):
        return {**super().get_config(), "label_nc": self.label_nc, "palette": self.palette, "edges": self.edges}


def class_edges(ids: tf.Tensor) -> tf.Tensor:
    """[N, H, W] → float32 [N, H, W]: 1 on both pixels of every horizontally or vertically adjacent pair of
    different classes, as pix2pixHD's get_edges marks an instance map's."""
    across = tf.not_equal(ids[:, :, 1:], ids[:, :, :-1])
    down = tf.not_equal(ids[:, 1:], ids[:, :-1])
    no_col, no_row = tf.zeros_like(across[:, :, :1]), tf.zeros_like(down[:, :1])
    edge = (tf.concat([no_col, across], 2) | tf.concat([across, no_col], 2)
            | tf.concat([no_row, down], 1) | tf.concat([down, no_row], 1))
    return tf.cast(edge, tf.float32)

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

# What batch norm and dropout do at test time (not in training): "image", the image's own statistics and no
# dropout; "eval", the running statistics (the official test.py --eval); "train", the batch's statistics with
# dropout on (the official test.py without --eval). Read when a graph is traced.
TEST_MODES = ("image", "eval", "train")
_test_mode: contextvars.ContextVar[str] = contextvars.ContextVar("test_mode", default="image")


@contextlib.contextmanager
def at_test_time(mode: str) -> Iterator[None]:
    """Networks called (graphs traced) within it compute batch norm and dropout at test time as `mode` says."""
    _check("test_mode", mode, TEST_MODES)
    token = _test_mode.set(mode)
    try:
        yield
    finally:
        _test_mode.reset(token)


@keras.saving.register_keras_serializable(package="cyclegan_tf")
class Dropout(keras.layers.Dropout):
    """Keras' Dropout, kept on at test time within at_test_time("train"), as the official test.py keeps it."""

    def call(self, inputs, training=False):
        return super().call(inputs, training=training or _test_mode.get() == "train")


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
        if _test_mode.get() == "eval":
            return super().call(inputs, training=False, mask=mask)
        if _statistics.get() is not None:
            return _statistics.get().normalize(self, inputs)
        x = tf.cast(inputs, tf.float32)
        mean, var = tf.nn.moments(x, axes=[1, 2], keepdims=True)
        y = tf.nn.batch_normalization(x, mean, var, tf.cast(self.beta, tf.float32), tf.cast(self.gamma, tf.float32),
                                      self.epsilon)
        return tf.cast(y, self.compute_dtype)

def seed_states(*models: keras.Model) -> list:
    """The random states of the models' dropout layers: tf.train.Checkpoint does not reach them
    through a Keras model, and an exact resume needs them."""
    return [v for m in models for v in m.non_trainable_variables if "seed_generator" in v.path]
