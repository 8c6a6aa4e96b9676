"""Evaluation during training (train.py --eval_every N --eval_X … --eval_Y …).

Every N steps, and at the end, the chief translates the held-out images with each generator the model
exports (G: X→Y on --eval_X, F: Y→X on --eval_Y; a paired model's one direction on its held-out pairs)
and scores the translations against the real held-out images of the target domain: FID, KID and
precision/recall/density/coverage on the FID Inception's features, and MAE/RMSE/PSNR/SSIM where paired truth
exists (and, for label maps of a palette given by --eval_labels_X/_Y, the FCN protocol's pixel and class
accuracy and class IoU). The scores go to TensorBoard (`eval/<metric>_<direction>`, a gallery image `eval/<direction>`),
to RUN/eval/scores.jsonl (one line per evaluation) and RUN/eval/step-N/<direction>.png; the checkpoint
of the best score by --keep_best is kept as RUN/best-N (runs.save_best). The Inception features of the
real held-out images are computed once and cached in RUN/eval/.

Held-out images are resized to --image_size × --image_size (label maps nearest-neighbour), as an export
with --image_size does, so every evaluation sees the same pixels.

Any pixels (data/pixels.py): held-out images are read as their domain's kind (channels, stored type) and
mapped to the networks' [-1, 1] by the domain's range; translations come back in the domain's units. With
truth, MAE, RMSE, PSNR and SSIM are in those units, the data range being the domain's hi − lo (per band when
the range is; the score is the mean over bands, the bands kept in scores.jsonl). Inception's scores need
8-bit photos: grey ones are given with the channel replicated (noted), anything else has none (noted).
8-bit RGB takes the same path, to the bit, as before kinds existed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from cyclegan_tf import atomic
from cyclegan_tf.config import TrainConfig
from cyclegan_tf.data import pipeline, pixels, records
from cyclegan_tf.data.imagefiles import BadImage, encode_png, find_images, load_pixels
from cyclegan_tf.data.pixels import RGB, Kind
from cyclegan_tf.errors import UserError, one_line
from cyclegan_tf.evaluation import health as run_health
from cyclegan_tf.evaluation import metrics
from cyclegan_tf.models.base import Model
from cyclegan_tf.options import parse_palette
from cyclegan_tf.training import runs

LOWER_IS_BETTER = ("fid", "kid", "mae", "rmse")
METRICS = ("fid", "kid", "precision", "recall", "density", "coverage", "psnr", "ssim", "mae", "rmse",
           "pixel_accuracy", "class_accuracy", "class_iou")
INCEPTION_METRICS = ("fid", "kid", "precision", "recall", "density", "coverage")
TRUTH_METRICS = ("psnr", "ssim", "mae", "rmse", "pixel_accuracy", "class_accuracy", "class_iou")
LABEL_METRICS = ("pixel_accuracy", "class_accuracy", "class_iou")
PRDC_K = 5
GALLERY = 8  # held-out images shown per direction
BATCH = 8
STOPPED_FILE = "stopped.json"  # in RUN/eval: why --patience ended the run, for the report


def every(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """Steps between evaluations (0: none); the same on every worker, so all of them save at those steps."""
    return cfg.eval_every or cfg.eval_every_epochs * steps_per_epoch


def best_metric(cfg: TrainConfig, model_cls: type[Model]) -> str:
    """What --keep_best ranks by: as given, else the model's first direction's FID where Inception can see its
    target domain (8-bit RGB or grey), else its PSNR where it has truth; '' for none."""
    if cfg.keep_best == "none":
        return ""
    if cfg.keep_best:
        return cfg.keep_best
    first = next(iter(model_cls.exports))
    if _inception_view(cfg, model_cls, first)[0]:
        return f"fid_{first}"
    return f"psnr_{first}" if _has_truth(cfg, model_cls, first) else ""


def _inception_view(cfg: TrainConfig, model_cls: type[Model], direction: str) -> tuple[bool, str]:
    return metrics.inception_view(model_cls.exported_kinds(cfg, direction)[1], direction[-1])


def validate(cfg: TrainConfig, model_cls: type[Model]) -> None:
    """One-line UserError for evaluation options that cannot work, before anything is written."""
    for name in ("eval_every", "eval_every_epochs", "eval_images"):
        if getattr(cfg, name) < 0:
            raise UserError(f"--{name}={getattr(cfg, name)}: must be at least 0")
    if cfg.eval_every and cfg.eval_every_epochs:
        raise UserError("--eval_every and --eval_every_epochs: give one of them")
    given = [f"--{n}" for n in ("eval_X", "eval_Y", "eval_truth_X", "eval_truth_Y", "eval_labels_X", "eval_labels_Y")
             if getattr(cfg, n)]
    if not (cfg.eval_every or cfg.eval_every_epochs):
        if cfg.patience:
            raise UserError(f"--patience={cfg.patience} counts evaluations: give --eval_every N or "
                            "--eval_every_epochs E (and held-out images)")
        if given:
            raise UserError(f"{given[0]} is only read with --eval_every N or --eval_every_epochs E")
        return
    needed = ["eval_X"] if model_cls.paired else ["eval_X", "eval_Y"]
    for name in needed:
        if not getattr(cfg, name):
            what = "held-out pairs (build_data.py --paired records)" if model_cls.paired else "held-out images"
            raise UserError(f"--{name} is required with --eval_every: {what}")
    if model_cls.paired:
        for name in ("eval_Y", "eval_truth_X", "eval_truth_Y", "eval_labels_X"):
            if getattr(cfg, name):
                raise UserError(f"--{name}: a paired model evaluates on --eval_X's pairs alone; drop it")
    for name in ("eval_X", "eval_Y", "eval_truth_X", "eval_truth_Y"):
        path = getattr(cfg, name)
        if path and not Path(path).is_dir():
            try:
                records.resolve_files(path)
            except UserError:
                raise UserError(f"--{name}={path}: no such folder or TFRecord file") from None
    kinds = dict(zip("XY", model_cls.kinds(cfg)))
    for domain, direction in (("X", "YtoX"), ("Y", "XtoY")):
        if getattr(cfg, f"eval_labels_{domain}"):
            parse_palette(getattr(cfg, f"eval_labels_{domain}"), f"--eval_labels_{domain}")
            if (kinds[domain].channels, kinds[domain].dtype) != (3, "uint8"):
                raise UserError(f"--eval_labels_{domain}: label maps are 8-bit RGB colours, and {domain} is "
                                f"{kinds[domain].describe()}")
            if direction in model_cls.exports and not _has_truth(cfg, model_cls, direction):
                raise UserError(f"--eval_labels_{domain} scores translations into {domain} against their truth: give "
                                f"--eval_truth_{domain}")
    metric = best_metric(cfg, model_cls)
    if metric:
        name, _, direction = metric.rpartition("_")
        if name not in METRICS or direction not in model_cls.exports:
            raise UserError(f"--keep_best={metric}: choose <metric>_<direction> with a metric of "
                            f"{', '.join(METRICS)} and a direction of {', '.join(model_cls.exports)}, or none")
        target = direction[-1]
        if name in TRUTH_METRICS and not _has_truth(cfg, model_cls, direction):
            raise UserError(f"--keep_best={metric} needs paired truth (--eval_truth_{target})")
        seen, why = _inception_view(cfg, model_cls, direction)
        if name in INCEPTION_METRICS and not seen:
            truth = "" if model_cls.paired else f" (with --eval_truth_{target})"
            raise UserError(f"--keep_best={metric}: {why.removesuffix(': not computed')}; rank by psnr_{direction} "
                            f"or mae_{direction}{truth}, or none")
        if name in LABEL_METRICS and not getattr(cfg, f"eval_labels_{target}"):
            raise UserError(f"--keep_best={metric} needs label maps in {target} (--eval_labels_{target})")
    if cfg.patience and not metric:
        raise UserError(f"--patience={cfg.patience} waits for a better --keep_best score, and none is kept "
                        f"(--keep_best={cfg.keep_best or 'none'}): choose a score")
    if cfg.patience and cfg.strategy == "multi_worker":
        raise UserError(f"--patience={cfg.patience}: the chief alone evaluates, and the workers would not stop "
                        "with it; train multi-worker runs to the end of their schedule")


def _has_truth(cfg: TrainConfig, model_cls: type[Model], direction: str) -> bool:
    return model_cls.paired or bool(cfg.eval_truth_Y if direction == "XtoY" else cfg.eval_truth_X)


def better(metric: str, new: float, old: float | None) -> bool:
    """Whether `new` beats `old` (None: nothing yet). NaN never wins and any number beats a NaN; a tie
    keeps the earlier checkpoint."""
    if new is None or math.isnan(new):
        return False
    if old is None or math.isnan(old):
        return True
    return new < old if lower_is_better(metric) else new > old


def lower_is_better(metric: str) -> bool:
    """Whether a smaller `metric` (e.g. fid_XtoY) is better."""
    return metric.rpartition("_")[0] in LOWER_IS_BETTER


# ----------------------------------------------------------------------------------------------------------------
# Held-out sets


Entry = tuple[str, bytes, bytes | None]  # (name, image bytes, paired image bytes or None)


def _entries(path: str, flag: str, paired: bool) -> list[Entry]:
    """The images of a folder (each file's bytes) or TFRecord file (each record's serialized Example, decoded
    by its domain's kind: `_pixels`), in stored order."""
    if Path(path).is_dir():
        if paired:
            raise UserError(f"--{flag}={path}: a paired model's held-out set is a TFRecord file of pairs "
                            "(build_data.py --paired)")
        files = find_images(path)
        if not files:
            raise UserError(f"--{flag}={path}: no images there")
        try:
            return [(f.stem, f.read_bytes(), None) for f in files]
        except OSError as e:
            raise UserError(f"--{flag}={path}: cannot read {e.filename} ({e.strerror})") from None
    files = records.resolve_files(path)
    records.check_schema(files, paired)
    keys = {records.PREFIX_A + "file_name": tf.io.FixedLenFeature([], tf.string, b"")}
    out = []
    try:
        for raw in tf.data.TFRecordDataset(files):
            ex = tf.io.parse_single_example(raw, keys)
            name = Path(ex[records.PREFIX_A + "file_name"].numpy().decode(errors="replace")).stem
            out.append((name, raw.numpy(), raw.numpy() if paired else None))
    except tf.errors.OpError as e:
        raise UserError(f"--{flag}={path}: corrupt TFRecord data ({one_line(e.message)})") from None
    return out


def _check_kind(path: str, flag: str, prefix: str, kind: Kind, domain: str) -> None:
    """One line if the records at `path` do not hold `domain`'s pixels: the same channels and type (8-bit
    pictures decode to grey or RGB alike); their range may differ, the domain's is used."""
    found = records.read_kind(records.resolve_files(path), prefix)
    pictures = found.dtype == kind.dtype == "uint8" and {found.channels, kind.channels} <= {1, 3}
    if not pictures and (found.channels, found.dtype) != (kind.channels, kind.dtype):
        raise UserError(f"--{flag}={path}: holds {found.channels}-channel {found.dtype} images, but {domain} is "
                        f"{kind.channels}-channel {kind.dtype}: build it as the training data")


def _decode(data: bytes, kind: Kind, prefix: str | None, where: str) -> tf.Tensor:
    """[H, W, C] of `kind`'s stored type: a record's image under `prefix`, or an image file's (prefix None)."""
    try:
        if prefix is not None:
            return pipeline.decode(tf.constant(data), prefix, kind)
        if kind.rgb:  # TensorFlow's decoder, as before kinds existed; PIL and tifffile for the rest
            return tf.io.decode_image(data, channels=3, expand_animations=False)
    except tf.errors.OpError:
        if prefix is not None:
            raise UserError(f"{where}: not a readable image") from None
    try:
        return tf.constant(load_pixels(data, where, kind.channels, kind.dtype))
    except BadImage as e:
        raise UserError(f"{where}: not a readable image" if kind.rgb else f"{where}: {e}") from None


def _pixels(data: bytes, size: int, nearest: bool, where: str, kind: Kind = RGB, prefix: str | None = None
            ) -> np.ndarray:
    """[size, size, C] of `kind`'s stored type: the image resized as an export with --image_size resizes it."""
    img = _decode(data, kind, prefix, where)
    if nearest:
        img = tf.image.resize(img, [size, size], method="nearest")
    else:
        img = tf.image.resize(img, [size, size], method="bicubic", antialias=True)
    return kind.to_stored(np.asarray(img, np.float32))  # RGB: rounded and clipped to uint8, as ever


@dataclass
class HeldOut:
    """One direction's evaluation data: inputs, the target domain's real images, paired truth if any, in their
    domains' stored types (kind_in's and kind_out's)."""

    direction: str
    inputs: np.ndarray
    real: np.ndarray
    truth: np.ndarray | None = None
    palette: np.ndarray | None = None  # the target domain's label colours: FCN-protocol scores
    kind_in: Kind = RGB
    kind_out: Kind = RGB


class _Reader:
    """Reads the held-out sets of one run: its image size, --eval_images limit and domains' kinds."""

    def __init__(self, cfg: TrainConfig, model_cls: type[Model]) -> None:
        self.cfg, self.size, self.limit = cfg, cfg.image_size, cfg.eval_images or None
        self.kinds = dict(zip("XY", model_cls.kinds(cfg)))

    def entries(self, flag: str, paired: bool = False) -> list[Entry]:
        entries = _entries(getattr(self.cfg, flag), flag, paired)[:self.limit]
        if len(entries) < 2:
            raise UserError(f"--{flag}={getattr(self.cfg, flag)}: FID needs at least 2 held-out images, found "
                            f"{len(entries)}")
        return entries

    def pixels(self, entries: list[Entry], i: int, flag: str, domain: str, prefix: str = records.PREFIX_A,
               nearest: bool = False) -> np.ndarray:
        """The `i`-th image of each entry as `domain`'s pixels (`prefix`: a record's image A or B)."""
        path, kind = getattr(self.cfg, flag), self.kinds[domain]
        folder = Path(path).is_dir()
        if not folder:
            _check_kind(path, flag, prefix, kind, domain)
        return np.stack([_pixels(e[i], self.size, nearest, f"--{flag}={path}: {e[0]}", kind, None if folder else prefix)
                         for e in entries])


def load_held_out(cfg: TrainConfig, model_cls: type[Model]) -> list[HeldOut]:
    """Every direction the model exports, with its held-out images (one-line errors for bad files)."""
    read = _Reader(cfg, model_cls)
    x_kind, y_kind = read.kinds["X"], read.kinds["Y"]
    if model_cls.paired:
        pairs = read.entries("eval_X", paired=True)
        a, b = records.PREFIX_A, records.PREFIX_B
        (source, sp), (target, tp) = ((2, b), (1, a)) if cfg.direction == "BtoA" else ((1, a), (2, b))
        truth = read.pixels(pairs, target, "eval_X", "Y", tp)
        inputs = read.pixels(pairs, source, "eval_X", "X", sp, model_cls.input_is_labels(cfg))
        (direction,) = model_cls.exports
        return [HeldOut(direction, inputs, truth, truth, _palette(cfg, "Y"), x_kind, y_kind)]
    xs, ys = read.entries("eval_X"), read.entries("eval_Y")
    x, y = read.pixels(xs, 1, "eval_X", "X"), read.pixels(ys, 1, "eval_Y", "Y")
    sets = {"XtoY": HeldOut("XtoY", x, y, _truth(read, "eval_truth_Y", [e[0] for e in xs], "Y"), _palette(cfg, "Y"),
                            x_kind, y_kind),
            "YtoX": HeldOut("YtoX", y, x, _truth(read, "eval_truth_X", [e[0] for e in ys], "X"), _palette(cfg, "X"),
                            y_kind, x_kind)}
    return [sets[d] for d in model_cls.exports]


def _palette(cfg: TrainConfig, domain: str) -> np.ndarray | None:
    value = getattr(cfg, f"eval_labels_{domain}")
    return np.array(parse_palette(value, f"--eval_labels_{domain}"), np.uint8) if value else None


def _truth(read: _Reader, flag: str, names: list[str], domain: str) -> np.ndarray | None:
    """Paired truth for the inputs `names`, matched by file name (without extension), as `domain`'s pixels."""
    path = getattr(read.cfg, flag)
    if not path:
        return None
    by_name = {e[0]: e for e in _entries(path, flag, False)}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise UserError(f"--{flag}={path}: no image named {missing[0]} (truth is matched to inputs by file name)")
    return read.pixels([by_name[n] for n in names], 1, flag, domain)


# ----------------------------------------------------------------------------------------------------------------
# Scoring


def _rows(*rows: np.ndarray) -> np.ndarray:
    """The first GALLERY images of each array as rows of one uint8 picture (inputs above translations)."""
    return np.concatenate([np.concatenate(list(r[:GALLERY]), axis=1) for r in rows], axis=0)


def _shown(images: np.ndarray, kind: Kind, bands: tuple[int, int, int] | None) -> np.ndarray:
    """The first GALLERY images as uint8 RGB for people: grey as grey, more than 3 channels as `bands`."""
    unit = pixels.display(pixels.to_unit(images[:GALLERY], kind), bands).numpy()
    return np.clip(np.round((unit + 1.0) * 127.5), 0, 255).astype(np.uint8)


def gallery(held: HeldOut, fake: np.ndarray, bands: tuple[int, int, int] | None = None) -> np.ndarray:
    """Inputs above their translations as one uint8 RGB picture."""
    if held.kind_in.rgb and held.kind_out.rgb:
        return _rows(held.inputs, fake)  # the pixels themselves, as before kinds existed
    return _rows(_shown(held.inputs, held.kind_in, bands), _shown(fake, held.kind_out, bands))


def truth_scores(fake: np.ndarray, truth: np.ndarray, kind: Kind) -> tuple[dict[str, float], dict[str, list]]:
    """MAE, RMSE, PSNR and SSIM against paired truth in `kind`'s units (data range hi − lo), the mean over bands;
    and the per-band values for a domain of several bands other than RGB."""
    if kind.rgb:  # PSNR/SSIM of uint8 with data range 255, as before kinds existed; MAE and RMSE beside them
        errors = metrics.mean_over_bands(metrics.band_errors(fake, truth, kind.lo, kind.hi, ssim=False))
        return metrics.psnr_ssim(fake, truth) | {"mae": errors["mae"], "rmse": errors["rmse"]}, {}
    bands = metrics.band_errors(fake, truth, kind.lo, kind.hi)
    return metrics.mean_over_bands(bands), (bands if kind.channels > 1 else {})


def _json_number(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else v


@dataclass
class Evaluation:
    """One evaluation's scores, each direction's gallery and, for domains of several bands, per-band scores."""

    scores: dict[str, float]
    galleries: dict[str, np.ndarray]
    bands: dict[str, dict[str, list[float]]]
    health: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)  # direction → monitor → value


class Evaluator:
    """Scores a model's generators on held-out sets; keeps the history, the galleries and the best checkpoint
    of a run folder. Made on the chief only."""

    def __init__(self, cfg: TrainConfig, model_cls: type[Model], folder: Path, sets: list[HeldOut],
                 log: Callable[[str], None] = print) -> None:
        self.cfg, self.model_cls, self.folder, self.sets, self.log = cfg, model_cls, folder, sets, log
        self.dir = folder / "eval"
        self.metric = best_metric(cfg, model_cls)
        self.history = read_history(self.dir)
        best = runs.read_best(folder)
        self.best = best if best and best.get("metric") == self.metric else None
        self.display_bands = pixels.parse_bands(cfg.display_bands)
        self.views = {s.direction: metrics.inception_view(s.kind_out, s.direction[-1]) for s in sets}
        self.notes = {d: note for d, (_, note) in self.views.items() if note}
        self._translate: dict[str, Callable] = {}
        self._real_features: dict[str, np.ndarray] = {}
        self._warned = False
        self.health: run_health.Health | None = None  # the run's monitors (train.py's chief sets it)

    @classmethod
    def open(cls, cfg: TrainConfig, model_cls: type[Model], folder: Path, log: Callable[[str], None] = print
             ) -> Evaluator:
        from cyclegan_tf.evaluation import inception

        fid = any(_inception_view(cfg, model_cls, d)[0] for d in model_cls.exports)  # else no weights needed
        if fid:
            inception.weights_path()  # a missing weights file stops the run now, not at its first evaluation
        sets = load_held_out(cfg, model_cls)
        judge = cls(cfg, model_cls, folder, sets, log)
        (judge.dir / STOPPED_FILE).unlink(missing_ok=True)  # the run goes on: an earlier early stop is history
        for direction, note in judge.notes.items():
            print(f"note: {direction}: {note}", file=sys.stderr, flush=True)
        if not judge.metric and cfg.keep_best != "none":
            first = next(iter(model_cls.exports))
            print(f"note: no best checkpoint is kept: {first} has no FID (its target is not 8-bit RGB or grey) and "
                  "no truth for PSNR; choose a score with --keep_best", file=sys.stderr, flush=True)
        n = min(min(len(s.inputs), len(s.real)) for s in sets)
        if fid and n < 2048:
            print(f"note: evaluating on {n} held-out images per domain; FID is biased upward below 2048, so its "
                  "numbers compare the steps of this run, not other papers' figures", file=sys.stderr, flush=True)
        return judge

    def evaluated(self, step: int) -> bool:
        return step in self.history

    def without_gain(self) -> int:
        """Evaluations since the best one (all of them where none was best yet): read from the history, so a
        resumed run counts on."""
        best = self.best["step"] if self.best else -1
        return sum(1 for step in self.history if step > best)

    def stalled(self) -> str | None:
        """Why the run should stop early (--patience), or None; written to RUN/eval/stopped.json for the report."""
        waited = self.without_gain()
        if not self.cfg.patience or waited < self.cfg.patience:
            return None
        best = (f"the best, {self.metric} {self.best['value']:.4g}, was at step {self.best['step']} "
                f"({self.best['checkpoint']})" if self.best else f"no {self.metric} was ever finite")
        why = f"{waited} evaluations without a better {self.metric} (--patience {self.cfg.patience}); {best}"
        atomic.write_text(self.dir / STOPPED_FILE, json.dumps({"step": max(self.history), "reason": why}) + "\n")
        return why

    def translations(self, model: Model, held: HeldOut) -> np.ndarray:
        """Translations of `held.inputs` by the model's exported network of that direction: uint8 for 8-bit RGB,
        else float32 in the target domain's units."""
        if held.direction not in self._translate:
            net = self.model_cls.exported_network(self.cfg, model.nets, held.direction)
            spec = tf.TensorSpec([None, *held.inputs.shape[1:]], tf.float32)
            kind = held.kind_in

            def translate(x: tf.Tensor) -> tf.Tensor:
                x = x / 127.5 - 1.0 if kind.rgb else pixels.to_unit(x, kind)  # RGB: as before kinds existed
                return tf.cast(net(x, training=False), tf.float32)

            self._translate[held.direction] = tf.function(translate, input_signature=[spec])
        run = self._translate[held.direction]
        batches = range(0, len(held.inputs), BATCH)
        out = np.concatenate([run(tf.constant(held.inputs[i:i + BATCH], tf.float32)).numpy() for i in batches])
        if not held.kind_out.rgb:
            return pixels.from_unit(out, held.kind_out).numpy()
        return np.clip(np.round((out + 1.0) * 127.5), 0, 255).astype(np.uint8)

    def real_features(self, held: HeldOut) -> np.ndarray:
        """Inception features of the target domain's real held-out images, cached in RUN/eval by content."""
        from cyclegan_tf.evaluation import inception

        real = metrics.as_photos(held.real)  # RGB as it is; grey replicated
        key = hashlib.sha1(real.tobytes() + str(real.shape).encode()).hexdigest()[:16]
        if key not in self._real_features:
            path = self.dir / f"inception-{key}.npy"
            try:
                feats = np.load(path) if path.is_file() else None
            except (OSError, ValueError):
                feats = None  # a damaged cache is recomputed
            if feats is None or feats.shape != (len(real), 2048):
                feats = inception.features(real)
                self.dir.mkdir(parents=True, exist_ok=True)
                with atomic.atomic_path(path) as tmp, open(tmp, "wb") as f:
                    np.save(f, feats)
            self._real_features[key] = feats
        return self._real_features[key]

    def _distribution(self, held: HeldOut, fake: np.ndarray) -> dict[str, float]:
        """FID, KID and PRDC of one direction where Inception can see its target domain."""
        from cyclegan_tf.evaluation import inception

        d = held.direction
        if not self.views[d][0]:
            return {}
        fake_f, real_f = inception.features(metrics.as_photos(fake)), self.real_features(held)
        scores = {f"fid_{d}": metrics.fid(fake_f, real_f), f"kid_{d}": metrics.kid(fake_f, real_f)}
        if min(len(fake_f), len(real_f)) > PRDC_K:
            scores |= {f"{k}_{d}": v for k, v in metrics.prdc(real_f, fake_f, PRDC_K).items()}
        elif not self._warned:
            self.log(f"warning: precision/recall/density/coverage need more than {PRDC_K} held-out images")
            self._warned = True
        return scores

    def evaluate(self, model: Model) -> Evaluation:
        """Every score of every direction, each direction's gallery (inputs above translations) and per-band
        scores."""
        result = Evaluation({}, {}, {})
        for held in self.sets:
            d = held.direction
            fake = self.translations(model, held)
            result.scores |= self._distribution(held, fake)
            if held.truth is not None:
                scores, bands = truth_scores(fake, held.truth, held.kind_out)
                result.scores |= {f"{k}_{d}": v for k, v in scores.items()}
                if bands:
                    result.bands[d] = bands
                if held.palette is not None:  # label maps: the paper's FCN-score protocol
                    labels = metrics.label_scores(metrics.as_photos(fake), held.truth, held.palette)
                    result.scores |= {f"{k}_{d}": labels[k] for k in LABEL_METRICS}
            result.galleries[d] = gallery(held, fake, self.display_bands)
            if all(k.dtype == "uint8" and k.channels in (1, 3) for k in (held.kind_in, held.kind_out)):
                result.health[d] = run_health.evaluation_values(held.inputs, fake, held.real)
        return result

    def scores(self, model: Model) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """Every score of every direction, and each direction's gallery (inputs above translations)."""
        result = self.evaluate(model)
        return result.scores, result.galleries

    def run(self, model: Model, step: int, writer: tf.summary.SummaryWriter) -> dict[str, float]:
        """Evaluates at `step`: logs, writes the history and galleries, and keeps the checkpoint ckpt-`step`
        (already saved) as the best if it is."""
        start = time.perf_counter()
        result = self.evaluate(model)
        scores, galleries = result.scores, result.galleries
        seconds = time.perf_counter() - start
        with writer.as_default(step=step):
            for k, v in scores.items():
                tf.summary.scalar(f"eval/{k}", v)
            tf.summary.scalar("eval/seconds", seconds)
            for d, grid in galleries.items():
                tf.summary.image(f"eval/{d}", grid[None])
            for d, values in result.health.items():
                if self.health is not None:
                    self.health.evaluation(step, d, values)
        for d, grid in galleries.items():
            folder = self.dir / f"step-{step}"
            folder.mkdir(parents=True, exist_ok=True)
            with atomic.atomic_path(folder / f"{d}.png") as tmp:
                tmp.write_bytes(encode_png(grid))
        self.history[step] = self._record(step, seconds, result)
        write_history(self.dir, self.history)
        kept = self._keep_best(step, scores)
        if self.health is not None and self.metric:
            series = [self.history[s]["scores"].get(self.metric) for s in sorted(self.history)]
            with writer.as_default(step=step):
                self.health.score(step, self.without_gain(), run_health.diverging(
                    [math.nan if v is None else v for v in series], lower_is_better(self.metric)))
        text = ", ".join(f"{k} {v:.4g}" for k, v in scores.items())
        self.log(f"eval at step {step} ({seconds:.1f} s): {text}{kept}")
        return scores

    def _record(self, step: int, seconds: float, result: Evaluation) -> dict:
        """scores.jsonl's line: the scores, and where they apply the notes (why FID is missing or grey) and the
        per-band scores, which the report shows."""
        n = {"X": len(self.sets[0].inputs), "Y": len(self.sets[0].real)}
        record = {"step": step, "seconds": round(seconds, 3), "n": n,
                  "scores": {k: _json_number(v) for k, v in result.scores.items()}}
        if self.notes:
            record["notes"] = self.notes
        if result.bands:
            record["bands"] = {d: {k: [_json_number(v) for v in values] for k, values in b.items()}
                               for d, b in result.bands.items()}
        return record

    def _keep_best(self, step: int, scores: dict[str, float]) -> str:
        if not self.metric:
            return ""
        value = scores.get(self.metric)
        if not better(self.metric, value, self.best["value"] if self.best else None):
            return ""
        self.best = {"metric": self.metric, "step": step, "value": value,
                     "scores": {k: _json_number(v) for k, v in scores.items()}}
        self.best["checkpoint"] = runs.save_best(self.folder, step, self.best)
        return f"; best {self.metric} so far"


def read_history(folder: Path) -> dict[int, dict]:
    """step → evaluation record of RUN/eval/scores.jsonl (the last line for a step wins); unreadable lines
    are skipped with a warning rather than stopping a run."""
    path = folder / "scores.jsonl"
    history: dict[int, dict] = {}
    try:
        lines = path.read_text().splitlines() if path.is_file() else []
    except OSError as e:
        print(f"warning: {path}: unreadable ({e.strerror}); the evaluation history starts anew", file=sys.stderr)
        return history
    for line in lines:
        try:
            record = json.loads(line)
            history[int(record["step"])] = record
        except (ValueError, KeyError, TypeError):
            print(f"warning: {path}: skipped a damaged line", file=sys.stderr)
    return history


def write_history(folder: Path, history: dict[int, dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(history[s], allow_nan=False) + "\n" for s in sorted(history))
    atomic.write_text(folder / "scores.jsonl", text)
