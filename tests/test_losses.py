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
