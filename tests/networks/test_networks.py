"""Tests for cyclegan_tf.networks: fidelity to the official PyTorch models, shapes, saving (the inference
kernels: test_kernels.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from numerics import U32, U_BF16, elementwise_rtol, gamma

from cyclegan_tf import networks as nets

CONVS = (keras.layers.Conv2D, keras.layers.Conv2DTranspose)


def _images(n, h, w, c=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, h, w, c)).astype("float32")


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _layers(model, cls):
    return [layer for layer in model.layers if isinstance(layer, cls)]


def _official_unet_params(num_downs, ngf, nc=3):
    """Trainable parameters of the official UnetGenerator with BatchNorm2d.

    Mirrors UnetSkipConnectionBlock: 4×4 convs without bias (BatchNorm follows)
    except the outermost transposed conv; the innermost block has no down norm.
    """

    def conv(cin, cout, bias=False):
        return 16 * cin * cout + (cout if bias else 0)

    def bn(c):
        return 2 * c  # weight and bias; running stats are buffers in PyTorch

    f = 8 * ngf
    total = conv(f, f) + conv(f, f) + bn(f)  # innermost
    total += (num_downs - 5) * (conv(f, f) + bn(f) + conv(2 * f, f) + bn(f))
    for outer, inner in ((4 * ngf, 8 * ngf), (2 * ngf, 4 * ngf), (ngf, 2 * ngf)):
        total += conv(outer, inner) + bn(inner) + conv(2 * inner, outer) + bn(outer)
    return total + conv(nc, ngf) + conv(2 * ngf, nc, bias=True)  # outermost


# --- fidelity --------------------------------------------------------------


def test_exact_parameter_counts():
    assert nets.define_G("resnet_9blocks").count_params() == 11_378_179
    assert nets.define_G("resnet_6blocks").count_params() == 11_378_179 - 3 * 1_180_160
    assert nets.define_D("basic").count_params() == 2_764_737
    assert nets.define_D("n_layers", n_layers_D=3).count_params() == 2_764_737


def test_unet_parameter_counts_match_official_structure():
    unet = nets.define_G("unet_256", norm="batch")
    assert _trainable(unet) == _official_unet_params(8, 64) == 54_413_955  # "54.414 M"
    small = nets.define_G("unet_128", ngf=8, norm="batch")
    assert _trainable(small) == _official_unet_params(7, 8)


def test_basic_discriminator_gives_30x30_patches_for_256_input():
    d = nets.define_D("basic", ndf=8)
    assert d(_images(1, 256, 256)).shape == (1, 30, 30, 1)
    assert nets.define_D("basic").compute_output_shape((1, 256, 256, 3)) == (
        1,
        30,
        30,
        1,
    )


def test_pixel_discriminator_scores_every_pixel():
    d = nets.define_D("pixel", ndf=8)
    assert d(_images(2, 16, 24)).shape == (2, 16, 24, 1)


@pytest.mark.parametrize(
    "netG, shape, ngf",
    [
        ("resnet_9blocks", (32, 32), 8),
        ("resnet_6blocks", (32, 48), 8),
        ("unet_128", (128, 128), 4),
        ("unet_256", (256, 256), 4),
    ],
)
def test_generators_preserve_size_and_range(netG, shape, ngf):
    assert all(s % nets.generator_multiple(netG) == 0 for s in shape)
    y = keras.ops.convert_to_numpy(nets.define_G(netG, ngf=ngf)(_images(1, *shape)))
    assert y.shape == (1, *shape, 3)
    assert y.dtype == np.float32
    assert np.all(np.abs(y) <= 1.0)


def test_generator_helpers():
    assert nets.default_netG(128) == "resnet_6blocks"
    assert nets.default_netG(256) == "resnet_9blocks"
    assert [nets.generator_multiple(g) for g in nets.GENERATORS] == [4, 4, 256, 128, 16, 32]
    assert nets.generator_multiple("local", n_downsample_global=3, n_local_enhancers=2) == 32


# --- normalisation ---------------------------------------------------------


def test_instance_norm_is_per_sample_per_channel():
    rng = np.random.default_rng(0)
    # Each sample and channel gets its own offset and scale.
    x = rng.normal(size=(3, 8, 8, 4)) * rng.uniform(0.5, 5, (3, 1, 1, 4)) + rng.normal(
        0, 10, (3, 1, 1, 4)
    )
    x = x.astype("float32")
    norm = nets.InstanceNorm()
    y = keras.ops.convert_to_numpy(norm(x))
    assert norm.weights == []  # affine=False
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(1, 2)), 1.0, atol=1e-3)
    layer_norm = keras.layers.GroupNormalization(
        groups=1, center=False, scale=False, epsilon=1e-5
    )
    assert not np.allclose(y, keras.ops.convert_to_numpy(layer_norm(x)), atol=1e-2)


def test_instance_norm_matches_reference_formula():
    x = _images(2, 5, 7, 3)
    mean, var = x.mean(axis=(1, 2), keepdims=True), x.var(axis=(1, 2), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(nets.InstanceNorm()(x)), expected, rtol=0,
                               atol=_norm_atol(x, expected, U32))


def _norm_atol(x: np.ndarray, y: np.ndarray, u: float) -> float:
    """Instance norm's rounding: the mean and variance are sums of H·W terms (γ_HW relative to max|x|, then
    divided by σ), and a few elementwise operations on the normalised values. In half precision the
    statistics are float32 and only inputs and outputs are rounded, each by u."""
    sigma = float(np.sqrt(x.var(axis=(1, 2)).min() + 1e-5))
    hw = x.shape[1] * x.shape[2]
    if u != U32:
        return 2 * u * (float(np.abs(x).max()) / sigma + float(np.abs(y).max()))
    return 4 * gamma(hw) * float(np.abs(x).max()) / sigma + elementwise_rtol(4) * float(np.abs(y).max())


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("policy", ["float32", pytest.param("mixed_bfloat16", marks=pytest.mark.half_precision)])
def test_instance_norm_gradients_match_reference_formula(batch, policy):
    """The fused kernel (and its [1, H, W, N·C] view for N > 1) is the formula, backward too."""
    import tensorflow as tf

    norm = nets.InstanceNorm(dtype=policy)
    x = tf.constant(_images(batch, 6, 5, 4) * 3 + 1)
    g = tf.constant(_images(batch, 6, 5, 4, seed=1))

    def grad(fn, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.cast(fn(x), tf.float32)
            loss = tf.reduce_sum(y * g)
        return y, tape.gradient(loss, x)

    def formula(x):
        mean, var = tf.nn.moments(x, axes=[1, 2], keepdims=True)
        return (x - mean) * tf.math.rsqrt(var + 1e-5)

    # Unknown batch and spatial sizes, as in an exported SavedModel.
    traced = tf.function(lambda x: grad(norm, x), input_signature=[tf.TensorSpec([None, None, None, 4])])
    y, dx = traced(x)
    y_ref, dx_ref = grad(formula, x)
    assert norm.compute_dtype == policy.removeprefix("mixed_")
    u = U32 if policy == "float32" else U_BF16
    np.testing.assert_allclose(y.numpy(), y_ref.numpy(), rtol=0, atol=_norm_atol(x.numpy(), y_ref.numpy(), u))
    # dx = (g − mean(g) − x̂·mean(g·x̂)) / σ: two more sums of H·W terms over values of size |g|·|x̂|
    scale = float(np.abs(g.numpy()).max()) * (1 + float(np.abs(y_ref.numpy()).max()))
    np.testing.assert_allclose(dx.numpy(), dx_ref.numpy(), rtol=0,
                               atol=_norm_atol(x.numpy(), y_ref.numpy(), u) * 2 * scale)


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_other_norms_build_and_run(norm):
    g = nets.define_G("resnet_6blocks", ngf=8, norm=norm)
    d = nets.define_D("basic", ndf=8, norm=norm)
    assert g(_images(2, 32, 32)).shape == (2, 32, 32, 3)
    assert d(_images(2, 32, 32)).shape == (2, 2, 2, 1)
    has_bn = bool(_layers(g, keras.layers.BatchNormalization))
    assert has_bn == (norm == "batch")
    assert not _layers(g, nets.InstanceNorm)


@pytest.mark.parametrize(
    "build, n_biased_with_batch_norm",
    [
        (
            lambda norm: nets.define_G("resnet_6blocks", ngf=8, norm=norm),
            1,
        ),  # last conv
        (
            lambda norm: nets.define_G("unet_128", ngf=8, norm=norm),
            1,
        ),  # outermost upconv
        (
            lambda norm: nets.define_D("basic", ndf=8, norm=norm),
            2,
        ),  # first and last conv
        (lambda norm: nets.define_D("pixel", ndf=8, norm=norm), 2),
    ],
    ids=["resnet", "unet", "basic_D", "pixel_D"],
)
def test_conv_bias_only_where_no_offset_follows(build, n_biased_with_batch_norm):
    for norm in ("instance", "none"):
        assert all(conv.use_bias for conv in _layers(build(norm), CONVS))
    convs = _layers(build("batch"), CONVS)
    assert sum(conv.use_bias for conv in convs) == n_biased_with_batch_norm


def test_cropping_is_keras_cropping_forward_and_backward():
    import tensorflow as tf

    x = tf.constant(_images(2, 9, 7, 5))
    weights = tf.reshape(tf.range(2 * 8 * 4 * 5, dtype=tf.float32), [2, 8, 4, 5])  # a distinct gradient per pixel
    results = []
    for layer in (nets.Cropping2D(((1, 0), (1, 2))), keras.layers.Cropping2D(((1, 0), (1, 2)))):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * weights)
        results.append((y.numpy(), tape.gradient(loss, x).numpy()))
    for ours, keras_ in zip(*results):
        np.testing.assert_array_equal(ours, keras_)


@pytest.mark.parametrize("kernel", [3, 4])
def test_transposed_conv_aligns_with_pytorch(kernel):
    """ConvTranspose2d(stride 2, padding 1, output_padding kernel - 3): out[2i + a - 1] += w[a] x[i]."""
    rng = np.random.default_rng(kernel)
    inputs = keras.Input((None, None, 1))
    model = keras.Model(
        inputs, nets.blocks._upsample(inputs, 1, kernel, "transpose", use_bias=False)
    )
    w = rng.normal(size=(kernel, kernel)).astype("float32")
    model.set_weights([w.reshape(kernel, kernel, 1, 1)])
    x = rng.normal(size=(1, 3, 4, 1)).astype("float32")
    expected = np.zeros((6, 8), "float32")
    for i, j, a, b in np.ndindex(3, 4, kernel, kernel):
        if 0 <= 2 * i + a - 1 < 6 and 0 <= 2 * j + b - 1 < 8:
            expected[2 * i + a - 1, 2 * j + b - 1] += w[a, b] * x[0, i, j, 0]
    y = keras.ops.convert_to_numpy(model(x))
    np.testing.assert_allclose(y[0, :, :, 0], expected, atol=1e-5)


# --- options ---------------------------------------------------------------


def test_resize_upsampling_replaces_transposed_convs():
    transpose = nets.define_G("resnet_6blocks", ngf=8, upsample="transpose")
    resize = nets.define_G("resnet_6blocks", ngf=8, upsample="resize")
    assert len(_layers(transpose, keras.layers.Conv2DTranspose)) == 2
    assert not _layers(transpose, keras.layers.UpSampling2D)
    assert not _layers(resize, keras.layers.Conv2DTranspose)
    assert len(_layers(resize, keras.layers.UpSampling2D)) == 2
    assert resize(_images(1, 32, 32)).shape == (1, 32, 32, 3)
    unet = nets.define_G("unet_128", ngf=4, upsample="resize")
    assert unet(_images(1, 128, 128)).shape == (1, 128, 128, 3)


@pytest.mark.parametrize(
    "netG, n_dropout", [("resnet_6blocks", 6), ("unet_256", 3), ("unet_128", 2)]
)
def test_dropout_placement(netG, n_dropout):
    assert not _layers(nets.define_G(netG, ngf=4), keras.layers.Dropout)
    layers = _layers(nets.define_G(netG, ngf=4, use_dropout=True), keras.layers.Dropout)
    assert len(layers) == n_dropout and all(layer.rate == 0.5 for layer in layers)


def test_discriminator_leaky_relu_slope_is_0_2():
    for netD in ("basic", "pixel"):
        slopes = [
            layer.negative_slope
            for layer in _layers(nets.define_D(netD, ndf=8), keras.layers.LeakyReLU)
        ]
        assert slopes and all(s == pytest.approx(0.2) for s in slopes)


@pytest.mark.parametrize(
    "build",
    [
        lambda: nets.define_G("resnet_12blocks"),
        lambda: nets.define_G(norm="layer"),
        lambda: nets.define_G(upsample="bilinear"),
        lambda: nets.define_D("patch"),
        lambda: nets.define_D(norm="group"),
        lambda: nets.define_D("n_layers", n_layers_D=0),
        lambda: nets.generator_multiple("unet_512"),
    ],
    ids=["netG", "G_norm", "upsample", "netD", "D_norm", "n_layers_D", "multiple"],
)
def test_bad_names_raise_value_error(build):
    with pytest.raises(ValueError, match="expected one of|n_layers_D"):
        build()


@pytest.mark.half_precision
def test_mixed_precision_outputs_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        g = nets.define_G("resnet_6blocks", ngf=8)
        d = nets.define_D("basic", ndf=8)
        x = _images(1, 32, 32)
        assert g(x).dtype == "float32" and d(x).dtype == "float32"
        assert any(layer.compute_dtype == "float16" for layer in g.layers)
    finally:
        keras.mixed_precision.set_global_policy("float32")


# --- serialisation ---------------------------------------------------------


@pytest.mark.parametrize(
    "build, size",
    [
        (
            lambda: nets.define_G("resnet_6blocks", ngf=8, upsample="resize", name="F"),
            32,
        ),
        (lambda: nets.define_G("unet_128", ngf=4, norm="batch"), 128),
        (lambda: nets.define_D("basic", ndf=8, name="D_X"), 32),
    ],
    ids=["resnet_resize", "unet_batch", "basic_D"],
)
def test_save_and_load_roundtrip(build, size, tmp_path):
    model = build()
    x = _images(2, size, size)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.name == model.name
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x))
    )


# --- named features --------------------------------------------------------


def _features(model, x):
    return dict(zip(nets.feature_names(model), nets.named_features(model, nets.feature_names(model))(x)))


def test_resnet_features_have_expected_names_and_shapes():
    g = nets.define_G("resnet_6blocks", ngf=4)
    blocks = {f"block{i}": (1, 8, 12, 16) for i in range(1, 7)}
    level = {"_conv": 0, "_norm": 0, "": 0}
    downs = {f"down{i}{k}": (1, 32 >> i, 48 >> i, 4 << i) for i in (1, 2) for k in level}
    expected = {"input_pad": (1, 38, 54, 3), "stem_conv": (1, 32, 48, 4), "stem_norm": (1, 32, 48, 4),
                "stem": (1, 32, 48, 4), **downs, **blocks,
                "up1": (1, 16, 24, 8), "up2": (1, 32, 48, 4), "output": (1, 32, 48, 3)}
    features = _features(g, _images(1, 32, 48))
    assert list(features) == list(expected)  # network order
    assert {name: tuple(f.shape) for name, f in features.items()} == expected


@pytest.mark.parametrize("norm", nets.NORMS)
def test_unet_features_have_expected_names_and_shapes(norm):
    g = nets.define_G("unet_128", ngf=4, norm=norm)
    filters = [4, 8, 16, 32, 32, 32, 32]
    downs = {f"down{k}": (1, 128 >> k, 128 >> k, filters[k - 1]) for k in range(1, 8)}
    # upK joins down{7-K}'s skip with as many upsampled channels.
    ups = {f"up{k}": (1, 128 >> (7 - k), 128 >> (7 - k), 2 * filters[6 - k]) for k in range(1, 7)}
    expected = {**downs, **ups, "output": (1, 128, 128, 3)}
    features = _features(g, _images(1, 128, 128))
    assert list(features) == list(expected)
    assert {name: tuple(f.shape) for name, f in features.items()} == expected


@pytest.mark.parametrize(
    "netD, expected",
    [
        ("basic", {"layer1": 32, "layer2": 16, "layer3": 8, "layer4": 7, "score": 6}),
        ("pixel", {"layer1": 64, "layer2": 64, "score": 64}),
    ],
)
def test_discriminator_features_are_each_leaky_relu_and_the_score(netD, expected):
    d = nets.define_D(netD, ndf=4)
    x = _images(1, 64, 64)
    features = _features(d, x)
    assert {name: f.shape[1] for name, f in features.items()} == expected
    assert all(type(d.get_layer(name)) is keras.layers.LeakyReLU for name in expected if name != "score")
    np.testing.assert_array_equal(features["score"].numpy(), d(x).numpy())


@pytest.mark.parametrize("netG, size", [("resnet_6blocks", 16), ("unet_128", 128)])
def test_feature_model_shares_weights_and_ends_in_the_output(netG, size):
    g = nets.define_G(netG, ngf=4)
    x = _images(2, size, size)
    features = nets.generator_features(g, ["output", "down1"])
    assert [id(w) for w in features.weights] == [id(w) for w in g.weights]
    output, down1 = features(x)
    np.testing.assert_array_equal(output.numpy(), g(x).numpy())
    conv = _layers(g, keras.layers.Conv2D)[0]  # feeds down1 in both networks
    conv.kernel.assign(conv.kernel * 2.0)
    assert not np.allclose(features(x)[1].numpy(), down1.numpy())


def test_unknown_feature_name_lists_the_available_ones():
    g = nets.define_G("resnet_6blocks", ngf=4)
    available = r"available: input_pad, stem_conv, stem_norm, stem, down1_conv, .*, up2, output\.$"
    with pytest.raises(ValueError, match=r"\['block7'\].*" + available):
        nets.named_features(g, ["stem", "block7"])


def _weight_shapes(netG, ngf, norm, upsample, nc=3):
    """define_G's weight shapes in `model.weights` order, written from the official layer sequence
    (and checked equal, for every netG, norm and upsample, to the models before their layers got names)."""
    bias = norm != "batch"

    def conv(k, cin, cout, use_bias=bias):  # with batch norm, a conv has no bias iff the norm follows
        return [(k, k, cin, cout)] + [(cout,)] * use_bias + [(cout,)] * 4 * (norm == "batch" and not use_bias)

    def up(k, cin, cout, use_bias=bias):
        if upsample == "resize":
            return conv(3, cin, cout, use_bias)
        _, *rest = conv(k, cin, cout, use_bias)
        return [(k, k, cout, cin)] + rest  # a Conv2DTranspose kernel is (k, k, out, in)

    if netG in ("global", "local"):
        return _pix2pixhd_weight_shapes(netG, ngf, norm, upsample, nc)
    if netG.startswith("resnet"):
        blocks = int(netG.removeprefix("resnet_").removesuffix("blocks"))
        return (conv(7, nc, ngf) + conv(3, ngf, 2 * ngf) + conv(3, 2 * ngf, 4 * ngf)
                + conv(3, 4 * ngf, 4 * ngf) * 2 * blocks + up(3, 4 * ngf, 2 * ngf) + up(3, 2 * ngf, ngf)
                + conv(7, ngf, nc, use_bias=True))
    n = {"unet_256": 8, "unet_128": 7}[netG]
    f = [ngf * min(2**i, 8) for i in range(n)]
    # Convs without norm: the first and the innermost downs (which keep no bias with batch norm).
    shapes = [(4, 4, nc, f[0])] + [(f[0],)] * bias
    for i in range(1, n):
        shapes += conv(4, f[i - 1], f[i]) if i < n - 1 else [(4, 4, f[i - 1], f[i])] + [(f[i],)] * bias
    for i in range(n - 1, 0, -1):
        shapes += up(4, f[i] * (1 if i == n - 1 else 2), f[i - 1])
    return shapes + up(4, 2 * f[0], nc, use_bias=True)


def _pix2pixhd_weight_shapes(netG, ngf, norm, upsample, nc=3, n_down=4, blocks=9, blocks_local=3):
    """pix2pixHD's layer sequence (models/networks.py): every conv biased, batch norm adding its four."""
    def conv(k, cin, cout):
        return [(k, k, cin, cout), (cout,)] + [(cout,)] * 4 * (norm == "batch")

    def up(cin, cout):
        return conv(3, cin, cout) if upsample == "resize" else [(3, 3, cout, cin)] + conv(3, cin, cout)[1:]

    def global_part(f):
        shapes = conv(7, nc, f)
        for i in range(n_down):
            shapes += conv(3, f * 2**i, f * 2 ** (i + 1))
        shapes += conv(3, f * 2**n_down, f * 2**n_down) * 2 * blocks
        for i in range(n_down, 0, -1):
            shapes += up(f * 2**i, f * 2 ** (i - 1))
        return shapes

    head = [(7, 7, ngf, nc), (nc,)]
    if netG == "global":
        return global_part(ngf) + head
    # Keras orders the local generator's weights by layer depth: the enhancer's first convs come before the
    # nested global generator (a checkpoint only needs the order to be fixed); the test reads them so.
    front = conv(7, nc, ngf) + conv(3, ngf, 2 * ngf)
    return front + global_part(2 * ngf) + conv(3, 2 * ngf, 2 * ngf) * 2 * blocks_local + up(2 * ngf, ngf) + head


