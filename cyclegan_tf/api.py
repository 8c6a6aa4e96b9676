"""The Python API, for notebooks and scripts: the same code paths as the command-line tools.

    from cyclegan_tf import api
    run = api.train(X="man.tfrecords", Y="woman.tfrecords", image_size=128, max_steps=2000)
    G = api.load_generators(run)["G"]                    # Keras models of the latest checkpoint
    out = api.translate(G, photo)                        # a PIL image, or arrays [H, W, C] / [N, H, W, C]
    api.export(run, "XtoY", "pretrained/man2woman")      # the SavedModel export_graph.py writes
    out = api.translate(api.load_export("pretrained/man2woman"), photo)

Problems with the input raise `cyclegan_tf.errors.UserError` with the one line the tools would print.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from cyclegan_tf import networks
from cyclegan_tf.config import TrainConfig
from cyclegan_tf.data import pixels
from cyclegan_tf.deploy import savedmodel as _export
from cyclegan_tf.errors import UserError
from cyclegan_tf.training import loop, runs


class TrainingStopped(RuntimeError):
    """Training ended before its schedule: a NaN/Inf (status 1) or a signal (128 + signum)."""

    def __init__(self, folder: Path, status: int) -> None:
        super().__init__(f"training in {folder} stopped with status {status}; resume with api.train(load_model=...)")
        self.folder, self.status = folder, status


def config(**options: Any) -> TrainConfig:
    """A TrainConfig; options a model adds of its own (Model.options) go to `extra` by themselves."""
    common = {f for f in TrainConfig.__dataclass_fields__ if f != "extra"}
    return TrainConfig(**{k: v for k, v in options.items() if k in common},
                       extra={k: v for k, v in options.items() if k not in common})


def train(cfg: TrainConfig | None = None, **options: Any) -> Path:
    """Trains (or resumes) a run as train.py does and returns its folder.

    Args:
        cfg: the options as a TrainConfig (`config(...)` makes one); or give them as keywords instead.
        **options: any option of train.py by its flag name (docs/flags.md), the chosen model's own too,
            e.g. `X="man.tfrecords", Y="woman.tfrecords", image_size=128, max_steps=2000`. Options given
            (as keywords, or set in `cfg` away from their defaults) count as given on the command line.

    Returns the run folder (a new `checkpoints/<YYYYmmdd-HHMM>` unless `checkpoint_dir` or `load_model` is
    given). Raises UserError for a bad option or file, TrainingStopped for a NaN or a signal."""
    cfg = cfg or config(**options)
    with runs.claimed(cfg) as cfg:  # the folder is named before training, to be returned
        status = loop.train(cfg)
    folder = runs.run_dir(cfg)
    if status:
        raise TrainingStopped(folder, status)
    return folder


def load_generators(run: str | Path, precision: str = "fp32") -> dict[str, keras.Model]:
    """The generators of a run's latest checkpoint, by name (CycleGAN: G: X→Y and F: Y→X), each as its
    export runs it (a run on label maps: with the label encoder in front, taking the label image).

    Args:
        run: a run folder, or a run name under checkpoints/.
        precision: fp32, bf16 or fp16: the type the returned networks compute in."""
    nets, cfg, model_cls, _ = runs.restore_generators(runs.find_run(run, "run"), precision=precision)
    out = {}
    for direction, name in model_cls.exports.items():
        out[name] = model_cls.exported_network(cfg, nets, direction)
        out[name].kinds = model_cls.exported_kinds(cfg, direction)  # what `translate` takes and gives
    return out


def load_pytorch(path: str | Path, label_nc: int = -1, no_instance: bool = False, **overrides: Any) -> keras.Model:
    """A generator trained with the official PyTorch code, from its `.pth` file (docs/importing.md), as
    `load_generators` gives ours: for `translate`, or to call on images in [-1, 1].

    Args:
        path: the file (junyanz's ResnetGenerator/UnetGenerator, CUT's, pix2pixHD's global/local).
        label_nc, no_instance: pix2pixHD's label inputs, as export_graph.py's flags.
        overrides: netG, ngf, norm… where the file's architecture should be overridden."""
    import tempfile

    from cyclegan_tf import models
    from cyclegan_tf.networks import official

    G, arch = official.import_generator(path, **overrides)
    with tempfile.TemporaryDirectory(prefix="imported-") as tmp:
        runs.write_imported(Path(tmp) / "run", G, arch.options() | official.label_options(arch, label_nc, no_instance),
                            models.for_official(arch.family).name, Path(path).name)
        return load_generators(Path(tmp) / "run")["G"]


def export(run: str | Path, direction: str, target: str | Path, image_size: int = 0,
           precision: str = "fp32") -> Path:
    """export_graph.py for one direction: writes a SavedModel and returns its path.

    Args:
        run: a run folder, or a run name under checkpoints/.
        direction: XtoY (G) or YtoX (F); a paired or one-sided model exports XtoY only.
        target: the export's folder; a previous export there is replaced atomically, anything else refused.
        image_size: 0 for any input size; S > 0 resizes inputs to S×S and back (vanhuyz's export).
        precision: fp32, bf16 or fp16: the type the graph computes in (inputs and outputs stay float32)."""
    return _export.export(runs.find_run(run, "run"), direction, target, image_size, precision)


def load_export(path: str | Path) -> Any:
    """An exported SavedModel (plain tf.saved_model.load), for `translate`.

    Args:
        path: the export's folder (what export_graph.py or `export` wrote)."""
    if not (Path(path) / "saved_model.pb").exists():
        raise UserError(f"{path}: no SavedModel there")
    return tf.saved_model.load(str(path))


def translate(model: Any, images: Image.Image | np.ndarray) -> Image.Image | np.ndarray:
    """Translates images at any size, as export_graph.py's graph does; returns the same form as given, in
    the output domain's type and units (data/pixels.py; 8-bit RGB for photos).

    Args:
        model: a generator of `load_generators`, or an export of `load_export`.
        images: a PIL image, or arrays [H, W, C] or [N, H, W, C] (N images of one size) of the model's input
            channels, in its units (uint8 RGB for photos)."""
    kinds = getattr(model, "kinds", None) or pixels.of_export(model)
    pil = isinstance(images, Image.Image)
    if pil and not (kinds[0].dtype == "uint8" and kinds[0].channels in (1, 3)):
        raise UserError(f"a PIL image for a model that takes {kinds[0].describe()}: give an array")
    x = np.asarray(images.convert("RGB" if kinds[0].channels == 3 else "L") if pil else images)
    x = x[..., None] if pil and x.ndim == 2 else x
    c = kinds[0].channels
    if x.ndim not in (3, 4) or x.shape[-1] != c:
        raise UserError(f"images of shape {x.shape}: expected [H, W, {c}] or [N, H, W, {c}] ({kinds[0].describe()})")
    batch = tf.constant(x[None] if x.ndim == 3 else x, tf.float32)
    if isinstance(model, keras.Model):
        model = _export.Translator(model, _multiple(model), 0, {}, 0, "", kinds=kinds)
    y = kinds[1].to_stored(model.translate(batch)["images"].numpy())
    y = y[0] if x.ndim == 3 else y
    if pil and kinds[1].dtype == "uint8" and kinds[1].channels in (1, 3):
        return Image.fromarray(y[..., 0] if kinds[1].channels == 1 else y)
    return y


def _multiple(generator: keras.Model) -> int:
    """The factor a generator's input sides must divide by (the input is padded to it): what define_G
    recorded, else 2 per strided conv or blur pool."""
    if getattr(generator, "input_multiple", None):
        return generator.input_multiple
    downsampling = (keras.layers.Conv2D, networks.BlurPool2D)
    strides = [getattr(layer, "strides", (1, 1))[0] for layer in generator.layers
               if isinstance(layer, downsampling) and not isinstance(layer, keras.layers.Conv2DTranspose)]
    return int(np.prod(strides))
