"""The training loop: the model's distributed step, driven until the schedule ends, a signal or a NaN,
with a checkpointer (runs.Checkpointer) and a reporter (TensorBoard, progress bar, log lines).

Everything model-specific comes from the model's declarations (models/base.py); the run folder and
checkpoints from runs.py.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import tensorflow as tf
from tensorflow.python.framework import config as tf_config  # its determinism switch has no public off
from tqdm import tqdm

from cyclegan_tf.config import TrainConfig
from cyclegan_tf.data import doctor, pipeline, pixels, records
from cyclegan_tf.errors import UserError
from cyclegan_tf.evaluation import during_training, health
from cyclegan_tf.models.base import Model
from cyclegan_tf.models.optim import schedule_steps
from cyclegan_tf.training import runs
from cyclegan_tf.training.runs import Checkpointer, clean_best, lock, open_networks, prepare
from cyclegan_tf.training.strategy import is_chief, make_strategy


class _Stop:
    """Turns SIGINT/SIGTERM into a request to save and stop after the current step. A second signal only
    says that the checkpoint is on its way (a save cut short would lose every step since the last one);
    a third quits at once."""

    def __init__(self) -> None:
        self.signum, self.count = 0, 0
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame) -> None:
        self.count += 1
        self.signum = self.signum or signum
        if self.count == 2:
            print("\nwarning: saving a checkpoint before stopping; a third Ctrl-C quits without saving",
                  file=sys.stderr, flush=True)
        elif self.count > 2:
            raise KeyboardInterrupt


def _grid(*images: tf.Tensor, bands: tuple[int, int, int] | None = None) -> tf.Tensor:
    """input | translated | reconstructed, side by side, as uint8 for TensorBoard: grey images grey, more
    than three channels as `bands` (pixels.display)."""
    row = tf.concat([pixels.display(tf.cast(i[:1], tf.float32), bands) for i in images], axis=2)
    return tf.image.convert_image_dtype((row + 1.0) / 2.0, tf.uint8, saturate=True)


class Reporter:
    """Loss scalars, learning rate and speed every `log_every` steps, preview images every `summary_every`,
    a progress bar on a terminal and log lines elsewhere; silent on workers other than the chief."""

    def __init__(self, model: Model, folder: Path, step: int, chief: bool) -> None:
        self.model, self.cfg, self.chief = model, model.cfg, chief
        self.writer = tf.summary.create_file_writer(str(folder)) if chief else tf.summary.create_noop_writer()
        self.bar = tqdm(total=model.total_steps, initial=step, unit="step", disable=not (chief and sys.stderr.isatty()),
                        dynamic_ncols=True)
        self.last_time, self.last_step = time.perf_counter(), step
        self.health = health.Health(folder, self.note, discriminators=model.discriminator_losses) if chief else None

    def losses(self, step: int, loss: dict) -> None:
        now = time.perf_counter()
        rate = (step - self.last_step) / (now - self.last_time)
        self.last_time, self.last_step = now, step
        values = {k: float(loss[k]) for k in self.model.loss_names}
        with self.writer.as_default(step=step):
            for k, v in values.items():
                tf.summary.scalar(f"loss/{k}", v)
            tf.summary.scalar("learning_rate", float(self.model.lr(step)))
            tf.summary.scalar("perf/steps_per_sec", rate)
            tf.summary.scalar("perf/images_per_sec", rate * self.cfg.batch_size)
            if self.health is not None:
                self.health.losses(step, values)
        text = " ".join(f"{k} {v:.3f}" for k, v in values.items())
        if self.bar.disable and self.chief:
            print(f"step {step}/{self.model.total_steps}: {text}, {rate:.2f} steps/s", flush=True)
        self.bar.set_postfix_str(text, refresh=False)

    def previews(self, step: int, x: tf.Tensor, y: tf.Tensor) -> None:
        with self.writer.as_default(step=step):
            bands = pixels.parse_bands(self.cfg.display_bands)
            for tag, images in self.model.previews(x[:1], y[:1]).items():
                tf.summary.image(tag, _grid(*images, bands=bands))

    def note(self, text: str) -> None:
        """A line on the chief's terminal that does not break the progress bar."""
        if not self.chief:
            return
        if self.bar.disable:
            print(text, flush=True)
        else:
            self.bar.write(text)

    def close(self) -> None:
        self.bar.close()
        self.writer.flush()