@pytest.mark.parametrize("netG", nets.GENERATORS)
def test_weight_order_is_the_official_layer_sequence(netG):
    """Checkpoints restore by position: naming layers must not add, drop or reorder weights."""
    for norm, upsample in (("instance", "transpose"), ("batch", "resize"), ("none", "transpose")):
        g = nets.define_G(netG, ngf=4, norm=norm, upsample=upsample, use_dropout=True)
        assert [tuple(w.shape) for w in g.weights] == _weight_shapes(netG, 4, norm, upsample)


# --- CUT's anti-aliased sampling and initialisation -------------------------


def _official_downsample(x):
    """CUT's Downsample written out: reflection pad 1, [1,2,1]⊗[1,2,1]/16 per channel, stride 2."""
    a = np.array([1.0, 2.0, 1.0]) / 4
    p = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
    h, w = (p.shape[1] - 3) // 2 + 1, (p.shape[2] - 3) // 2 + 1
    out = np.zeros((x.shape[0], h, w, x.shape[3]))
    for i in range(h):
        for j in range(w):
            out[:, i, j] = np.einsum("nabc,a,b->nc", p[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3], a, a)
    return out


def _official_upsample(x):
    """CUT's Upsample written out: replicate pad 1, transposed conv (stride 2) with [1,3,3,1]⊗[1,3,3,1]
    normalised ×4, padding 2, then [1:, 1:] and, the filter being even, [:-1, :-1]."""
    a = np.array([1.0, 3.0, 3.0, 1.0]) / 8
    k = np.outer(a, a) * 4
    p = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="edge")
    n, h, w, c = p.shape
    full = np.zeros((n, 2 * (h - 1) + 4, 2 * (w - 1) + 4, c))
    for i in range(h):
        for j in range(w):
            full[:, 2 * i:2 * i + 4, 2 * j:2 * j + 4] += p[:, i, j, None, None, :] * k[None, :, :, None]
    cropped = full[:, 2:-2, 2:-2][:, 1:, 1:]  # torch's padding=2, then [1:, 1:]
    return cropped[:, :-1, :-1]


