"""Exports load with plain TensorFlow, in a process that cannot import cyclegan_tf."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT
from numerics import network_atol
from PIL import Image

from cyclegan_tf.deploy import savedmodel as export_module
from cyclegan_tf.deploy.savedmodel import export, model_name, to_onnx
from cyclegan_tf.errors import UserError
from cyclegan_tf.training.runs import restore_generators

CLIENT = r"""
import sys
sys.modules["cyclegan_tf"] = None  # this process must do without the package
try:
    import cyclegan_tf  # noqa: F401
    raise SystemExit("cyclegan_tf was importable")
except ImportError:
    pass
import io, json
import numpy as np
import tensorflow as tf
from PIL import Image

model = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
translated = model.signatures["translate"](images=tf.constant(x))["images"].numpy()
buf = io.BytesIO()
Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(buf, "JPEG")
png = model.signatures["serving_default"](image_bytes=tf.constant([buf.getvalue()]))["image_bytes"].numpy()[0]
np.save(sys.argv[3], translated)
print(json.dumps({"png_size": Image.open(io.BytesIO(png)).size, "png_format": Image.open(io.BytesIO(png)).format,
                  "step": int(model.train_step.numpy()), "direction": model.direction.numpy().decode(),
                  "flags": json.loads(model.flags_json.numpy().decode())}))
"""


def test_export_serves_without_the_package(trained_run: Path, tmp_path: Path) -> None:
    path = export(trained_run, "XtoY", tmp_path / "x2y")
    G = restore_generators(trained_run)[0]["G"]
    x = np.random.default_rng(1).uniform(0, 255, (2, 36, 44, 3)).astype(np.float32)  # multiples of 4: no padding
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "client.py").write_text(CLIENT)
    r = subprocess.run([sys.executable, str(tmp_path / "client.py"), str(path), str(tmp_path / "x.npy"),
                        str(tmp_path / "y.npy")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["png_size"] == [300, 200] and info["png_format"] == "PNG"
    assert info["step"] == 3 and info["direction"] == "XtoY" and info["flags"]["ngf"] == 4
    expected = (G(x / 127.5 - 1, training=False).numpy() + 1) * 127.5
    assert np.abs(np.load(tmp_path / "y.npy") - expected).max() <= 1.0  # ≤ 1/255 of the range


def test_any_size_is_padded_and_cropped_back(trained_run: Path, tmp_path: Path) -> None:
    model = tf.saved_model.load(str(export(trained_run, "YtoX", tmp_path / "y2x")))
    for h, w in ((33, 50), (7, 9), (64, 30)):
        out = model.translate(tf.random.uniform([1, h, w, 3], 0, 255))["images"]
        assert out.shape == (1, h, w, 3)
        assert 0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 255


def test_weights_are_constants_of_the_graph_unless_too_large(trained_run: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Constant filters are what oneDNN caches in its own layout (export.ConstantWeights): the export keeps
    only its metadata as variables, and translates as the generator does at every size, one after another."""
    G = restore_generators(trained_run)[0]["G"]
    rng = np.random.default_rng(2)
    shapes = ((1, 32, 32, 3), (2, 20, 28, 3), (1, 32, 32, 3))
    images = [rng.uniform(0, 255, shape).astype(np.float32) for shape in shapes]
    exported = {"constants": export(trained_run, "XtoY", tmp_path / "c")}
    monkeypatch.setattr(export_module, "CONSTANT_WEIGHTS_LIMIT", 0)
    exported["variables"] = export(trained_run, "XtoY", tmp_path / "v")
    for kind, path in exported.items():
        kernels = [name for name, shape in tf.train.list_variables(str(path / "variables" / "variables"))
                   if len(shape) == 4]
        assert (len(kernels) == 0) == (kind == "constants"), kind
        model = tf.saved_model.load(str(path))
        for x in images:
            expected = np.clip((G(x / 127.5 - 1, training=False).numpy() + 1) * 127.5, 0, 255)
            assert np.abs(model.translate(tf.constant(x))["images"].numpy() - expected).max() <= 1.0, kind