def _preprocess(cfg: TrainConfig, model_cls: type[Model]) -> pipeline.Preprocess:
    labels = model_cls.kinds(cfg)[0].channels if model_cls.input_is_labels(cfg) else 0
    return pipeline.Preprocess(cfg.preprocess, cfg.load_size, cfg.image_size, not cfg.no_flip,
                               model_cls.input_multiple(cfg), labels)


def with_pixels(cfg: TrainConfig, model_cls: type[Model]) -> TrainConfig:
    """The run's options with each domain's channels, type and range filled in from its records where not
    given (or saved, on resume); given channels must be the records'."""
    x_files = records.resolve_files(cfg.X)
    records.check_schema(x_files, model_cls.paired)
    if model_cls.paired:
        a, b = records.read_kind(x_files, records.PREFIX_A), records.read_kind(x_files, records.PREFIX_B)
        found = {"X": (b, a)[cfg.direction == "AtoB"], "Y": (a, b)[cfg.direction == "AtoB"]}
        where = {"X": cfg.X, "Y": cfg.X}
    else:
        y_files = records.resolve_files(cfg.Y)
        records.check_schema(y_files)
        found = {"X": records.read_kind(x_files), "Y": records.read_kind(y_files)}
        where = {"X": cfg.X, "Y": cfg.Y}
    changes = {}
    for d, nc in (("X", "input_nc"), ("Y", "output_nc")):
        kind, given = found[d], getattr(cfg, nc)
        if given and given != kind.channels:
            raise UserError(f"--{nc}={given}: the images of {d} in {where[d]} have {kind.channels} channels")
        changes |= {nc: kind.channels, f"{d}_dtype": getattr(cfg, f"{d}_dtype") or kind.dtype,
                    f"{d}_range": getattr(cfg, f"{d}_range") or kind.range_text}
    cfg = dataclasses.replace(cfg, **changes)
    model_cls.kinds(cfg)  # a range of the wrong length is one line here
    model_cls.validate(cfg)  # again: some rules need the channels (the identity loss, VGG on RGB only)
    return cfg


def _data_notes(domains: dict, cfg: TrainConfig, across: bool) -> None:
    """The data doctor's short form (records' sizes and hashes): notes on stderr, never a stop."""
    crop = 0 if cfg.preprocess == "none" else cfg.image_size  # without a crop no image is upscaled to one
    for line in doctor.short_form(domains, crop, across):
        print(line, file=sys.stderr, flush=True)