@pytest.mark.parametrize("h, w", [(8, 8), (7, 10)])
def test_blur_pool_is_cuts_downsample(h, w):
    x = _images(2, h, w, 5)
    np.testing.assert_allclose(nets.BlurPool2D()(x).numpy(), _official_downsample(x), atol=1e-6)


def test_blur_upsample_is_cuts_upsample():
    x = _images(2, 5, 7, 3)
    ours = nets.BlurUpsample2D()(x).numpy()
    np.testing.assert_allclose(ours, _official_upsample(x), atol=1e-6)


def test_antialiased_networks_keep_sizes_and_official_layer_indices():
    g = nets.define_G("resnet_9blocks", ngf=4, antialias=True, antialias_up=True)
    x = _images(1, 32, 48)
    assert g(x).shape == (1, 32, 48, 3)
    official = nets.official_layer_names(g, antialias=True)
    # CUT's --nce_layers 0,4,8,12,16: padded input, the two stride-1 downsampling convs, blocks 1 and 5.
    assert [official[i] for i in (0, 4, 8, 12, 16)] == ["input_pad", "down1_conv", "down2_conv", "block1", "block5"]
    shapes = [tuple(f.shape) for f in nets.named_features(g, [official[i] for i in (0, 4, 8, 12, 16)])(x)]
    assert shapes == [(1, 38, 54, 3), (1, 32, 48, 8), (1, 16, 24, 16), (1, 8, 12, 16), (1, 8, 12, 16)]
    plain = nets.define_G("resnet_9blocks", ngf=4)
    assert [nets.official_layer_names(plain, antialias=False)[i] for i in (0, 4, 7, 8, 16)] == [
        "input_pad", "down1_conv", "down2_conv", "down2_norm", "block7"]
    assert g.count_params() == plain.count_params()  # blur and bilinear have no weights; convs keep their shapes
    d, d_plain = nets.define_D("basic", 4, antialias=True), nets.define_D("basic", 4)
    assert d(_images(1, 64, 64)).shape == d_plain(_images(1, 64, 64)).shape == (1, 6, 6, 1)
    assert d.count_params() == d_plain.count_params()
    with pytest.raises(ValueError, match="no anti-aliased variant"):
        nets.define_G("unet_128", antialias=True)


