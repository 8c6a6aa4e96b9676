"""pix2pix (Isola et al., 2017): paired translation, built from the CycleGAN parts.

G: A→B is the generator (U-Net by default) and D a conditional PatchGAN that sees the input and an
output concatenated along channels, so it judges whether the output fits *its* input. The training
pairs come from one TFRecord file of (A, B) images; `--direction BtoA` swaps their roles, so here x
is always the input and y its target. One step follows the official code: G's forward; D on (x, y)
against (x, G(x)); then G, judged by the updated D, plus λ_L1·|G(x) − y|.
"""
from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from cyclegan_tf import losses, networks
from cyclegan_tf.config import TrainConfig
from cyclegan_tf.models import register
from cyclegan_tf.models.base import Model


@register
class Pix2Pix(Model):
    name = "pix2pix"
    paired = True
    defaults = dict(netG="unet_256", norm="batch", gan_mode="vanilla", use_dropout=True, pool_size=0)
    optimizers = {"opt_G": ("G",), "opt_D": ("D",)}
    exports = {"XtoY": "G"}
    loss_names = ("G_GAN", "G_L1", "D_real", "D_fake")

    @classmethod
    def define_networks(cls, cfg: TrainConfig) -> dict[str, Callable[[], keras.Model]]:
        g = dict(netG=cfg.netG, ngf=cfg.ngf, norm=cfg.norm, upsample=cfg.upsample, use_dropout=cfg.use_dropout)
        return {"G": lambda: networks.define_G(**g, name="G"),
                "D": lambda: networks.define_D(cfg.netD, cfg.ndf, cfg.n_layers_D, cfg.norm, input_nc=6, name="D")}

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int, global_batch: int) -> None:
        super().__init__(cfg, steps_per_epoch, global_batch)
        # Separate functions, so that one tape can span G's forward, D's update and G's loss.
        self._forward = self.compiled(lambda x: self.generate(self.G, x))
        self._d_grads = self.compiled(self._discriminator_grads)
        self._g_loss = self.compiled(self._generator_loss)

    def _discriminator_grads(self, x: tf.Tensor, y: tf.Tensor, fake: tf.Tensor, seed: tf.Tensor):
        with tf.GradientTape() as tape:
            terms = self.discriminator_objective(self.D, tf.concat([x, y], -1), tf.concat([x, fake], -1), seed)
            total = self.opt_D.scale_loss(tf.add_n(list(terms.values())))  # scaled only under fp16
        return tape.gradient(total, self.D.trainable_variables), {"D_real": terms["real"], "D_fake": terms["fake"]}

    def _generator_loss(self, x: tf.Tensor, y: tf.Tensor, fake: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"G_GAN": self.gan(self.D(tf.concat([x, fake], -1), training=True), True),
                "G_L1": self.cfg.lambda_L1 * self.average(losses.l1(fake, y))}

    def replica_step(self, x: tf.Tensor, y: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            fake = self._forward(x)
            with tape.stop_recording():
                grads, d_loss = self._d_grads(x, y, tf.stop_gradient(fake), self.replica_seed(step))
                self.opt_D.apply_gradients(zip(grads, self.D.trainable_variables))
            loss = self._g_loss(x, y, fake)
            total = self.opt_G.scale_loss(loss["G_GAN"] + loss["G_L1"])
        grads = tape.gradient(total, self.G.trainable_variables)
        self.opt_G.apply_gradients(zip(grads, self.G.trainable_variables))
        return {**loss, **d_loss}

    def translate(self, x: tf.Tensor) -> tf.Tensor:
        """G(x) in test mode, eagerly (see CycleGAN.translate)."""
        return self.G(x, training=False)

    def previews(self, x: tf.Tensor, y: tf.Tensor) -> dict[str, tuple[tf.Tensor, ...]]:
        return {"pair/input_output_target": (x, self.translate(x), y)}
