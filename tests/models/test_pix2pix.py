"""pix2pix: its defaults, its step, resume, export, and that it learns paired ShapeScapes."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, shapescapes_pairs

from cyclegan_tf.config import TrainConfig
from cyclegan_tf.data import convert
from cyclegan_tf.deploy import savedmodel, translate
from cyclegan_tf.errors import UserError
from cyclegan_tf.evaluation import score
from cyclegan_tf.models.cycle_gan import CycleGAN
from cyclegan_tf.models.pix2pix import Pix2Pix
from cyclegan_tf.training.loop import train
from cyclegan_tf.training.runs import restore_generators

# unet_128 needs sides divisible by 128; ngf 4 keeps it cheap.
TINY = dict(model="pix2pix", image_size=128, load_size=136, netG="unet_128", ngf=4, ndf=4, seed=1)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> dict:
    """Paired ShapeScapes at 128 px: training pairs as records, and the paired test split."""
    return shapescapes_pairs(tmp_path_factory.mktemp("pairs"), 128, train=40, test=16)


def test_model_defaults_are_the_official_ones_unless_given() -> None:
    cfg = Pix2Pix.configure(TrainConfig(model="pix2pix"), set()).resolved()
    assert (cfg.netG, cfg.norm, cfg.gan_mode, cfg.use_dropout, cfg.pool_size) == ("unet_256", "batch", "vanilla",
                                                                                    True, 0)
    assert cfg.lambda_L1 == 100 and cfg.direction == "AtoB"
    mine = Pix2Pix.configure(TrainConfig(model="pix2pix", norm="instance"), {"norm"}).resolved()
    assert mine.norm == "instance" and mine.netG == "unet_256"
    assert CycleGAN.configure(TrainConfig(), set()) == TrainConfig()  # CycleGAN keeps its own


def test_the_discriminator_is_conditional_and_the_generator_has_dropout() -> None:
    model = Pix2Pix(Pix2Pix.configure(TrainConfig(**TINY), {"netG", "ngf", "ndf"}).resolved(), 10, 1)
    assert model.D.input_shape[-1] == 6
    x = tf.random.stateless_uniform([1, 128, 128, 3], [0, 1], -1, 1)
    # Dropout is active in training and off at test; batch norm at test uses the image's own statistics.
    assert not np.allclose(model.G(x, training=True), model.G(x, training=True))
    np.testing.assert_array_equal(model.translate(x), model.translate(x))


@pytest.mark.parametrize("options", [{}, {"jit_compile": True, "netG": "resnet_6blocks", "norm": "instance",
                                          "gan_mode": "lsgan"}, {"gan_mode": "wgangp", "netD": "pixel"},
                                     {"netD": "multiscale", "num_D": 3, "lambda_feat": 10.0, "label_nc": 5}])
def test_a_step_trains_G_and_D_with_finite_losses(options: dict) -> None:
    own = {k: options[k] for k in ("label_nc",) if k in options}
    common = {k: v for k, v in {**TINY, **options}.items() if k not in own}
    cfg = Pix2Pix.configure(TrainConfig(**common, extra=own), set(TINY) | set(options)).resolved()
    model = Pix2Pix(cfg, steps_per_epoch=10, global_batch=2)
    before = [v.numpy() for v in model.G.trainable_variables + model.D.trainable_variables]
    step = model.make_train_step(tf.distribute.get_strategy())
    x, y = (tf.random.stateless_uniform([2, 128, 128, 3], [s, 0], -1, 1) for s in (1, 2))
    loss = step(x, y)
    assert bool(loss["finite"]) and set(model.loss_names) <= loss.keys()
    assert (float(loss["G_feat"]) > 0) == (cfg.lambda_feat > 0)  # pix2pixHD's multi-scale D and feature matching
    assert model.D.input_shape[-1] == (cfg.label_nc or 3) + 3  # with --label_nc, D sees one-hot labels ‖ image
    after = [v.numpy() for v in model.G.trainable_variables + model.D.trainable_variables]
    assert all(not np.array_equal(a, b) for a, b in zip(before, after) if a.size > 1)
    assert int(model.opt_G.iterations.numpy()) == 1 and int(model.opt_D.iterations.numpy()) == 1


def test_two_replicas_train_batch_norm_and_dropout(pairs: dict, tmp_path: Path) -> None:
    cfg = TrainConfig(**TINY, X=pairs["records"], checkpoint_dir=str(tmp_path / "run"), batch_size=2,
                      strategy="mirrored", max_steps=2, log_every=1)
    assert train(cfg) == 0


def checkpoint_values(path: str) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(path)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if "save_counter" not in k and k != "_CHECKPOINTABLE_OBJECT_GRAPH"}  # the graph names layers


def test_resume_equals_an_uninterrupted_run(pairs: dict, tmp_path: Path) -> None:
    """Dropout's random state, batch-norm statistics and both optimisers come back from the checkpoint."""
    whole = tmp_path / "whole"
    cfg = TrainConfig(**TINY, X=pairs["records"], checkpoint_dir=str(whole), deterministic=True, max_steps=6,
                      save_every=3, log_every=1)
    assert train(cfg) == 0
    # The same run as if it had been killed after step 3: only ckpt-3 left; resuming must redo 4..6 exactly.
    cut = tmp_path / "cut"
    shutil.copytree(whole, cut)
    for f in cut.glob("ckpt-6.*"):
        f.unlink()
    for f in cut.glob("events.out.tfevents.*"):
        f.unlink()
    tf.compat.v1.train.update_checkpoint_state(str(cut), str(cut / "ckpt-3"))
    assert train(TrainConfig(load_model=str(cut))) == 0
    a, b = checkpoint_values(str(whole / "ckpt-6")), checkpoint_values(str(cut / "ckpt-6"))
    assert a.keys() == b.keys() and any(k.startswith("dropout/") for k in a)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.slow  # 200 steps at 128 px, about a minute: make test-slow (pix2pixHD's learning test stays in make test)
