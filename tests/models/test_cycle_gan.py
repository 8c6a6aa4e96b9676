import numpy as np
import pytest
import tensorflow as tf
from numerics import network_atol

from cyclegan_tf.config import TrainConfig
from cyclegan_tf.models.cycle_gan import CycleGAN
from cyclegan_tf.models.optim import LinearDecay, schedule_steps

LOSS_NAMES = CycleGAN.loss_names
SMALL = dict(image_size=32, netG="resnet_6blocks", ngf=4, ndf=4, pool_size=4, seed=3)


def batch(n: int, seed: int) -> tf.Tensor:
    return tf.random.stateless_uniform([n, 32, 32, 3], [seed, 0], -1, 1)


def weights(model: CycleGAN) -> list[np.ndarray]:
    return [v.numpy() for m in (model.G, model.F, model.D_X, model.D_Y) for v in m.weights]


# XLA's case is slow-marked (make test-slow): pix2pix's step test compiles one with XLA in make test.
@pytest.mark.parametrize("options", [{}, pytest.param({"gan_mode": "vanilla", "lambda_identity": 0.0,
                                                       "jit_compile": True}, marks=pytest.mark.slow),
                                     {"gan_mode": "wgangp", "norm": "batch", "upsample": "resize",
                                      "netD": "multiscale", "lambda_feat": 10.0}])  # pix2pixHD's D and loss
def test_a_step_trains_everything_with_finite_losses(options: dict) -> None:
    cfg = TrainConfig(**{**SMALL, **options}).resolved()
    model = CycleGAN(cfg, steps_per_epoch=10, global_batch=2)
    before = weights(model)
    step = model.make_train_step(tf.distribute.get_strategy())
    loss = step(batch(2, 1), batch(2, 2))
    assert bool(loss["finite"]) and set(LOSS_NAMES) <= loss.keys()
    assert (float(loss["identity"]) == 0.0) == (cfg.lambda_identity == 0)
    assert (float(loss["feat"]) > 0) == (cfg.lambda_feat > 0)  # pix2pixHD's multi-scale D and feature matching
    changed = [not np.array_equal(a, b) for a, b in zip(before, weights(model)) if a.size > 1]
    assert all(changed)
    assert int(model.step.numpy()) == 1 and int(model.opt_G.iterations.numpy()) == 1
    assert int(model.pool_X.count.numpy()) == 2


def test_mirrored_matches_default_strategy() -> None:
    """Two replicas of batch 1 give the losses and weights of one replica of batch 2.

    norm none: a conv bias followed by instance norm has an exactly-zero gradient in theory, so its
    computed gradient is rounding noise, and Adam's first step (lr · g / |g|) turns any noise into a
    full ±lr move. Instance norm is per-sample, so it does not depend on how the batch is split.
    """
    cfg = TrainConfig(**SMALL, norm="none").resolved()
    x, y = batch(2, 4), batch(2, 5)
    single = CycleGAN(cfg, 10, global_batch=2)
    loss_single = single.make_train_step(tf.distribute.get_strategy())(x, y)

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mirrored = CycleGAN(cfg, 10, global_batch=2)
    ds = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors((x, y)))
    xd, yd = next(iter(ds))
    loss_mirrored = mirrored.make_train_step(strategy)(xd, yd)
    # Two replicas sum in another order than one: the losses and gradients differ by rounding, through a
    # generator and a discriminator (numerics.network_atol, relative: the values are of order 1).
    rtol = network_atol(single.G, winograd=False) + network_atol(single.D_Y, winograd=False)  # training: plain convs
    for k in LOSS_NAMES:
        np.testing.assert_allclose(float(loss_mirrored[k]), float(loss_single[k]), rtol=rtol, atol=rtol, err_msg=k)
    # Adam's first moment after one step is (1 − β₁)·g: the gradients, compared as vectors. The weights are
    # not compared elementwise: Adam's first step lr·g/(|g| + ε) turns a rounding-sized change of a g near 0
    # into any change up to lr.
    for name in ("opt_G", "opt_D"):
        ours, theirs = _momenta(single, name), _momenta(mirrored, name)
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert np.linalg.norm(a - b) <= rtol * np.linalg.norm(a) + 1e-30, name
        assert int(getattr(mirrored, name).iterations.numpy()) == 1  # the summed gradients applied once


def _momenta(model: CycleGAN, optimizer: str) -> list[np.ndarray]:
    found = [v.numpy() for v in getattr(model, optimizer).variables if v.name.endswith("_momentum")]
    assert found, f"{optimizer}: no momentum slots found by name"
    return found


def test_linear_decay_schedule() -> None:
    lr = LinearDecay(2e-4, constant_steps=100, decay_steps=100)
    np.testing.assert_allclose([float(lr(s)) for s in (0, 100, 150, 200, 250)], [2e-4, 2e-4, 1e-4, 0, 0], atol=1e-12)
    assert schedule_steps(TrainConfig(epochs=100, epochs_decay=100), 1000) == (100_000, 100_000)
    assert schedule_steps(TrainConfig(epochs=100, epochs_decay=100, max_steps=50), 1000) == (25, 25)


