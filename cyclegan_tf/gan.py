"""What the CycleGAN and pix2pix models share: schedule, optimisers, step counter, distributed step.

A model is a tf.Module holding everything a checkpoint needs. Subclasses define `replica_step`
(one step on a replica's share of the batch, returning its share of each loss), `checkpoint` and
`previews` (image rows for TensorBoard). Every loss is averaged over the global batch, so the
gradients that the optimisers sum across replicas are those of the global mean.
"""
from __future__ import annotations

import random

import keras
import tensorflow as tf

from cyclegan_tf import losses
from cyclegan_tf.config import TrainConfig
from cyclegan_tf.errors import UserError


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
    """(constant steps, decay steps) of the run: epochs of training images, or --max_steps shared alike."""
    if cfg.max_steps > 0:
        constant = round(cfg.max_steps * cfg.epochs / max(1, cfg.epochs + cfg.epochs_decay))
        return constant, cfg.max_steps - constant
    return cfg.epochs * steps_per_epoch, cfg.epochs_decay * steps_per_epoch


class GANModel(tf.Module):
    loss_names: tuple[str, ...] = ()

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int, global_batch: int, name: str) -> None:
        super().__init__(name=name)
        self.cfg, self.global_batch = cfg, global_batch
        # Keras draws unseeded initialiser seeds from Python's `random`. TensorFlow's global seed is
        # left alone: every random op of ours is stateless, and tf.data rejects tensor seeds under it.
        random.seed(cfg.seed)
        if cfg.recompute and cfg.use_dropout:
            # the recomputed forward would draw new dropout masks, and the gradients would be wrong
            raise UserError("--recompute cannot be combined with dropout (--use_dropout; pix2pix: add --nouse_dropout)")
        constant, decay = schedule_steps(cfg, steps_per_epoch)
        self.total_steps = constant + decay
        self.lr = LinearDecay(cfg.learning_rate, constant, decay)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")

    def _adam(self, name: str, variables: list) -> keras.optimizers.Optimizer:
        opt = keras.optimizers.Adam(learning_rate=self.lr, beta_1=self.cfg.beta1, beta_2=self.cfg.beta2, name=name)
        if self.cfg.precision == "fp16":  # fp16 gradients underflow without it; a step with inf/NaN is skipped
            opt = keras.optimizers.LossScaleOptimizer(opt, name=name)
        opt.build(variables)  # now, so that a checkpoint restores into existing slots instead of deferring
        return opt

    def _generate(self, G: keras.Model, x: tf.Tensor) -> tf.Tensor:
        """G(x) in training mode; with --recompute only x is kept for the backward pass."""
        if self.cfg.recompute:
            return tf.recompute_grad(lambda t: G(t, training=True))(x)
        return G(x, training=True)

    def _avg(self, per_example: tf.Tensor) -> tf.Tensor:
        return tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch)

    def _gan(self, pred: tf.Tensor, real: bool) -> tf.Tensor:
        return self._avg(losses.gan_loss(pred, real, self.cfg.gan_mode, self.cfg.real_label))

    def _replica_seed(self, step: tf.Tensor) -> tf.Tensor:
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return tf.stack([tf.cast(self.cfg.seed, tf.int64) * 7919 + tf.cast(replica, tf.int64), step])

    def replica_step(self, x: tf.Tensor, y: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
        raise NotImplementedError

    def checkpoint(self) -> tf.train.Checkpoint:
        raise NotImplementedError

    def previews(self, x: tf.Tensor, y: tf.Tensor) -> dict[str, tuple[tf.Tensor, ...]]:
        """TensorBoard tag → images to show side by side (inputs, outputs, targets or reconstructions)."""
        raise NotImplementedError

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
