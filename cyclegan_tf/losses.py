"""GAN, reconstruction and feature-matching losses, per example, so that a training step can average
them over the global batch.

Every function returns a [B] tensor (the mean over the other axes); `tf.nn.compute_average_loss` then
divides by the global batch. A discriminator's output may be one score map [B, h, w, 1], or — a
multi-scale D as pix2pixHD's — a list of scales, each a list of intermediate features ending with the
score map; the GAN loss is then summed over the scales (as pix2pixHD's GANLoss does).
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import keras
import tensorflow as tf

from cyclegan_tf.options import GAN_MODES

Output = tf.Tensor | Sequence  # one score map, or scales of [features..., score]


def _mean(t: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.cast(t, tf.float32), axis=list(range(1, t.shape.rank)))


def scores(output: Output) -> list[tf.Tensor]:
    """The score maps of a discriminator's output, one per scale."""
    if isinstance(output, (list, tuple)):
        return [s[-1] if isinstance(s, (list, tuple)) else s for s in output]
    return [output]


def _gan_loss_one(pred: tf.Tensor, real: bool, mode: str, real_label: float) -> tf.Tensor:
    pred = tf.cast(pred, tf.float32)
    if mode == "lsgan":  # least squares (Mao et al.), the paper's choice
        return _mean(tf.square(pred - (real_label if real else 0.0)))
    if mode == "vanilla":
        labels = tf.fill(tf.shape(pred), real_label if real else 0.0)
        return _mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=pred))
    if mode == "wgangp":
        return _mean(-pred if real else pred)
    raise ValueError(f"gan_mode {mode!r}: choose one of {', '.join(GAN_MODES)}")


def gan_loss(pred: Output, real: bool, mode: str = "lsgan", real_label: float = 1.0) -> tf.Tensor:
    """How far the discriminator's scores `pred` are from saying real (or fake), summed over scales."""
    return tf.add_n([_gan_loss_one(p, real, mode, real_label) for p in scores(pred)])


