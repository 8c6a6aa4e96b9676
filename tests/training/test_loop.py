"""The training loop in-process: run folder, TensorBoard, resume, faults, one-line errors."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import event_tags, texture_records

from cyclegan_tf.config import TrainConfig
from cyclegan_tf.data import convert
from cyclegan_tf.errors import UserError
from cyclegan_tf.training.loop import train
from cyclegan_tf.training.runs import restore_generators

TINY = dict(image_size=32, load_size=36, netG="resnet_6blocks", ngf=4, ndf=4, pool_size=3, log_every=2,
            summary_every=2, save_every=100)


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict:
    return texture_records(tmp_path_factory.mktemp("records"), 6)


def config(records: dict, folder: Path, **kw) -> TrainConfig:
    return TrainConfig(**{"X": records["X"], "Y": records["Y"], "checkpoint_dir": str(folder), **TINY, **kw})


def test_run_folder_holds_flags_checkpoint_and_tensorboard(records: dict, tmp_path: Path, capsys) -> None:
    assert train(config(records, tmp_path / "run", max_steps=4)) == 0
    run = tmp_path / "run"
    assert tf.train.latest_checkpoint(str(run)).endswith("ckpt-4")
    saved = json.loads((run / "flags.json").read_text())
    assert saved["ngf"] == 4 and saved["netG"] == "resnet_6blocks" and saved["max_steps"] == 4
    tags = event_tags(run)
    for tag in ("loss/G", "loss/F", "loss/D_X", "loss/D_Y", "loss/cycle", "loss/identity", "learning_rate",
                "perf/steps_per_sec", "perf/images_per_sec", "X/generated", "X/reconstruction", "Y/generated",
                "Y/reconstruction"):
        assert tags.get(tag, 0) >= 2, tag
    out = capsys.readouterr().out
    assert "step 4/4" in out and "training finished: 4 steps" in out


def test_resume_continues_where_it_stopped(records: dict, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert train(config(records, run, max_steps=2)) == 0
    # vanhuyz's --load_model, with nothing else: every option comes from flags.json
    assert train(TrainConfig(load_model=str(run))) == 0
    assert "already finished its 2 steps" in capsys.readouterr().out
    with pytest.raises(UserError, match="--image_size=64 does not match"):
        train(TrainConfig(load_model=str(run), image_size=64), explicit={"image_size"})
    assert train(TrainConfig(load_model=str(run), max_steps=4), explicit={"max_steps"}) == 0
    assert "resuming" in capsys.readouterr().out
    assert tf.train.latest_checkpoint(str(run)).endswith("ckpt-4")
    G, F = restore_generators(run)[0].values()
    assert G.count_params() == F.count_params() > 0


def test_incompatible_architecture_is_a_one_line_error(records: dict, tmp_path: Path) -> None:
    assert train(config(records, tmp_path / "run", max_steps=1)) == 0
    with pytest.raises(UserError, match=r"--ngf=8 does not match .* --ngf=4"):
        train(config(records, tmp_path / "run", max_steps=2, ngf=8), explicit={"ngf", "max_steps"})


def test_nan_stops_and_keeps_the_last_good_checkpoint(records: dict, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    cfg = config(records, run, max_steps=50, learning_rate=1e30, log_every=1, save_every=1, pool_size=0)
    assert train(cfg) == 1
    assert "became NaN or infinite" in capsys.readouterr().err
    latest = tf.train.latest_checkpoint(str(run))
    if latest:  # whatever was saved holds finite weights
        reader = tf.train.load_checkpoint(latest)
        for name in reader.get_variable_to_shape_map():
            value = reader.get_tensor(name)
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                assert np.isfinite(value).all(), name


@pytest.mark.parametrize("change,match", [
    ({"X": ""}, "--X and --Y are required"),
    ({"X": "/nonexistent.tfrecords"}, "no such TFRecord"),
    ({"image_size": 30}, "needs a multiple of 4"),
    ({"preprocess": "none"}, "--pool_size=0"),
    ({"batch_size": 0}, "--batch_size=0"),
    ({"load_size": 30}, "--load_size=30 is smaller"),
])
def test_bad_options(records: dict, tmp_path: Path, change: dict, match: str) -> None:
    with pytest.raises(UserError, match=match):
        train(config(records, tmp_path / "run", max_steps=1, **change))


def test_wrong_schema(records: dict, tmp_path: Path) -> None:
    path = tmp_path / "other.tfrecords"
    with tf.io.TFRecordWriter(str(path)) as w:
        w.write(tf.train.Example().SerializeToString())
    with pytest.raises(UserError, match="lack image/encoded_image"):
        train(config(records, tmp_path / "run", max_steps=1, Y=str(path)))


def test_images_of_varying_size_train_without_a_crop(tmp_path: Path, capsys) -> None:
    """--preprocess none keeps each image's size (rounded to 4): the step takes any size. With a crop, the
    doctor's short form notes the images smaller than it."""
    from PIL import Image

    for d, sizes in (("X", ((40, 40), (48, 32), (32, 44))), ("Y", ((36, 52), (40, 40)))):
        (tmp_path / d).mkdir()
        for i, (w, h) in enumerate(sizes):
            rgb = np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(rgb).save(tmp_path / d / f"{i}.png")
        convert.build_folder(d, str(tmp_path / d), str(tmp_path / f"{d}.tfrecords"))
    cfg = TrainConfig(X=str(tmp_path / "X.tfrecords"), Y=str(tmp_path / "Y.tfrecords"),
                      checkpoint_dir=str(tmp_path / "run"), **{**TINY, "pool_size": 0}, preprocess="none", max_steps=5)
    assert train(cfg) == 0
    assert tf.train.latest_checkpoint(str(tmp_path / "run")).endswith("ckpt-5")
    assert "note: data:" not in capsys.readouterr().err
    cropped = dataclasses.replace(cfg, preprocess="resize_and_crop", image_size=40, load_size=44, max_steps=1,
                                  checkpoint_dir=str(tmp_path / "cropped"))
    assert train(cropped) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: data:")]
    assert notes[:2] == [f"note: data: 2 of the 3 images of X ({cfg.X}) are smaller than the 40 px crop: upscaled, "
                         "blurry", f"note: data: 1 of the 2 images of Y ({cfg.Y}) are smaller than the 40 px crop: "
                         "upscaled, blurry"] and len(notes) == 3