def test_xavier_initialisation_is_torchs_xavier_normal_with_gain():
    with nets.initialization("xavier", 0.02):
        g = nets.define_G("resnet_6blocks", ngf=16)
    # a 3×3 conv of a residual block: fan_in = fan_out = 9·64
    conv = [layer for layer in g.layers if isinstance(layer, keras.layers.Conv2D) and layer.kernel.shape[2] == 64][0]
    np.testing.assert_allclose(np.std(conv.kernel.numpy()), 0.02 * np.sqrt(2 / (9 * 64 + 9 * 64)), rtol=0.05)
    assert np.abs(conv.kernel.numpy()).max() > 3 * np.std(conv.kernel.numpy())  # untruncated, as torch's
    assert np.std(nets.define_G("resnet_6blocks", ngf=16).get_layer("stem_conv").kernel.numpy()) == pytest.approx(
        0.02, rel=0.05)  # and normal(0, 0.02) again outside the context


# --- pix2pixHD ---------------------------------------------------------------


def test_pix2pixhd_parameter_counts_are_the_official_ones():
    """Counted by hand from NVIDIA/pix2pixHD's models/networks.py (conv: cin·cout·k² + cout, every conv
    biased; InstanceNorm2d(affine=False) has none), for Cityscapes' input: 35 labels + 1 boundary map.
    GlobalGenerator(ngf 64, 4 downsamplings, 9 blocks): c7 36→64 112,960; downs 64→128 73,856,
    128→256 295,168, 256→512 1,180,160, 512→1024 4,719,616; 9 blocks × 2·(1024²·9 + 1024) = 169,887,744;
    ups 1024→512 4,719,104, 512→256 1,179,904, 256→128 295,040, 128→64 73,792; c7 64→3 9,411:
    182,546,755. LocalEnhancer(ngf 32): that global part at ngf 64 without its c7 head (182,537,344) and
    the enhancer: c7 36→32 56,480, 32→64 18,496, 3 blocks × 2·(64²·9 + 64) = 221,568, up 64→32 18,464,
    c7 32→3 4,707: 319,715. NLayerDiscriminator(39 = 36 + 3 channels, ndf 64, 3 layers): 40,000 +
    131,200 + 524,544 + 2,097,664 + 8,193 = 2,801,601 per scale."""
    assert nets.define_G("global", 64, input_nc=36).count_params() == 182_546_755
    local = nets.define_G("local", 32, input_nc=36)
    assert local.count_params() == 182_857_059
    assert local.get_layer("global").count_params() == 182_546_755 - 9_411
    assert nets.define_D("multiscale", 64, 3, input_nc=39, num_D=3).count_params() == 3 * 2_801_601


