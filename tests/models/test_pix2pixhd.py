"""pix2pixHD: official defaults, a step with every loss (VGG on random weights) in the official order,
staged training (global → local with --load_pretrain and --niter_fix_global, exact resume across the
switch), label-map exports, one-line errors, and that it learns labels → photo."""
import random
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, shapescapes_pairs
from numerics import network_atol

from cyclegan_tf import api, networks
from cyclegan_tf.config import TrainConfig
from cyclegan_tf.data import shapescapes
from cyclegan_tf.deploy import savedmodel, translate
from cyclegan_tf.errors import UserError
from cyclegan_tf.evaluation import score
from cyclegan_tf.models import losses
from cyclegan_tf.models.pix2pixhd import Pix2PixHD
from cyclegan_tf.training.loop import train
from cyclegan_tf.training.runs import open_networks, restore_generators, restore_networks
from cyclegan_tf.training.strategy import make_strategy

PALETTE = ";".join(",".join(str(int(v)) for v in c) for c in shapescapes.PALETTE)
TINY = dict(model="pix2pixhd", image_size=32, load_size=36, preprocess="resize_and_crop", ngf=4, ndf=4,
            n_downsample_global=2, n_blocks_global=1, n_blocks_local=1, seed=1, label_nc=4, palette=PALETTE,
            no_vgg_loss=True)


def split(options: dict) -> tuple[dict, dict]:
    common = {k: v for k, v in options.items() if k in TrainConfig.__dataclass_fields__}
    return common, {k: v for k, v in options.items() if k not in common}


def configured(**options) -> TrainConfig:
    common, own = split({"X": "x", **TINY, **options})
    return Pix2PixHD.configure(TrainConfig(**common, extra=own), set(common) | set(own)).resolved()


def run_config(**options) -> TrainConfig:
    common, own = split({**TINY, **options})
    return TrainConfig(**common, extra=own)


def labels(n: int, size: int = 32, seed: int = 0) -> tf.Tensor:
    """Label maps as the data gives them: palette colours in [-1, 1]."""
    classes = np.random.default_rng(seed).integers(0, 4, (n, size // 4, size // 4)).repeat(4, 1).repeat(4, 2)
    return tf.constant(shapescapes.labels(classes) / 127.5 - 1.0, tf.float32)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> dict:
    """Paired ShapeScapes at 32 px: label maps (A) and photos (B)."""
    return shapescapes_pairs(tmp_path_factory.mktemp("hd_pairs"), 32, train=16, test=4)


def test_defaults_are_the_official_ones() -> None:
    cfg = Pix2PixHD.configure(TrainConfig(model="pix2pixhd"), set()).resolved()
    assert (cfg.netG, cfg.netD, cfg.num_D, cfg.n_layers_D, cfg.ngf, cfg.ndf, cfg.norm, cfg.gan_mode, cfg.use_dropout,
            cfg.pool_size, cfg.lambda_feat) == ("global", "multiscale", 2, 3, 64, 64, "instance", "lsgan", False, 0, 10)
    assert (cfg.preprocess, cfg.load_size, cfg.image_size, cfg.epochs, cfg.epochs_decay, cfg.learning_rate,
            cfg.beta1, cfg.batch_size) == ("scale_width", 1024, 512, 100, 100, 2e-4, 0.5, 1)
    assert (cfg.n_downsample_global, cfg.n_blocks_global, cfg.n_local_enhancers, cfg.n_blocks_local,
            cfg.niter_fix_global, cfg.label_nc, cfg.no_ganFeat_loss, cfg.no_vgg_loss) == (
        4, 9, 1, 3, 0, 0, False, False)
    assert Pix2PixHD.input_multiple(cfg) == 16 and Pix2PixHD.input_multiple(configured(netG="local")) == 8


def test_a_step_trains_G_and_D_with_every_loss_as_the_official_code(tmp_path: Path) -> None:
    """G's and D's losses are both judged by D before either update (pix2pixHD's train.py; pix2pix updates
    D first), the feature matching on D's features, the VGG loss on random VGG weights (offline)."""
    random.seed(0)  # Keras' unseeded initialisers draw from it (a TF global seed would break tf.data)
    vgg = tmp_path / "vgg19_random.weights.h5"
    keras.applications.VGG19(include_top=False, weights=None).save_weights(vgg)
    model = Pix2PixHD(configured(no_vgg_loss=False, vgg_weights=str(vgg)), steps_per_epoch=10, global_batch=2)
    assert model.G.input_shape[-1] == 4 and model.D.input_shape[-1] == 7  # one-hot labels; labels ‖ image
    x, y = labels(2), tf.random.stateless_uniform([2, 32, 32, 3], [1, 2], -1, 1)
    onehot = model.encode(x)
    fake = model.G(onehot, training=True)
    judged = model.D(tf.concat([onehot, fake], -1), training=True)
    real = model.D(tf.concat([onehot, y], -1), training=True)
    expected = {"G_GAN": float(tf.reduce_mean(losses.gan_loss(judged, True))),
                "G_GAN_Feat": 10 * float(tf.reduce_mean(losses.feature_matching(real, judged))),
                "G_VGG": 10 * float(tf.reduce_mean(losses.vgg_perceptual(model.vgg, fake, y))),
                "D_real": 0.5 * float(tf.reduce_mean(losses.gan_loss(real, True)))}
    before = [v.numpy() for v in model.G.trainable_variables + model.D.trainable_variables]
    loss = model.make_train_step(tf.distribute.get_strategy())(x, y)
    assert bool(loss["finite"]) and set(model.loss_names) == set(loss) - {"finite"}
    for name, value in expected.items():
        assert float(loss[name]) == pytest.approx(value, rel=1e-4), name
    after = [v.numpy() for v in model.G.trainable_variables + model.D.trainable_variables]
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))


