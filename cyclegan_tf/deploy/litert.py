"""LiteRT (TensorFlow Lite) files of an export's translation, and running them.

`to_tflite` converts the translation of a SavedModel written by export_graph.py (`translate_portable`:
`translate` with direct convs; float32 [N, H, W, 3] in [0, 255] → float32 in [0, 255]) to one .tflite
file with the input [1, size, size, 3];
inputs and outputs stay float32 in [0, 255] in every variant:
  fp32   no quantisation.
  fp16   weights stored as float16 (half the file), dequantised to float32 when loaded on a CPU.
  int8   dynamic-range quantisation: int8 weights; activations quantised on the fly where a kernel can
         (49 dB from the SavedModel on trained 64 px generators, 32 dB on a barely trained 256 px one).
There is no full-integer variant: it converts (a representative dataset, TFLITE_BUILTINS_INT8), but on
trained 64 px generators its output is 16 dB from the SavedModel's (errors up to 146/255): instance
norm's mean / variance / rsqrt chain gets one int8 range per tensor. Keeping those ops in float (the
quantisation debugger's denylist) reaches 38 dB, below int8's 49 dB and no faster on a CPU; the 16-bit
activation mode (EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8) aborts the process in
TensorFlow 2.21's calibrator.

Image size. The graph computes the mirror padding's indices from the input's shape, and at a fixed
shape the converter folds them into constants: `Interpreter.resize_tensor_input` on such a file does NOT
work (a larger image comes back cropped to the converted size, with no error; a smaller one fails with
"gather index out of bounds"). `run_tflite` therefore refuses an image of another size with a UserError.
`size=0` converts with H and W unknown ([1, -1, -1, 3]): the padding is then computed at run time and
resize_tensor_input gives the SavedModel's result at any size (the file is a little larger, the
interpreter re-plans whenever the size changes, and at 256 px it ran 10 % slower than a fixed-size
file). An export in square mode (export_graph --image_size > 0) resizes with an op LiteRT lacks
(ScaleAndTranslate), and a bf16 or fp16 export computes in half-precision types that LiteRT's builtin
ops do not take (the converter rejects a bf16 export's Conv2D, FusedBatchNormV3, GatherV2, …): converting
either is a UserError.

Converting needs only TensorFlow; running a file needs `ai-edge-litert` (`pip install 'cyclegan_tf[litert]'`).
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf

from cyclegan_tf.atomic import atomic_path, remove_stale
from cyclegan_tf.errors import UserError, one_line

VARIANTS = ("fp32", "fp16", "int8")
INSTALL = "pip install 'cyclegan_tf[litert]' (or ai-edge-litert)"


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Sends file descriptor 2 to a scratch file for the block: the converter (it reloads the function as a
    SavedModel and logs each step) and LiteRT's runtime ("INFO: Created TensorFlow Lite XNNPACK delegate
    for CPU.") print there whatever TF_CPP_MIN_LOG_LEVEL says. Conversion errors arrive as exceptions;
    the aborts met in this work printed nothing. TF_CPP_MIN_LOG_LEVEL=0 shows everything."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    with contextlib.suppress(ValueError, OSError):
        sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def _load_translation(saved_model: Path):
    """The loaded export (it must stay referenced: its variables die with it) and its translation for
    converters (`savedmodel.portable`)."""
    if not (saved_model / "saved_model.pb").is_file():
        raise UserError(f"{saved_model}: no SavedModel there (no saved_model.pb); run export_graph.py")
    try:
        loaded = tf.saved_model.load(str(saved_model))
    except Exception as e:  # noqa: BLE001 - a damaged file surfaces as OSError, ValueError, OpError…
        raise UserError(f"{saved_model}: damaged export: {one_line(getattr(e, 'message', None) or str(e))}") from None
    if "translate" not in loaded.signatures:
        raise UserError(f"{saved_model}: a SavedModel without the 'translate' signature of export_graph.py")
    precision = getattr(loaded, "precision", None)
    if precision is not None and precision.numpy() != b"fp32":
        # LiteRT's builtin ops do not compute in bf16; its fp16 variant halves the file of an fp32 export instead
        raise UserError(f"{saved_model}: an export computing in {precision.numpy().decode()}; LiteRT needs an fp32 "
                        "export (export_graph.py --precision fp32; the fp16 variant stores its weights in half)")
    from cyclegan_tf.deploy.savedmodel import portable  # here: bench/litert.py runs while TensorFlow imports a `litert`

    return loaded, portable(loaded)


def to_tflite(saved_model: Path, output: Path, variant: str, size: int) -> Path:
    """Writes the translation of an export (`savedmodel.portable`) as a .tflite file taking float32
    [1, size, size, C] in the input's units (8-bit RGB: [0, 255]; size 0: any H, W), stored as `variant` says
    (fp32, fp16, int8); replaces `output` atomically."""
    if variant not in VARIANTS:
        raise UserError(f"LiteRT variant {variant!r}: choose {', '.join(VARIANTS)}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise UserError(f"LiteRT input size {size!r}: a side in pixels (0: any size)")
    saved_model, output = Path(saved_model), Path(output)
    loaded, translate = _load_translation(saved_model)
    from cyclegan_tf.deploy.savedmodel import channels

    side, c = size or None, channels(loaded)[0]
    fn = tf.function(lambda images: translate(images=images)["images"])
    try:
        with quiet_stderr():
            concrete = fn.get_concrete_function(tf.TensorSpec([1, side, side, c], tf.float32, name="images"))
            converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], loaded)
            if variant != "fp32":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            if variant == "fp16":
                converter.target_spec.supported_types = [tf.float16]
            data = converter.convert()
    except Exception as e:  # noqa: BLE001 - the converter raises ConverterError, ValueError, RuntimeError…
        message = _converter_message(e)
        if "ScaleAndTranslate" in message:
            message += " (an export with --image_size resizes in its graph: export without --image_size)"
        raise UserError(f"LiteRT conversion ({variant}) of {saved_model} failed: {message}") from None
    remove_stale(output)
    with atomic_path(output) as tmp:
        tmp.write_bytes(data)
    return output


def _converter_message(e: Exception) -> str:
    """The line of the converter's error that says something: its messages are MLIR diagnostics
    ("<unknown>:0: error: loc(...): 'tf.X' op is neither a custom op nor a flex op", then notes)."""
    lines = [line.strip() for line in str(getattr(e, "message", None) or e).splitlines() if line.strip()]
    for line in lines:
        if "error:" in line:
            text = line.split("error:", 1)[1].strip()
            if text.startswith("loc(") and "):" in text:
                text = text.split("):", 1)[1].strip()
            return one_line(text)
    return one_line(lines[0] if lines else type(e).__name__)


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise UserError(f"running a .tflite file needs ai-edge-litert: {INSTALL}") from None
    return Interpreter


class TFLiteTranslator:
    """A .tflite file of `to_tflite`, loaded once; calling it translates [N, H, W, C] images (in the input's
    units) one at a time. A file converted with size 0 takes any H, W (the input tensor is resized when the size
    changes); a fixed-size file takes only its own size (see the module's note on resize_tensor_input)."""

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None) -> None:
        Interpreter = _interpreter_class()
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: no such .tflite file")
        try:
            with quiet_stderr():
                self.interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads or os.cpu_count())
        except Exception as e:  # noqa: BLE001 - a damaged file is a ValueError or RuntimeError
            raise UserError(f"{self.path}: not a LiteRT model ({one_line(str(e))})") from None
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1 or inputs[0]["dtype"] != np.float32 \
                or len(inputs[0]["shape_signature"]) != 4:
            raise UserError(f"{self.path}: not a translation model of cyclegan_tf (float32 [1, H, W, C] in and out)")
        self.input, self.output = inputs[0]["index"], outputs[0]["index"]
        self.channels = int(inputs[0]["shape_signature"][3])
        self.out_channels = int(outputs[0]["shape_signature"][3])
        h, w = (int(v) for v in inputs[0]["shape_signature"][1:3])
        self.size = None if h < 0 or w < 0 else (h, w)  # None: any size
        self._shape: tuple[int, ...] | None = None
        if self.size is not None:
            self._allocate()
            self._shape = (1, h, w, self.channels)

    def _allocate(self) -> None:
        with quiet_stderr():  # the first allocation in a process prints "Created ... XNNPACK delegate"
            self.interpreter.allocate_tensors()

    def _fit(self, shape: tuple[int, ...]) -> None:
        if shape == self._shape:
            return
        if self.size is not None:
            h, w = self.size
            raise UserError(f"{self.path} takes {w}×{h} images, not {shape[2]}×{shape[1]}: convert it at that "
                            "size, or with size 0 for any size")
        self.interpreter.resize_tensor_input(self.input, list(shape), strict=False)
        self._allocate()
        self._shape = shape

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != self.channels:
            raise UserError(f"images must be [N, H, W, {self.channels}], not {list(images.shape)}")
        out = np.empty((*images.shape[:3], self.out_channels), np.float32)
        for i, image in enumerate(images):
            x = np.ascontiguousarray(image[None], np.float32)
            self._fit(x.shape)
            self.interpreter.set_tensor(self.input, x)
            self.interpreter.invoke()
            out[i] = self.interpreter.get_tensor(self.output)[0]
        return out


def run_tflite(path: Path, images: np.ndarray, num_threads: int | None = None) -> np.ndarray:
    """Translations (float32 [N, H, W, C'] in the output's units) of `images` ([N, H, W, C]) by a .tflite file
    of `to_tflite`, with LiteRT's interpreter (XNNPACK on a CPU; `num_threads` default: every core)."""
    return TFLiteTranslator(path, num_threads)(images)
