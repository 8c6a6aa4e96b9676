"""The building blocks the generators and discriminators share, padded explicitly so that every
alignment matches PyTorch's."""
from __future__ import annotations

import keras

from cyclegan_tf.networks import layers
from cyclegan_tf.networks.kernels import SubpixelConv2D, WinogradConv2D
from cyclegan_tf.networks.layers import BatchNorm, Cropping2D, Dropout, InstanceNorm, ReflectionPad2D


def _conv(filters, kernel, strides=1, use_bias=True, **kwargs):
    # Always "valid": padding is explicit so that alignment matches PyTorch.
    return keras.layers.Conv2D(
        filters,
        kernel,
        strides,
        use_bias=use_bias,
        kernel_initializer=layers._init(),
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
            gamma_initializer=keras.initializers.RandomNormal(1.0, layers._initialization[1]),
            name=name,
        )(x)
    return x

def _upsample(x, filters, kernel, upsample, use_bias):
    """Exact 2× upsampling by a transposed conv, or (against checkerboard artifacts)
    by nearest resize + reflect-padded 3×3 conv, whatever `kernel`."""
    if upsample == "transpose":
        x = keras.layers.Conv2DTranspose(
            filters, kernel, 2, use_bias=use_bias, kernel_initializer=layers._init()
        )(x)
        # Crop the 2H + kernel - 2 rows as PyTorch's padding=1 (+ output_padding=1
        # for kernel 3) does; Keras' "same" would shift kernel 3 by one pixel.
        return Cropping2D(((1, kernel - 3), (1, kernel - 3)))(x)
    return _reflect_conv3(keras.layers.UpSampling2D(2, interpolation="nearest")(x), filters, use_bias)

def _reflect_conv3(x, filters, use_bias):
    """A reflection-padded 3×3 conv (a WinogradConv2D)."""
    return WinogradConv2D(filters, 3, use_bias=use_bias, kernel_initializer=layers._init())(ReflectionPad2D(1)(x))

def _relu(x, name=None):
    return keras.layers.ReLU(name=name)(x)

def _lrelu(x, name=None):
    return keras.layers.LeakyReLU(negative_slope=0.2, name=name)(x)  # Keras' default slope is 0.3

def _resnet_block(x, filters, norm, use_dropout, name=None, use_bias=None):
    use_bias = norm != "batch" if use_bias is None else use_bias
    y = _relu(_normalize(_reflect_conv3(x, filters, use_bias), norm))
    if use_dropout:
        y = Dropout(0.5)(y)
    y = _reflect_conv3(y, filters, use_bias)
    return keras.layers.Add(name=name)([x, _normalize(y, norm)])  # no ReLU after the sum

def _rgb_head(x, output_nc):
    """The last 7×7 conv to `output_nc` channels (a SubpixelConv2D) and the tanh, in float32."""
    x = SubpixelConv2D(output_nc, 7, kernel_initializer=layers._init())(ReflectionPad2D(3)(x))
    return keras.layers.Activation("tanh", dtype="float32", name="output")(x)
