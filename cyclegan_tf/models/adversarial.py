"""The adversarial terms of a model's losses, by --gan_mode (lsgan, vanilla, wgangp, focal, ghmc), and the
state they keep (GHM-C's running bin counts per discriminator, checkpointed under "ghm").

D_Y judges G's outputs, D_X judges F's; a paired model's D judges (input, output) pairs.
"""
from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from cyclegan_tf.config import TrainConfig
from cyclegan_tf.models import losses


class Adversarial(tf.Module):
    """`gan` for a generator's term, `discriminator` and `objective` for a discriminator's; every term is
    averaged over the global batch by `average`."""

    def __init__(self, cfg: TrainConfig, discriminators: tuple[str, ...],
                 average: Callable[[tf.Tensor], tf.Tensor]) -> None:
        super().__init__(name="adversarial")
        self.cfg, self.average = cfg, average
        self.ghm = self._ghm_statistics(cfg, discriminators)

    @staticmethod
    def _ghm_statistics(cfg: TrainConfig, discriminators: tuple[str, ...]) -> dict[str, tf.Variable]:
        """--gan_mode ghmc: each discriminator's running bin counts (acc_sum), [scales, bins], checkpointed.
        Every replica assigns the same all-reduced value; ONLY_FIRST_REPLICA lets a replica context assign
        a mirrored variable (losses.ghmc_loss)."""
        if cfg.gan_mode != "ghmc":
            return {}
        scales = cfg.num_D if cfg.netD == "multiscale" else 1
        return {n: tf.Variable(tf.zeros([scales, cfg.ghm_bins]), trainable=False, name=f"ghm_{n}",
                               aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
                for n in discriminators}

    def gan(self, pred, real: bool, for_discriminator: bool = False) -> tf.Tensor:
        """The adversarial loss of D's output (one score map, or scales of features and scores): the
        generator's, or with `for_discriminator` D's own. Under the D-only modes (focal, ghmc) the
        generator's is vanilla's non-saturating BCE; ghmc's D loss is `discriminator`'s."""
        c = self.cfg
        mode = c.gan_mode if for_discriminator or c.gan_mode not in losses.DISCRIMINATOR_ONLY else "vanilla"
        return self.average(losses.gan_loss(pred, real, mode, c.real_label, c.focal_gamma, c.focal_alpha))

    def discriminator(self, D: str, real, fake) -> tuple[tf.Tensor, tf.Tensor]:
        """The adversarial terms of discriminator `D` (its name) on its outputs for real and for fake
        inputs, each halved as the official code does. Under ghmc one loss of both, with D's statistics."""
        if self.cfg.gan_mode == "ghmc":
            r, f = losses.ghmc_loss(real, fake, self.ghm[D], self.cfg.ghm_momentum, self.cfg.real_label)
            return 0.5 * self.average(r), 0.5 * self.average(f)
        return 0.5 * self.gan(real, True, for_discriminator=True), 0.5 * self.gan(fake, False, for_discriminator=True)

    def objective(self, D: keras.Model, name: str, real: tf.Tensor, fake: tf.Tensor,
                  seed: tf.Tensor) -> dict[str, tf.Tensor]:
        """D's loss on real and (detached) fake inputs, halved as the official code does, and the gradient
        penalty under wgangp (else 0). D is trained on their sum."""
        r, f = self.discriminator(name, D(real, training=True), D(fake, training=True))
        terms = {"real": r, "fake": f}
        if self.cfg.gan_mode == "wgangp":
            terms["penalty"] = self.cfg.lambda_gp * self.average(losses.gradient_penalty(D, real, fake, seed))
        else:
            terms["penalty"] = tf.constant(0.0)
        return terms
