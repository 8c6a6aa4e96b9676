"""Norm statistics shared across calls: the tiles of a large image normalised as the whole image is.

Test-time norm layers (instance norm; batch norm, which at test normalises by the image's own statistics)
read `_statistics`: within `norm_statistics()` they record their statistics on one image, or use given ones.
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import keras
import tensorflow as tf


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
