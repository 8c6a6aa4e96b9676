"""Exporting one generator (G: X→Y or F: Y→X) as a SavedModel that needs only TensorFlow.

Signatures:
  serving_default  encoded images (string [N]: JPEG/PNG/BMP/GIF bytes) → PNG bytes (string [N]), each
                   at its input's size; the form TensorFlow Serving's REST API takes (`{"b64": ...}`).
  translate        float32 [N, H, W, 3] in [0, 255] → float32 [N, H, W, 3] in [0, 255].
Any H, W: the graph reflect-pads to the multiple the generator needs and crops back; or, with
image_size > 0, resizes to that square and back (vanhuyz's behaviour). The training flags, the
training step and the direction (XtoY or YtoX; a paired run's AtoB or BtoA) are stored as variables:
`m.flags_json`, `m.train_step`, `m.direction`, and the compute type as `m.precision` (fp32, bf16, fp16).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from cyclegan_tf.atomic import atomic_path
from cyclegan_tf.errors import UserError
from cyclegan_tf.options import PRECISIONS
from cyclegan_tf.runs import restore_generators


class Translator(tf.Module):
    def __init__(self, generator: keras.Model, multiple: int, image_size: int, flags: dict, step: int,
                 direction: str, precision: str = "fp32") -> None:
        super().__init__(name=f"translator_{direction}")
        self.generator, self.multiple, self.image_size = generator, multiple, image_size
        self.flags_json = tf.Variable(json.dumps(flags, sort_keys=True), trainable=False, name="flags_json")
        self.train_step = tf.Variable(step, dtype=tf.int64, trainable=False, name="train_step")
        self.direction = tf.Variable(direction, trainable=False, name="direction")
        self.precision = tf.Variable(precision, trainable=False, name="precision")

    def _run(self, x: tf.Tensor) -> tf.Tensor:
        h, w = tf.shape(x)[1], tf.shape(x)[2]
        if self.image_size > 0:
            x = tf.image.resize(x, [self.image_size, self.image_size], method="bicubic", antialias=True)
            return tf.image.resize(self.generator(x, training=False), [h, w], method="bicubic", antialias=True)
        m = self.multiple
        ph, pw = (m - h % m) % m, (m - w % m) % m
        # Symmetric padding needs pad ≤ size: images must be at least half the multiple (2 px for resnets).
        x = tf.pad(x, [[0, 0], [ph // 2, ph - ph // 2], [pw // 2, pw - pw // 2], [0, 0]], mode="SYMMETRIC")
        y = self.generator(x, training=False)
        return y[:, ph // 2:ph // 2 + h, pw // 2:pw // 2 + w, :]

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    def translate(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        y = self._run(images / 127.5 - 1.0)
        return {"images": tf.clip_by_value((tf.cast(y, tf.float32) + 1.0) * 127.5, 0.0, 255.0)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        def one(data: tf.Tensor) -> tf.Tensor:
            img = tf.io.decode_image(data, channels=3, expand_animations=False)
            img.set_shape([None, None, 3])
            out = self.translate(tf.cast(img, tf.float32)[None])["images"][0]
            return tf.io.encode_png(tf.cast(tf.round(out), tf.uint8))

        return {"image_bytes": tf.map_fn(one, image_bytes, fn_output_signature=tf.string)}


def model_name(value: str) -> str:
    """vanhuyz wrote `man2woman.pb`; a SavedModel is a folder, so the stem names it."""
    return Path(value).stem if value.endswith(".pb") else value


def export(run: str | Path, direction: str, target: str | Path, image_size: int = 0, precision: str = "fp32") -> Path:
    """Writes the SavedModel of the generator a run's model declares for `direction` (XtoY: G, YtoX: F);
    replaces `target` atomically. A paired run stores its own direction (AtoB or BtoA).
    `precision` bf16 or fp16 makes the graph compute in that type (inputs and outputs stay float32)."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision={precision}: choose {', '.join(PRECISIONS)}")
    nets, cfg, model_cls, step = restore_generators(run, precision=precision)
    if direction not in model_cls.exports:
        raise UserError(f"{run} is a {cfg.model} run: it exports {', '.join(model_cls.exports)}, not {direction}")
    multiple = model_cls.input_multiple(cfg)
    if image_size and image_size % multiple:
        raise UserError(f"--image_size={image_size}: {cfg.netG} needs a multiple of {multiple}")
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create {target.parent}: {e.strerror}") from None
    if not os.access(target.parent, os.W_OK):
        raise UserError(f"cannot write to {target.parent}: permission denied")
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    module = Translator(nets[model_cls.exports[direction]], multiple, image_size, cfg.as_flags(), step,
                        model_cls.exported_direction(cfg, direction), precision)
    try:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve,
                                                          "translate": module.translate})
        if target.exists():
            target.rename(old)
        try:
            tmp.rename(target)
        except OSError:
            if old.exists():
                old.rename(target)  # put the previous export back
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return target


def to_onnx(saved_model: Path, output: Path) -> Path:
    """The `translate` signature of an export as ONNX (NHWC float32 in [0, 255]), through tf2onnx."""
    try:
        import tf2onnx
    except ImportError:
        raise UserError("--onnx needs tf2onnx: pip install 'cyclegan_tf[onnx]'") from None
    loaded = tf.saved_model.load(str(saved_model))  # kept referenced: its variables die with it
    spec = [tf.TensorSpec([None, None, None, 3], tf.float32, name="images")]
    try:
        with atomic_path(output) as tmp:
            fn = tf.function(lambda images: loaded.translate(images)["images"])
            tf2onnx.convert.from_function(fn, input_signature=spec, opset=17, output_path=str(tmp))
    except Exception as e:  # noqa: BLE001 - tf2onnx raises many kinds for an unsupported graph
        raise UserError(f"ONNX conversion of {saved_model} failed: {str(e).splitlines()[0][:300]}") from None
    return output
