import random
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from cyclegan_tf.models import losses


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


def _logits(p) -> tf.Tensor:
    """Logits of the probabilities σ(logit) = p, as score maps [B, 1, W, 1]."""
    p = np.asarray(p, np.float64)
    return tf.constant(np.log(p / (1 - p))[:, None, :, None], tf.float32)


def test_focal_is_lins_loss_computed_from_logits() -> None:
    p = np.array([[0.9, 0.2], [0.5, 0.999]])
    x = _logits(p)
    real = -0.25 * (1 - p) ** 2 * np.log(p)  # −α (1 − p)^γ log p, α 0.25 and γ 2
    fake = -0.75 * p ** 2 * np.log(1 - p)  # p_t = 1 − p, α_t = 1 − α
    np.testing.assert_allclose(losses.gan_loss(x, True, "focal", focal_alpha=0.25), real.mean(1), rtol=1e-4)
    np.testing.assert_allclose(losses.gan_loss(x, False, "focal", focal_alpha=0.25), fake.mean(1), rtol=1e-4)
    # γ 0 is α-weighted BCE; the defaults (γ 2, α 0.5); scales are summed as for the other modes
    np.testing.assert_allclose(losses.gan_loss(x, True, "focal", focal_gamma=0.0),
                               0.5 * losses.gan_loss(x, True, "vanilla"), rtol=1e-6)
    fake = -0.5 * p ** 2 * np.log(1 - p)
    np.testing.assert_allclose(losses.gan_loss([[x], [x[:, :, :1]]], False, "focal"), fake.mean(1) + fake[:, 0],
                               rtol=1e-4)
    # stable where σ saturates: log σ(−40) = −40, (1 − p_t)^γ = 1
    far = tf.constant([[[[-40.0]]], [[[40.0]]]])
    np.testing.assert_allclose(losses.gan_loss(far, True, "focal"), [20.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(losses.gan_loss(far, False, "focal"), [0.0, 20.0], atol=1e-6)
    with pytest.raises(ValueError, match="hard labels"):
        losses.gan_loss(x, True, "focal", real_label=0.9)


def _weighted_bce(x: tf.Tensor, target: float, weights: np.ndarray) -> np.ndarray:
    """Per example: the mean of weight · BCE over the map (numpy)."""
    x = x.numpy()[:, 0, :, 0].astype(np.float64)
    bce = np.maximum(x, 0) - x * target + np.log1p(np.exp(-np.abs(x)))
    return (weights * bce).mean(1)


def test_ghmc_by_hand_momentum_empty_bins_and_normalisation() -> None:
    """4 bins of g = |σ(x) − target|: [0, .25) [.25, .5) [.5, .75) [.75, 1]; momentum 0.75; 2 × 2 real and
    2 × 2 fake scores, tot 8. D's loss, Σ weight·BCE / tot, is half the sum of the two per-example means."""
    acc_sum = tf.Variable(tf.zeros([1, 4]))
    # call 1: real g [.05 .1] [.7 .15], fake g = p [.1 .2] [.6 .05] → counts [6 0 2 0], n = 2 non-empty bins
    real, fake = _logits([[0.95, 0.9], [0.3, 0.85]]), _logits([[0.1, 0.2], [0.6, 0.05]])
    r, f = losses.ghmc_loss(real, fake, acc_sum, momentum=0.75)
    np.testing.assert_allclose(acc_sum.numpy(), [[0.25 * 6, 0, 0.25 * 2, 0]])  # acc ← 0.75·0 + 0.25·count
    w0, w2 = 8 / 1.5 / 2, 8 / 0.5 / 2  # tot / acc_sum[i] / n
    np.testing.assert_allclose(r, _weighted_bce(real, 1.0, np.array([[w0, w0], [w2, w0]])), rtol=1e-5)
    np.testing.assert_allclose(f, _weighted_bce(fake, 0.0, np.array([[w0, w0], [w2, w0]])), rtol=1e-5)
    # call 2: real g [.01 .3] [.4 .3], fake [.01 .02] [.03 .9] → counts [4 3 0 1]: bin 2 empty keeps its sum
    real, fake = _logits([[0.99, 0.7], [0.6, 0.7]]), _logits([[0.01, 0.02], [0.03, 0.9]])
    r, f = losses.ghmc_loss(real, fake, acc_sum, momentum=0.75)
    acc = [0.75 * 1.5 + 0.25 * 4, 0.25 * 3, 0.5, 0.25 * 1]
    np.testing.assert_allclose(acc_sum.numpy(), [acc])
    w = [8 / a / 3 for a in acc]  # n = 3 non-empty bins
    np.testing.assert_allclose(r, _weighted_bce(real, 1.0, np.array([[w[0], w[1]], [w[1], w[1]]])), rtol=1e-5)
    np.testing.assert_allclose(f, _weighted_bce(fake, 0.0, np.array([[w[0], w[0]], [w[0], w[3]]])), rtol=1e-5)


def _mmdetection_ghmc(pred: np.ndarray, target: np.ndarray, acc_sum: np.ndarray, bins: int, mmt: float) -> float:
    """mmdetection's GHMC.forward (all labels valid), in numpy; updates acc_sum."""
    edges = np.arange(bins + 1, dtype=np.float32) / np.float32(bins)
    edges[-1] += 1e-6
    g = np.abs(1 / (1 + np.exp(-pred)) - target).astype(np.float32)
    tot, weights, n = max(pred.size, 1.0), np.zeros_like(pred), 0
    for i in range(bins):
        inds = (g >= edges[i]) & (g < edges[i + 1])
        if inds.sum() > 0:
            if mmt > 0:
                acc_sum[i] = mmt * acc_sum[i] + (1 - mmt) * inds.sum()
                weights[inds] = tot / acc_sum[i]
            else:
                weights[inds] = tot / inds.sum()
            n += 1
    weights = weights / n if n > 0 else weights
    bce = np.maximum(pred, 0) - pred * target + np.log1p(np.exp(-np.abs(pred)))
    return float((weights * bce).sum() / tot)


@pytest.mark.parametrize("bins, momentum, real_label", [(10, 0.75, 1.0), (3, 0.0, 0.9), (1, 0.5, 1.0)])
def test_ghmc_is_mmdetections_per_scale(bins: int, momentum: float, real_label: float) -> None:
    """Three calls on two scales (each its own statistics), against a numpy port of mmdetection's GHMC."""
    rng = np.random.default_rng(bins)
    acc_sum, acc = tf.Variable(tf.zeros([2, bins])), np.zeros([2, bins])
    for _ in range(3):
        maps = [[rng.normal(0, 3, [2, s, s, 1]).astype(np.float32) for s in (3, 2)] for _ in range(2)]
        r, f = losses.ghmc_loss(*[[[tf.constant(m)] for m in scales] for scales in maps], acc_sum, momentum,
                                real_label)
        expected = sum(_mmdetection_ghmc(np.concatenate([real.ravel(), fake.ravel()]).astype(np.float64),
                                         np.repeat([real_label, 0.0], real.size), acc[s], bins, momentum)
                       for s, (real, fake) in enumerate(zip(*maps)))
        np.testing.assert_allclose(0.5 * float(tf.reduce_mean(r) + tf.reduce_mean(f)), expected, rtol=1e-5)
        if momentum > 0:
            np.testing.assert_allclose(acc_sum.numpy(), acc, rtol=1e-6)


def test_the_generator_keeps_vanilla_under_the_discriminator_only_modes() -> None:
    from cyclegan_tf.config import TrainConfig
    from cyclegan_tf.models.adversarial import Adversarial

    x = _logits([[0.9, 0.2], [0.5, 0.7]])
    for mode in ("focal", "ghmc", "lsgan"):
        generator = float(Adversarial(TrainConfig(gan_mode=mode), ("D_Y",), tf.reduce_sum).gan(x, True))
        np.testing.assert_allclose(generator, float(tf.reduce_sum(losses.gan_loss(x, True, mode if mode == "lsgan"
                                                                                  else "vanilla"))), rtol=1e-6)
    focal = Adversarial(TrainConfig(gan_mode="focal"), ("D_Y",), tf.reduce_sum)
    np.testing.assert_allclose(float(focal.gan(x, False, for_discriminator=True)),
                               float(tf.reduce_sum(losses.gan_loss(x, False, "focal"))), rtol=1e-6)


@pytest.mark.parametrize("bad, message", [
    ({"gan_mode": "focal", "real_label": 0.9}, "--real_label=0.9: --gan_mode focal needs hard labels"),
    ({"focal_gamma": -1.0}, "--focal_gamma=-1.0: must be at least 0"),
    ({"focal_alpha": 1.0}, "--focal_alpha=1.0: must be in (0, 1)"),
    ({"ghm_bins": 0}, "--ghm_bins=0: must be at least 1"),
    ({"ghm_momentum": 1.0}, "--ghm_momentum=1.0: must be in [0, 1)"),
    ({"gan_mode": "ghmc", "jit_compile": True}, "give --strategy default"),
])
def test_focal_and_ghm_options_are_checked(bad: dict, message: str) -> None:
    from cyclegan_tf.config import TrainConfig
    from cyclegan_tf.errors import UserError

    with pytest.raises(UserError) as e:
        TrainConfig(**bad).resolved().validate()
    assert message in str(e.value) and "\n" not in str(e.value)
    TrainConfig(gan_mode="ghmc", real_label=0.9, jit_compile=True, strategy="default").resolved().validate()
