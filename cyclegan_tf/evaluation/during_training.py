"""Evaluation during training (train.py --eval_every N --eval_X … --eval_Y …).

Every N steps, and at the end, the chief translates the held-out images with each generator the model
exports (G: X→Y on --eval_X, F: Y→X on --eval_Y; a paired model's one direction on its held-out pairs)
and scores the translations against the real held-out images of the target domain: FID, KID and
precision/recall/density/coverage on the FID Inception's features, and PSNR/SSIM where paired truth
exists (and, for label maps of a palette given by --eval_labels_X/_Y, the FCN protocol's pixel and class
accuracy and class IoU). The scores go to TensorBoard (`eval/<metric>_<direction>`, a gallery image `eval/<direction>`),
to RUN/eval/scores.jsonl (one line per evaluation) and RUN/eval/step-N/<direction>.png; the checkpoint
of the best score by --keep_best is kept as RUN/best-N (runs.save_best). The Inception features of the
real held-out images are computed once and cached in RUN/eval/.

Held-out images are resized to --image_size × --image_size (label maps nearest-neighbour), as an export
with --image_size does, so every evaluation sees the same pixels.
"""
from __future__ import annotations

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
from cyclegan_tf.data import records
from cyclegan_tf.data.imagefiles import encode_png, find_images
from cyclegan_tf.errors import UserError, one_line
from cyclegan_tf.evaluation import metrics
from cyclegan_tf.models.base import Model
from cyclegan_tf.options import parse_palette
from cyclegan_tf.training import runs

LOWER_IS_BETTER = ("fid", "kid")
METRICS = ("fid", "kid", "precision", "recall", "density", "coverage", "psnr", "ssim", "pixel_accuracy",
           "class_accuracy", "class_iou")
TRUTH_METRICS = ("psnr", "ssim", "pixel_accuracy", "class_accuracy", "class_iou")
LABEL_METRICS = ("pixel_accuracy", "class_accuracy", "class_iou")
PRDC_K = 5
GALLERY = 8  # held-out images shown per direction
BATCH = 8


