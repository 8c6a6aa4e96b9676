"""Inference kernels: the same convolutions as Keras' Conv2D, computed faster on CPUs at inference.

`SubpixelConv2D` (the generators' 7×7 RGB head) and `WinogradConv2D` (the residual blocks' 3×3 convs) hold
the same weights as a Conv2D and run the plain conv in training, in half precision and within
`direct_convs()` (graphs that other runtimes convert). docs/benchmarks.md has their measurements.
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import keras
import numpy as np
import tensorflow as tf

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
