"""CycleGAN losses, per example, so that the training step can average them over the global batch.

G: X→Y and F: Y→X; D_Y judges G's outputs, D_X judges F's. Every function returns a [B] tensor
(the mean over the other axes); `tf.nn.compute_average_loss` then divides by the global batch.
"""
from __future__ import annotations

import tensorflow as tf

GAN_MODES = ("lsgan", "vanilla", "wgangp")


def _mean(t: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.cast(t, tf.float32), axis=list(range(1, t.shape.rank)))


def gan_loss(pred: tf.Tensor, real: bool, mode: str = "lsgan", real_label: float = 1.0) -> tf.Tensor:
    """How far the discriminator's scores `pred` are from saying real (or fake)."""
    pred = tf.cast(pred, tf.float32)
    if mode == "lsgan":  # least squares (Mao et al.), the paper's choice
        return _mean(tf.square(pred - (real_label if real else 0.0)))
    if mode == "vanilla":
        labels = tf.fill(tf.shape(pred), real_label if real else 0.0)
        return _mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=pred))
    if mode == "wgangp":
        return _mean(-pred if real else pred)
    raise ValueError(f"gan_mode {mode!r}: choose one of {', '.join(GAN_MODES)}")


def l1(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Mean absolute difference per example (cycle and identity losses)."""
    return _mean(tf.abs(tf.cast(a, tf.float32) - tf.cast(b, tf.float32)))


def gradient_penalty(discriminator, real: tf.Tensor, fake: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """WGAN-GP (Gulrajani et al.): (‖∇D(x̂)‖₂ − 1)² on random interpolates x̂ of real and fake, per example."""
    eps = tf.random.stateless_uniform([tf.shape(real)[0], 1, 1, 1], seed)
    mixed = eps * real + (1.0 - eps) * fake
    with tf.GradientTape() as tape:
        tape.watch(mixed)
        score = discriminator(mixed, training=True)
    grad = tf.reshape(tape.gradient(score, mixed), [tf.shape(real)[0], -1])
    return tf.square(tf.norm(grad + 1e-16, axis=1) - 1.0)