def open_data(cfg: TrainConfig, model_cls: type[Model]) -> tuple[Callable[[int], tf.data.Dataset], int, str]:
    """A function giving the input stream from a step on, the steps per epoch and a description, as the
    model declares its data: paired or not, the multiple image sides must have, label-map inputs, and with
    `resize_when_decaying` the decay steps' images loaded at the crop size (the crop no longer zooms)."""
    paired, resize_when_decaying = model_cls.paired, model_cls.resize_when_decaying
    preprocess = _preprocess(cfg, model_cls)
    kinds = model_cls.kinds(cfg)
    ab = kinds[::-1] if cfg.direction == "BtoA" else kinds  # the records' order: A, B
    x_files = records.resolve_files(cfg.X)
    records.check_schema(x_files, paired)
    x_survey = records.survey(x_files)
    x_count = x_survey.count
    if paired:
        _data_notes({"A": (cfg.X, x_survey), "B": (cfg.X, records.survey(x_files, records.PREFIX_B))}, cfg, False)
        def stream(start_step: int, pre: pipeline.Preprocess) -> tf.data.Dataset:
            return pipeline.paired_dataset(x_files, x_count, batch_size=cfg.batch_size, cfg=pre, seed=cfg.seed,
                                           start_step=start_step, swap=cfg.direction == "BtoA", kinds=ab)

        steps, sizes = pipeline.steps_per_epoch(x_count, x_count, cfg.batch_size), f"{x_count} pairs ({cfg.direction})"
    else:
        y_files = records.resolve_files(cfg.Y)
        records.check_schema(y_files)
        y_survey = records.survey(y_files)
        y_count = y_survey.count
        _data_notes({"X": (cfg.X, x_survey), "Y": (cfg.Y, y_survey)}, cfg, True)

        def stream(start_step: int, pre: pipeline.Preprocess) -> tf.data.Dataset:
            return pipeline.unpaired_dataset(x_files, x_count, y_files, y_count, batch_size=cfg.batch_size, cfg=pre,
                                             seed=cfg.seed, start_step=start_step, kinds=kinds)

        steps, sizes = pipeline.steps_per_epoch(x_count, y_count, cfg.batch_size), f"|X| = {x_count}, |Y| = {y_count}"
    if not resize_when_decaying:
        return lambda start_step: stream(start_step, preprocess), steps, sizes
    resize_from = schedule_steps(cfg, steps)[0]
    at_crop = dataclasses.replace(preprocess, load_size=preprocess.crop_size)

    def phases(start_step: int) -> tf.data.Dataset:
        if start_step >= resize_from:
            return stream(start_step, at_crop)
        return stream(start_step, preprocess).take(resize_from - start_step).concatenate(stream(resize_from, at_crop))

    return phases, steps, sizes


@contextlib.contextmanager
def _determinism(on: bool) -> Iterator[None]:
    """Deterministic ops for the run only: a process that trains from the Python API and then draws
    unseeded random numbers must not find them refused."""
    before = tf_config.is_op_determinism_enabled()
    if on:
        tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if on and not before:
            tf_config.disable_op_determinism()


def train(cfg: TrainConfig, explicit: set[str] | None = None) -> int:
    """Trains until the schedule ends (exit status 0), a signal (128 + signum) or a NaN loss (1)."""
    explicit = cfg.changed() if explicit is None else explicit
    with runs.claimed(cfg) as claimed:  # a failure before training began leaves no empty folder behind
        cfg, folder, model_cls = prepare(claimed, explicit)
        with _determinism(cfg.deterministic):
            return _train(cfg, folder, model_cls)


def _train(cfg: TrainConfig, folder: Path, model_cls: type[Model]) -> int:
    strategy = make_strategy(cfg.strategy, cfg.batch_size)  # first: multi-worker collectives precede other ops
    cfg = with_pixels(cfg, model_cls)  # reads the records: TensorFlow ops, so after the strategy
    during_training.validate(cfg, model_cls)
    if cfg.batch_size % strategy.num_replicas_in_sync:
        raise UserError(f"--batch_size={cfg.batch_size} must be a multiple of the "
                        f"{strategy.num_replicas_in_sync} replicas")
    dataset, steps_per_epoch, sizes = open_data(cfg, model_cls)
    with strategy.scope():
        model = model_cls(cfg, steps_per_epoch, cfg.batch_size)
    chief = cfg.strategy != "multi_worker" or is_chief()
    ckpt_dir = folder if chief else folder / f"worker-temp-{os.getpid()}"  # only the chief's copy is kept
    try:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--checkpoint_dir={folder}: cannot create ({e.strerror})") from None
    with lock(folder) if chief else contextlib.nullcontext():
        checkpointer = Checkpointer(model, ckpt_dir, cfg.keep_checkpoints, cfg.save_every)
        latest = checkpointer.restore_latest(folder, cfg.restart)
        if latest is None:
            model.warm_start(open_networks)
            if cfg.from_pytorch:
                runs.load_official(model, cfg)
        step = int(model.step.numpy())
        every = during_training.every(cfg, steps_per_epoch)
        judge = None
        if every and chief:  # held-out files are read now: a bad one stops the run before anything is written
            clean_best(folder)
            judge = during_training.Evaluator.open(cfg, model_cls, folder)
        if chief:
            cfg.save(folder / "flags.json")
            where = f"resuming {folder} at step {step}" if latest else f"training in {folder}"
            print(f"{where}: {cfg.model}, {sizes}, {steps_per_epoch} steps per epoch, {model.total_steps} steps, "
                  f"{strategy.num_replicas_in_sync} replica(s)", flush=True)
        if step >= model.total_steps:
            print(f"{folder} already finished its {model.total_steps} steps; nothing to do")
            return 0
        try:
            reporter = Reporter(model, folder, step, chief)
            if judge:
                judge.log, judge.health = reporter.note, reporter.health
            status = _run(model, strategy, dataset(step), checkpointer, reporter, step, every, judge)
        finally:
            if not chief and tf.io.gfile.exists(str(ckpt_dir)):
                tf.io.gfile.rmtree(str(ckpt_dir))
    _report_end(status, model, folder, checkpointer)
    return status