def test_discriminators_learn_at_their_own_rate() -> None:
    """--D_learning_rate sets opt_D's schedule alone (two time-scales); G's stays --learning_rate's."""
    cfg = TrainConfig(**SMALL, learning_rate=2e-4, D_learning_rate=5e-5, max_steps=4).resolved()
    model = CycleGAN(cfg, steps_per_epoch=10, global_batch=1)
    assert float(model.opt_D.learning_rate) == pytest.approx(5e-5) and float(model.opt_G.learning_rate) == \
        pytest.approx(2e-4)  # what each Adam reads at its update count 0
    np.testing.assert_allclose([float(model.learning_rate("opt_D")(s)) for s in (0, 2, 3)], [5e-5, 5e-5, 2.5e-5])


def test_resolved_defaults_follow_the_paper() -> None:
    assert TrainConfig(image_size=256).resolved().netG == "resnet_9blocks"
    assert TrainConfig(image_size=128).resolved().netG == "resnet_6blocks"
    assert TrainConfig(image_size=256).resolved().load_size == 286
    assert TrainConfig(use_lsgan=False).resolved().gan_mode == "vanilla"


# --recompute: test_recompute_gives_the_same_step
@pytest.mark.half_precision
@pytest.mark.parametrize("options", [{"precision": "bf16"}, {"precision": "fp16"},
                                     pytest.param({"precision": "bf16", "jit_compile": True}, marks=pytest.mark.slow)])
def test_precision_xla_and_recompute_options_train_a_step(options: dict) -> None:
    """Each speed/memory option trains: finite losses, every weight moves, weights stay float32."""
    cfg = TrainConfig(**{**SMALL, **options}).resolved()
    model = CycleGAN(cfg, steps_per_epoch=10, global_batch=2)
    before = weights(model)
    step = model.make_train_step(tf.distribute.get_strategy())
    # fp16's dynamic loss scale starts high (2^15): steps whose gradients overflow are skipped while it halves.
    for _ in range(12 if cfg.precision == "fp16" else 1):
        loss = step(batch(2, 1), batch(2, 2))
        assert bool(loss["finite"]) and all(np.isfinite(float(loss[k])) for k in LOSS_NAMES)
    assert all(not np.array_equal(a, b) for a, b in zip(before, weights(model)) if a.size > 1)
    assert all(v.dtype == "float32" for v in model.G.trainable_variables)
    if cfg.precision != "fp32":
        assert model.G.layers[2].compute_dtype == {"bf16": "bfloat16", "fp16": "float16"}[cfg.precision]


@pytest.mark.slow  # make test-slow: pix2pixHD's two-replica step test runs --recompute in make test
def test_recompute_gives_the_same_step() -> None:
    """Gradient checkpointing changes memory and time, not the maths."""
    x, y = batch(2, 4), batch(2, 5)
    models = [CycleGAN(TrainConfig(**SMALL, recompute=r).resolved(), 10, global_batch=2) for r in (False, True)]
    for m in models:
        m.make_train_step(tf.distribute.get_strategy())(x, y)
    # recomputed activations round alike or not; training runs the plain convs
    rtol = network_atol(models[0].G, winograd=False) + network_atol(models[0].D_Y, winograd=False)
    for name in ("opt_G", "opt_D"):
        assert len(_momenta(models[0], name)) == len(_momenta(models[1], name))
        for a, b in zip(_momenta(models[0], name), _momenta(models[1], name)):
            assert np.linalg.norm(a - b) <= rtol * np.linalg.norm(a) + 1e-30, name


def test_ghmc_step_and_its_statistics_in_the_checkpoint(tmp_path) -> None:
    """--gan_mode ghmc: one step with finite losses; each D's running bin counts are saved and restored. (Two
    replicas were checked by hand: the same losses and counts as one, docs/decisions.md.)"""
    cfg = TrainConfig(**SMALL, gan_mode="ghmc", lambda_identity=0.0).resolved()
    model = CycleGAN(cfg, steps_per_epoch=10, global_batch=2)
    loss = model.make_train_step(tf.distribute.get_strategy())(batch(2, 1), batch(2, 2))
    assert bool(loss["finite"]) and float(loss["D_X"]) > 0 and float(loss["D_Y"]) > 0
    counts = {n: model.adversarial.ghm[n].numpy() for n in ("D_X", "D_Y")}
    for c in counts.values():  # 2 real + 2 fake score maps of 2 × 2, after one step: (1 − 0.75) · 16
        assert c.shape == (1, 10) and float(c.sum()) == 0.25 * 16
    checkpoint = model.checkpoint()
    _ = checkpoint.save_counter  # as runs.Checkpointer: created before the write, so a restore matches it
    path = checkpoint.write(str(tmp_path / "ckpt"))
    assert {"ghm/D_X/.ATTRIBUTES/VARIABLE_VALUE", "ghm/D_Y/.ATTRIBUTES/VARIABLE_VALUE"} <= {
        name for name, _ in tf.train.list_variables(path)}
    fresh = CycleGAN(cfg, steps_per_epoch=10, global_batch=2)
    fresh.checkpoint().restore(path).assert_existing_objects_matched()
    for n, c in counts.items():
        np.testing.assert_array_equal(fresh.adversarial.ghm[n].numpy(), c)