def test_learns_labels_to_photo_beyond_the_identity_baseline(pairs: dict, tmp_path: Path) -> None:
    """A→B (labels → photo) with the official defaults, exported, run, and scored on the paired test split."""
    run = tmp_path / "run"
    cfg = TrainConfig(**{**TINY, "ngf": 8, "ndf": 8}, X=pairs["records"], checkpoint_dir=str(run), max_steps=200,
                      log_every=50, summary_every=100)
    assert train(cfg) == 0
    model = savedmodel.export(run, "XtoY", tmp_path / "labels2photo")
    loaded = tf.saved_model.load(str(model))
    assert loaded.direction.numpy() == b"AtoB" and int(loaded.train_step.numpy()) == 200
    translate.run(str(model), str(pairs["data"] / "testA"), str(tmp_path / "out"), fmt="png")
    truth = pairs["data"] / "testB"
    learned = score.evaluate(tmp_path / "out", truth=truth)
    identity = score.evaluate(pairs["data"] / "testA", truth=truth)
    # Measured: PSNR 19.5 dB vs 9.4, SSIM 0.32 vs 0.26 (a label map is nothing like its photo).
    assert learned["psnr"] > identity["psnr"] + 5 and learned["ssim"] > identity["ssim"], (learned, identity)
    with pytest.raises(UserError, match="pix2pix run: it exports XtoY, not YtoX"):
        savedmodel.export(run, "YtoX", tmp_path / "nothing")
    nets = restore_generators(run)[0]
    assert list(nets) == ["G"] and nets["G"].count_params() > 0


def run_tool(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True, text=True)


def test_command_line_training_export_and_one_line_errors(pairs: dict, tmp_path: Path) -> None:
    args = ["--model=pix2pix", f"--X={pairs['records']}", "--image_size=128", "--netG=unet_128", "--ngf=4",
            "--ndf=4"]
    done = run_tool("train.py", *args, f"--checkpoint_dir={tmp_path / 'run'}", "--max_steps=2")
    assert done.returncode == 0, done.stderr
    saved = json.loads((tmp_path / "run" / "flags.json").read_text())
    assert (saved["norm"], saved["gan_mode"], saved["use_dropout"], saved["pool_size"]) == ("batch", "vanilla",
                                                                                          True, 0)
    done = run_tool("export_graph.py", f"--checkpoint_dir={tmp_path / 'run'}", "--XtoY_model=labels2photo",
                    "--YtoX_model=photo2labels", f"--export_dir={tmp_path / 'exports'}")
    assert done.returncode == 0, done.stderr
    assert "--YtoX_model=photo2labels is skipped" in done.stdout
    assert (tmp_path / "exports" / "labels2photo" / "saved_model.pb").exists()
    assert not (tmp_path / "exports" / "photo2labels").exists()

    unpaired = tmp_path / "unpaired.tfrecords"
    convert.build_folder("A", str(pairs["data"] / "testA"), str(unpaired))
    for bad, message in ((["--Y=" + str(unpaired)], "--Y="), ([f"--X={unpaired}"], "image_B/encoded"),
                         (["--norm=instance", f"--load_model={tmp_path / 'run'}"], "--norm=instance does not match")):
        done = run_tool("train.py", *args, *bad, f"--checkpoint_dir={tmp_path / 'bad'}")
        # TensorFlow's C++ start-up lines may precede ours (they cannot be silenced in 2.21).
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert len(errors) == 1 and message in errors[0], done.stderr
