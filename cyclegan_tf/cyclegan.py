"""The CycleGAN model and its training step.

G: X→Y and F: Y→X are the generators; D_Y judges G's outputs, D_X judges F's. One step updates G and
F together (D frozen), then D_X and D_Y on pooled fakes, as the official code does. The step is one
tf.function run with `strategy.run` (see `gan.GANModel`).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from cyclegan_tf import losses, networks
from cyclegan_tf.config import TrainConfig
from cyclegan_tf.gan import GANModel, LinearDecay, schedule_steps  # noqa: F401 - re-exported
from cyclegan_tf.pool import ImagePool

LOSS_NAMES = ("G", "F", "cycle", "identity", "D_X", "D_Y")


class CycleGAN(GANModel):
    """Networks, optimisers, image pools and step counter: everything a checkpoint holds."""

    loss_names = LOSS_NAMES

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int, global_batch: int) -> None:
        super().__init__(cfg, steps_per_epoch, global_batch, name="cycle_gan")
        g = cfg.generator_kwargs()
        d = dict(netD=cfg.netD, ndf=cfg.ndf, n_layers_D=cfg.n_layers_D, norm=cfg.norm)
        with networks.precision(cfg.precision):
            self.G, self.F = networks.define_G(**g, name="G"), networks.define_G(**g, name="F")
            self.D_Y, self.D_X = networks.define_D(**d, name="D_Y"), networks.define_D(**d, name="D_X")
        self.opt_G = self._adam("opt_G", self.G.trainable_variables + self.F.trainable_variables)  # G and F
        self.opt_D = self._adam("opt_D", self.D_X.trainable_variables + self.D_Y.trainable_variables)
        shape = (cfg.image_size, cfg.image_size, 3)
        self.pool_X = ImagePool(cfg.pool_size, shape, name="pool_X")  # fakes F(y), for D_X
        self.pool_Y = ImagePool(cfg.pool_size, shape, name="pool_Y")  # fakes G(x), for D_Y
        jit = cfg.jit_compile or None
        self._g_grads = tf.function(self._generator_grads, jit_compile=jit)
        self._d_grads = tf.function(self._discriminator_grads, jit_compile=jit)

    def checkpoint(self) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(G=self.G, F=self.F, D_X=self.D_X, D_Y=self.D_Y, opt_G=self.opt_G,
                                   opt_D=self.opt_D, pool_X=self.pool_X, pool_Y=self.pool_Y, step=self.step,
                                   dropout=networks.seed_states(self.G, self.F))

    def _generator_grads(self, x: tf.Tensor, y: tf.Tensor):
        c = self.cfg
        with tf.GradientTape() as tape:
            G, F = (lambda t: self._generate(self.G, t)), (lambda t: self._generate(self.F, t))
            fake_y, fake_x = G(x), F(y)
            rec_x, rec_y = F(fake_y), G(fake_x)
            loss = {"G": self._gan(self.D_Y(fake_y, training=True), True),
                    "F": self._gan(self.D_X(fake_x, training=True), True),
                    "cycle": c.lambda1 * self._avg(losses.l1(rec_x, x)) + c.lambda2 * self._avg(losses.l1(rec_y, y))}
            if c.lambda_identity > 0:  # G should leave Y alone, F should leave X alone: keeps colours
                loss["identity"] = c.lambda_identity * (c.lambda2 * self._avg(losses.l1(G(y), y))
                                                        + c.lambda1 * self._avg(losses.l1(F(x), x)))
            else:
                loss["identity"] = tf.constant(0.0)
            total = self.opt_G.scale_loss(tf.add_n(list(loss.values())))  # scaled only under fp16
        variables = self.G.trainable_variables + self.F.trainable_variables
        return tape.gradient(total, variables), loss, fake_x, fake_y

    def _d_loss(self, D: keras.Model, real: tf.Tensor, fake: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        loss = 0.5 * (self._gan(D(real, training=True), True) + self._gan(D(fake, training=True), False))
        if self.cfg.gan_mode == "wgangp":
            loss += self.cfg.lambda_gp * self._avg(losses.gradient_penalty(D, real, fake, seed))
        return loss

    def _discriminator_grads(self, x, y, pooled_x, pooled_y, seed):
        seeds = tf.random.experimental.stateless_split(seed, 2)
        with tf.GradientTape() as tape:
            loss = {"D_Y": self._d_loss(self.D_Y, y, pooled_y, seeds[0]),
                    "D_X": self._d_loss(self.D_X, x, pooled_x, seeds[1])}
            total = self.opt_D.scale_loss(loss["D_X"] + loss["D_Y"])
        variables = self.D_X.trainable_variables + self.D_Y.trainable_variables
        return tape.gradient(total, variables), loss

    def replica_step(self, x: tf.Tensor, y: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
        """One step on this replica's share of the batch; returns its share of each loss."""
        seeds = tf.random.experimental.stateless_split(self._replica_seed(step), 3)
        grads, loss, fake_x, fake_y = self._g_grads(x, y)
        self.opt_G.apply_gradients(zip(grads, self.G.trainable_variables + self.F.trainable_variables))
        pooled_x = self.pool_X(tf.stop_gradient(fake_x), seeds[0])
        pooled_y = self.pool_Y(tf.stop_gradient(fake_y), seeds[1])
        grads, d_loss = self._d_grads(x, y, pooled_x, pooled_y, seeds[2])
        self.opt_D.apply_gradients(zip(grads, self.D_X.trainable_variables + self.D_Y.trainable_variables))
        return {**loss, **d_loss}

    @tf.function
    def translate(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """(G(x), F(G(x)), F(y), G(F(y)))."""
        fake_y, fake_x = self.G(x, training=False), self.F(y, training=False)
        return fake_y, self.F(fake_y, training=False), fake_x, self.G(fake_x, training=False)

    def previews(self, x: tf.Tensor, y: tf.Tensor) -> dict[str, tuple[tf.Tensor, ...]]:
        fake_y, rec_x, fake_x, rec_y = self.translate(x, y)
        return {"X/generated": (x, fake_y), "X/reconstruction": (x, fake_y, rec_x),
                "Y/generated": (y, fake_x), "Y/reconstruction": (y, fake_x, rec_y)}
