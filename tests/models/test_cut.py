"""CUT and FastCUT: official defaults, the named PatchNCE layers, a step of G, H and D_Y, exact resume,
export of the one generator, one-line errors, and that FastCUT learns a known X→Y mapping."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import photo_to_labels_error, scene_records, texture_records
from numerics import network_atol

from cyclegan_tf import models
from cyclegan_tf.config import TrainConfig
from cyclegan_tf.deploy import savedmodel
from cyclegan_tf.errors import UserError
from cyclegan_tf.models.cut import CUT, FastCUT
from cyclegan_tf.training.loop import train
from cyclegan_tf.training.runs import restore_generators
from cyclegan_tf.training.strategy import make_strategy

TINY = dict(image_size=32, load_size=36, netG="resnet_6blocks", ngf=4, ndf=4, seed=1, num_patches=64)


def configured(name: str, **options) -> TrainConfig:
    common = {k: v for k, v in {**TINY, **options}.items() if k in TrainConfig.__dataclass_fields__}
    own = {k: v for k, v in {**TINY, **options}.items() if k not in common}
    cfg = TrainConfig(model=name, X="x", Y="y", **common, extra=own)
    return models.get(name).configure(cfg, set(common) | set(own)).resolved()


def test_defaults_are_the_official_ones() -> None:
    cut, fast = configured("cut"), configured("fastcut")
    assert (cut.epochs, cut.epochs_decay, cut.pool_size, cut.lambda_NCE, cut.nce_idt, cut.flip_equivariance) == (
        200, 200, 0, 1.0, True, False)
    assert (fast.epochs, fast.epochs_decay, fast.pool_size, fast.lambda_NCE, fast.nce_idt,
            fast.flip_equivariance) == (150, 50, 0, 10.0, False, True)
    for c in (cut, fast):
        assert (c.nce_layers, c.nce_T, c.netF, c.netF_nc, c.lambda_GAN, c.gan_mode, c.norm) == (
            "0,4,8,12,16", 0.07, "mlp_sample", 256, 1.0, "lsgan", "instance")
        assert (c.init_type, c.init_gain, c.no_antialias, c.no_antialias_up, c.use_dropout) == (
            "xavier", 0.02, False, False, False)
    assert configured("fastcut", lambda_NCE=2.0).lambda_NCE == 2.0  # a given flag wins
    for name in ("cut", "fastcut"):  # 9 blocks at every size, as the official (CycleGAN: 6 at ≤ 128 px)
        assert models.get(name).configure(TrainConfig(model=name, image_size=64), {"image_size"}).resolved().netG == (
            "resnet_9blocks")
        assert models.get(name).resize_when_decaying
    assert CUT.exports == FastCUT.exports == {"XtoY": "G"}


def test_nce_layers_are_the_official_indices_or_names() -> None:
    model = CUT(configured("cut"), 10, 1)
    assert list(model.nce_layers) == ["input_pad", "down1_conv", "down2_conv", "block1", "block5"]
    # H: one MLP per layer, sized by that layer's channels (3, 2·ngf, 4·ngf, 4·ngf, 4·ngf) → 256 → 256
    assert [tuple(model.H.get_layer(f"mlp{i}_{j}").kernel.shape) for i in range(5) for j in (1, 2)] == [
        (3, 256), (256, 256), (8, 256), (256, 256), (16, 256), (256, 256), (16, 256), (256, 256), (16, 256), (256, 256)]
    named = CUT(configured("cut", nce_layers="stem, block2", no_antialias=True), 10, 1)
    assert list(named.nce_layers) == ["stem", "block2"]
    for bad in ("0,99", "0,up1", ""):
        with pytest.raises(UserError, match=f"--nce_layers={bad}: .* not a layer of G's encoder"):
            CUT(configured("cut", nce_layers=bad), 10, 1)


@pytest.mark.parametrize("name, options", [("cut", {}),
                                           pytest.param("fastcut", {"no_antialias": True, "no_antialias_up": True,
                                                        "nce_layers": "0,4,8,12", "init_type": "normal",
                                                        "nce_includes_all_negatives_from_minibatch": True,
                                                        "strategy": "mirrored", "precision": "bf16",
                                                        "recompute": True}, marks=pytest.mark.half_precision)])
def test_a_step_trains_G_H_and_D(name: str, options: dict) -> None:
    """The defaults on one device; the other switches on two replicas (conftest's logical CPUs) in bf16."""
    # train.py's strategy (its CPU reduction; a bare MirroredStrategy's collectives clash with other tests')
    strategy = make_strategy("mirrored", 2) if options.get("strategy") else tf.distribute.get_strategy()
    with strategy.scope():
        model = models.get(name)(configured(name, **options), steps_per_epoch=10, global_batch=2)
    nets = [model.G, model.H, model.D_Y]
    before = [[v.numpy() for v in n.trainable_variables] for n in nets]
    images = tf.data.Dataset.from_tensors(tuple(tf.random.stateless_uniform([2, 32, 32, 3], [s, 0], -1, 1)
                                                for s in (1, 2)))
    x, y = next(iter(strategy.experimental_distribute_dataset(images)))
    assert strategy.num_replicas_in_sync == (2 if options.get("strategy") else 1)
    loss = model.make_train_step(strategy)(x, y)
    assert bool(loss["finite"]) and set(model.loss_names) == set(loss) - {"finite"}
    assert ("NCE_Y" in loss) == (name == "cut")
    for net, old in zip(nets, before):
        assert all(not np.array_equal(a, v.numpy()) for a, v in zip(old, net.trainable_variables)), net.name
    assert int(model.opt_G.iterations.numpy()) == 1 and int(model.opt_D.iterations.numpy()) == 1
    assert 0 < float(loss["NCE"]) < 20 * model.cfg.lambda_NCE


def test_without_the_nce_loss_only_G_and_D_train() -> None:
    model = CUT(configured("cut", lambda_NCE=0.0), steps_per_epoch=10, global_batch=1)
    h = [v.numpy() for v in model.H.trainable_variables]
    x, y = (tf.random.stateless_uniform([1, 32, 32, 3], [s, 0], -1, 1) for s in (1, 2))
    loss = model.make_train_step(tf.distribute.get_strategy())(x, y)
    assert float(loss["NCE"]) == float(loss["NCE_Y"]) == 0 and bool(loss["finite"])
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(h, model.H.trainable_variables))


