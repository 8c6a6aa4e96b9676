"""Tests for cyclegan_tf.networks.kernels: the sub-pixel and Winograd convs are the plain conv, up to float32
rounding argued from the computation (tests/numerics.py), forward and backward; the plain conv in training."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from numerics import assert_same_sums

from cyclegan_tf import networks as nets


def _beside_plain_conv(ours: keras.layers.Conv2D, shape: tuple) -> keras.layers.Conv2D:
    """A plain Conv2D with `ours`' configuration and random weights, both built for `shape`."""
    plain = keras.layers.Conv2D(ours.filters, ours.kernel_size)
    ours.build(shape), plain.build(shape)
    ours.set_weights([np.random.default_rng(4).normal(size=w.shape) for w in ours.get_weights()])
    plain.set_weights(ours.get_weights())
    return plain


def _magnitudes(plain: keras.layers.Conv2D, x: tf.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Σ|aᵢbᵢ| of the conv's output, its input gradient and its kernel gradient (of sum(y)): the same
    computations on absolute values (numerics.py)."""
    absolute = keras.layers.Conv2D(plain.filters, plain.kernel_size)
    absolute.build(x.shape)
    absolute.set_weights([np.abs(w) for w in plain.get_weights()])
    ax = tf.abs(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(ax)
        y = absolute(ax)
    return y.numpy(), tape.gradient(y, ax).numpy(), tape.gradient(y, absolute.kernel).numpy()


@pytest.mark.parametrize("shape", [(2, 14, 20, 5), (1, 13, 12, 4)])  # even and odd output sides
def test_subpixel_conv_is_the_plain_conv_forward_and_backward(shape: tuple) -> None:
    x = tf.random.normal(shape, seed=3)
    ours = nets.SubpixelConv2D(3, 7)
    plain = _beside_plain_conv(ours, shape)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y, expected = ours(x, training=False), plain(x)
    # Sums of 7·7·C products (the 8×8 phase kernels' extra taps are zeros) plus the bias; of 7·7·filters
    # for the input gradient; of N·H·W for the kernel gradient.
    magnitude, dx_magnitude, dk_magnitude = _magnitudes(plain, x)
    n, h, w, c = y.shape
    assert_same_sums(y, expected, magnitude, 8 * 8 * shape[3] + 1, err_msg="outputs")
    assert_same_sums(tape.gradient(y, x), tape.gradient(expected, x), dx_magnitude, 8 * 8 * c, err_msg="dx")
    assert_same_sums(tape.gradient(y, ours.kernel), tape.gradient(expected, plain.kernel), dk_magnitude, n * h * w,
                     err_msg="dkernel")
    unknown_sides = tf.function(ours, input_signature=[tf.TensorSpec([None, None, None, shape[3]])])
    assert_same_sums(unknown_sides(x), expected, magnitude, 8 * 8 * shape[3] + 1)
    np.testing.assert_array_equal(ours(x, training=True).numpy(), expected.numpy())  # the plain conv in training


@pytest.mark.parametrize("shape", [(2, 10, 14, 6), (1, 9, 12, 5), (1, 8, 11, 4), (1, 3, 3, 4)])  # even, odd, 1×1
def test_winograd_conv_is_the_plain_conv(shape: tuple) -> None:
    x = tf.random.normal(shape, seed=5)
    ours = nets.WinogradConv2D(7, 3)
    expected = _beside_plain_conv(ours, shape)(x).numpy()
    # Each output is a sum over C channels of 16 transformed products, in a chain of about 16 more rounded
    # operations (the transforms); the transforms' absolute row sums (Bᵀ 2, G 1.5, Aᵀ 3, squared in 2-D)
    # bound the values rounded by 81·C·max|x|·max|k|, and the plain conv's own rounding lies within that.
    c = shape[3]
    magnitude = 81 * c * float(tf.reduce_max(tf.abs(x))) * float(np.abs(ours.kernel.numpy()).max())
    magnitude += float(np.abs(ours.bias.numpy()).max())
    assert_same_sums(ours(x, training=False), expected, magnitude, 9 * c + 16)
    unknown_sides = tf.function(ours, input_signature=[tf.TensorSpec([None, None, None, shape[3]])])
    assert_same_sums(unknown_sides(x), expected, magnitude, 9 * c + 16)
    traced = unknown_sides.get_concrete_function()
    assert "BatchMatMulV2" in {op.type for op in traced.graph.get_operations()}
    bare = tf.function(lambda t: nets.winograd_conv3x3(t, ours.kernel), input_signature=unknown_sides.input_signature)
    assert bare.get_concrete_function().output_shapes.as_list() == [None, None, None, 7]  # norms read the channels
    assert ours(x, training=False).shape == expected.shape
    np.testing.assert_array_equal(ours(x, training=True).numpy(), expected)  # the plain conv in training
    with nets.direct_convs():  # and in graphs for other runtimes
        np.testing.assert_array_equal(ours(x, training=False).numpy(), expected)
