"""Run folders and their checkpoints: finding or creating a run, its flags.json, saving on schedule,
restoring a run to resume it or to export its generators.

A run folder holds flags.json (every option, the model's own included), the checkpoints `ckpt-N` (what
the model's `checkpoint()` declares) and the TensorBoard event files. Re-running with the same folder (or
--load_model) resumes at the exact step.
"""
from __future__ import annotations

import dataclasses
import time
from datetime import datetime
from pathlib import Path

import keras
import tensorflow as tf

from cyclegan_tf import models, networks
from cyclegan_tf.config import TrainConfig
from cyclegan_tf.errors import UserError
from cyclegan_tf.models.base import Model

SAVE_SECONDS = 600  # a checkpoint at least every 10 minutes, whatever --save_every says


def find_run(name: str | Path, flag: str) -> Path:
    """A run folder given as a path or as a run name under checkpoints/ (vanhuyz's --load_model form)."""
    for candidate in (Path(name), Path("checkpoints") / name):
        if candidate.is_dir():
            return candidate
    raise UserError(f"{flag}={name}: no such run folder (nor checkpoints/{name})")


def _new_run_dir() -> Path:
    """checkpoints/<YYYYmmdd-HHMM> (vanhuyz's), made unique: two runs started in one minute never share."""
    base = Path("checkpoints") / f"{datetime.now():%Y%m%d-%H%M}"
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return folder


def run_dir(cfg: TrainConfig) -> Path:
    if cfg.load_model:
        return find_run(cfg.load_model, "--load_model")
    return Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else _new_run_dir()


def prepare(cfg: TrainConfig, explicit: set[str]) -> tuple[TrainConfig, Path, type[Model]]:
    """The run's folder, effective options (saved ones on resume) and model class; every option is
    checked before anything is written, each problem a one-line UserError."""
    folder = run_dir(cfg)
    flags_file = folder / "flags.json"
    resuming = flags_file.exists()
    if resuming:
        cfg = cfg.check_resume(TrainConfig.load(flags_file), explicit)
    elif cfg.load_model:
        raise UserError(f"--load_model={cfg.load_model}: {flags_file} is missing, not a run folder")
    model_cls = models.get(cfg.model or models.DEFAULT)
    cfg = dataclasses.replace(cfg, model=model_cls.name)
    cfg = model_cls.configure(cfg, explicit, resuming=resuming).resolved()
    cfg.validate()
    model_cls.validate(cfg)
    return cfg, folder, model_cls


def read_run(folder: str | Path) -> tuple[TrainConfig, type[Model], str]:
    """A run's options, model class and latest checkpoint; one-line errors for what is not a run."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such run folder")
    latest = tf.train.latest_checkpoint(str(folder))
    if not (folder / "flags.json").exists() or not latest:
        raise UserError(f"{folder}: no checkpoint of a training run (flags.json and ckpt-N files)")
    saved = TrainConfig.load(folder / "flags.json")
    try:
        cfg = TrainConfig(**saved)
    except TypeError as e:
        raise UserError(f"{folder / 'flags.json'}: {e}") from None
    model_cls = models.get(cfg.model or models.DEFAULT)
    cfg = model_cls.configure(dataclasses.replace(cfg, model=model_cls.name), set(), resuming=True).resolved()
    try:
        cfg.validate()
    except UserError as e:
        raise UserError(f"{folder / 'flags.json'}: {e}") from None
    return cfg, model_cls, latest


def restore_generators(folder: str | Path, precision: str = "fp32") -> tuple[dict[str, keras.Model], TrainConfig,
                                                                               type[Model], int]:
    """The generators a run's model declares for export, restored from its latest checkpoint, with the
    run's options, model class and step. `precision`: the type the restored networks compute in (the
    weights are float32 whatever the run trained with). A generator missing from the checkpoint is an
    error, never a randomly initialised export."""
    cfg, model_cls, latest = read_run(folder)
    builders = model_cls.define_networks(cfg)
    with networks.precision(precision):
        nets = {name: builders[name]() for name in model_cls.generator_names()}
    step = tf.Variable(0, dtype=tf.int64)
    status = tf.train.Checkpoint(**nets, step=step).restore(latest)
    status.expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError:
        raise UserError(f"{latest}: does not hold the generators {', '.join(nets)} of a {cfg.model} run "
                        f"with these options") from None
    return nets, cfg, model_cls, int(step.numpy())


class Checkpointer:
    """Saves a model's checkpoint into its run folder every `save_every` steps, at least every
    SAVE_SECONDS, and on demand (end, signal); only a state whose weights and optimiser slots are finite."""

    def __init__(self, model: Model, folder: Path, keep: int, save_every: int) -> None:
        self.model, self.folder, self.save_every = model, folder, save_every
        self.checkpoint = model.checkpoint()
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(folder), max_to_keep=keep)
        self.last_time, self.saved_step = time.monotonic(), -1

    def restore_latest(self, folder: Path) -> str | None:
        """Restores the newest checkpoint of `folder` (the chief's run folder) if there is one."""
        latest = tf.train.latest_checkpoint(str(folder))
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        self.saved_step = int(self.model.step.numpy())
        return latest

    def due(self, step: int) -> bool:
        return step % self.save_every == 0 or time.monotonic() - self.last_time > SAVE_SECONDS

    def save(self, step: int) -> None:
        """Raises FloatingPointError instead of saving a state that holds NaN or Inf."""
        if not bool(self.model.state_is_finite()):
            raise FloatingPointError
        self.manager.save(checkpoint_number=step)
        self.last_time, self.saved_step = time.monotonic(), step

    @property
    def latest(self) -> str | None:
        return self.manager.latest_checkpoint
