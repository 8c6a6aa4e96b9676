"""Exporting one generator (G: X→Y or F: Y→X) as a SavedModel that needs only TensorFlow.

Signatures (C, C' the input's and output's channels; values in the domains' own units, data/pixels.py):
  serving_default  encoded images (string [N]: JPEG/PNG/BMP/GIF bytes; 16-bit PNG for 16-bit domains) → PNG
                   bytes (string [N]) of the output's type, each at its input's size; the form TensorFlow
                   Serving's REST API takes (`{"b64": ...}`). Where PNG cannot hold a domain (float32, more
                   than 4 channels), serving_default is `translate`.
  translate        float32 [N, H, W, C] in the input's units (8-bit RGB: [0, 255]) → float32 [N, H, W, C'] in
                   the output's units, within its range.
  statistics       float32 [1, H, W, C] → float32 [K]: every test-time norm layer's per-channel mean and variance
                   on that image (networks.NormStatistics), and
  translate_with_statistics  images and those K statistics → translate's output, every norm layer using the
                   given statistics instead of each image's own: the tiles of a large image translated as the
                   whole image would be (inference.py --tile --norm_stats global). Not in square-mode exports.
Any H, W ≥ 1: the graph mirror-pads to the multiple the generator needs (mirroring as often as a small
image requires) and crops back; or, with image_size > 0, resizes to that square and back (vanhuyz's
behaviour). The training flags, the training step and the direction (XtoY or YtoX; a paired run's AtoB or
BtoA) are stored as variables: `m.flags_json`, `m.train_step`, `m.direction`, the compute type as
`m.precision` (fp32, bf16, fp16), how a resized input must be resized as `m.input_resize` (bicubic, or
nearest for label maps), and the pixels of each side as `m.input_channels`, `m.input_dtype`, `m.input_lo`,
`m.input_hi` and the same for `output_` (an export written before them is 8-bit RGB). The generator's
weights are constants of the graph (ConstantWeights), not variables.

An export is written under `.NAME.tmp-PID` and swapped in whole; only a folder that is recognisably an
export (SavedModel files and nothing else) or an empty one is ever replaced.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cyclegan_tf import networks
from cyclegan_tf.atomic import atomic_path, remove_stale, restore_set_aside, swap_in, temp_name
from cyclegan_tf.data.pixels import RGB, Kind, from_unit, of_export, to_unit
from cyclegan_tf.errors import UserError, disk_failure
from cyclegan_tf.networks import direct_convs, norm_statistics
from cyclegan_tf.options import PRECISIONS
from cyclegan_tf.training.runs import restore_generators

EXPORT_ENTRIES = frozenset({"saved_model.pb", "fingerprint.pb", "variables", "assets"})


# Up to this many bytes of weights, an export holds them as constants of its graph (ConstantWeights); beyond,
# as variables, since saved_model.pb, where constants live, is a protobuf and cannot exceed 2 GB.
CONSTANT_WEIGHTS_LIMIT = 1 << 30


class ConstantWeights:
    """A generator that reads its weights from constants of the graph instead of its variables (Keras'
    stateless_call). oneDNN, TensorFlow's CPU convolution library, reorders a constant filter into its
    blocked layout once and keeps it; a variable's it reorders at every call, which made an export's
    translation a fifth slower (docs/benchmarks.md). The constants are made by one function (`weights`)
    that every signature calls, so a SavedModel stores them once."""

    def __init__(self, generator: keras.Model) -> None:
        self.generator = generator
        trainable = [v.numpy() for v in generator.trainable_variables]
        non_trainable = [v.numpy() for v in generator.non_trainable_variables]
        self.weights = tf.function(lambda: ([tf.constant(a) for a in trainable],
                                            [tf.constant(a) for a in non_trainable]), input_signature=[])

    def __call__(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        trainable, non_trainable = self.weights()
        return self.generator.stateless_call(trainable, non_trainable, x, training=training)[0]


def weight_bytes(model: keras.Model) -> int:
    return sum(int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in model.weights)


class Translator(tf.Module):
    def __init__(self, generator: keras.Model, multiple: int, image_size: int, flags: dict, step: int,
                 direction: str, precision: str = "fp32", min_side: int | None = None, resize: str = "bicubic",
                 constant_weights: bool = False, kinds: tuple[Kind, Kind] = (RGB, RGB)) -> None:
        """`constant_weights`: the graph holds the generator's weights as constants (ConstantWeights), as
        they are now, if they fit under CONSTANT_WEIGHTS_LIMIT; otherwise it reads its variables. `kinds`:
        the pixels that go in and come out."""
        super().__init__(name=f"translator_{direction}")
        if constant_weights and weight_bytes(generator) <= CONSTANT_WEIGHTS_LIMIT:
            generator = ConstantWeights(generator)  # not a Trackable: a SavedModel saves no variables of it
        self.kinds = kinds
        for side, k in zip(("input", "output"), kinds):
            setattr(self, f"{side}_channels", tf.Variable(k.channels, trainable=False, name=f"{side}_channels"))
            setattr(self, f"{side}_dtype", tf.Variable(k.dtype, trainable=False, name=f"{side}_dtype"))
            lo, hi = (np.broadcast_to(v, k.channels).astype(np.float32) for v in k.lo_hi())
            setattr(self, f"{side}_lo", tf.Variable(lo, trainable=False, name=f"{side}_lo"))
            setattr(self, f"{side}_hi", tf.Variable(hi, trainable=False, name=f"{side}_hi"))
        self._define_signatures(kinds[0].channels)
        self.generator, self.multiple, self.image_size = generator, multiple, image_size
        self.resize = resize  # of the input in the square mode: nearest for label maps
        self.input_resize = tf.Variable(resize, trainable=False, name="input_resize")
        self.min_side = min_side or smallest_side(self.generator, multiple, kinds[0].channels)
        self.flags_json = tf.Variable(json.dumps(flags, sort_keys=True), trainable=False, name="flags_json")
        self.train_step = tf.Variable(step, dtype=tf.int64, trainable=False, name="train_step")
        self.direction = tf.Variable(direction, trainable=False, name="direction")
        self.precision = tf.Variable(precision, trainable=False, name="precision")

    def _run(self, x: tf.Tensor) -> tf.Tensor:
        h, w = tf.shape(x)[1], tf.shape(x)[2]
        if self.image_size > 0:
            x = tf.image.resize(x, [self.image_size, self.image_size], method=self.resize,
                                antialias=self.resize == "bicubic")
            return tf.image.resize(self.generator(x, training=False), [h, w], method="bicubic", antialias=True)
        m = self.multiple
        ph = tf.maximum((h + m - 1) // m * m, self.min_side) - h
        pw = tf.maximum((w + m - 1) // m * m, self.min_side) - w
        x = tf.gather(x, mirror_indices(h, ph // 2, ph - ph // 2), axis=1)
        x = tf.gather(x, mirror_indices(w, pw // 2, pw - pw // 2), axis=2)
        y = self.generator(x, training=False)
        return y[:, ph // 2:ph // 2 + h, pw // 2:pw // 2 + w, :]

    def _translated(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"images": from_unit(self._run(to_unit(images, self.kinds[0])), self.kinds[1])}

    def _define_signatures(self, c: int) -> None:
        """The signatures, for inputs of `c` channels (tf.function's input_signature is fixed when defined)."""
        images = tf.TensorSpec([None, None, None, c], tf.float32, name="images")
        self.translate = tf.function(self._translated, input_signature=[images])
        self.translate_portable = tf.function(self._portable, input_signature=[images])
        self.statistics = tf.function(self._statistics, input_signature=[
            tf.TensorSpec([1, None, None, c], tf.float32, name="images")])
        self.translate_with_statistics = tf.function(self._with_statistics, input_signature=[
            images, tf.TensorSpec([None], tf.float32, name="statistics")])
        self.serve = None  # what PNG (or JPEG) bytes can carry in and out only: a SavedModel traces every function
        if all(k.png for k in self.kinds):
            self.serve = tf.function(self._serve, input_signature=[tf.TensorSpec([None], tf.string,
                                                                                 name="image_bytes")])

    def _portable(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """`translate` with direct convs only (networks.direct_convs): the graph LiteRT and ONNX convert,
        and the faster one where the convolutions are cuDNN's (not measured: no GPU here)."""
        with direct_convs():
            return self._translated(images)

    def _statistics(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        with norm_statistics() as stats:
            self._run(to_unit(images, self.kinds[0]))
        return {"statistics": stats.vector()}

    def _with_statistics(self, images: tf.Tensor, statistics: tf.Tensor) -> dict[str, tf.Tensor]:
        with norm_statistics(statistics):
            return self._translated(images)

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        signatures = {"serving_default": self.serve or self.translate, "translate": self.translate}
        if not self.image_size:  # tiles of a large image, normalised as the whole image (inference.py --tile)
            signatures.update(statistics=self.statistics, translate_with_statistics=self.translate_with_statistics)
        return signatures

    def _serve(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        k_in, k_out = self.kinds

        def one(data: tf.Tensor) -> tf.Tensor:
            if k_in.dtype == "uint8" and k_in.channels in (1, 3):
                img = tf.io.decode_image(data, channels=k_in.channels, expand_animations=False)
            else:
                img = tf.io.decode_png(data, channels=k_in.channels, dtype=tf.as_dtype(k_in.dtype))
            img.set_shape([None, None, k_in.channels])
            out = self.translate(tf.cast(img, tf.float32)[None])["images"][0]
            return tf.io.encode_png(tf.cast(tf.round(out), tf.as_dtype(k_out.dtype)))

        return {"image_bytes": tf.map_fn(one, image_bytes, fn_output_signature=tf.string)}


def _pixels(y: tf.Tensor) -> tf.Tensor:
    """A generator's output in [-1, 1] as float32 pixels in [0, 255]."""
    return tf.clip_by_value((tf.cast(y, tf.float32) + 1.0) * 127.5, 0.0, 255.0)


def mirror_indices(n: tf.Tensor | int, before: tf.Tensor | int, after: tf.Tensor | int) -> tf.Tensor:
    """Row (or column) indices of a symmetric padding by `before` and `after`: what tf.pad's SYMMETRIC
    mode gives, but for any amount, since the image repeats mirrored as often as needed (SYMMETRIC refuses
    a pad larger than the side, e.g. a 1×1 image padded to a ResNet's 8×8)."""
    i = tf.math.floormod(tf.range(-before, n + after), 2 * n)
    return tf.where(i < n, i, 2 * n - 1 - i)


def smallest_side(generator: keras.Model, multiple: int, channels: int = 3) -> int:
    """The smallest square multiple of `multiple` the generator accepts: a ResNet's reflection pads need
    2 px at its 1/4-size bottleneck, so 8 and not 4; a U-Net takes its multiple itself."""
    for side in range(multiple, 8 * multiple + 1, multiple):
        try:
            generator(tf.zeros([1, side, side, channels]), training=False)
            return side
        except tf.errors.InvalidArgumentError:
            continue
    return multiple


def model_name(value: str) -> str:
    """vanhuyz wrote `man2woman.pb`; a SavedModel is a folder, so the name without .pb names it."""
    return value[:-3] if value.endswith(".pb") and len(value) > 3 else value


def export_targets(names: dict[str, str], exported: Iterable[str], export_dir: str | Path) -> dict[str, Path]:
    """direction → export folder for the directions a run exports whose --<direction>_model is not empty.
    Checked before anything is written: a name that leaves export_dir, nothing to export, or two exports
    sharing (or nesting in) one folder are errors."""
    exported = list(exported)
    chosen = {d: names[d] for d in exported if names.get(d)}
    if not chosen:
        flags = " and ".join(f"--{d}_model" for d in exported)
        raise UserError(f"nothing to export: {flags} {'is' if len(exported) == 1 else 'are'} empty"
                        + ("" if len(exported) > 1 else f" (the run exports only {exported[0]})"))
    targets = {d: _inside(export_dir, value, f"--{d}_model") for d, value in chosen.items()}
    if len(targets) == 2:
        (a, pa), (b, pb) = targets.items()
        if pa == pb or pa in pb.parents or pb in pa.parents:
            raise UserError(f"--{a}_model={chosen[a]} and --{b}_model={chosen[b]}: the two exports need "
                            f"separate folders ({pa} and {pb})")
    return targets


def _inside(export_dir: str | Path, value: str, flag: str) -> Path:
    """export_dir/NAME; a NAME with folders stays inside export_dir (sub/man2woman is fine, ../x is not)."""
    rel = os.path.normpath(model_name(value))
    if os.path.isabs(rel) or rel in (".", "..") or rel.startswith(".." + os.sep):
        raise UserError(f"{flag}={value}: name a folder inside --export_dir={export_dir} "
                        "(no absolute path, no '..'); --export_dir chooses where exports go")
    return Path(export_dir) / rel


def check_target(target: Path) -> None:
    """Refuses to replace anything but an export of ours (or an empty folder): replacing deletes it."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise UserError(f"{target}: exists and is not an export folder; nothing was changed "
                        "(move it away or choose another name)")
    if not target.is_dir():
        return
    try:
        entries = set(os.listdir(target))
    except OSError as e:
        raise UserError(f"{target}: cannot read it ({e.strerror}); nothing was changed") from None
    if entries and ("saved_model.pb" not in entries or not entries <= EXPORT_ENTRIES):
        other = sorted(entries - EXPORT_ENTRIES) or ["no saved_model.pb"]
        raise UserError(f"{target}: a folder that is not an export of export_graph.py ({', '.join(other[:3])}); "
                        "nothing was changed (move it away or choose another name)")


def tidy(target: Path) -> None:
    """Clears what a killed export of `target` left: a previous export that was set aside goes back under
    its name if the name is empty, then the dead process's temporary folders are deleted."""
    restore_set_aside(target, lambda old: (old / "saved_model.pb").is_file())
    remove_stale(target)


def write(run: str | Path, direction: str, target: str | Path, image_size: int = 0,
          precision: str = "fp32", checkpoint: str = "latest", test_mode: str = "image") -> Path:
    """Writes the export of `direction` from the run's checkpoint `checkpoint` (latest, best or a step)
    beside `target` under its temporary name and returns that folder; `commit` puts it in place. Nothing
    under `target` is touched. `test_mode`: batch norm and dropout at test time (networks.TEST_MODES)."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision={precision}: choose {', '.join(PRECISIONS)}")
    target = Path(target)
    check_target(target)
    nets, cfg, model_cls, step = restore_generators(run, precision=precision, which=checkpoint)
    if direction not in model_cls.exports:
        raise UserError(f"{run} is a {cfg.model} run: it exports {', '.join(model_cls.exports)}, not {direction}")
    multiple = model_cls.input_multiple(cfg)
    if image_size and image_size % multiple:
        raise UserError(f"--image_size={image_size}: {cfg.netG} needs a multiple of {multiple}")
    prepare_target(target)
    with networks.at_test_time(test_mode):  # read as the signatures are traced, within
        module = Translator(model_cls.exported_network(cfg, nets, direction), multiple, image_size,
                            cfg.as_flags() | {"test_mode": test_mode}, step,
                            model_cls.exported_direction(cfg, direction), precision,
                            resize="nearest" if model_cls.input_is_labels(cfg) else "bicubic", constant_weights=True,
                            kinds=model_cls.exported_kinds(cfg, direction))
        return save_beside(module, target)


def prepare_target(target: Path) -> None:
    """`target`'s folder made and writable, and what a killed export left beside it removed."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create {target.parent}: {e.strerror}") from None
    if not os.access(target.parent, os.W_OK):
        raise UserError(f"cannot write to {target.parent}: permission denied")
    tidy(target)


def save_beside(module: tf.Module, target: Path) -> Path:
    """Saves `module` (with its `signatures()`) under `target`'s temporary name and returns that folder; a
    failure leaves nothing there (a full disk is one line)."""
    tmp = temp_name(target)
    try:
        tf.saved_model.save(module, str(tmp), signatures=module.signatures())
    except BaseException as e:
        discard(tmp)
        failure = disk_failure(e, target)
        if failure is not None:
            raise failure from None
        raise
    return tmp


def commit(tmp: Path, target: Path) -> Path:
    """Puts the export written at `tmp` under `target` in one step, so that at any moment (even after a
    kill) the name holds the previous export or the new one, whole. The previous one is left at `tmp`
    for the caller's `discard`."""
    check_target(target)  # again: something may have appeared under the name while the export was written
    swap_in(tmp, target)
    return target


def discard(tmp: Path) -> None:
    """Deletes one of our temporary folders."""
    shutil.rmtree(tmp, ignore_errors=True)


def export(run: str | Path, direction: str, target: str | Path, image_size: int = 0, precision: str = "fp32") -> Path:
    """Writes the SavedModel of the generator a run's model declares for `direction` (XtoY: G, YtoX: F);
    replaces `target` atomically if it is a previous export, and refuses any other folder or file there.
    A paired run stores its own direction (AtoB or BtoA). `precision` bf16 or fp16 makes the graph compute
    in that type (inputs and outputs stay float32)."""
    tmp = write(run, direction, target, image_size, precision)
    try:
        return commit(tmp, Path(target))
    finally:
        discard(tmp)


def channels(loaded) -> tuple[int, int]:
    """(input, output) channels of a loaded export."""
    k_in, k_out = of_export(loaded)
    return k_in.channels, k_out.channels


def portable(loaded):
    """An export's translation for converters: `translate_portable`, or the `translate` signature of an
    export written before it existed."""
    return getattr(loaded, "translate_portable", None) or loaded.signatures["translate"]


def to_onnx(saved_model: Path, output: Path) -> Path:
    """The translation of an export (`portable`) as ONNX (NHWC float32 in [0, 255]), through tf2onnx."""
    try:
        import tf2onnx
    except ImportError:
        raise UserError("--onnx needs tf2onnx: pip install 'cyclegan_tf[onnx]'") from None
    loaded = tf.saved_model.load(str(saved_model))  # kept referenced: its variables die with it
    spec = [tf.TensorSpec([None, None, None, channels(loaded)[0]], tf.float32, name="images")]
    remove_stale(output)
    try:
        with atomic_path(output) as tmp:
            fn = tf.function(lambda images: portable(loaded)(images=images)["images"])
            tf2onnx.convert.from_function(fn, input_signature=spec, opset=17, output_path=str(tmp))
    except Exception as e:  # noqa: BLE001 - tf2onnx raises many kinds for an unsupported graph
        raise UserError(f"ONNX conversion of {saved_model} failed: {str(e).splitlines()[0][:300]}") from None
    return output


def to_frozen_graph(saved_model: Path, output: Path, size: int) -> Path:
    """The export as vanhuyz's frozen GraphDef, for TF1 code written against his `.pb` files: variables
    folded into constants, placeholder `input_image` (float32 [size, size, 3] in [-1, 1]) → `output_image`
    (the translation as JPEG bytes), so `import_graph_def(..., input_map={'input_image': x},
    return_elements=['output_image:0'])` runs it unchanged."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    loaded = tf.saved_model.load(str(saved_model))
    k_in, k_out = of_export(loaded)
    if not (k_in.rgb and k_out.rgb):
        raise UserError(f"vanhuyz's frozen graph (.pb) carries 8-bit RGB JPEGs; {saved_model} translates "
                        f"{k_in.describe()} into {k_out.describe()} (use the SavedModel, ONNX or LiteRT export)")

    @tf.function(input_signature=[tf.TensorSpec([size, size, 3], tf.float32, name="input_image")])
    def frozen(input_image: tf.Tensor) -> tf.Tensor:
        y = loaded.translate(images=(input_image[None] + 1.0) * 127.5)["images"][0]
        return tf.io.encode_jpeg(tf.cast(tf.round(y), tf.uint8))

    graph = convert_variables_to_constants_v2(frozen.get_concrete_function()).graph
    graph_def = graph.as_graph_def()
    out = graph_def.node.add(name="output_image", op="Identity", input=[graph.outputs[0].op.name])
    out.attr["T"].type = tf.string.as_datatype_enum
    remove_stale(output)
    with atomic_path(output) as tmp:
        Path(tmp).write_bytes(graph_def.SerializeToString())
    return output
