"""Run folders and their checkpoints: finding or creating a run, its flags.json, saving on schedule,
restoring a run to resume it or to export its generators.

A run folder holds flags.json (every option, the model's own included), the checkpoints `ckpt-N` (what
the model's `checkpoint()` declares) and the TensorBoard event files. Re-running with the same folder (or
--load_model) resumes at the exact step.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import itertools
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import keras
import tensorflow as tf

from cyclegan_tf import atomic, models, networks
from cyclegan_tf.config import TrainConfig
from cyclegan_tf.errors import UserError, one_line
from cyclegan_tf.models.base import Model

SAVE_SECONDS = 600  # a checkpoint at least every 10 minutes, whatever --save_every says


def find_run(name: str | Path, flag: str) -> Path:
    """A run folder given as a path or as a run name under checkpoints/ (vanhuyz's --load_model form)."""
    for candidate in (Path(name), Path("checkpoints") / name):
        if candidate.is_dir():
            return candidate
    raise UserError(f"{flag}={name}: no such run folder (nor checkpoints/{name})")


def _new_run_dir() -> Path:
    """Creates checkpoints/<YYYYmmdd-HHMM> (vanhuyz's name), or -2, -3… after it: the folder is claimed by
    its creation, so runs started at the same moment (a sweep's script) never share one."""
    base = Path("checkpoints") / f"{datetime.now():%Y%m%d-%H%M}"
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{base.parent}: cannot create the run folder ({e.strerror})") from None
    for n in itertools.count(1):
        folder = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
        except OSError as e:
            raise UserError(f"{folder}: cannot create the run folder ({e.strerror})") from None
    raise AssertionError("unreachable")


@contextlib.contextmanager
def claimed(cfg: TrainConfig) -> Iterator[TrainConfig]:
    """The options with the run's folder named in `checkpoint_dir` (a new one created now where none is
    named). A folder this call creates, or that --checkpoint_dir names and the run is about to create, is
    removed again if the block fails and left nothing in it but its lock file."""
    created = not cfg.load_model and not (cfg.checkpoint_dir and Path(cfg.checkpoint_dir).exists())
    folder = run_dir(cfg)
    try:
        yield cfg if cfg.load_model else dataclasses.replace(cfg, checkpoint_dir=str(folder))
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                if {p.name for p in folder.iterdir()} <= {".lock"}:
                    (folder / ".lock").unlink(missing_ok=True)
                    folder.rmdir()
        raise


def run_dir(cfg: TrainConfig) -> Path:
    """The run's folder: --load_model's, --checkpoint_dir, or a new one created now."""
    if cfg.load_model:
        return find_run(cfg.load_model, "--load_model")
    if cfg.checkpoint_dir:
        return Path(cfg.checkpoint_dir)
    if cfg.strategy == "multi_worker":
        raise UserError("--strategy=multi_worker needs --checkpoint_dir: every worker must name the same run folder")
    return _new_run_dir()


def prepare(cfg: TrainConfig, explicit: set[str]) -> tuple[TrainConfig, Path, type[Model]]:
    """The run's folder, effective options (saved ones on resume) and model class; every option is
    checked before anything is written, each problem a one-line UserError."""
    folder = run_dir(cfg)
    flags_file = folder / "flags.json"
    resuming = flags_file.exists()
    found = checkpoints(folder)
    if found and not resuming and not cfg.restart:
        raise UserError(f"{folder} holds checkpoints (ckpt-{found[0]}) but no flags.json, so they cannot be resumed; "
                        f"nothing was changed. --restart trains from step 0 in this folder anyway")
    if resuming:
        cfg = cfg.check_resume(TrainConfig.load(flags_file), explicit)
    elif cfg.load_model:
        raise UserError(f"--load_model={cfg.load_model}: {flags_file} is missing, not a run folder")
    if cfg.from_pytorch and not resuming:
        cfg, explicit = _with_official(cfg, explicit)
    model_cls = models.get(cfg.model or models.DEFAULT)
    cfg = dataclasses.replace(cfg, model=model_cls.name)
    cfg = model_cls.configure(cfg, explicit, resuming=resuming).resolved()
    cfg.validate()
    model_cls.validate(cfg)
    return cfg, folder, model_cls


def official_files(cfg: TrainConfig) -> list[str]:
    return [f.strip() for f in cfg.from_pytorch.split(",") if f.strip()]


def _with_official(cfg: TrainConfig, explicit: set[str]) -> tuple[TrainConfig, set[str]]:
    """--from_pytorch: the run takes the first file's architecture where its options are not given."""
    from cyclegan_tf.networks import official

    first = official_files(cfg)[0]
    try:
        arch = official.read_architecture(official.read_file(first))
    except ValueError as e:
        raise UserError(f"--from_pytorch={first}: {e}") from None
    common = {f.name for f in dataclasses.fields(TrainConfig)}
    own = {o.name for o in models.get(cfg.model or models.DEFAULT).options}
    found = {k: v for k, v in arch.options().items()
             if k not in explicit and k not in ("input_nc", "output_nc") and (k in common or k in own)}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in found.items() if k in common},
                              extra={**cfg.extra, **{k: v for k, v in found.items() if k not in common}})
    return cfg, explicit | set(found)