def every(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """Steps between evaluations (0: none); the same on every worker, so all of them save at those steps."""
    return cfg.eval_every or cfg.eval_every_epochs * steps_per_epoch


def best_metric(cfg: TrainConfig, model_cls: type[Model]) -> str:
    """What --keep_best ranks by: as given, or FID of the model's first direction; '' for none."""
    if cfg.keep_best == "none":
        return ""
    return cfg.keep_best or f"fid_{next(iter(model_cls.exports))}"


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
    for domain, direction in (("X", "YtoX"), ("Y", "XtoY")):
        if getattr(cfg, f"eval_labels_{domain}"):
            parse_palette(getattr(cfg, f"eval_labels_{domain}"), f"--eval_labels_{domain}")
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
        if name in LABEL_METRICS and not getattr(cfg, f"eval_labels_{target}"):
            raise UserError(f"--keep_best={metric} needs label maps in {target} (--eval_labels_{target})")


def _has_truth(cfg: TrainConfig, model_cls: type[Model], direction: str) -> bool:
    return model_cls.paired or bool(cfg.eval_truth_Y if direction == "XtoY" else cfg.eval_truth_X)


def better(metric: str, new: float, old: float | None) -> bool:
    """Whether `new` beats `old` (None: nothing yet). NaN never wins and any number beats a NaN; a tie
    keeps the earlier checkpoint."""
    if new is None or math.isnan(new):
        return False
    if old is None or math.isnan(old):
        return True
    return new < old if metric.rpartition("_")[0] in LOWER_IS_BETTER else new > old


# ----------------------------------------------------------------------------------------------------------------
# Held-out sets


def _entries(path: str, flag: str, paired: bool) -> list[tuple[str, bytes, bytes | None]]:
    """(name, image bytes, paired image bytes or None) of a folder or TFRecord file, in stored order."""
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
    keys = {records.PREFIX_A + "file_name": tf.io.FixedLenFeature([], tf.string, b""),
            records.PREFIX_A + records.ENCODED: tf.io.FixedLenFeature([], tf.string)}
    if paired:
        keys[records.PREFIX_B + records.ENCODED] = tf.io.FixedLenFeature([], tf.string)
    out = []
    try:
        for raw in tf.data.TFRecordDataset(files):
            ex = tf.io.parse_single_example(raw, keys)
            name = Path(ex[records.PREFIX_A + "file_name"].numpy().decode(errors="replace")).stem
            b = ex[records.PREFIX_B + records.ENCODED].numpy() if paired else None
            out.append((name, ex[records.PREFIX_A + records.ENCODED].numpy(), b))
    except tf.errors.OpError as e:
        raise UserError(f"--{flag}={path}: corrupt TFRecord data ({one_line(e.message)})") from None
    return out


def _pixels(data: bytes, size: int, nearest: bool, where: str) -> np.ndarray:
    """uint8 [size, size, 3]: the image resized as an export with --image_size resizes it."""
    try:
        img = tf.io.decode_image(data, channels=3, expand_animations=False)
    except tf.errors.OpError:
        raise UserError(f"{where}: not a readable image") from None
    if nearest:
        img = tf.image.resize(img, [size, size], method="nearest")
    else:
        img = tf.image.resize(img, [size, size], method="bicubic", antialias=True)
    return np.clip(np.round(np.asarray(img, np.float32)), 0, 255).astype(np.uint8)


@dataclass
class HeldOut:
    """One direction's evaluation data: inputs, the target domain's real images, paired truth if any."""

    direction: str
    inputs: np.ndarray
    real: np.ndarray
    truth: np.ndarray | None = None
    palette: np.ndarray | None = None  # the target domain's label colours: FCN-protocol scores


def load_held_out(cfg: TrainConfig, model_cls: type[Model]) -> list[HeldOut]:
    """Every direction the model exports, with its held-out images (one-line errors for bad files)."""
    size, limit = cfg.image_size, cfg.eval_images or None

    def load(flag: str, paired: bool = False) -> list[tuple[str, bytes, bytes | None]]:
        entries = _entries(getattr(cfg, flag), flag, paired)[:limit]
        if len(entries) < 2:
            raise UserError(f"--{flag}={getattr(cfg, flag)}: FID needs at least 2 held-out images, found "
                            f"{len(entries)}")
        return entries

    def pixels(entries: list, i: int, flag: str, nearest: bool = False) -> np.ndarray:
        return np.stack([_pixels(e[i], size, nearest, f"--{flag}={getattr(cfg, flag)}: {e[0]}") for e in entries])

    if model_cls.paired:
        pairs = load("eval_X", paired=True)
        source, target = (2, 1) if cfg.direction == "BtoA" else (1, 2)
        truth = pixels(pairs, target, "eval_X")
        (direction,) = model_cls.exports
        return [HeldOut(direction, pixels(pairs, source, "eval_X", model_cls.input_is_labels(cfg)), truth, truth,
                        _palette(cfg, "Y"))]
    xs, ys = load("eval_X"), load("eval_Y")
    x, y = pixels(xs, 1, "eval_X"), pixels(ys, 1, "eval_Y")
    sets = {"XtoY": HeldOut("XtoY", x, y, _truth(cfg, "eval_truth_Y", [e[0] for e in xs], size), _palette(cfg, "Y")),
            "YtoX": HeldOut("YtoX", y, x, _truth(cfg, "eval_truth_X", [e[0] for e in ys], size), _palette(cfg, "X"))}
    return [sets[d] for d in model_cls.exports]


def _palette(cfg: TrainConfig, domain: str) -> np.ndarray | None:
    value = getattr(cfg, f"eval_labels_{domain}")
    return np.array(parse_palette(value, f"--eval_labels_{domain}"), np.uint8) if value else None


def _truth(cfg: TrainConfig, flag: str, names: list[str], size: int) -> np.ndarray | None:
    """Paired truth for the inputs `names`, matched by file name (without extension)."""
    path = getattr(cfg, flag)
    if not path:
        return None
    by_name = {e[0]: e[1] for e in _entries(path, flag, False)}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise UserError(f"--{flag}={path}: no image named {missing[0]} (truth is matched to inputs by file name)")
    return np.stack([_pixels(by_name[n], size, False, f"--{flag}={path}: {n}") for n in names])


# ----------------------------------------------------------------------------------------------------------------
# Scoring


def _rows(*rows: np.ndarray) -> np.ndarray:
    """The first GALLERY images of each array as rows of one uint8 picture (inputs above translations)."""
    return np.concatenate([np.concatenate(list(r[:GALLERY]), axis=1) for r in rows], axis=0)


def _json_number(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else v


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
        self._translate: dict[str, Callable] = {}
        self._real_features: dict[str, np.ndarray] = {}
        self._warned = False

    @classmethod
    def open(cls, cfg: TrainConfig, model_cls: type[Model], folder: Path, log: Callable[[str], None] = print
             ) -> Evaluator:
        from cyclegan_tf.evaluation import inception

        inception.weights_path()  # a missing weights file stops the run now, not at its first evaluation
        sets = load_held_out(cfg, model_cls)
        n = min(min(len(s.inputs), len(s.real)) for s in sets)
        if n < 2048:
            print(f"note: evaluating on {n} held-out images per domain; FID is biased upward below 2048, so its "
                  "numbers compare the steps of this run, not other papers' figures", file=sys.stderr, flush=True)
        return cls(cfg, model_cls, folder, sets, log)

    def evaluated(self, step: int) -> bool:
        return step in self.history

    def translations(self, model: Model, held: HeldOut) -> np.ndarray:
        """uint8 translations of `held.inputs` by the model's exported network of that direction."""
        if held.direction not in self._translate:
            net = self.model_cls.exported_network(self.cfg, model.nets, held.direction)
            spec = tf.TensorSpec([None, *held.inputs.shape[1:]], tf.float32)
            self._translate[held.direction] = tf.function(
                lambda x: tf.cast(net(x / 127.5 - 1.0, training=False), tf.float32), input_signature=[spec])
        run = self._translate[held.direction]
        batches = range(0, len(held.inputs), BATCH)
        out = [run(tf.constant(held.inputs[i:i + BATCH], tf.float32)).numpy() for i in batches]
        return np.clip(np.round((np.concatenate(out) + 1.0) * 127.5), 0, 255).astype(np.uint8)

    def real_features(self, held: HeldOut) -> np.ndarray:
        """Inception features of the target domain's real held-out images, cached in RUN/eval by content."""
        from cyclegan_tf.evaluation import inception

        key = hashlib.sha1(held.real.tobytes() + str(held.real.shape).encode()).hexdigest()[:16]
        if key not in self._real_features:
            path = self.dir / f"inception-{key}.npy"
            try:
                feats = np.load(path) if path.is_file() else None
            except (OSError, ValueError):
                feats = None  # a damaged cache is recomputed
            if feats is None or feats.shape != (len(held.real), 2048):
                feats = inception.features(held.real)
                self.dir.mkdir(parents=True, exist_ok=True)
                with atomic.atomic_path(path) as tmp, open(tmp, "wb") as f:
                    np.save(f, feats)
            self._real_features[key] = feats
        return self._real_features[key]

    def scores(self, model: Model) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """Every score of every direction, and each direction's gallery (inputs above translations)."""
        from cyclegan_tf.evaluation import inception

        scores, galleries = {}, {}
        for held in self.sets:
            d = held.direction
            fake = self.translations(model, held)
            fake_f, real_f = inception.features(fake), self.real_features(held)
            scores[f"fid_{d}"], scores[f"kid_{d}"] = metrics.fid(fake_f, real_f), metrics.kid(fake_f, real_f)
            if min(len(fake_f), len(real_f)) > PRDC_K:
                scores |= {f"{k}_{d}": v for k, v in metrics.prdc(real_f, fake_f, PRDC_K).items()}
            elif not self._warned:
                self.log(f"warning: precision/recall/density/coverage need more than {PRDC_K} held-out images")
                self._warned = True
            if held.truth is not None:
                scores |= {f"{k}_{d}": v for k, v in metrics.psnr_ssim(fake, held.truth).items()}
                if held.palette is not None:  # label maps: the paper's FCN-score protocol
                    labels = metrics.label_scores(fake, held.truth, held.palette)
                    scores |= {f"{k}_{d}": labels[k] for k in LABEL_METRICS}
            galleries[d] = _rows(held.inputs, fake)
        return scores, galleries

    def run(self, model: Model, step: int, writer: tf.summary.SummaryWriter) -> dict[str, float]:
        """Evaluates at `step`: logs, writes the history and galleries, and keeps the checkpoint ckpt-`step`
        (already saved) as the best if it is."""
        start = time.perf_counter()
        scores, galleries = self.scores(model)
        seconds = time.perf_counter() - start
        with writer.as_default(step=step):
            for k, v in scores.items():
                tf.summary.scalar(f"eval/{k}", v)
            tf.summary.scalar("eval/seconds", seconds)
            for d, grid in galleries.items():
                tf.summary.image(f"eval/{d}", grid[None])
        for d, grid in galleries.items():
            folder = self.dir / f"step-{step}"
            folder.mkdir(parents=True, exist_ok=True)
            with atomic.atomic_path(folder / f"{d}.png") as tmp:
                tmp.write_bytes(encode_png(grid))
        n = {"X": len(self.sets[0].inputs), "Y": len(self.sets[0].real)}
        self.history[step] = {"step": step, "seconds": round(seconds, 3), "n": n,
                              "scores": {k: _json_number(v) for k, v in scores.items()}}
        write_history(self.dir, self.history)
        kept = self._keep_best(step, scores)
        text = ", ".join(f"{k} {v:.4g}" for k, v in scores.items())
        self.log(f"eval at step {step} ({seconds:.1f} s): {text}{kept}")
        return scores

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
