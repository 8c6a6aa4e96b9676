"""The training loop: run folder, resume, distribution strategy, checkpoints, TensorBoard, signals.

A run folder holds flags.json, the checkpoints and the TensorBoard event files. Re-running with the
same folder (or --load_model) resumes at the exact step: networks, optimiser slots, image pools and
the step counter come from the checkpoint, and the input stream is a function of the step.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

import tensorflow as tf
from tqdm import tqdm

from cyclegan_tf import data, networks, records
from cyclegan_tf.config import TrainConfig
from cyclegan_tf.cyclegan import CycleGAN
from cyclegan_tf.errors import UserError
from cyclegan_tf.gan import GANModel
from cyclegan_tf.pix2pix import Pix2Pix

MODELS: dict[str, type[GANModel]] = {"cycle_gan": CycleGAN, "pix2pix": Pix2Pix}

SAVE_SECONDS = 600  # a checkpoint at least every 10 minutes, whatever --save_every says


def make_strategy(name: str, batch_size: int = 1) -> tf.distribute.Strategy:
    """auto: all GPUs when the batch splits evenly over them, one GPU otherwise, else the CPU."""
    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) > 1 and batch_size % len(gpus) == 0:
            name = "mirrored"
        elif gpus:
            return tf.distribute.OneDeviceStrategy(gpus[0].name)
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        # Several CPU devices (logical ones, as in the tests): TF picks collective all-reduce, whose keys
        # restart with every strategy, so a second strategy in one process clashes with the first's
        # ("Shape mismatch in the collective instance"). Reducing on one device is as fast on one host.
        return tf.distribute.MirroredStrategy(cross_device_ops=tf.distribute.ReductionToOneDevice())
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise UserError("--strategy=multi_worker needs the TF_CONFIG environment variable (see README)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserError(f"--strategy={name}: choose auto, default, mirrored or multi_worker")


def is_chief() -> bool:
    """The process that writes checkpoints, summaries and logs: the chief, else worker 0."""
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task, cluster = tf_config.get("task", {}), tf_config.get("cluster", {})
    if not task or task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and task.get("index", 0) == 0 and "chief" not in cluster


def find_run(name: str | Path, flag: str) -> Path:
    """A run folder given as a path or as a run name under checkpoints/ (vanhuyz's --load_model form)."""
    for candidate in (Path(name), Path("checkpoints") / name):
        if candidate.is_dir():
            return candidate
    raise UserError(f"{flag}={name}: no such run folder (nor checkpoints/{name})")


def run_dir(cfg: TrainConfig) -> Path:
    if cfg.load_model:
        return find_run(cfg.load_model, "--load_model")
    return Path(cfg.checkpoint_dir or f"checkpoints/{datetime.now():%Y%m%d-%H%M}")


def prepare(cfg: TrainConfig, explicit: set[str]) -> tuple[TrainConfig, Path]:
    """The run's folder and effective options (saved ones on resume); one-line errors for bad input."""
    folder = run_dir(cfg)
    flags_file = folder / "flags.json"
    if flags_file.exists():
        cfg = cfg.check_resume(TrainConfig.load(flags_file), explicit)
    elif cfg.load_model:
        raise UserError(f"--load_model={cfg.load_model}: {flags_file} is missing, not a run folder")
    else:
        cfg = cfg.with_model_defaults(explicit)
    cfg = cfg.resolved()
    if cfg.model == "pix2pix":
        if not cfg.X:
            raise UserError("--X is required: the paired TFRecord file from build_data.py --paired")
        if cfg.Y:
            raise UserError(f"--Y={cfg.Y}: pix2pix reads its pairs from --X alone (build_data.py --paired); drop --Y")
    elif not cfg.X or not cfg.Y:
        raise UserError("--X and --Y are required: TFRecord files from build_data.py")
    multiple = networks.generator_multiple(cfg.netG)
    if cfg.image_size % multiple:
        raise UserError(f"--image_size={cfg.image_size}: {cfg.netG} needs a multiple of {multiple}")
    if cfg.pool_size > 0 and cfg.preprocess in ("scale_width", "none"):
        raise UserError(f"--preprocess={cfg.preprocess} gives images of varying size; it needs --pool_size=0")
    if cfg.preprocess in ("resize_and_crop", "scale_width_and_crop") and cfg.load_size < cfg.image_size:
        raise UserError(f"--load_size={cfg.load_size} is smaller than the crop --image_size={cfg.image_size}")
    for name in ("batch_size", "save_every", "summary_every", "log_every"):
        if getattr(cfg, name) < 1:
            raise UserError(f"--{name}={getattr(cfg, name)}: must be at least 1")
    return cfg, folder


class _Stop:
    """Turns SIGINT/SIGTERM into a request to save and stop after the current step."""

    def __init__(self) -> None:
        self.signum = 0
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame) -> None:
        if self.signum:  # a second Ctrl-C: the user means it
            raise KeyboardInterrupt
        self.signum = signum