def test_multiscale_discriminator_scales_and_their_sizes():
    """pix2pixHD's PatchGAN pads its 4×4 convs by 2: a side s gives s/2 + 1 three times, then + 1 twice
    (256 → 129 → 65 → 33 → 34 → 35); each next scale sees the input average-pooled to half size."""
    d = nets.define_D("multiscale", 8, 3, input_nc=6, num_D=3)
    scales = d(_images(1, 256, 512, 6))
    assert [[tuple(f.shape) for f in s] for s in scales] == [
        [(1, 129, 257, 8), (1, 65, 129, 16), (1, 33, 65, 32), (1, 34, 66, 64), (1, 35, 67, 1)],
        [(1, 65, 129, 8), (1, 33, 65, 16), (1, 17, 33, 32), (1, 18, 34, 64), (1, 19, 35, 1)],
        [(1, 33, 65, 8), (1, 17, 33, 16), (1, 9, 17, 32), (1, 10, 18, 64), (1, 11, 19, 1)]]
    # Output i comes from the nested PatchGAN scale{num_D - 1 - i}, as the official module names them.
    half = nets.AvgPoolDown()(_images(1, 256, 512, 6, seed=3))
    np.testing.assert_allclose(d.get_layer("scale1")(half)[-1], d(_images(1, 256, 512, 6, seed=3))[1][-1], atol=1e-5)
    # Any D can return its features for feature matching: one scale of [layer1, …, score].
    basic = nets.define_D("basic", 4, features=True)(_images(1, 64, 64))
    assert len(basic) == 1 and [tuple(f.shape)[-1] for f in basic[0]] == [4, 8, 16, 32, 1]


