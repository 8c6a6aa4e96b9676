"""vanhuyz's frozen graphs (`apple2orange.pb`) run by our inference.py, and wrapped into an export of ours.

His export_graph.py wrote a frozen GraphDef: a placeholder `input_image` (float32 [S, S, 3] in [-1, 1], S his
`--image_size`, usually 256) and a node `output_image`, the translation as JPEG bytes (a string scalar); our
`savedmodel.to_frozen_graph` writes the same. His inference.py decoded a JPEG, resized it to S×S (bilinear),
fed x / 127.5 - 1 and wrote the bytes: its output was always S×S.

Here the graph is imported once into a TF2 function (`tf.compat.v1.wrap_function` +
`tf.graph_util.import_graph_def`: no session, its constants stay constants) and pruned to the tensor that
feeds its final EncodeJpeg, the uint8 pixels, so that writing a PNG (or a JPEG at --quality) costs no second
JPEG loss; a graph whose output is not one EncodeJpeg away has its bytes decoded instead. `FrozenTranslator`
puts that function behind the `translate` signature of our exports: float32 [N, H, W, 3] in [0, 255] →
float32 [N, H, W, 3] in [0, 255], each image resized to S×S as his inference.py did, translated, and resized
back to its own H×W (bilinear both ways, TF1's `resize_images` convention: corners aligned to the top left, no
antialiasing). So inference.py runs a `.pb` like any export (`as_export`), and `write`/`commit`/`export` save
it as a SavedModel that loads with plain `tf.saved_model.load`.

A `.pb` has no `statistics` signature: its instance norms are computed inside the frozen graph, so tiles
cannot share the whole image's statistics. `--tile` works with `--norm_stats=tile` (each tile translated on
its own; with `--tile S` every full tile is translated at the graph's own size, without resizing); the
default `--norm_stats=global` is refused in one line (`TILE_GLOBAL`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from cyclegan_tf.data.pixels import RGB
from cyclegan_tf.errors import UserError, one_line

INPUT, OUTPUT = "input_image", "output_image"
_SCOPE = "frozen"  # the imported nodes' name scope
_PASS_THROUGH = ("Identity", "Snapshot", "StopGradient")  # ops between EncodeJpeg and output_image
TILE_GLOBAL = ("--tile with vanhuyz's frozen graph (.pb): its norm statistics are computed inside the frozen "
               "graph and cannot be shared between tiles; add --norm_stats=tile (each tile normalised on its own, "
               "seams may show)")


@dataclass(frozen=True)
class FrozenGraph:
    """A checked frozen graph: `size` S of its [S, S, 3] input, and `pixels`, the name of the uint8 tensor that
    its final EncodeJpeg encodes (None: output_image is not one EncodeJpeg away, its bytes are decoded)."""
    path: Path
    graph_def: tf.compat.v1.GraphDef
    size: int
    pixels: str | None


def read(path: str | os.PathLike, name: str | None = None) -> FrozenGraph:
    """Reads and checks a `.pb` file. Every problem is a one-line UserError starting with `name` (default: the
    path): an unreadable, empty, truncated or garbled file, a GraphDef without the placeholder `input_image` or
    the node `output_image`, an `input_image` that is not float32 [S, S, 3]."""
    path = Path(path)
    name = name or str(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"{name}: cannot read it ({e.strerror})") from None
    if not data:
        raise UserError(f"{name}: empty file, not a frozen graph")
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError, or a RuntimeWarning-turned-error of some builds
        raise UserError(f"{name}: not a frozen graph: the file is not a TensorFlow GraphDef (damaged, truncated "
                        "or another format)") from None
    nodes = {n.name: n for n in graph_def.node}
    missing = [what for what, key in ((f"a placeholder '{INPUT}'", INPUT), (f"a node '{OUTPUT}'", OUTPUT))
               if key not in nodes]
    if missing:
        raise UserError(f"{name}: a GraphDef of {len(nodes)} nodes without {' and without '.join(missing)}: not a "
                        "frozen graph of vanhuyz's export_graph.py")
    placeholder = nodes[INPUT]
    if placeholder.op != "Placeholder":
        raise UserError(f"{name}: '{INPUT}' is a {placeholder.op} node, not a placeholder: not a frozen graph of "
                        "vanhuyz's export_graph.py")
    for node in graph_def.node:
        node.device = ""  # a graph frozen on a GPU may name one; TensorFlow places the ops itself here
        if "_gradient_op_type" in node.attr:  # custom gradients of training, unregistered here: a SavedModel of
            del node.attr["_gradient_op_type"]  # the graph would warn at every load
    return FrozenGraph(path, graph_def, _input_size(placeholder, name), _pixels(nodes))


def _input_size(placeholder, name: str) -> int:
    """S of a placeholder that must be float32 [S, S, 3]."""
    dtype = tf.dtypes.as_dtype(placeholder.attr["dtype"].type) if "dtype" in placeholder.attr else None
    shape = placeholder.attr["shape"].shape if "shape" in placeholder.attr else None
    dims = [] if shape is None or shape.unknown_rank else [d.size for d in shape.dim]
    if dtype == tf.float32 and len(dims) == 3 and dims[0] == dims[1] > 0 and dims[2] == 3:
        return dims[0]
    shown = "of unknown shape" if not dims else "[" + ", ".join("?" if d < 0 else str(d) for d in dims) + "]"
    raise UserError(f"{name}: '{INPUT}' is {dtype.name if dtype else 'untyped'} {shown}, not float32 [S, S, 3] "
                    "(a square RGB image, as vanhuyz's export_graph.py wrote)")


def _pixels(nodes: dict) -> str | None:
    """The tensor that output_image's EncodeJpeg encodes, following Identity-like nodes; None if there is none."""
    node, seen = nodes[OUTPUT], set()
    while node.op in _PASS_THROUGH and node.input and node.name not in seen:
        seen.add(node.name)
        source = node.input[0]
        if source.startswith("^") or source.split(":")[0] not in nodes:
            return None
        node = nodes[source.split(":")[0]]
    if node.op not in ("EncodeJpeg", "EncodeJpegVariableQuality") or not node.input:
        return None
    source = node.input[0]
    return source if ":" in source else source + ":0"