@pytest.mark.half_precision
def test_two_replicas_hold_the_global_generator_then_train_it_with_a_fresh_adam() -> None:
    """--netG local --niter_fix_global: the global part keeps its weights for the first epochs (here 3 of
    6 steps), then trains, with G's Adam restarted; on two replicas, in bf16, with --recompute."""
    strategy = make_strategy("mirrored", 2)
    cfg = configured(netG="local", niter_fix_global=1, epochs=1, epochs_decay=1, max_steps=6, precision="bf16",
                     recompute=True, batch_size=2)
    with strategy.scope():
        model = Pix2PixHD(cfg, steps_per_epoch=3, global_batch=2)
    assert model.fix_steps == 3
    pair = tf.data.Dataset.from_tensors((labels(2), tf.random.stateless_uniform([2, 32, 32, 3], [1, 2], -1, 1)))
    x, y = next(iter(strategy.experimental_distribute_dataset(pair)))
    step = model.make_train_step(strategy)
    inner, rest = model.G.get_layer("global"), [layer for layer in model.G.layers if layer.name != "global"]
    held = [w.numpy() for w in inner.weights]
    enhancer = [w.numpy() for layer in rest for w in layer.weights]
    lr = [float(model.opt_G.learning_rate)]
    for _ in range(3):
        assert bool(step(x, y)["finite"])
        lr.append(float(model.opt_G.learning_rate))
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(held, inner.weights))
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(enhancer, [w for la in rest for w in la.weights]))
    assert int(model.opt_G.iterations.numpy()) == 3
    step(x, y)  # step 4: Adam restarts (count 0, moments 0) and then updates all of G
    assert int(model.opt_G.iterations.numpy()) == 1 and int(model.opt_D.iterations.numpy()) == 4
    assert all(not np.array_equal(a, w.numpy()) for a, w in zip(held, inner.trainable_weights))
    # the schedule goes on by the run's step, not G's restarted count: 3 constant steps, then decaying
    assert lr[:4] == pytest.approx([2e-4] * 4) and float(model.opt_G.learning_rate) == pytest.approx(2e-4 * 2 / 3)