def _official_avg_pool(x):
    """torch's AvgPool2d(3, stride=2, padding=1, count_include_pad=False) written out."""
    n, h, w, c = x.shape
    out = np.zeros((n, (h - 1) // 2 + 1, (w - 1) // 2 + 1, c))
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            window = x[:, max(0, 2 * i - 1):2 * i + 2, max(0, 2 * j - 1):2 * j + 2]
            out[:, i, j] = window.mean(axis=(1, 2))
    return out


@pytest.mark.parametrize("h,w", [(8, 8), (7, 10)])
def test_avg_pool_down_is_pix2pixhds_downsample(h, w):
    x = _images(2, h, w, 2)
    np.testing.assert_allclose(nets.AvgPoolDown()(x), _official_avg_pool(x), atol=1e-6)


def test_local_enhancer_runs_the_global_generator_on_the_pooled_input():
    g = nets.define_G("local", 4, n_downsample_global=2, n_blocks_global=1, n_blocks_local=1)
    x = _images(1, 32, 48)
    assert g(x).shape == (1, 32, 48, 3)
    inner = g.get_layer("global")
    assert isinstance(inner._inbound_nodes[0].parent_nodes[0].operation, nets.AvgPoolDown)
    assert inner(nets.AvgPoolDown()(x)).shape == (1, 16, 24, 8)  # 2·ngf channels at half size
    two = nets.define_G("local", 4, n_downsample_global=1, n_blocks_global=1, n_local_enhancers=2, n_blocks_local=1)
    assert two(_images(1, 16, 24)).shape == (1, 16, 24, 3) and two.get_layer("global").input.shape[-1] == 3


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_label_encoder_one_hot_from_grey_values_or_a_palette(policy):
    ids = np.array([[0, 1, 34], [35, 2, 255]])
    grey = np.repeat(ids[None, :, :, None] / 127.5 - 1.0, 3, axis=-1).astype("float32")
    with nets.precision({"float32": "fp32", "mixed_bfloat16": "bf16"}[policy]):
        encoder = nets.LabelEncoder(35)
    onehot = keras.ops.convert_to_numpy(encoder(grey))
    assert onehot.shape == (1, 2, 3, 35) and onehot.dtype == np.float32
    np.testing.assert_array_equal(onehot.argmax(-1)[0, 0], [0, 1, 34])  # exact: the encoder computes in float32
    np.testing.assert_array_equal(onehot.sum(-1)[0], [[1, 1, 1], [0, 1, 0]])  # ids ≥ label_nc: all zeros
    palette = [[40, 40, 160], [220, 50, 40], [240, 220, 60]]
    colours = np.array([[[[40, 40, 160], [238, 221, 58], [219, 52, 40]]]]) / 127.5 - 1.0  # JPEG-ish noise
    coded = nets.LabelEncoder(4, palette)(colours.astype("float32"))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(coded).argmax(-1), [[[0, 2, 1]]])
    assert coded.shape[-1] == 4


@pytest.mark.parametrize("padding, shape", [(1, (2, 5, 8, 3)), (3, (1, 9, 4, 2))])
def test_reflection_pad_is_mirror_pad_forward_and_backward(padding: int, shape: tuple) -> None:
    x = tf.random.normal(shape, seed=1)
    w = tf.random.normal([shape[0], shape[1] + 2 * padding, shape[2] + 2 * padding, shape[3]], seed=2)
    paddings = [[0, 0], [padding, padding], [padding, padding], [0, 0]]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours, theirs = nets.ReflectionPad2D(padding)(x), tf.pad(x, paddings, mode="REFLECT")
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(tape.gradient(ours, x, w).numpy(), tape.gradient(theirs, x, w).numpy())
    with pytest.raises(tf.errors.InvalidArgumentError):  # as MirrorPad: savedmodel.smallest_side relies on it
        nets.ReflectionPad2D(3)(tf.zeros([1, 3, 8, 2]))