def _resize(images: tf.Tensor, size) -> tf.Tensor:
    """Bilinear as vanhuyz's `resize_images` (TF1: corners aligned to the top left, no antialiasing)."""
    return tf.raw_ops.ResizeBilinear(images=images, size=size, align_corners=False, half_pixel_centers=False)


class FrozenTranslator(tf.Module):
    """A frozen graph behind the signatures of our exports (savedmodel.py): `translate` (float32 [N, H, W, 3]
    in [0, 255] → {"images": float32 [N, H, W, 3] in [0, 255]}, each image resized to S×S, translated, resized
    back) and `serving_default` (encoded images → PNG bytes), with the metadata variables of our exports (8-bit
    RGB on both sides, `input_resize` "bilinear", `precision` fp32) and `frozen_graph` (the .pb's file name) and
    `image_size` (S). `flags_json` holds {"image_size": S}, `train_step` -1 and `direction` "unknown": the
    graph does not carry them."""

    def __init__(self, graph: FrozenGraph, name: str | None = None) -> None:
        super().__init__(name="frozen_translator")
        self.size = graph.size
        self._run_graph, self._decode = _import(graph, name or str(graph.path))
        for side in ("input", "output"):
            setattr(self, f"{side}_channels", tf.Variable(3, trainable=False, name=f"{side}_channels"))
            setattr(self, f"{side}_dtype", tf.Variable("uint8", trainable=False, name=f"{side}_dtype"))
            setattr(self, f"{side}_lo", tf.Variable(np.zeros(3, np.float32), trainable=False, name=f"{side}_lo"))
            setattr(self, f"{side}_hi", tf.Variable(np.full(3, 255, np.float32), trainable=False, name=f"{side}_hi"))
        self.input_resize = tf.Variable("bilinear", trainable=False, name="input_resize")
        self.precision = tf.Variable("fp32", trainable=False, name="precision")
        self.flags_json = tf.Variable(json.dumps({"image_size": graph.size}), trainable=False, name="flags_json")
        self.train_step = tf.Variable(-1, dtype=tf.int64, trainable=False, name="train_step")
        self.direction = tf.Variable("unknown", trainable=False, name="direction")
        self.frozen_graph = tf.Variable(graph.path.name, trainable=False, name="frozen_graph")
        self.image_size = tf.Variable(graph.size, trainable=False, name="image_size")
        self.translate = tf.function(self._translated, input_signature=[
            tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
        self.serve = tf.function(self._serve, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])

    def _one(self, image: tf.Tensor) -> tf.Tensor:
        """[S, S, 3] in [-1, 1] → the graph's translation, float32 [S, S, 3] in [0, 255]."""
        out = self._run_graph(image)
        if self._decode:
            out = tf.io.decode_image(out, channels=3, expand_animations=False)
            out = _resize(tf.cast(out, tf.float32)[None], [self.size, self.size])[0]
        return tf.ensure_shape(tf.cast(out, tf.float32), [self.size, self.size, 3])

    def _translated(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        h, w = tf.shape(images)[1], tf.shape(images)[2]
        x = _resize(tf.clip_by_value(images, 0.0, 255.0), [self.size, self.size]) / 127.5 - 1.0
        y = tf.map_fn(self._one, x, fn_output_signature=tf.TensorSpec([self.size, self.size, 3], tf.float32))
        return {"images": tf.clip_by_value(_resize(y, tf.stack([h, w])), 0.0, 255.0)}

    def _serve(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        def one(data: tf.Tensor) -> tf.Tensor:
            img = tf.io.decode_image(data, channels=3, expand_animations=False)
            out = self.translate(tf.cast(img, tf.float32)[None])["images"][0]
            return tf.io.encode_png(tf.cast(tf.round(out), tf.uint8))

        return {"image_bytes": tf.map_fn(one, image_bytes, fn_output_signature=tf.string)}

    def signatures(self) -> dict:
        return {"serving_default": self.serve, "translate": self.translate}

    def translate_image(self, image: np.ndarray) -> np.ndarray:
        """One uint8 RGB image [H, W, 3] of any size → its translation, uint8 [H, W, 3] (through S×S)."""
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise UserError(f"a frozen graph translates uint8 RGB images [H, W, 3], not {image.dtype} "
                            f"{list(image.shape)}")
        out = self.translate(images=tf.constant(image[None], tf.float32))["images"][0].numpy()
        return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _import(graph: FrozenGraph, name: str):
    """(the graph as a function [S, S, 3] in [-1, 1] → uint8 pixels, or JPEG bytes; whether they are bytes)."""
    s, tensors = graph.size, [graph.pixels] if graph.pixels else []

    def imported(x: tf.Tensor):
        return tf.graph_util.import_graph_def(graph.graph_def, input_map={f"{INPUT}:0": x},
                                              return_elements=[*tensors, f"{OUTPUT}:0"], name=_SCOPE)

    try:
        wrapped = tf.compat.v1.wrap_function(imported, [tf.TensorSpec([s, s, 3], tf.float32)])
    except (ValueError, TypeError, tf.errors.OpError) as e:  # unknown ops, dangling inputs, wrong types
        raise UserError(f"{name}: cannot import the graph ({one_line(getattr(e, 'message', None) or str(e))})") \
            from None
    outputs = wrapped.structured_outputs
    if outputs[-1].dtype != tf.string:
        raise UserError(f"{name}: '{OUTPUT}' is {outputs[-1].dtype.name}, not a string (the JPEG bytes of "
                        "vanhuyz's graphs)")
    if tensors and outputs[0].dtype == tf.uint8:
        return wrapped.prune(wrapped.inputs[0], outputs[0]), False
    return wrapped.prune(wrapped.inputs[0], outputs[-1]), True


def load(path: str | os.PathLike, name: str | None = None) -> FrozenTranslator:
    """A `.pb` read, checked (`read`) and imported; one-line UserErrors start with `name` (default the path)."""
    return FrozenTranslator(read(path, name), name)


def as_export(path: str | os.PathLike, name: str | None = None):
    """The `.pb` as a translate.Export: inference.py runs it like a SavedModel (one file, folders, globs,
    --side_by_side, --html, batching, --image_size). `translate` returns each image at its own H×W, where
    vanhuyz's inference.py returned S×S; with --image_size S' the outputs are S'×S', as for every export. No
    statistics signatures: --tile needs --norm_stats=tile (TILE_GLOBAL)."""
    from cyclegan_tf.deploy.translate import Export

    module = load(path, name)
    return Export(module, module.translate, None, None, False, (RGB, RGB), frozen_size=module.size)


def write(pb: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Writes the `.pb` as a SavedModel of ours (`FrozenTranslator`: `translate` and `serving_default`, the
    graph's constants inside) beside `target` under its temporary name and returns that folder; `commit` puts it
    in place. The `.pb` is checked first (one-line UserErrors naming it), and `target` must be absent, empty or
    a previous export (savedmodel.check_target); nothing under `target` is touched."""
    from cyclegan_tf.deploy.savedmodel import check_target, prepare_target, save_beside

    target = Path(target)
    check_target(target)
    module = load(pb)
    prepare_target(target)
    return save_beside(module, target)


def commit(tmp: Path, target: str | os.PathLike) -> Path:
    """Puts the SavedModel `write` wrote at `tmp` under `target` in one step (savedmodel.commit); the previous
    export is left at `tmp` for the caller's savedmodel.discard."""
    from cyclegan_tf.deploy.savedmodel import commit as commit_export

    return commit_export(tmp, Path(target))


def export(pb: str | os.PathLike, target: str | os.PathLike) -> Path:
    """`write` then `commit`: `target` becomes a SavedModel of the `.pb` (replacing a previous export
    atomically); returns `target`."""
    from cyclegan_tf.deploy.savedmodel import discard

    tmp = write(pb, target)
    try:
        return commit(tmp, target)
    finally:
        discard(tmp)