def load_official(model: Model, cfg: TrainConfig) -> None:
    """--from_pytorch: the model's generators, in order, start from the official files' weights."""
    from cyclegan_tf.networks import official

    files, names = official_files(cfg), model.generator_names()
    if len(files) > len(names):
        raise UserError(f"--from_pytorch: {len(files)} files for {cfg.model}'s {len(names)} generator(s) "
                        f"({', '.join(names)})")
    for name, file in zip(names, files):
        state = official.read_file(file)
        try:
            arch = official.read_architecture(state)
            official.load_weights(model.nets[name], state, arch)
        except ValueError as e:
            raise UserError(f"--from_pytorch={file}: {e} (this run's {name}: --netG {cfg.netG}, --ngf {cfg.ngf}, "
                            f"--norm {cfg.norm})") from None
        print(f"--from_pytorch: {name} starts from {file}: {arch.describe()}")


def read_run(folder: str | Path, which: str = "latest") -> tuple[TrainConfig, type[Model], str]:
    """A run's options, model class and checkpoint `which` (latest: the newest intact one; best: the one
    --keep_best kept; or a step); one-line errors for what is not a run."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such run folder")
    if not (folder / "flags.json").exists() or not checkpoints(folder):
        raise UserError(f"{folder}: no checkpoint of a training run (flags.json and ckpt-N files)")
    chosen = choose_checkpoint(folder, which)
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
    return cfg, model_cls, chosen


def choose_checkpoint(folder: Path, which: str = "latest") -> str:
    """The prefix of checkpoint `which` of a run folder: latest, best or a step; one line if there is none
    or it does not read back whole."""
    if which == "latest":
        latest, skipped = newest_intact(folder)
        _warn_skipped(skipped, latest)
        if latest is None:
            raise UserError(f"{folder}: no intact checkpoint ({'; '.join(skipped)})")
        return latest
    if which == "best":
        best = read_best(folder)
        if best is None:
            raise UserError(f"--checkpoint=best: {folder} kept no best checkpoint (train with --eval_every and "
                            "--keep_best)")
        prefix = str(folder / best["checkpoint"])
    elif which.isdigit():
        prefix = str(folder / f"ckpt-{int(which)}")
        if not Path(prefix + ".index").exists():
            steps = ", ".join(str(s) for s in checkpoints(folder))
            raise UserError(f"--checkpoint={which}: {folder} has no checkpoint of step {int(which)} (it has {steps})")
    else:
        raise UserError(f"--checkpoint={which}: give latest, best or a step number")
    reason = damage(prefix)
    if reason:
        raise UserError(f"--checkpoint={which}: {prefix} cannot be read ({reason})")
    return prefix


def restore_generators(folder: str | Path, precision: str = "fp32", which: str = "latest") -> tuple[
        dict[str, keras.Model], TrainConfig, type[Model], int]:
    """The generators a run's model declares for export, restored from its checkpoint `which` (latest, best
    or a step), with the run's options, model class and step. `precision`: the type the restored networks
    compute in (the weights are float32 whatever the run trained with). A generator missing from the
    checkpoint is an error, never a randomly initialised export."""
    return restore_networks(folder, None, precision, which)


def open_networks(run: str, names: list[str], flag: str) -> tuple[dict[str, keras.Model], TrainConfig, Path, int]:
    """The networks `names` of another run (a folder or a run name under checkpoints/, given by `flag`),
    restored from its newest intact checkpoint: its weights, options, folder and step."""
    folder = find_run(run, flag)
    nets, cfg, _, step = restore_networks(folder, names)
    return nets, cfg, folder, step


def restore_networks(folder: str | Path, names: list[str] | None = None, precision: str = "fp32",
                     which: str = "latest") -> tuple[dict[str, keras.Model], TrainConfig, type[Model], int]:
    """As restore_generators, for the networks `names` of the run's model (None: its generators)."""
    cfg, model_cls, latest = read_run(folder, which)
    builders = model_cls.define_networks(cfg)
    with networks.precision(precision):
        nets = {name: builders[name]() for name in names or model_cls.generator_names() if name in builders}
    step = tf.Variable(0, dtype=tf.int64)
    try:
        status = tf.train.Checkpoint(**nets, step=step).restore(latest)
        status.expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError):
        raise UserError(f"{latest}: does not hold the networks {', '.join(nets)} of a {cfg.model} run "
                        f"with these options") from None
    return nets, cfg, model_cls, int(step.numpy())


