"""TorchAdam: PyTorch's update, Keras Adam's variables (checkpoints), schedules, tf.function, loss scaling, replicas."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from cyclegan_tf.models.optim import TorchAdam

LR, B1, B2, EPS = 2e-4, 0.5, 0.999, 1e-8
LR32 = float(np.float32(LR))  # the optimizer keeps a float learning rate in a float32 variable
P0 = np.array([0.5, -1.0, 2.0, 0.1])
# Fixed gradients of three steps: ordinary ones, and tiny ones (~1e-6) where epsilon's placement matters.
GRADS = np.array([[0.3, -0.02, 1.5, 1e-6],
                  [-0.1, 0.05, 1.0, 5e-7],
                  [0.2, -0.01, -0.5, 2e-6]])


def torch_adam(p, grads, lrs, m=None, v=None, t0=0, eps=EPS):
    """torch.optim.Adam in float64: eps added after bias correction. Returns (p, m, v)."""
    p = np.array(p, np.float64)
    m = np.zeros_like(p) if m is None else np.array(m, np.float64)
    v = np.zeros_like(p) if v is None else np.array(v, np.float64)
    for t, (g, lr) in enumerate(zip(grads, lrs), start=t0 + 1):
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        m_hat, v_hat = m / (1 - B1**t), v / (1 - B2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p, m, v


def keras_adam(p, grads, lr, eps=EPS):
    """keras.optimizers.Adam in float64: bias correction folded into the step, eps added to the raw sqrt(v).

    Keras forms b^t from `ops.cast(b, dtype)`, which rounds a Python float to float32 first, even for float64.
    """
    b1_32, b2_32 = float(np.float32(B1)), float(np.float32(B2))
    p, m, v = np.array(p, np.float64), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        p = p - lr * np.sqrt(1 - b2_32**t) / (1 - b1_32**t) * m / (np.sqrt(v) + eps)
    return p


def run(opt, grads, dtype="float64"):
    var = keras.Variable(P0, dtype=dtype)
    for g in grads:
        opt.apply_gradients([(tf.constant(g, dtype), var)])
    return var.numpy()


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 3e-7)])
def test_three_steps_equal_pytorch_formula_and_keras_adam_does_not(dtype, rtol):
    ref, m_ref, v_ref = torch_adam(P0, GRADS, [LR32] * 3)
    opt = TorchAdam(learning_rate=LR, beta_1=B1, beta_2=B2)
    assert opt.epsilon == EPS
    got = run(opt, GRADS, dtype)
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=0)
    np.testing.assert_allclose(opt._momentums[0].numpy(), m_ref, rtol=rtol)
    np.testing.assert_allclose(opt._velocities[0].numpy(), v_ref, rtol=rtol)
    assert int(opt.iterations.numpy()) == 3

    # Keras' own Adam with the same epsilon follows its own formula, not PyTorch's ...
    plain = run(keras.optimizers.Adam(learning_rate=LR, beta_1=B1, beta_2=B2, epsilon=EPS), GRADS, dtype)
    np.testing.assert_allclose(plain, keras_adam(P0, GRADS, LR32), rtol=rtol, atol=0)
    # ... and where the gradient is ~1e-6 its steps are >15% shorter: far outside any rounding.
    moved_torch, moved_keras = ref - P0, plain - P0
    np.testing.assert_allclose(moved_keras[:3], moved_torch[:3], rtol=1e-3)  # large gradients: eps is negligible
    assert abs(moved_keras[3]) < 0.85 * abs(moved_torch[3])
    assert abs(plain[3] - ref[3]) > 1e3 * rtol * abs(ref[3])  # over 1000 times the tolerance


def test_learning_rate_schedule_inside_tf_function():
    schedule = keras.optimizers.schedules.PolynomialDecay(LR, decay_steps=4, end_learning_rate=0.0, power=1.0)
    opt = TorchAdam(learning_rate=schedule, beta_1=B1, beta_2=B2)
    var = keras.Variable(P0, dtype="float64")
    opt.build([var])

    @tf.function
    def step(g):
        opt.apply_gradients([(g, var)])

    for g in GRADS:
        step(tf.constant(g, tf.float64))
    # a schedule is evaluated at `iterations` = updates already done: 0, 1, 2
    lrs = [float(schedule(i).numpy()) for i in range(3)]
    assert lrs[0] > lrs[1] > lrs[2] > 0
    np.testing.assert_allclose(var.numpy(), torch_adam(P0, GRADS, lrs)[0], rtol=1e-12)
    assert int(opt.iterations.numpy()) == 3


@pytest.mark.parametrize("lr", [LR, "schedule"])
def test_keras_adam_checkpoint_restores_into_torch_adam(tmp_path, lr):
    def make(cls):
        rate = keras.optimizers.schedules.PolynomialDecay(LR, decay_steps=10, end_learning_rate=0.0) \
            if lr == "schedule" else LR
        var = keras.Variable(P0, dtype="float32", name="w")  # slot names repeat the variable's name
        opt = cls(learning_rate=rate, beta_1=B1, beta_2=B2, epsilon=EPS)
        opt.build([var])
        return opt, var

    old, old_var = make(keras.optimizers.Adam)
    new, new_var = make(TorchAdam)
    # the same variables, in the same order, with the same names, shapes and dtypes
    assert [(v.name, v.shape, v.dtype) for v in new.variables] == [(v.name, v.shape, v.dtype) for v in old.variables]
    old.apply_gradients([(tf.constant(GRADS[0], tf.float32), old_var)])
    path = tf.train.Checkpoint(opt=old).write(str(tmp_path / "ckpt"))

    tf.train.Checkpoint(opt=new).read(path).assert_existing_objects_matched()
    assert int(new.iterations.numpy()) == 1
    for a, b in zip(old.variables, new.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    # the restored step count drives the bias correction of the next update (t = 2)
    new_var.assign(old_var)
    m, v = new._momentums[0].numpy(), new._velocities[0].numpy()
    rate = float(new.learning_rate.numpy())
    new.apply_gradients([(tf.constant(GRADS[1], tf.float32), new_var)])
    ref = torch_adam(old_var.numpy(), GRADS[1:2], [rate], m=m, v=v, t0=1)[0]
    np.testing.assert_allclose(new_var.numpy(), ref, rtol=3e-7)


def test_loss_scale_optimizer_fp16_skips_nonfinite_then_matches_reference():
    opt = keras.optimizers.LossScaleOptimizer(TorchAdam(learning_rate=LR, beta_1=B1, beta_2=B2))
    var = keras.Variable(P0, dtype="float32")  # mixed precision: float32 variables, float16 compute
    g16 = np.array([0.25, -0.5, 1.5, 2.0**-14], np.float16)  # |g| * 2^15 stays finite in float16

    def step(g):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.cast(var, tf.float16) * g)
            scaled = opt.scale_loss(loss)
        opt.apply_gradients([(tape.gradient(scaled, var), var)])

    step(tf.constant([np.inf, 0, 0, 0], tf.float16))  # skipped: no update, no inner step, scale halved
    np.testing.assert_array_equal(var.numpy(), P0.astype(np.float32))
    assert int(opt.inner_optimizer.iterations.numpy()) == 0
    assert float(opt.dynamic_scale.numpy()) == 2.0**14

    step(tf.constant(g16))
    assert int(opt.inner_optimizer.iterations.numpy()) == 1
    ref = torch_adam(P0, [g16.astype(np.float64)], [LR32])[0]
    np.testing.assert_allclose(var.numpy(), ref, rtol=3e-7)


def test_mirrored_strategy_two_replicas():
    # ReductionToOneDevice: collective all-reduce keys restart per strategy and clash with other tests'
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                              cross_device_ops=tf.distribute.ReductionToOneDevice())
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        var = keras.Variable(P0, dtype="float32")
        opt = TorchAdam(learning_rate=LR, beta_1=B1, beta_2=B2)
        opt.build([var])

    @tf.function
    def step(g):
        def replica(g):
            # each replica contributes half of the gradient; apply_gradients sums them across replicas
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(var * g) / 2
            opt.apply_gradients([(tape.gradient(loss, var), var)])

        strategy.run(replica, args=(g,))

    for g in GRADS[:2]:
        step(tf.constant(g, tf.float32))
    ref = torch_adam(P0, GRADS[:2], [LR32] * 2)[0]
    for local in strategy.experimental_local_results(var.value):
        np.testing.assert_allclose(local.numpy(), ref, rtol=3e-7)
    assert int(opt.iterations.numpy()) == 2


def test_config_round_trip_and_amsgrad_refused():
    opt = TorchAdam(learning_rate=LR, beta_1=B1, beta_2=B2)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(again) is TorchAdam
    assert (again.beta_1, again.beta_2, again.epsilon) == (B1, B2, EPS)
    with pytest.raises(ValueError, match="amsgrad"):
        TorchAdam(amsgrad=True)