def l1(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Mean absolute difference per example (cycle, identity and L1 losses)."""
    return _mean(tf.abs(tf.cast(a, tf.float32) - tf.cast(b, tf.float32)))


def feature_matching(real: Sequence, fake: Sequence, spatial_mean: bool = False) -> tf.Tensor:
    """pix2pixHD's feature-matching loss: L1 between D's intermediate features on fake and on real inputs
    (real ones held constant), weighted 4/(features per scale) × 1/(scales) as the official code does
    (4/(n_layers_D + 1) × 1/num_D); `real` and `fake` are D outputs as lists of scales, each ending with
    its score map, which is not a feature. Multiply by λ_feat. With `spatial_mean` the features are first
    averaged over H and W (Salimans et al. 2016): the form for unpaired images, whose locations do not
    correspond."""
    def pooled(t: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(tf.cast(t, tf.float32), axis=[1, 2]) if spatial_mean else t

    total = []
    for real_scale, fake_scale in zip(real, fake):
        features = list(zip(real_scale[:-1], fake_scale[:-1]))
        weight = 4.0 / len(features) / len(real)
        total += [weight * l1(pooled(f), tf.stop_gradient(pooled(r))) for r, f in features]
    return tf.add_n(total)


# pix2pixHD's VGG loss: VGG19's relu1_1 … relu5_1 (Keras' block{i}_conv1 include their ReLU), weighted.
VGG_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
VGG_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
VGG_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"  # what keras.applications.VGG19 downloads
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


def vgg_weights_path(given: str = "") -> str | None:
    """The VGG19 ImageNet weights file to use: `given`, else Keras' cached download (KERAS_HOME or ~/.keras,
    and /tmp/.keras where Keras falls back); None when there is none (these machines cannot download it)."""
    if given:
        return given
    homes = [os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras")), "/tmp/.keras"]
    found = [os.path.join(h, "models", VGG_FILE) for h in homes if os.path.isfile(os.path.join(h, "models", VGG_FILE))]
    return found[0] if found else None


def vgg19_features(weights_path: str) -> keras.Model:
    """VGG19 (no top) with the weights of `weights_path` (Keras' ImageNet file, or any file `save_weights`
    wrote for this architecture), returning the features of VGG_LAYERS; frozen."""
    vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    vgg.load_weights(weights_path)
    vgg.trainable = False
    return keras.Model(vgg.input, [vgg.get_layer(n).output for n in VGG_LAYERS], name="vgg19_features")


def vgg_perceptual(features: keras.Model, fake: tf.Tensor, real: tf.Tensor) -> tf.Tensor:
    """pix2pixHD's VGG loss per example: Σ_l w_l·L1(VGG_l(fake), VGG_l(real)), real held constant. Images in
    [-1, 1] are given to VGG as its Keras (Caffe) weights expect: BGR, 0…255, mean subtracted. (The official
    code feeds [-1, 1] to torchvision's VGG, whose weights expect a normalised RGB of about that range.)"""
    def caffe(x: tf.Tensor) -> tf.Tensor:
        return (tf.cast(x, tf.float32)[..., ::-1] + 1.0) * 127.5 - tf.constant(_CAFFE_BGR_MEAN)

    # Two passes, not one over fake ‖ real: the backward pass then runs over the fakes alone.
    targets = [tf.stop_gradient(t) for t in features(caffe(real))]
    return tf.add_n([w * l1(f, t) for w, f, t in zip(VGG_WEIGHTS, features(caffe(fake)), targets)])


def gradient_penalty(discriminator, real: tf.Tensor, fake: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """WGAN-GP (Gulrajani et al.): (‖∇D(x̂)‖₂ − 1)² on random interpolates x̂ of real and fake, per example.
    For a multi-scale D, ∇ of the sum of every scale's scores."""
    eps = tf.random.stateless_uniform([tf.shape(real)[0], 1, 1, 1], seed)
    mixed = eps * real + (1.0 - eps) * fake
    with tf.GradientTape() as tape:
        tape.watch(mixed)
        score = tf.add_n([tf.reduce_sum(tf.cast(s, tf.float32)) for s in scores(discriminator(mixed, training=True))])
    grad = tf.reshape(tape.gradient(score, mixed), [tf.shape(real)[0], -1])
    return tf.square(tf.norm(grad + 1e-16, axis=1) - 1.0)


def patch_nce(q: tf.Tensor, k: tf.Tensor, temperature: float = 0.07,
              negatives_from_batch: bool = False) -> tf.Tensor:
    """CUT's PatchNCE loss (Park et al. 2020), per example: q, k are [B, P, C] unit-length features of the
    same P locations in the output (queries) and the input (keys, held constant). Each query's positive
    is its own location's key; its negatives are the other P − 1 keys of the same image (or of the whole
    batch with `negatives_from_batch`). As the official code, the positive is also the first logit, and
    the diagonal of the negatives is set to −10 instead of removed. Cross-entropy at temperature T,
    averaged over the P queries."""
    q, k = tf.cast(q, tf.float32), tf.stop_gradient(tf.cast(k, tf.float32))
    batch, patches = tf.shape(q)[0], tf.shape(q)[1]
    if negatives_from_batch:
        q, k = tf.reshape(q, [1, -1, q.shape[-1]]), tf.reshape(k, [1, -1, k.shape[-1]])
    similarity = tf.matmul(q, k, transpose_b=True)  # [b, n, n]; the diagonal holds the positives
    positives = tf.linalg.diag_part(similarity)
    negatives = tf.linalg.set_diag(similarity, tf.fill(tf.shape(positives), -10.0))
    logits = tf.concat([positives[..., None], negatives], -1) / temperature
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.zeros(tf.shape(positives), tf.int32), logits)
    return tf.reduce_mean(tf.reshape(loss, [batch, patches]), axis=1)