def checkpoint_values(path: str) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(path)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if "save_counter" not in k and k != "_CHECKPOINTABLE_OBJECT_GRAPH"}


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict[str, str]:
    return texture_records(tmp_path_factory.mktemp("cut_records"), 6)


def test_resume_equals_an_uninterrupted_run(records: dict, tmp_path: Path) -> None:
    """H, its optimiser slots and the flip draws come back: FastCUT resumed at step 3 ends where the
    uninterrupted run does."""
    whole = tmp_path / "whole"
    cfg = TrainConfig(model="fastcut", **records, **{k: v for k, v in TINY.items() if k != "num_patches"},
                      extra={"num_patches": 64}, checkpoint_dir=str(whole), deterministic=True, max_steps=6,
                      save_every=3, log_every=1)
    assert train(cfg) == 0
    cut = tmp_path / "cut"
    shutil.copytree(whole, cut)
    for f in [*cut.glob("ckpt-6.*"), *cut.glob("events.out.tfevents.*")]:
        f.unlink()
    tf.compat.v1.train.update_checkpoint_state(str(cut), str(cut / "ckpt-3"))
    assert train(TrainConfig(load_model=str(cut))) == 0
    a, b = checkpoint_values(str(whole / "ckpt-6")), checkpoint_values(str(cut / "ckpt-6"))
    # H's second layers (256×256) with their two Adam slots each: 5 layers × 3 (saved under opt_G)
    assert a.keys() == b.keys() and sum(v.shape == (256, 256) for v in a.values()) == 15
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # export_graph.py's export: the one generator, X→Y, as the run's G
    loaded = tf.saved_model.load(str(savedmodel.export(whole, "XtoY", tmp_path / "x2y")))
    G = restore_generators(whole)[0]["G"]
    pixels = tf.random.stateless_uniform([1, 32, 32, 3], [3, 0], 0, 255)
    expected = np.clip((G(pixels / 127.5 - 1, training=False).numpy() + 1) * 127.5, 0, 255)
    # the same convs on this CPU; the export's graph folds its constant weights and fuses ops in its own order
    np.testing.assert_allclose(loaded.translate(pixels)["images"].numpy(), expected,
                               atol=127.5 * network_atol(G, winograd=False))
    odd = tf.random.stateless_uniform([1, 33, 45, 3], [4, 0], 0, 255)  # any size: padded to a multiple of 4
    assert loaded.translate(odd)["images"].shape == (1, 33, 45, 3)
    with pytest.raises(UserError, match="fastcut run: it exports XtoY, not YtoX"):
        savedmodel.export(whole, "YtoX", tmp_path / "nothing")


@pytest.mark.parametrize("bad, message", [({"netG": "unet_128"}, "--netG=unet_128: CUT's PatchNCE layers"),
                                          ({"netF": "sample"}, "--netF=sample: choose one of mlp_sample"),
                                          ({"num_patches": 0}, "--num_patches=0: must be at least 1"),
                                          ({"nce_T": 0.0}, "--nce_T=0.0: must be at least")])
def test_bad_options_are_one_line_errors(bad: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        CUT.validate(configured("cut", **bad))


@pytest.mark.slow  # 250 steps, about 2.5 min on 2 cores: make test-slow
def test_cut_learns_photo_to_labels(tmp_path: Path) -> None:
    """The mapping of tests/test_learning.py (textured scenes → their label maps, trained unpaired), at
    the same size and steps, for CUT: one generator, no cycle. (FastCUT does not learn it at this budget:
    its D wins outright; docs/benchmarks.md.)"""
    size = 32
    cfg = TrainConfig(model="cut", **scene_records(tmp_path, size), checkpoint_dir=str(tmp_path / "run"),
                      image_size=size, load_size=size, netG="resnet_6blocks", ngf=16, ndf=16, batch_size=4,
                      max_steps=250, learning_rate=1e-3, log_every=100, save_every=1000, summary_every=1000)
    assert train(cfg) == 0
    err, identity_err = photo_to_labels_error(restore_generators(tmp_path / "run")[0]["G"], size)
    print(f"translation L1 {err:.3f}, identity L1 {identity_err:.3f}")  # seen: 0.297-0.324 vs 0.599 (seeds 0-2)
    assert err < 0.6 * identity_err