def _op_types(fn: tf.types.experimental.ConcreteFunction) -> set[str]:
    graph = fn.graph.as_graph_def()
    return {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}


def test_the_portable_translation_has_direct_convs_only(trained_run: Path, tmp_path: Path) -> None:
    """`translate` runs the residual blocks' convs by Winograd (networks.WinogradConv2D); the graph that
    LiteRT and ONNX convert, `translate_portable`, has direct convs and the same outputs up to rounding."""
    model = tf.saved_model.load(str(export(trained_run, "XtoY", tmp_path / "x2y")))
    spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    assert "BatchMatMulV2" in _op_types(model.signatures["translate"])
    assert "BatchMatMulV2" not in _op_types(model.translate_portable.get_concrete_function(spec))
    x = tf.random.uniform([2, 30, 21, 3], 0, 255, seed=7)
    G = restore_generators(trained_run)[0]["G"]  # the same network: rounding apart, in 0–255
    np.testing.assert_allclose(model.translate_portable(x)["images"].numpy(), model.translate(x)["images"].numpy(),
                               atol=127.5 * network_atol(G))


def test_square_mode_resizes_and_back(trained_run: Path, tmp_path: Path) -> None:
    model = tf.saved_model.load(str(export(trained_run, "XtoY", tmp_path / "sq", image_size=16)))
    assert model.translate(tf.random.uniform([1, 30, 50, 3], 0, 255))["images"].shape == (1, 30, 50, 3)
    with pytest.raises(UserError, match="multiple of 4"):
        export(trained_run, "XtoY", tmp_path / "bad", image_size=18)


def test_replacing_an_export_is_atomic(trained_run: Path, tmp_path: Path) -> None:
    first = export(trained_run, "XtoY", tmp_path / "m")
    (first / "assets").mkdir(exist_ok=True)
    (first / "assets" / "marker").write_text("old")  # inside a folder of a SavedModel: replaced with it
    export(trained_run, "XtoY", tmp_path / "m")
    assert not (tmp_path / "m" / "assets" / "marker").exists() and (tmp_path / "m" / "saved_model.pb").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary or old copies left


def test_onnx_matches_the_saved_model(trained_run: Path, tmp_path: Path) -> None:
    import onnxruntime

    path = export(trained_run, "XtoY", tmp_path / "m")
    onnx_path = to_onnx(path, tmp_path / "m.onnx")
    session = onnxruntime.InferenceSession(str(onnx_path))
    x = np.random.default_rng(2).uniform(0, 255, (1, 36, 44, 3)).astype(np.float32)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    loaded = tf.saved_model.load(str(path))
    want = loaded.translate(tf.constant(x))["images"].numpy()
    assert got.shape == want.shape and np.abs(got - want).max() < 0.01


