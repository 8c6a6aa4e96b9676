"""pix2pix (Isola et al., 2017): paired translation, built from the CycleGAN parts.

G: A→B is the generator (U-Net by default) and D a conditional PatchGAN that sees the input and an
output concatenated along channels, so it judges whether the output fits *its* input. The training
pairs come from one TFRecord file of (A, B) images; `--direction BtoA` swaps their roles, so here x
is always the input and y its target. One step follows the official code: G's forward; D on (x, y)
against (x, G(x)); then G, judged by the updated D, plus λ_L1·|G(x) − y|.
"""
from __future__ import annotations

import tensorflow as tf

from cyclegan_tf import losses, networks
from cyclegan_tf.config import TrainConfig
from cyclegan_tf.gan import GANModel


class Pix2Pix(GANModel):
    """G, the conditional D, their optimisers and the step counter: everything a checkpoint holds."""

    loss_names = ("G_GAN", "G_L1", "D_real", "D_fake")

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int, global_batch: int) -> None:
        super().__init__(cfg, steps_per_epoch, global_batch, name="pix2pix")
        with networks.precision(cfg.precision):
            self.G = networks.define_G(**cfg.generator_kwargs(), name="G")
            self.D = networks.define_D(cfg.netD, cfg.ndf, cfg.n_layers_D, cfg.norm, input_nc=6, name="D")
        self.opt_G = self._adam("opt_G", self.G.trainable_variables)
        self.opt_D = self._adam("opt_D", self.D.trainable_variables)
        jit = cfg.jit_compile or None
        # Separate functions, so that one tape can span G's forward, D's update and G's loss.
        self._forward = tf.function(lambda x: self._generate(self.G, x), jit_compile=jit)
        self._d_grads = tf.function(self._discriminator_grads, jit_compile=jit)
        self._g_loss = tf.function(self._generator_loss, jit_compile=jit)

    def checkpoint(self) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(G=self.G, D=self.D, opt_G=self.opt_G, opt_D=self.opt_D, step=self.step,
                                   dropout=networks.seed_states(self.G))

    def _discriminator_grads(self, x: tf.Tensor, y: tf.Tensor, fake: tf.Tensor, seed: tf.Tensor):
        real_xy, fake_xy = tf.concat([x, y], -1), tf.concat([x, fake], -1)
        with tf.GradientTape() as tape:
            loss = {"D_real": 0.5 * self._gan(self.D(real_xy, training=True), True),
                    "D_fake": 0.5 * self._gan(self.D(fake_xy, training=True), False)}
            total = loss["D_real"] + loss["D_fake"]
            if self.cfg.gan_mode == "wgangp":
                total += self.cfg.lambda_gp * self._avg(losses.gradient_penalty(self.D, real_xy, fake_xy, seed))
            total = self.opt_D.scale_loss(total)  # scaled only under fp16
        return tape.gradient(total, self.D.trainable_variables), loss

    def _generator_loss(self, x: tf.Tensor, y: tf.Tensor, fake: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"G_GAN": self._gan(self.D(tf.concat([x, fake], -1), training=True), True),
                "G_L1": self.cfg.lambda_L1 * self._avg(losses.l1(fake, y))}

    def replica_step(self, x: tf.Tensor, y: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            fake = self._forward(x)
            with tape.stop_recording():
                grads, d_loss = self._d_grads(x, y, tf.stop_gradient(fake), self._replica_seed(step))
                self.opt_D.apply_gradients(zip(grads, self.D.trainable_variables))
            loss = self._g_loss(x, y, fake)
            total = self.opt_G.scale_loss(loss["G_GAN"] + loss["G_L1"])
        grads = tape.gradient(total, self.G.trainable_variables)
        self.opt_G.apply_gradients(zip(grads, self.G.trainable_variables))
        return {**loss, **d_loss}

    @tf.function
    def translate(self, x: tf.Tensor) -> tf.Tensor:
        return self.G(x, training=False)

    def previews(self, x: tf.Tensor, y: tf.Tensor) -> dict[str, tuple[tf.Tensor, ...]]:
        return {"pair/input_output_target": (x, self.translate(x), y)}
