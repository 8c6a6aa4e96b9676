import random
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from cyclegan_tf import losses


def test_lsgan_is_mean_squared_error_to_the_label() -> None:
    pred = tf.constant([[[[0.5]], [[1.5]]], [[[0.0]], [[1.0]]]])  # [2, 2, 1, 1]
    np.testing.assert_allclose(losses.gan_loss(pred, True), [(0.25 + 0.25) / 2, (1 + 0) / 2])
    np.testing.assert_allclose(losses.gan_loss(pred, False), [(0.25 + 2.25) / 2, (0 + 1) / 2])
    np.testing.assert_allclose(losses.gan_loss(pred, True, real_label=0.9), [(0.16 + 0.36) / 2, (0.81 + 0.01) / 2],
                               rtol=1e-6)


def test_vanilla_is_binary_cross_entropy_with_logits() -> None:
    pred = tf.constant([[[[0.0]]], [[[2.0]]]])
    np.testing.assert_allclose(losses.gan_loss(pred, True, "vanilla"), [np.log(2), np.log1p(np.exp(-2))], rtol=1e-6)
    np.testing.assert_allclose(losses.gan_loss(pred, False, "vanilla"), [np.log(2), np.log1p(np.exp(2))], rtol=1e-6)


def test_wgan_and_bad_mode() -> None:
    pred = tf.constant([[[[3.0]]]])
    assert float(losses.gan_loss(pred, True, "wgangp")[0]) == -3.0
    assert float(losses.gan_loss(pred, False, "wgangp")[0]) == 3.0
    with pytest.raises(ValueError, match="lsgan"):
        losses.gan_loss(pred, True, "hinge")


def test_l1_per_example() -> None:
    a = tf.zeros([2, 4, 4, 3])
    b = tf.concat([tf.ones([1, 4, 4, 3]), -2 * tf.ones([1, 4, 4, 3])], 0)
    np.testing.assert_allclose(losses.l1(a, b), [1.0, 2.0])


def test_gradient_penalty_of_a_linear_critic() -> None:
    w = tf.constant(np.full((1, 1, 3, 1), 0.5, np.float32))

    def critic(x, training=True):  # score = sum of 0.5·x: gradient norm 0.5·sqrt(numel)
        return tf.nn.conv2d(x, w, 1, "VALID")

    real, fake = tf.ones([2, 2, 2, 3]), tf.zeros([2, 2, 2, 3])
    expected = (0.5 * np.sqrt(12) - 1) ** 2
    np.testing.assert_allclose(losses.gradient_penalty(critic, real, fake, tf.constant([1, 2])), [expected] * 2,
                               rtol=1e-5)


def test_gan_loss_sums_the_scales_of_a_multiscale_discriminator() -> None:
    s1, s2 = tf.fill([2, 4, 4, 1], 0.5), tf.fill([2, 2, 2, 1], 0.25)
    features = [tf.ones([2, 8, 8, 3])]
    nested = [[*features, s1], [*features, s2]]
    np.testing.assert_allclose(losses.gan_loss(nested, True), [0.25 + 0.5625] * 2, rtol=1e-6)
    np.testing.assert_allclose(losses.gan_loss([s1, s2], False), [0.25 + 0.0625] * 2, rtol=1e-6)


def test_feature_matching_weights_as_pix2pixhd() -> None:
    """Two scales of two features: weight 4/2 · 1/2 = 1 each; the score maps do not count."""
    real = [[tf.zeros([1, 4, 4, 2]), tf.zeros([1, 2, 2, 2]), tf.zeros([1, 1, 1, 1])]] * 2
    fake = [[tf.fill([1, 4, 4, 2], 0.5), tf.fill([1, 2, 2, 2], 1.0), tf.fill([1, 1, 1, 1], 9.0)]] * 2
    np.testing.assert_allclose(losses.feature_matching(real, fake), [2 * (0.5 + 1.0)], rtol=1e-6)
    real_var = tf.Variable(tf.zeros([1, 4, 4, 2]))
    with tf.GradientTape() as tape:  # real features are targets: no gradient reaches them
        loss = losses.feature_matching([[real_var, tf.zeros([1, 1, 1, 1])]], [[fake[0][0], fake[0][2]]])
    assert tape.gradient(loss, real_var) is None


def _official_patch_nce(q: np.ndarray, k: np.ndarray, T: float, batch_dim: int) -> np.ndarray:
    """CUT's PatchNCELoss.forward written out with loops, on [B·P, C] features: the loss of each patch."""
    n, c = q.shape
    qs, ks = q.reshape(batch_dim, -1, c), k.reshape(batch_dim, -1, c)
    losses_ = []
    for b in range(batch_dim):
        for i in range(qs.shape[1]):
            negatives = [-10.0 if j == i else qs[b, i] @ ks[b, j] for j in range(qs.shape[1])]
            logits = np.array([qs[b, i] @ ks[b, i], *negatives]) / T
            losses_.append(np.log(np.exp(logits).sum()) - logits[0])
    return np.array(losses_)