_CKPT = re.compile(r"^ckpt-(\d+)\.(?:index|data-\d{5}-of-\d{5})$")
_BEST = re.compile(r"^best-(\d+)\.(?:index|data-\d{5}-of-\d{5})$")
BEST_FILE = Path("eval", "best.json")
_SAVE_TEMP = re.compile(r"^ckpt-\d+_temp$")  # TensorFlow's folder for a save in progress


def checkpoints(folder: Path) -> list[int]:
    """Steps of every checkpoint with a file in `folder` (intact or not), newest first. Found by listing the
    folder, not from TensorFlow's `checkpoint` state file, which may be missing or name a damaged one."""
    try:
        names = [e.name for e in folder.iterdir()]
    except OSError:
        return []
    return sorted({int(m[1]) for m in map(_CKPT.match, names) if m}, reverse=True)


# Errors that say nothing about the files (a busy or failing disk, no permission): refuse, skip nothing.
_NOT_DAMAGE = (tf.errors.ResourceExhaustedError, tf.errors.UnavailableError, tf.errors.PermissionDeniedError,
               tf.errors.AbortedError, tf.errors.DeadlineExceededError, PermissionError)


def damage(prefix: str) -> str | None:
    """Why the checkpoint at `prefix` cannot be restored (missing index or data, truncated, checksum), or None.
    Reads every tensor: TensorFlow checks each one's CRC as it reads it. A failure that is not the files'
    (the disk busy or failing) is a UserError: a good checkpoint must not be taken for a damaged one."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except _NOT_DAMAGE as e:
        raise UserError(f"{prefix}: cannot be read now ({one_line(getattr(e, 'message', None) or e)}); "
                        "nothing was changed") from None
    except (tf.errors.OpError, ValueError, IndexError, OSError, RuntimeError) as e:
        return one_line(getattr(e, "message", None) or e)
    return None


def set_aside(folder: Path, step: int) -> str:
    """Renames a damaged checkpoint's files to `<name>.damaged` (`-2`, `-3`… if taken): out of resume's
    and pruning's way, never overwritten by a later save of the same step, and still there to inspect."""
    suffix, n = ".damaged", 1
    files = [f for f in folder.glob(f"ckpt-{step}.*") if _CKPT.match(f.name)]
    while any(f.with_name(f.name + suffix).exists() for f in files):
        n += 1
        suffix = f".damaged-{n}"
    for f in files:
        f.rename(f.with_name(f.name + suffix))
    return f"ckpt-{step}.*{suffix}"


def newest_intact(folder: Path) -> tuple[str | None, list[str]]:
    """The newest checkpoint of `folder` that reads back whole, and one line for each newer one skipped."""
    scan = list(_scan(folder))
    latest = next((str(folder / f"ckpt-{step}") for step, reason in scan if reason is None), None)
    return latest, [f"ckpt-{step} ({reason})" for step, reason in scan if reason is not None]


def _scan(folder: Path) -> Iterator[tuple[int, str | None]]:
    """(step, why it is damaged or None), newest first, stopping at the first intact one."""
    for step in checkpoints(folder):
        prefix = str(folder / f"ckpt-{step}")
        if not Path(prefix + ".index").exists():
            reason = "no .index file"
        elif not list(folder.glob(f"ckpt-{step}.data-?????-of-?????")):
            reason = "no .data file"
        else:
            reason = damage(prefix)
        yield step, reason
        if reason is None:
            return