def checkpoint_values(path: str) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(path)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if "save_counter" not in k and k != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def test_staged_training_global_then_local_resumes_exactly_and_exports_labels(pairs: dict, tmp_path: Path,
                                                                              capsys) -> None:
    first = tmp_path / "global"
    assert train(run_config(X=pairs["records"], checkpoint_dir=str(first), netG="global", ngf=8, max_steps=2)) == 0
    pretrained = restore_networks(first, ["G", "D"])[0]

    # A local run at ngf 4 takes the global run's G (ngf 8 = 4·2) as its global part, and D's two scales.
    local = dict(X=pairs["records"], netG="local", load_pretrain=str(first), niter_fix_global=1, epochs=1,
                 epochs_decay=1, max_steps=6, save_every=2, log_every=1, deterministic=True)
    model = Pix2PixHD(configured(**local), steps_per_epoch=16, global_batch=1)
    model.warm_start(open_networks)
    assert "G (global part) and D's scale0, scale1 from" in capsys.readouterr().out
    for a, b in zip(pretrained["G"].get_weights()[:-2], model.G.get_layer("global").get_weights()):
        np.testing.assert_array_equal(a, b)
    for name in ("scale0", "scale1"):
        for a, b in zip(pretrained["D"].get_layer(name).get_weights(), model.D.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(UserError, match="does not fit this local one"):
        Pix2PixHD(configured(**{**local, "ngf": 8}), 16, 1).warm_start(open_networks)

    # Killed after step 2, before the switch at step 3: the resumed run equals the uninterrupted one.
    whole = tmp_path / "whole"
    assert train(run_config(**local, checkpoint_dir=str(whole))) == 0
    cut = tmp_path / "cut"
    shutil.copytree(whole, cut)
    for f in [*cut.glob("ckpt-4.*"), *cut.glob("ckpt-6.*"), *cut.glob("events.out.tfevents.*")]:
        f.unlink()
    tf.compat.v1.train.update_checkpoint_state(str(cut), str(cut / "ckpt-2"))
    assert train(TrainConfig(load_model=str(cut))) == 0
    a, b = checkpoint_values(str(whole / "ckpt-6")), checkpoint_values(str(cut / "ckpt-6"))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)

    # The export encodes the label map itself: a user gives the label PNG as it is, at any size.
    target = savedmodel.export(whole, "XtoY", tmp_path / "labels2photo")
    G = restore_generators(whole)[0]["G"]
    x = labels(1, 64, seed=5)
    loaded = tf.saved_model.load(str(target))  # kept: its functions need its variables
    out = loaded.translate((x + 1.0) * 127.5)["images"]
    expected = (G(networks.LabelEncoder(4, shapescapes.PALETTE)(x), training=False) + 1.0) * 127.5
    np.testing.assert_allclose(out, np.clip(expected, 0, 255), atol=127.5 * network_atol(G, winograd=False))
    import onnxruntime  # the export converts: label encoder (argmin, one-hot) and pix2pixHD's pooling included

    session = onnxruntime.InferenceSession(str(savedmodel.to_onnx(target, tmp_path / "labels2photo.onnx")))
    onnx_out = session.run(None, {session.get_inputs()[0].name: ((x + 1.0) * 127.5).numpy()})[0]
    np.testing.assert_allclose(onnx_out, out, atol=0.05)
    from_api = api.translate(api.load_generators(whole)["G"], np.round((x[0].numpy() + 1) * 127.5).astype(np.uint8))
    np.testing.assert_allclose(from_api, np.round(out[0]), atol=1)  # the API's G takes the label image too
    label_png = sorted((pairs["data"] / "testA").glob("*.png"))[0]
    odd = tmp_path / "odd.png"
    keras.utils.load_img(label_png).resize((45, 37), 0).save(odd)  # nearest: still labels
    translate.run(str(target), str(odd), str(tmp_path / "out.png"))
    assert keras.utils.load_img(tmp_path / "out.png").size == (45, 37)


@pytest.mark.parametrize("bad, message", [
    ({"netG": "resnet_9blocks"}, "pix2pixhd's generators are global and local"),
    ({"palette": "1,2"}, "--palette=1,2: expected colours R,G,B"),
    ({"label_nc": 3}, "--label_nc=3: the palette has 4 colours"),
    ({"vgg_weights": "/nowhere/vgg.h5", "no_vgg_loss": False}, "--vgg_weights=/nowhere/vgg.h5: no such file"),
    ({"niter_fix_global": -1}, "--niter_fix_global=-1"),
    ({"niter_fix_global": 2}, "--netG=global has none"),
    ({"n_downsample_global": 0}, "--n_downsample_global=0"),
    ({"image_size": 34}, "--image_size=34: global needs a multiple of 4"),
])
def test_bad_options_are_one_line_errors(bad: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        Pix2PixHD.validate(configured(**bad))


def test_offline_the_vgg_loss_stops_at_once_naming_both_ways_out(pairs: dict, tmp_path: Path) -> None:
    if losses.vgg_weights_path() or (Path("/tmp/.keras/models") / losses.VGG_FILE).exists():
        pytest.skip("this machine has the VGG19 weights cached")
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), "--model=pix2pixhd", f"--X={pairs['records']}",
                           f"--checkpoint_dir={tmp_path / 'run'}"], capture_output=True, text=True)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(errors) == 1 and "--no_vgg_loss" in errors[0] and "--vgg_weights" in errors[0], done.stderr
    assert not (tmp_path / "run").exists()


def test_learns_labels_to_photo_beyond_the_identity_baseline(pairs: dict, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = run_config(X=pairs["records"], checkpoint_dir=str(run), ngf=8, ndf=8, max_steps=200, log_every=50,
                     summary_every=100, load_size=32)
    assert train(cfg) == 0
    target = savedmodel.export(run, "XtoY", tmp_path / "labels2photo")
    translate.run(str(target), str(pairs["data"] / "testA"), str(tmp_path / "out"), fmt="png")
    truth = pairs["data"] / "testB"
    learned = score.evaluate(tmp_path / "out", truth=truth)
    identity = score.evaluate(pairs["data"] / "testA", truth=truth)
    # Measured: PSNR 16.8 dB against the label maps' 8.7. (SSIM 0.13 against 0.18: without pix2pix's L1 term
    # the photo's random texture is synthesised, not averaged, and the label map shares the truth's edges.)
    assert learned["psnr"] > identity["psnr"] + 5, (learned, identity)