@pytest.mark.parametrize("from_batch", [False, True])
def test_patch_nce_is_the_official_cross_entropy_with_diagonal_positives(from_batch: bool) -> None:
    rng = np.random.default_rng(0)
    q, k = (rng.normal(size=(2, 5, 4)) for _ in range(2))
    q, k = (a / np.linalg.norm(a, axis=-1, keepdims=True) for a in (q, k))
    k[0, 3] = q[0, 3]  # a perfect positive: that patch's loss is small, not zero (the other logits count)
    expected = _official_patch_nce(q.reshape(10, 4), k.reshape(10, 4), 0.07, 1 if from_batch else 2)
    ours = losses.patch_nce(tf.constant(q, tf.float32), tf.constant(k, tf.float32), 0.07, from_batch)
    np.testing.assert_allclose(ours, expected.reshape(2, 5).mean(1), rtol=1e-5)
    hotter = losses.patch_nce(tf.constant(q, tf.float32), tf.constant(k, tf.float32), 1.0, from_batch)
    np.testing.assert_allclose(hotter, _official_patch_nce(q.reshape(10, 4), k.reshape(10, 4), 1.0,
                                                           1 if from_batch else 2).reshape(2, 5).mean(1), rtol=1e-5)


def test_patch_nce_trains_the_queries_only() -> None:
    q, k = tf.Variable(tf.random.normal([1, 6, 3])), tf.Variable(tf.random.normal([1, 6, 3]))
    with tf.GradientTape() as tape:
        loss = losses.patch_nce(q, k)
    dq, dk = tape.gradient(loss, [q, k])
    assert dk is None and float(tf.reduce_sum(tf.abs(dq))) > 0  # the keys are held constant, as detach()


def test_feature_matching_of_spatial_means_for_unpaired_images() -> None:
    """Unpaired: the same features at other places match exactly; per location they would not."""
    real = tf.constant(np.arange(16, dtype="float32").reshape([1, 4, 4, 1]))
    fake = tf.reverse(real, axis=[1, 2])
    scales_real, scales_fake = [[real, tf.zeros([1, 1, 1, 1])]], [[fake, tf.zeros([1, 1, 1, 1])]]
    np.testing.assert_allclose(losses.feature_matching(scales_real, scales_fake, spatial_mean=True), [0.0])
    assert float(losses.feature_matching(scales_real, scales_fake)[0]) > 1


@pytest.fixture(scope="module")
def random_vgg_weights(tmp_path_factory) -> str:
    """VGG19 with random weights, saved as a weights file: the offline stand-in for the ImageNet file."""
    random.seed(0)  # Keras' unseeded initialisers draw from it (a TF global seed would break tf.data)
    path = tmp_path_factory.mktemp("vgg") / "vgg19_random.weights.h5"
    keras.applications.VGG19(include_top=False, weights=None).save_weights(path)
    return str(path)


def test_vgg_loss_is_pix2pixhds_weighted_l1_of_five_relus(random_vgg_weights: str) -> None:
    features = losses.vgg19_features(random_vgg_weights)
    assert [t.shape[-1] for t in features.outputs] == [64, 128, 256, 512, 512]  # relu1_1 … relu5_1
    rng = np.random.default_rng(0)
    fake, real = (tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)), tf.float32) for _ in range(2))
    # The images reach VGG as Keras' own preprocessing for these weights makes them (Caffe: BGR, mean 0).
    caffe = keras.applications.vgg19.preprocess_input
    f, r = features(caffe((fake.numpy() + 1) * 127.5)), features(caffe((real.numpy() + 1) * 127.5))
    expected = sum(w * np.abs(a - b).mean(axis=(1, 2, 3)) for w, a, b in zip([1 / 32, 1 / 16, 1 / 8, 1 / 4, 1], f, r))
    np.testing.assert_allclose(losses.vgg_perceptual(features, fake, real), expected, rtol=1e-4)
    np.testing.assert_allclose(losses.vgg_perceptual(features, real, real), [0, 0])
    fake_var, real_var = tf.Variable(fake), tf.Variable(real)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(losses.vgg_perceptual(features, fake_var, real_var))
    grad_fake, grad_real = tape.gradient(loss, [fake_var, real_var])
    assert grad_real is None and float(tf.reduce_sum(tf.abs(grad_fake))) > 0
    assert not features.trainable_weights  # VGG is frozen


def test_vgg_weights_come_from_the_flag_or_keras_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    if not (Path("/tmp/.keras/models") / losses.VGG_FILE).exists():
        assert losses.vgg_weights_path() is None
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / losses.VGG_FILE).write_bytes(b"")
    assert losses.vgg_weights_path() == str(tmp_path / "models" / losses.VGG_FILE)
    assert losses.vgg_weights_path("mine.h5") == "mine.h5"