def test_errors(trained_run: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such run folder"):
        export(tmp_path / "absent", "XtoY", tmp_path / "m")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no checkpoint"):
        export(tmp_path / "empty", "XtoY", tmp_path / "m")
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot create"):
        export(trained_run, "XtoY", tmp_path / "file" / "m")
    assert model_name("man2woman.pb") == "man2woman" and model_name("man2woman") == "man2woman"


# vanhuyz's inference.py, as his users run it on his frozen .pb files (TF1 graph code through tf.compat.v1)
VANHUYZ_INFERENCE = r"""
import sys
sys.modules["cyclegan_tf"] = None
import tensorflow.compat.v1 as tf

model, image, image_size, output = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]


def convert2float(image):
    image = tf.image.convert_image_dtype(image, dtype=tf.float32)
    return (image / 127.5) - 1.0


graph = tf.Graph()
with graph.as_default():
    with tf.gfile.FastGFile(image, 'rb') as f:
        image_data = f.read()
        input_image = tf.image.decode_jpeg(image_data, channels=3)
        input_image = tf.image.resize_images(input_image, size=(image_size, image_size))
        input_image = convert2float(input_image)
        input_image.set_shape([image_size, image_size, 3])
    with tf.gfile.FastGFile(model, 'rb') as model_file:
        graph_def = tf.GraphDef()
        graph_def.ParseFromString(model_file.read())
    [output_image] = tf.import_graph_def(graph_def, input_map={'input_image': input_image},
                                         return_elements=['output_image:0'], name='output')
with tf.Session(graph=graph) as sess:
    generated = output_image.eval()
    with open(output, 'wb') as f:
        f.write(generated)
"""


def test_cli_vanhuyz_flags_frozen_graph_and_one_line_error(trained_run: Path, tmp_path: Path) -> None:
    cli = [sys.executable, str(ROOT / "export_graph.py")]
    r = subprocess.run([*cli, f"--checkpoint_dir={trained_run}", "--XtoY_model=man2woman.pb",
                        "--YtoX_model=woman2man", "--tflite=fp16"], capture_output=True, text=True, cwd=tmp_path,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "pretrained/man2woman/saved_model.pb").exists() and "frozen graph" in r.stdout
    assert (tmp_path / "pretrained/woman2man/saved_model.pb").exists()
    assert not (tmp_path / "pretrained/woman2man.pb").exists()  # a name without .pb: a SavedModel only
    assert {p.name for p in (tmp_path / "pretrained").glob("*.tflite")} == {"man2woman.fp16.tflite",
                                                                            "woman2man.fp16.tflite"}
    rgb = np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "test.jpg", quality=100)
    (tmp_path / "vanhuyz.py").write_text(VANHUYZ_INFERENCE)
    r = subprocess.run([sys.executable, str(tmp_path / "vanhuyz.py"), str(tmp_path / "pretrained/man2woman.pb"),
                        str(tmp_path / "test.jpg"), "32", str(tmp_path / "out.jpg")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = np.asarray(Image.open(tmp_path / "out.jpg"), np.float32)
    decoded = tf.cast(tf.io.decode_jpeg((tmp_path / "test.jpg").read_bytes()), tf.float32)  # his decoder's pixels
    saved = tf.saved_model.load(str(tmp_path / "pretrained/man2woman"))
    expected = saved.translate(decoded[None])["images"][0]
    # the same JPEG coding as vanhuyz's graph (quality 95, chroma subsampled): far from the float output on noise
    expected = tf.io.decode_jpeg(tf.io.encode_jpeg(tf.cast(tf.round(expected), tf.uint8))).numpy()
    assert out.shape == (32, 32, 3) and np.abs(out - expected).mean() < 2.0, np.abs(out - expected).mean()
    r = subprocess.run([*cli, "--checkpoint_dir=nowhere"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == "error: --checkpoint_dir=nowhere: no such run folder " \
                                                "(nor checkpoints/nowhere)"


@pytest.mark.half_precision
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_export_stays_close_to_fp32(trained_run: Path, tmp_path: Path, precision: str) -> None:
    x = tf.constant(np.random.default_rng(2).uniform(0, 255, (2, 32, 40, 3)).astype(np.float32))
    full = tf.saved_model.load(str(export(trained_run, "XtoY", tmp_path / "fp32")))
    low = tf.saved_model.load(str(export(trained_run, "XtoY", tmp_path / precision, precision=precision)))
    assert low.precision.numpy().decode() == precision and full.precision.numpy() == b"fp32"
    a, b = full.translate(x)["images"].numpy(), low.translate(x)["images"].numpy()
    assert b.dtype == np.float32 and b.shape == a.shape
    # bf16 keeps 8 bits of mantissa: a few levels of 255 at most, on average far less
    assert np.abs(a - b).mean() < 2.0 and np.abs(a - b).max() < 16, (np.abs(a - b).mean(), np.abs(a - b).max())
    with pytest.raises(UserError, match="--precision=fp8"):
        export(trained_run, "XtoY", tmp_path / "bad", precision="fp8")
