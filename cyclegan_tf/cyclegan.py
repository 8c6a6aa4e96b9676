"""The CycleGAN model and its training step.

G: X→Y and F: Y→X are the generators; D_Y judges G's outputs, D_X judges F's. One step updates G and
F together (D frozen), then D_X and D_Y on pooled fakes, as the official code does. The step is one
tf.function run with `strategy.run`; every loss is averaged over the global batch, so the gradients
that the optimisers sum across replicas are those of the global mean.
"""
from __future__ import annotations

import random

import keras
import tensorflow as tf

from cyclegan_tf import losses, networks
from cyclegan_tf.config import TrainConfig
from cyclegan_tf.pool import ImagePool

LOSS_NAMES = ("G", "F", "cycle", "identity", "D_X", "D_Y")


@keras.saving.register_keras_serializable(package="cyclegan_tf")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Constant for `constant_steps`, then linear to 0 over `decay_steps` (the paper's schedule, per step)."""

    def __init__(self, initial: float, constant_steps: int, decay_steps: int) -> None:
        self.initial, self.constant_steps, self.decay_steps = initial, constant_steps, decay_steps

    def __call__(self, step):
        done = tf.cast(step, tf.float32) - float(self.constant_steps)
        return self.initial * tf.clip_by_value(1.0 - done / float(max(1, self.decay_steps)), 0.0, 1.0)

    def get_config(self) -> dict:
        return {"initial": self.initial, "constant_steps": self.constant_steps, "decay_steps": self.decay_steps}


def schedule_steps(cfg: TrainConfig, steps_per_epoch: int) -> tuple[int, int]:
    """(constant steps, decay steps) of the run: epochs of max(|X|, |Y|) images, or --max_steps shared alike."""
    if cfg.max_steps > 0:
        constant = round(cfg.max_steps * cfg.epochs / max(1, cfg.epochs + cfg.epochs_decay))
        return constant, cfg.max_steps - constant
    return cfg.epochs * steps_per_epoch, cfg.epochs_decay * steps_per_epoch


class CycleGAN(tf.Module):
    """Networks, optimisers, image pools and step counter: everything a checkpoint holds."""

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int, global_batch: int) -> None:
        super().__init__(name="cycle_gan")
        self.cfg, self.global_batch = cfg, global_batch
        # Keras draws unseeded initialiser seeds from Python's `random`. TensorFlow's global seed is
        # left alone: every random op of ours is stateless, and tf.data rejects tensor seeds under it.
        random.seed(cfg.seed)
        g = cfg.generator_kwargs()
        d = dict(netD=cfg.netD, ndf=cfg.ndf, n_layers_D=cfg.n_layers_D, norm=cfg.norm)
        self.G, self.F = networks.define_G(**g, name="G"), networks.define_G(**g, name="F")
        self.D_Y, self.D_X = networks.define_D(**d, name="D_Y"), networks.define_D(**d, name="D_X")
        constant, decay = schedule_steps(cfg, steps_per_epoch)
        self.total_steps = constant + decay
        self.lr = LinearDecay(cfg.learning_rate, constant, decay)
        adam = dict(learning_rate=self.lr, beta_1=cfg.beta1, beta_2=cfg.beta2)
        self.opt_G = keras.optimizers.Adam(**adam, name="opt_G")  # G and F together
        self.opt_D = keras.optimizers.Adam(**adam, name="opt_D")  # D_X and D_Y together
        # Built now so that a checkpoint restores into existing slots instead of deferring.
        self.opt_G.build(self.G.trainable_variables + self.F.trainable_variables)
        self.opt_D.build(self.D_X.trainable_variables + self.D_Y.trainable_variables)
        shape = (cfg.image_size, cfg.image_size, 3)
        self.pool_X = ImagePool(cfg.pool_size, shape, name="pool_X")  # fakes F(y), for D_X
        self.pool_Y = ImagePool(cfg.pool_size, shape, name="pool_Y")  # fakes G(x), for D_Y
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        jit = cfg.jit_compile or None
        self._g_grads = tf.function(self._generator_grads, jit_compile=jit)
        self._d_grads = tf.function(self._discriminator_grads, jit_compile=jit)

    def checkpoint(self) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(G=self.G, F=self.F, D_X=self.D_X, D_Y=self.D_Y, opt_G=self.opt_G,
                                   opt_D=self.opt_D, pool_X=self.pool_X, pool_Y=self.pool_Y, step=self.step)

    def _avg(self, per_example: tf.Tensor) -> tf.Tensor:
        return tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch)

    def _gan(self, pred: tf.Tensor, real: bool) -> tf.Tensor:
        return self._avg(losses.gan_loss(pred, real, self.cfg.gan_mode, self.cfg.real_label))

    def _generator_grads(self, x: tf.Tensor, y: tf.Tensor):
        c = self.cfg
        with tf.GradientTape() as tape:
            fake_y, fake_x = self.G(x, training=True), self.F(y, training=True)
            rec_x, rec_y = self.F(fake_y, training=True), self.G(fake_x, training=True)
            loss = {"G": self._gan(self.D_Y(fake_y, training=True), True),
                    "F": self._gan(self.D_X(fake_x, training=True), True),
                    "cycle": c.lambda1 * self._avg(losses.l1(rec_x, x)) + c.lambda2 * self._avg(losses.l1(rec_y, y))}
            if c.lambda_identity > 0:  # G should leave Y alone, F should leave X alone: keeps colours
                loss["identity"] = c.lambda_identity * (c.lambda2 * self._avg(losses.l1(self.G(y, training=True), y))
                                                        + c.lambda1 * self._avg(losses.l1(self.F(x, training=True), x)))
            else:
                loss["identity"] = tf.constant(0.0)
            total = tf.add_n(list(loss.values()))
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
            total = loss["D_X"] + loss["D_Y"]
        variables = self.D_X.trainable_variables + self.D_Y.trainable_variables
        return tape.gradient(total, variables), loss

    def replica_step(self, x: tf.Tensor, y: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
        """One step on this replica's share of the batch; returns its share of each loss."""
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        seed = tf.stack([tf.cast(self.cfg.seed, tf.int64) * 7919 + tf.cast(replica, tf.int64), step])
        seeds = tf.random.experimental.stateless_split(seed, 3)
        grads, loss, fake_x, fake_y = self._g_grads(x, y)
        self.opt_G.apply_gradients(zip(grads, self.G.trainable_variables + self.F.trainable_variables))
        pooled_x = self.pool_X(tf.stop_gradient(fake_x), seeds[0])
        pooled_y = self.pool_Y(tf.stop_gradient(fake_y), seeds[1])
        grads, d_loss = self._d_grads(x, y, pooled_x, pooled_y, seeds[2])
        self.opt_D.apply_gradients(zip(grads, self.D_X.trainable_variables + self.D_Y.trainable_variables))
        return {**loss, **d_loss}

    def make_train_step(self, strategy: tf.distribute.Strategy):
        """The distributed step: (x, y) per-replica batches → global mean losses and a finiteness flag."""

        @tf.function
        def train_step(x, y):
            per_replica = strategy.run(self.replica_step, args=(x, y, self.step.read_value()))
            loss = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}
            self.step.assign_add(1)
            loss["finite"] = tf.reduce_all([tf.math.is_finite(v) for v in loss.values()])
            return loss

        return train_step

    @tf.function
    def translate(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """(G(x), F(G(x)), F(y), G(F(y))) for the TensorBoard images."""
        fake_y, fake_x = self.G(x, training=False), self.F(y, training=False)
        return fake_y, self.F(fake_y, training=False), fake_x, self.G(fake_x, training=False)