def _warn_skipped(skipped: list[str], used: str | None, aside: list[str] = ()) -> None:
    if skipped and (used or aside):
        moved = f", set aside as {', '.join(aside)}" if aside else ""
        then = f"using {Path(used).name}" if used else "starting at step 0 (--restart)"
        print(f"warning: skipped damaged checkpoint(s) {'; '.join(skipped)}{moved}; {then}", file=sys.stderr,
              flush=True)


def read_best(folder: Path) -> dict | None:
    """RUN/eval/best.json: the metric, step, value, scores and checkpoint name (best-N) of the best checkpoint
    kept by --keep_best, or None."""
    path = folder / BEST_FILE
    try:
        best = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None
    ok = isinstance(best, dict) and isinstance(best.get("step"), int) and isinstance(best.get("checkpoint"), str)
    return best if ok and _BEST.match(best["checkpoint"] + ".index") else None


def save_best(folder: Path, step: int, record: dict) -> str:
    """Keeps the checkpoint ckpt-`step` (saved already) as best-`step`: its files hard-linked (copied where
    links are refused) under temporary names and renamed, then recorded in eval/best.json, then the previous
    best's files removed. A kill at any moment leaves best.json naming whole files. Returns best-`step`."""
    name = f"best-{step}"
    previous = read_best(folder)
    for f in folder.glob(f"ckpt-{step}.*"):
        if _CKPT.match(f.name):
            with atomic.atomic_path(folder / f.name.replace(f"ckpt-{step}", name, 1)) as tmp:
                try:
                    os.link(f, tmp)
                except OSError:
                    shutil.copyfile(f, tmp)
    (folder / BEST_FILE).parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(folder / BEST_FILE, json.dumps({**record, "checkpoint": name}, indent=2) + "\n")
    if previous and previous["checkpoint"] != name:
        _remove_best(folder, keep=name)
    return name


def _remove_best(folder: Path, keep: str) -> None:
    """Removes best-N files other than `keep`: ours by their name, and no longer named by best.json."""
    for f in folder.iterdir():
        if _BEST.match(f.name) and not f.name.startswith(keep + "."):
            f.unlink(missing_ok=True)


def clean_best(folder: Path) -> None:
    """What a run killed while keeping a best checkpoint left: temporary files, and best-N files that
    best.json does not name (written just before the kill)."""
    atomic.remove_stale(folder / "best")
    best = read_best(folder)
    if best is not None:
        _remove_best(folder, keep=best["checkpoint"])


@contextlib.contextmanager
def lock(folder: Path) -> Iterator[None]:
    """Holds `folder`/.lock while training: a second trainer in the same folder is refused."""
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{folder}: another training process is using this run folder") from None
        except OSError as e:  # file systems without locks (NFS mounted nolock, some FUSE): train unguarded
            print(f"warning: {folder}: cannot lock the run folder ({e.strerror}); make sure no other train.py "
                  "uses it", file=sys.stderr, flush=True)
        yield
    finally:
        os.close(fd)


