"""Run folders and checkpoints: runs written before the models/ package still restore, resume and export;
a generator missing from a checkpoint is an error; new runs never share a folder."""
from __future__ import annotations

import concurrent.futures
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT
from numerics import network_atol

from cyclegan_tf.config import TrainConfig
from cyclegan_tf.data import convert, synthetic
from cyclegan_tf.deploy import savedmodel
from cyclegan_tf.errors import UserError
from cyclegan_tf.training import runs
from cyclegan_tf.training.loop import train

LEGACY = ROOT / "tests" / "assets" / "legacy"  # written by the code of commit 58d4bb4 (two steps each)


@pytest.mark.parametrize("model", ["cycle_gan", "pix2pix"])
def test_checkpoints_from_before_restore_into_the_declared_generators(model: str) -> None:
    expected = np.load(LEGACY / "expected.npz")
    nets, cfg, model_cls, step = runs.restore_generators(LEGACY / model)
    assert step == 2 and cfg.model == model and list(nets) == model_cls.generator_names()
    for name, G in nets.items():  # expected was computed on another CPU: its kernels round differently
        np.testing.assert_allclose(G(expected["x"], training=False).numpy(), expected[f"{model}_{name}"],
                                   atol=network_atol(G), rtol=0)


def test_a_run_from_before_resumes_and_exports(tmp_path: Path) -> None:
    for d, seed in (("X", 0), ("Y", 1)):
        synthetic.write_folder(synthetic.textures(3, 36, seed), tmp_path / d)
        convert.build_folder(d, str(tmp_path / d), str(tmp_path / f"{d}.tfrecords"))
    run = tmp_path / "run"
    shutil.copytree(LEGACY / "cycle_gan", run)
    flags = json.loads((run / "flags.json").read_text())  # its records lived in a folder long gone
    flags |= {"X": str(tmp_path / "X.tfrecords"), "Y": str(tmp_path / "Y.tfrecords"), "checkpoint_dir": str(run)}
    (run / "flags.json").write_text(json.dumps(flags))
    assert train(TrainConfig(load_model=str(run), max_steps=3)) == 0
    assert tf.train.latest_checkpoint(str(run)).endswith("ckpt-3")
    for direction in ("XtoY", "YtoX"):
        loaded = tf.saved_model.load(str(savedmodel.export(run, direction, tmp_path / direction)))
        assert int(loaded.train_step.numpy()) == 3


def test_a_generator_missing_from_the_checkpoint_is_an_error(tmp_path: Path) -> None:
    """A pix2pix checkpoint relabelled as CycleGAN holds no F: never export a random one."""
    run = tmp_path / "run"
    shutil.copytree(LEGACY / "pix2pix", run)
    flags = json.loads((run / "flags.json").read_text()) | {"model": "cycle_gan"}
    (run / "flags.json").write_text(json.dumps(flags))
    with pytest.raises(UserError, match="does not hold the networks G, F"):
        runs.restore_generators(run)


def test_hand_edited_flags_are_one_line_errors(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(LEGACY / "cycle_gan", run)
    flags = json.loads((run / "flags.json").read_text()) | {"ngf": "four"}
    (run / "flags.json").write_text(json.dumps(flags))
    with pytest.raises(UserError, match=r"flags.json: --ngf='four': expected int"):
        runs.read_run(run)


def test_new_runs_in_the_same_minute_get_folders_of_their_own(tmp_path: Path, monkeypatch) -> None:
    """The folder is claimed by creating it: runs started at the same moment never share one."""
    monkeypatch.chdir(tmp_path)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        folders = list(pool.map(lambda _: runs.run_dir(TrainConfig()), range(8)))
    assert len(set(folders)) == 8 and all(f.is_dir() and f.parent == Path("checkpoints") for f in folders)
    assert len({f.name[:13] for f in folders}) <= 2  # YYYYmmdd-HHMM, -2, -3… (two names if a minute turned)


def test_a_run_that_fails_its_checks_leaves_no_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="missing.tfrecords: no such TFRecord file"):
        train(TrainConfig(X="missing.tfrecords", Y="missing.tfrecords"))
    assert list((tmp_path / "checkpoints").iterdir()) == []
    with pytest.raises(UserError, match="multi_worker needs --checkpoint_dir"):
        runs.run_dir(TrainConfig(strategy="multi_worker"))
