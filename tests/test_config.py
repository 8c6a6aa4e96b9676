"""Options: every value that cannot work is a one-line error before anything is written."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cyclegan_tf.config import TrainConfig
from cyclegan_tf.errors import UserError
from cyclegan_tf.training.loop import train


@pytest.mark.parametrize("bad, message", [
    ({"image_size": 0}, "--image_size=0: must be at least 1"),
    ({"ngf": 0}, "--ngf=0: must be at least 1"),
    ({"pool_size": -1}, "--pool_size=-1: must be at least 0"),
    ({"netD": "n_layers", "n_layers_D": 10}, "--n_layers_D=10: must be between 1 and 8"),
    ({"netD": "n_layers", "n_layers_D": 6, "image_size": 64}, "--n_layers_D=6 needs images of at least 192 px"),
    ({"lambda1": -1.0}, "--lambda1=-1.0: must be at least 0"),
    ({"lambda_identity": float("nan")}, "--lambda_identity=nan: must be at least 0"),
    ({"learning_rate": -2e-4}, "--learning_rate=-0.0002: must be positive"),
    ({"max_steps": -5}, "--max_steps=-5: must be at least 0"),
    ({"real_label": 5.0}, "--real_label=5.0: must be in (0, 1]"),
    ({"beta1": 1.0}, "--beta1=1.0: must be in [0, 1)"),
    ({"adam_eps": 0.0}, "--adam_eps=0.0: must be positive"),
    ({"norm": "layer"}, "--norm=layer: choose one of instance, batch, none"),
    ({"ngf": "64"}, "--ngf='64': expected int"),
    ({"epochs": 0, "epochs_decay": 0}, "nothing to train"),
])
def test_bad_values_are_refused_before_the_run_folder_exists(bad: dict, message: str, tmp_path: Path) -> None:
    cfg = TrainConfig(X="x.tfrecords", Y="y.tfrecords", checkpoint_dir=str(tmp_path / "run"), **bad)
    with pytest.raises(UserError) as e:
        train(cfg)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "run").exists()


def test_the_defaults_and_the_paper_settings_pass() -> None:
    TrainConfig().resolved().validate()
    TrainConfig(image_size=128, netD="n_layers", n_layers_D=5, real_label=0.9, lambda_identity=0).resolved().validate()


def test_model_options_round_trip_through_flags_json(tmp_path: Path) -> None:
    cfg = TrainConfig(ngf=8, extra={"nce_T": 0.07})
    cfg.save(tmp_path / "flags.json")
    loaded = TrainConfig(**TrainConfig.load(tmp_path / "flags.json"))
    assert loaded == cfg and loaded.nce_T == 0.07 and "nce_T" in cfg.changed()
    with pytest.raises(AttributeError):
        _ = cfg.no_such_option
    assert dataclasses.replace(cfg).extra == cfg.extra