class Checkpointer:
    """Saves a model's checkpoint into its run folder every `save_every` steps, at least every
    SAVE_SECONDS, and on demand (end, signal); only a state whose weights and optimiser slots are finite.

    Keeps the newest `keep` checkpoints it wrote itself; it never deletes one it did not write (an earlier
    session's, or a damaged one it skipped): a run that resumes from the wrong place must lose nothing."""

    def __init__(self, model: Model, folder: Path, keep: int, save_every: int) -> None:
        self.model, self.folder, self.keep, self.save_every = model, folder, keep, save_every
        self.checkpoint = model.checkpoint()
        _ = self.checkpoint.save_counter  # created now, so every checkpoint holds it (restore creates it too)
        self.written: list[int] = []
        self.latest: str | None = None
        self.last_time, self.saved_step = time.monotonic(), -1

    def restore_latest(self, folder: Path, restart: bool = False) -> str | None:
        """Restores the newest intact checkpoint of `folder` (the chief's run folder), skipping damaged newer
        ones with a warning. A folder holding only checkpoints that cannot be read is refused unless `restart`."""
        self._remove_stale_saves()
        latest, skipped = newest_intact(folder)
        if latest and restart:
            raise UserError(f"--restart: {folder} holds the intact checkpoint {Path(latest).name}; resume it (without "
                            f"--restart) or start over in another --checkpoint_dir")
        if latest is None and skipped and not restart:
            raise UserError(f"{folder}: its checkpoints cannot be read ({'; '.join(skipped)}); nothing was changed. "
                            f"--restart trains from step 0 in this folder anyway")
        if latest:
            try:
                self.checkpoint.restore(latest).assert_existing_objects_matched()
            except (AssertionError, ValueError):  # ValueError: a tensor of another shape (a hand-edited flags.json)
                raise UserError(f"{latest}: does not fit a {self.model.cfg.model} model with these options") from None
        own = self.folder.resolve() == folder.resolve()  # a worker other than the chief leaves the chief's files alone
        newest_good = int(latest.rsplit("-", 1)[1]) if latest else -1
        aside = [set_aside(folder, step) for step in checkpoints(folder) if step > newest_good] if own else []
        _warn_skipped(skipped, latest, aside)
        self.latest = latest
        self.saved_step = int(self.model.step.numpy())
        return latest

    def _remove_stale_saves(self) -> None:
        """What a killed session of this folder left half-written: TensorFlow's save folders, flags.json's temporary."""
        atomic.remove_stale(self.folder / "flags.json", self.folder / "checkpoint")
        for entry in self.folder.iterdir() if self.folder.is_dir() else ():
            if _SAVE_TEMP.match(entry.name) and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)

    def due(self, step: int) -> bool:
        return step % self.save_every == 0 or time.monotonic() - self.last_time > SAVE_SECONDS

    def save(self, step: int) -> None:
        """Raises FloatingPointError instead of saving a state that holds NaN or Inf, and a one-line UserError
        (the partial files removed, older checkpoints untouched) when the disk refuses it."""
        if not bool(self.model.state_is_finite()):
            raise FloatingPointError
        prefix = str(self.folder / f"ckpt-{step}")
        try:
            self.checkpoint.write(prefix)
        except (tf.errors.OpError, OSError) as e:
            self._remove(step)
            raise UserError(f"cannot write checkpoint {prefix}: {one_line(getattr(e, 'message', None) or e)}; "
                            f"the last checkpoint is {self.latest or 'none'}") from None
        if step in self.written:
            self.written.remove(step)
        self.written.append(step)
        while len(self.written) > self.keep:
            self._remove(self.written.pop(0))
        self.latest = prefix
        self._record_state()
        self.last_time, self.saved_step = time.monotonic(), step

    def _remove(self, step: int) -> None:
        for f in self.folder.glob(f"ckpt-{step}.*"):
            if _CKPT.match(f.name):
                f.unlink(missing_ok=True)
        shutil.rmtree(self.folder / f"ckpt-{step}_temp", ignore_errors=True)

    def _record_state(self) -> None:
        """TensorFlow's `checkpoint` state file, for tools that read it (tf.train.latest_checkpoint): every
        checkpoint in the folder, newest last. Resuming never trusts it; it scans the files."""
        names = [f"ckpt-{s}" for s in sorted(checkpoints(self.folder))]
        lines = [f'model_checkpoint_path: "{Path(self.latest).name}"']
        lines += [f'all_model_checkpoint_paths: "{n}"' for n in names]
        with contextlib.suppress(OSError):  # a convenience: a full disk must not fail the save that succeeded
            atomic.write_text(self.folder / "checkpoint", "\n".join(lines) + "\n")


def write_imported(folder: Path, G: keras.Model, options: dict, model: str, source: str) -> TrainConfig:
    """A run folder holding one generator imported from the official code (networks/official.py): its
    options in flags.json and its weights as checkpoint 0, so that everything that reads runs (export,
    evaluation) reads it. `options` are train.py's for that generator; `model` is ours that has it."""
    model_cls = models.get(model)
    given = {k: v for k, v in options.items() if k in {f.name for f in dataclasses.fields(TrainConfig)}}
    own = {o.name for o in model_cls.options}
    cfg = TrainConfig(model=model, checkpoint_dir=str(folder), **given,
                      extra={k: v for k, v in options.items() if k in own})
    cfg = model_cls.configure(cfg, set(options)).resolved()
    cfg.validate()
    if model_cls.generator_names() != ["G"]:
        raise RuntimeError(f"{model} does not export one generator G")
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = tf.train.Checkpoint(G=G, step=tf.Variable(0, dtype=tf.int64))
    checkpoint.save_counter  # noqa: B018 - made on first use; restoring a run's checkpoint expects it
    checkpoint.write(str(folder / "ckpt-0"))
    cfg = dataclasses.replace(cfg, extra={**cfg.extra, "imported_from": source})
    cfg.save(folder / "flags.json")
    return cfg