def test_decay_steps_load_images_at_the_crop_size_where_a_model_asks(records: dict, tmp_path: Path) -> None:
    """CUT's official data: from the first decay step on, an image is resized to the crop size and not
    cropped (no zoom); before it, cropped from the load size. X is 6 textures of 40 px."""
    from cyclegan_tf.data import pipeline
    from cyclegan_tf.training import loop

    cfg = config(records, tmp_path, max_steps=8, epochs=1, epochs_decay=1, no_flip=True)  # 4 + 4 steps
    from cyclegan_tf.models.cut import CUT
    from cyclegan_tf.models.cycle_gan import CycleGAN

    assert CUT.resize_when_decaying and not CycleGAN.resize_when_decaying
    stream, steps, _ = loop.open_data(cfg, CUT)
    whole = [pipeline.to_unit_range(tf.image.resize(tf.cast(pipeline.decode(r), tf.float32), [32, 32], "bicubic",
                                                antialias=True)) for r in tf.data.TFRecordDataset(records["X"])]

    def is_whole(x: tf.Tensor) -> bool:
        return min(float(tf.reduce_max(tf.abs(x[0] - w))) for w in whole) < 1e-4

    xs = [x for x, _ in stream(0).take(8)]
    assert [is_whole(x) for x in xs] == [False] * 4 + [True] * 4
    resumed = [x for x, _ in stream(6).take(2)]  # a run resumed in the decay phase reads the same images
    for a, b in zip(resumed, xs[6:]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    plain = [x for x, _ in loop.open_data(cfg, CycleGAN)[0](0).take(8)]
    assert not any(is_whole(x) for x in plain)


def test_from_pytorch_starts_g_and_f_from_official_files(records: dict, tmp_path: Path, capsys) -> None:
    official = Path(__file__).parents[1] / "assets" / "official"
    files = f"{official / 'junyanz_resnet6_instance.pth'},{official / 'junyanz_resnet6_instance.legacy.pth'}"
    # netG and ngf are not given: the files' (resnet_6blocks, ngf 4) become the run's
    cfg = TrainConfig(X=records["X"], Y=records["Y"], checkpoint_dir=str(tmp_path / "run"), image_size=32,
                      load_size=36, ndf=4, pool_size=3, max_steps=1, learning_rate=1e-12, from_pytorch=files)
    assert train(cfg) == 0
    assert "--from_pytorch: G starts from" in capsys.readouterr().out
    nets, saved, _, step = restore_generators(tmp_path / "run")
    assert (saved.netG, saved.ngf, step) == ("resnet_6blocks", 4, 1)
    arrays = np.load(official / "junyanz_resnet6_instance.npz")
    x, expected = (arrays[k].transpose(0, 2, 3, 1) for k in ("x_square", "y_square_eval"))
    for name in ("G", "F"):  # one Adam step of 1e-12 moves no weight visibly
        assert np.abs(nets[name](x, training=False).numpy() - expected).max() < 1e-4
    with pytest.raises(UserError, match=r"^--from_pytorch=.*junyanz_resnet6_instance.pth: model.1.weight: shape "):
        train(config(records, tmp_path / "other", max_steps=1, ngf=8, from_pytorch=files.split(",")[0]))
    assert not (tmp_path / "other").exists()


def test_from_pytorch_starts_cut_from_its_anti_aliased_generator(records: dict, tmp_path: Path) -> None:
    official = Path(__file__).parents[1] / "assets" / "official"
    cfg = TrainConfig(X=records["X"], Y=records["Y"], model="cut", checkpoint_dir=str(tmp_path / "run"),
                      image_size=32, load_size=36, ndf=4, max_steps=1, learning_rate=1e-12,
                      from_pytorch=str(official / "cut_resnet9_antialias.pth"), extra={"num_patches": 16, "netF_nc": 8})
    assert train(cfg) == 0
    nets, saved, _, _ = restore_generators(tmp_path / "run")
    assert (saved.netG, saved.ngf, saved.no_antialias) == ("resnet_9blocks", 2, False)
    arrays = np.load(official / "cut_resnet9_antialias.npz")
    x, expected = (arrays[k].transpose(0, 2, 3, 1) for k in ("x_square", "y_square_eval"))
    assert np.abs(nets["G"](x, training=False).numpy() - expected).max() < 1e-4