def _grid(*images: tf.Tensor) -> tf.Tensor:
    """input | translated | reconstructed, side by side, as uint8 for TensorBoard."""
    row = tf.concat([tf.cast(i[:1], tf.float32) for i in images], axis=2)
    return tf.image.convert_image_dtype((row + 1.0) / 2.0, tf.uint8, saturate=True)


def train(cfg: TrainConfig, explicit: set[str] | None = None) -> int:
    """Trains until the schedule ends (exit status 0), a signal (128 + signum) or a NaN loss (1)."""
    cfg, folder = prepare(cfg, cfg.changed() if explicit is None else explicit)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    # First: multi-worker collectives must be set up before any other op.
    strategy = make_strategy(cfg.strategy, cfg.batch_size)
    paired = cfg.model == "pix2pix"
    x_files = records.resolve_files(cfg.X)
    y_files = x_files if paired else records.resolve_files(cfg.Y)
    records.check_schema(x_files, paired)
    if not paired:
        records.check_schema(y_files)
    x_count = records.count_records(x_files)
    y_count = x_count if paired else records.count_records(y_files)
    replicas = strategy.num_replicas_in_sync
    if cfg.batch_size % replicas:
        raise UserError(f"--batch_size={cfg.batch_size} must be a multiple of the {replicas} replicas")
    chief = cfg.strategy != "multi_worker" or is_chief()
    steps_per_epoch = data.steps_per_epoch(x_count, y_count, cfg.batch_size)
    with strategy.scope():
        model = MODELS[cfg.model](cfg, steps_per_epoch, cfg.batch_size)
    ckpt_dir = folder if chief else folder / f"worker-temp-{os.getpid()}"  # only the chief's copy is kept
    try:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--checkpoint_dir={folder}: cannot create ({e.strerror})") from None
    checkpoint = model.checkpoint()
    manager = tf.train.CheckpointManager(checkpoint, str(ckpt_dir), max_to_keep=cfg.keep_checkpoints)
    latest = tf.train.latest_checkpoint(str(folder))
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
    step = int(model.step.numpy())
    if chief:
        cfg.save(folder / "flags.json")
        where = f"resuming {folder} at step {step}" if latest else f"training in {folder}"
        sizes = f"{x_count} pairs ({cfg.direction})" if paired else f"|X| = {x_count}, |Y| = {y_count}"
        print(f"{where}: {cfg.model}, {sizes}, {steps_per_epoch} steps per epoch, {model.total_steps} steps, "
              f"{replicas} replica(s)", flush=True)
    if step >= model.total_steps:
        print(f"{folder} already finished its {model.total_steps} steps; nothing to do")
        return 0

    preprocess = data.Preprocess(cfg.preprocess, cfg.load_size, cfg.image_size, not cfg.no_flip)
    if paired:
        ds = data.paired_dataset(x_files, x_count, batch_size=cfg.batch_size, cfg=preprocess, seed=cfg.seed,
                                 start_step=step, swap=cfg.direction == "BtoA")
    else:
        ds = data.unpaired_dataset(x_files, x_count, y_files, y_count, batch_size=cfg.batch_size, cfg=preprocess,
                                   seed=cfg.seed, start_step=step)
    batches = iter(strategy.experimental_distribute_dataset(ds))
    train_step = model.make_train_step(strategy)
    writer = tf.summary.create_file_writer(str(folder)) if chief else tf.summary.create_noop_writer()
    stop = _Stop()
    bar = tqdm(total=model.total_steps, initial=step, unit="step", disable=not (chief and sys.stderr.isatty()),
               dynamic_ncols=True)
    last_save, last_log, log_step, saved_step = time.monotonic(), time.perf_counter(), step, step

    def save(loss: dict) -> None:
        nonlocal last_save, saved_step
        if not bool(loss["finite"]):  # never overwrite good weights with NaNs
            raise FloatingPointError
        manager.save(checkpoint_number=step)
        last_save, saved_step = time.monotonic(), step

    try:
        with writer.as_default():
            while step < model.total_steps and not stop.signum:
                x, y = next(batches)
                loss = train_step(x, y)
                step += 1
                bar.update(1)
                if step % cfg.log_every == 0 or step == model.total_steps:
                    if not bool(loss["finite"]):
                        raise FloatingPointError
                    now = time.perf_counter()
                    rate = (step - log_step) / (now - last_log)
                    last_log, log_step = now, step
                    values = {k: float(loss[k]) for k in model.loss_names}
                    for k, v in values.items():
                        tf.summary.scalar(f"loss/{k}", v, step=step)
                    tf.summary.scalar("learning_rate", float(model.lr(step)), step=step)
                    tf.summary.scalar("perf/steps_per_sec", rate, step=step)
                    tf.summary.scalar("perf/images_per_sec", rate * cfg.batch_size, step=step)
                    text = " ".join(f"{k} {v:.3f}" for k, v in values.items())
                    if bar.disable and chief:
                        print(f"step {step}/{model.total_steps}: {text}, {rate:.2f} steps/s", flush=True)
                    bar.set_postfix_str(text, refresh=False)
                if step % cfg.summary_every == 0 or step == 1:
                    x0 = strategy.experimental_local_results(x)[0][:1]
                    y0 = strategy.experimental_local_results(y)[0][:1]
                    for tag, images in model.previews(x0, y0).items():
                        tf.summary.image(tag, _grid(*images), step=step)
                if step % cfg.save_every == 0 or time.monotonic() - last_save > SAVE_SECONDS:
                    save(loss)
            if step > saved_step:
                save(loss)
    except FloatingPointError:
        bar.close()
        kept = tf.train.latest_checkpoint(str(folder))
        print(f"error: a loss became NaN or infinite by step {step}; training stopped. The last good "
              f"checkpoint is {kept or 'none'}: lower --learning_rate, then resume with --load_model {folder}",
              file=sys.stderr)
        return 1
    finally:
        stop.restore()
        bar.close()
        writer.flush()
        if not chief and tf.io.gfile.exists(str(ckpt_dir)):
            tf.io.gfile.rmtree(str(ckpt_dir))
    if stop.signum:
        print(f"stopped by signal {stop.signum} at step {step}; checkpoint saved; resume with "
              f"python train.py --load_model {folder}", flush=True)
        return 128 + stop.signum
    print(f"training finished: {step} steps; checkpoint {manager.latest_checkpoint}", flush=True)
    if cfg.strategy == "multi_worker":  # lets a user (and the tests) check that the workers agree
        fingerprint = sum(float(tf.reduce_sum(tf.abs(v))) for v in model.G.weights + model.D_Y.weights)
        print(f"weights fingerprint {fingerprint:.9g}", flush=True)
    return 0


def restore_generators(folder: str | Path, with_flags: bool = False, precision: str = "fp32") -> tuple:
    """(G, F) of a run folder's latest checkpoint, built from its flags.json; with_flags adds (flags, step).

    A pix2pix run has one generator: (G, None). `precision`: the type the restored networks compute in
    (the weights are float32 whatever the run trained with)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such run folder")
    latest = tf.train.latest_checkpoint(str(folder))
    if not (folder / "flags.json").exists() or not latest:
        raise UserError(f"{folder}: no checkpoint of a training run (flags.json and ckpt-N files)")
    flags = TrainConfig.load(folder / "flags.json")
    cfg = TrainConfig(**flags).resolved()
    with networks.precision(precision):
        G = networks.define_G(**cfg.generator_kwargs(), name="G")
        F = None if cfg.model == "pix2pix" else networks.define_G(**cfg.generator_kwargs(), name="F")
    step = tf.Variable(0, dtype=tf.int64)
    nets = {"G": G} if F is None else {"G": G, "F": F}
    tf.train.Checkpoint(**nets, step=step).restore(latest).expect_partial()
    return (G, F, flags, int(step.numpy())) if with_flags else (G, F)