def _report_end(status: int, model: Model, folder: Path, checkpointer: Checkpointer) -> None:
    if status == 1:
        print(f"error: a loss or weight became NaN or infinite by step {int(model.step.numpy())}; training "
              f"stopped. The last good checkpoint is {checkpointer.latest or 'none'}: lower --learning_rate, then "
              f"resume with --load_model {folder}", file=sys.stderr)
    elif status:
        print(f"stopped by signal {status - 128} at step {checkpointer.saved_step}; checkpoint saved; resume with "
              f"python train.py --load_model {folder}", flush=True)
    else:
        early = model.cfg.patience and (folder / "eval" / during_training.STOPPED_FILE).is_file()
        print(f"training {'stopped early' if early else 'finished'}: {checkpointer.saved_step} steps; checkpoint "
              f"{checkpointer.latest}{'; export the best with --checkpoint best' if early else ''}", flush=True)
        if model.cfg.strategy == "multi_worker":  # lets a user (and the tests) check that the workers agree
            print(f"weights fingerprint {model.fingerprint():.9g}", flush=True)


def _run(model: Model, strategy: tf.distribute.Strategy, ds: tf.data.Dataset, checkpointer: Checkpointer,
         reporter: Reporter, step: int, every: int = 0, judge: during_training.Evaluator | None = None) -> int:
    """The loop proper: 0 at the end of the schedule, 128 + signum after a signal, 1 on NaN/Inf. Every
    `every` steps and at the end a checkpoint is saved (on every worker) and `judge` evaluates it (the chief's)."""
    cfg = model.cfg
    distributed = strategy.experimental_distribute_dataset(ds)
    batches = iter(distributed)
    # Images of varying size need a signature with unknown sides, or every new size traces the step again;
    # fixed sizes keep the static batch size (the image pool needs it, and sharding across workers hides it).
    fixed = _preprocess(cfg, type(model)).fixed_size
    train_step = model.make_train_step(strategy, None if fixed else distributed.element_spec)
    stop = _Stop()

    def evaluation_due(s: int) -> bool:
        return bool(every) and (s % every == 0 or s == model.total_steps)

    try:
        if judge and step and evaluation_due(step) and not judge.evaluated(step):
            judge.run(model, step, reporter.writer)  # the run stopped between saving this checkpoint and scoring it
        early = judge.stalled() if judge else None
        while step < model.total_steps and not stop.signum and not early:
            x, y = next(batches)
            loss = train_step(x, y)
            step += 1
            reporter.bar.update(1)
            if step % cfg.log_every == 0 or step == model.total_steps:
                if not bool(loss["finite"]):
                    return 1
                reporter.losses(step, loss)
            if step % cfg.summary_every == 0:
                reporter.previews(step, strategy.experimental_local_results(x)[0],
                                  strategy.experimental_local_results(y)[0])
            evaluating = evaluation_due(step)
            if checkpointer.due(step) or evaluating:
                checkpointer.save(step)
            if evaluating and judge:
                judge.run(model, step, reporter.writer)
                early = judge.stalled()
        if early:
            reporter.note(f"stopping early at step {step}: {early}")
        if step > checkpointer.saved_step:
            if not bool(loss["finite"]):
                return 1
            checkpointer.save(step)
    except FloatingPointError:
        return 1
    finally:
        stop.restore()
        reporter.close()
    return 128 + stop.signum if stop.signum else 0
