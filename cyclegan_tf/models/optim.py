"""The optimiser and its schedule: Adam exactly as PyTorch's `torch.optim.Adam` computes it, for parity with the
official CycleGAN/pix2pix/CUT code, and the paper's learning-rate schedule.

`keras.optimizers.Adam` folds the bias correction into the step size and adds epsilon to the *uncorrected* sqrt(v):
p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps). That is PyTorch's p -= lr * m_hat / (sqrt(v_hat) + eps)
with an effective epsilon of eps / sqrt(1 - b2^t): at b2=0.999, 32x larger on the first step, 3.2x after 100 steps and
still 1.26x after 1000, so where gradients are small the steps come out measurably shorter. `TorchAdam` keeps Keras'
Adam in every other respect (the same variables in the same order, so checkpoints written with `keras.optimizers.Adam`
restore into it) and replaces only the update.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf
from keras import ops

from cyclegan_tf.config import TrainConfig


@keras.saving.register_keras_serializable(package="cyclegan_tf")
class TorchAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` with PyTorch's update: epsilon (default 1e-8) is added after bias correction.

    Per step t (1-based; `iterations + 1`):
        m = b1*m + (1-b1)*g ;  v = b2*v + (1-b2)*g^2
        p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    which is `torch.optim.Adam(lr, betas=(b1, b2), eps)` without weight decay or amsgrad. The learning rate (a float, a
    `LearningRateSchedule` or a callable) is used as Keras resolves it: a schedule sees `iterations`, the number of
    updates already applied (0 on the first). AMSGrad is refused.
    """

    def __init__(
        self,
        learning_rate: float | keras.optimizers.schedules.LearningRateSchedule | Callable[[], Any] = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        amsgrad: bool = False,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if amsgrad:
            raise ValueError("TorchAdam does not implement amsgrad; use keras.optimizers.Adam(amsgrad=True)")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=False, name=name, **kwargs)

    # build() is Adam's: iterations, (learning_rate), then momentum/velocity interleaved per variable.

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        """PyTorch's Adam update of `variable`, computed in the variable's dtype (float32 under mixed precision)."""
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        local_step = ops.cast(self.iterations + 1, dtype)
        # PyTorch forms 1 - b^t in double precision. In float32, 1 - 0.999^t loses the digits that matter
        # (float32(0.999) is 1.3e-8 off, i.e. 1.3e-5 relative on 1 - b2), so it is -expm1(t * log(b)) here.
        bias_correction_1 = ops.negative(ops.expm1(ops.multiply(local_step, _log(self.beta_1, dtype))))
        bias_correction_2_sqrt = ops.sqrt(ops.negative(ops.expm1(ops.multiply(local_step, _log(self.beta_2, dtype)))))

        index = self._get_variable_index(variable)
        m = self._momentums[index]
        v = self._velocities[index]

        # torch: exp_avg.lerp_(grad, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), _one_minus(self.beta_1, dtype)))
        self.assign(v, ops.add(ops.multiply(v, _value(self.beta_2, dtype)),
                               ops.multiply(ops.square(gradient), _one_minus(self.beta_2, dtype))))
        # torch: denom = sqrt(exp_avg_sq) / sqrt(bias_correction2) + eps; param.addcdiv_(exp_avg, denom, -lr / bc1)
        denom = ops.add(ops.divide(ops.sqrt(v), bias_correction_2_sqrt), _value(self.epsilon, dtype))
        self.assign_sub(variable, ops.multiply(ops.divide(lr, bias_correction_1), ops.divide(m, denom)))


# Hyperparameters are normally Python floats: they enter the ops as Python scalars, which Keras converts straight to
# the variable's dtype. (`ops.cast(0.999, "float64")` would go through float32 first.) Tensors are cast as they are.

def _value(x: Any, dtype: str) -> Any:
    return x if isinstance(x, (int, float)) else ops.cast(x, dtype)


def _one_minus(x: Any, dtype: str) -> Any:
    return 1 - x if isinstance(x, (int, float)) else ops.subtract(1, ops.cast(x, dtype))


def _log(x: Any, dtype: str) -> Any:
    return math.log(x) if isinstance(x, (int, float)) else ops.log(ops.cast(x, dtype))


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


def adam(cfg: TrainConfig, name: str, variables: list, learning_rate: Any) -> keras.optimizers.Optimizer:
    """A model's optimiser `name` for `variables`: TorchAdam with the run's betas and epsilon, wrapped in a
    loss-scale optimiser under fp16 (its gradients underflow without; a step with inf/NaN is skipped), and
    built now, so that a checkpoint restores into existing slots instead of deferring."""
    opt = TorchAdam(learning_rate=learning_rate, beta_1=cfg.beta1, beta_2=cfg.beta2, epsilon=cfg.adam_eps, name=name)
    if cfg.precision == "fp16":
        opt = keras.optimizers.LossScaleOptimizer(opt, name=name)
    opt.build(variables)
    return opt
