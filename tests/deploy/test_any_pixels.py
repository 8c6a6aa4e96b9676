"""Any pixels out (issue: any pixels): exports take and return each domain's channels, type and units, and
inference.py writes what came in. At identity weights, 16-bit and float values make the whole trip exactly:
build_data.py → records → pipeline → export → inference."""
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import tifffile

from cyclegan_tf.data import convert, pipeline, pixels, records
from cyclegan_tf.data.imagefiles import read_array
from cyclegan_tf.deploy import savedmodel
from cyclegan_tf.deploy.translate import run as translate_files
from cyclegan_tf.errors import UserError


def identity_export(folder: Path, kind_in: pixels.Kind, kind_out: pixels.Kind | None = None) -> Path:
    """A SavedModel of export_graph.py's form whose generator returns its input (its first channels): the
    translation is then from_unit(to_unit(x)), the trip every value makes through a real export."""
    images = keras.Input((None, None, kind_in.channels))
    c = (kind_out or kind_in).channels
    generator = keras.Model(images, keras.layers.Lambda(lambda t: t[..., :c])(images))
    module = savedmodel.Translator(generator, 4, 0, {}, 0, "XtoY", kinds=(kind_in, kind_out or kind_in))
    tf.saved_model.save(module, str(folder), signatures=module.signatures())
    return folder


def test_16_bit_png_in_is_16_bit_png_out_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    arrays = {f"{c}.png": rng.integers(0, 65536, (20, 28, c)).astype(np.uint16) for c in (1,)}
    arrays["b.png"] = rng.integers(0, 65536, (20, 28, 1)).astype(np.uint16)
    for name, a in arrays.items():
        (tmp_path / "in" / name).write_bytes(tf.io.encode_png(a).numpy())
    convert.build_folder("X", str(tmp_path / "in"), str(tmp_path / "x.tfr"), value_range="full", workers=1)
    kind = records.read_kind([str(tmp_path / "x.tfr")])
    through = [pixels.from_unit(pipeline.to_unit_range(tf.cast(pipeline.decode(r, records.PREFIX_A, kind),
                                                                tf.float32), kind), kind).numpy()
               for r in tf.data.TFRecordDataset(str(tmp_path / "x.tfr"))]
    assert sorted(np.round(t).astype(np.uint16).tobytes() for t in through) == sorted(a.tobytes()
                                                                                        for a in arrays.values())
    model = identity_export(tmp_path / "m", kind)
    summary = translate_files(str(model), str(tmp_path / "in"), str(tmp_path / "out"))
    assert summary.written == 2
    for name, a in arrays.items():
        out = read_array((tmp_path / "out" / name).read_bytes(), name)
        assert out.dtype == np.uint16 and np.array_equal(out, a)


def test_float_bands_in_are_float_bands_out(tmp_path: Path) -> None:
    a = np.random.default_rng(1).uniform(-50, 250, (18, 22, 5)).astype(np.float32)
    tifffile.imwrite(tmp_path / "scene.tif", a, photometric="minisblack", planarconfig="contig")
    kind = pixels.Kind(5, "float32", (-50.0,), (250.0,))
    model = identity_export(tmp_path / "m", kind)
    for out in ("out.tif", "out.npy"):
        translate_files(str(model), str(tmp_path / "scene.tif"), str(tmp_path / out))
        b = read_array((tmp_path / out).read_bytes(), out)
        assert b.shape == a.shape and b.dtype == np.float32
        # two float32 roundings of values scaled by 2/300: a few ulps of the range
        np.testing.assert_allclose(b, a, rtol=0, atol=8 * np.finfo(np.float32).eps * 300)
    tiled = tmp_path / "tiled.tif"
    translate_files(str(model), str(tmp_path / "scene.tif"), str(tiled), tile=16, overlap=4)
    np.testing.assert_allclose(tifffile.imread(tiled), a, rtol=0, atol=1e-3)  # tiles blend back to the identity


def test_wrong_inputs_and_outputs_are_one_line_and_write_nothing(tmp_path: Path) -> None:
    kind = pixels.Kind(5, "float32", (0.0,), (1.0,))
    model = identity_export(tmp_path / "m", kind, pixels.Kind(4, "uint16", (0.0,), (65535.0,)))
    tifffile.imwrite(tmp_path / "three.tif", np.zeros((8, 8, 3), np.float32), photometric="minisblack",
                     planarconfig="contig")
    with pytest.raises(UserError, match=r"three.tif: 3-channel float32, not 5-channel float32"):
        translate_files(str(model), str(tmp_path / "three.tif"), str(tmp_path / "o.tif"))
    tifffile.imwrite(tmp_path / "five.tif", np.zeros((8, 8, 5), np.float32), photometric="minisblack",
                     planarconfig="contig")
    with pytest.raises(UserError, match="JPG holds 8-bit grey or RGB, not 4-channel uint16"):
        translate_files(str(model), str(tmp_path / "five.tif"), str(tmp_path / "o.jpg"))
    assert not list(tmp_path.glob("o.*"))
    translate_files(str(model), str(tmp_path / "five.tif"), str(tmp_path / "o.png"))  # 16-bit RGBA PNG holds it
    assert read_array((tmp_path / "o.png").read_bytes(), "o.png").shape == (8, 8, 4)


def test_signatures_take_and_give_each_sides_pixels(tmp_path: Path) -> None:
    grey16 = pixels.Kind(1, "uint16", (100.0,), (4000.0,))
    loaded = tf.saved_model.load(str(identity_export(tmp_path / "m", grey16)))
    assert pixels.of_export(loaded) == (grey16, grey16)
    x = np.array([[[[50.0], [100.0], [2000.0], [5000.0]]]], np.float32)
    y = loaded.signatures["translate"](images=tf.constant(x))["images"].numpy().ravel()
    np.testing.assert_allclose(y, [100, 100, 2000, 4000], rtol=1e-6)  # clipped to the range, in its units
    png = tf.io.encode_png(np.array([[[1234]]], np.uint16)).numpy()
    out = loaded.signatures["serving_default"](image_bytes=tf.constant([png]))["image_bytes"].numpy()[0]
    assert tf.io.decode_png(out, dtype=tf.uint16).numpy().ravel().tolist() == [1234]


@pytest.fixture(scope="module")
def grey_to_bands(tmp_path_factory) -> Path:
    """A tiny CycleGAN run from 1-channel 16-bit PNGs (X) to 4-band 16-bit TIFFs (Y), 2 steps."""
    from cyclegan_tf.config import TrainConfig
    from cyclegan_tf.training.loop import train

    tmp = tmp_path_factory.mktemp("bands")
    rng = np.random.default_rng(3)
    for d in ("X", "Y"):
        (tmp / d).mkdir()
    for i in range(3):
        (tmp / "X" / f"{i}.png").write_bytes(tf.io.encode_png(rng.integers(0, 4096, (36, 36, 1)).astype(np.uint16))
                                             .numpy())
        tifffile.imwrite(tmp / "Y" / f"{i}.tif", rng.integers(0, 60000, (36, 36, 4)).astype(np.uint16),
                         photometric="minisblack", planarconfig="contig")
    for d in ("X", "Y"):
        convert.build_folder(d, str(tmp / d), str(tmp / f"{d}.tfr"), flag=f"--{d}_input_dir", workers=1)
    cfg = TrainConfig(X=str(tmp / "X.tfr"), Y=str(tmp / "Y.tfr"), checkpoint_dir=str(tmp / "run"), image_size=32,
                      netG="resnet_6blocks", ngf=4, ndf=4, max_steps=2, lambda_identity=0.0)
    assert train(cfg) == 0
    return tmp / "run"


def test_a_trained_n_channel_run_exports_to_every_format_that_holds_it(grey_to_bands: Path, tmp_path: Path) -> None:
    import onnxruntime
    from numerics import network_atol

    from cyclegan_tf.deploy.litert import run_tflite, to_tflite
    from cyclegan_tf.training.runs import restore_generators

    path = savedmodel.export(grey_to_bands, "XtoY", tmp_path / "x2y")
    loaded = tf.saved_model.load(str(path))
    k_in, k_out = pixels.of_export(loaded)
    assert (k_in.channels, k_in.dtype, k_out.channels, k_out.dtype) == (1, "uint16", 4, "uint16")
    x = np.random.default_rng(4).uniform(k_in.lo[0], k_in.hi[0], (1, 32, 40, 1)).astype(np.float32)
    want = loaded.translate(tf.constant(x))["images"].numpy()
    assert want.shape == (1, 32, 40, 4) and (want >= np.array(k_out.lo)).all() and (want <= np.array(k_out.hi)).all()
    # outputs are the network's [-1, 1] times half the output range: so are their rounding differences
    atol = (max(k_out.hi) - min(k_out.lo)) / 2 * network_atol(restore_generators(grey_to_bands)[0]["G"])
    session = onnxruntime.InferenceSession(str(savedmodel.to_onnx(path, tmp_path / "m.onnx")))
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x})[0], want, rtol=0, atol=atol)
    pytest.importorskip("ai_edge_litert", reason="the LiteRT runtime: pip install ai-edge-litert")
    tflite = to_tflite(path, tmp_path / "m.tflite", "fp32", 0)
    np.testing.assert_allclose(run_tflite(tflite, x), want, rtol=0, atol=atol)
    with pytest.raises(UserError, match=r"frozen graph \(\.pb\) carries 8-bit RGB JPEGs"):
        savedmodel.to_frozen_graph(path, tmp_path / "m.pb", 32)
    assert not (tmp_path / "m.pb").exists()


def test_the_four_band_recipe_runs_through_the_tools(tmp_path: Path) -> None:
    """ShapeScapes with a near-infrared band (16-bit 4-band TIFFs): pix2pix labels → 4 bands through
    build_data.py, train.py, export_graph.py and inference.py, which writes a 4-band uint16 TIFF."""
    import subprocess
    import sys

    from conftest import ROOT

    from cyclegan_tf.data import shapescapes

    shapescapes.generate(tmp_path / "ss", size=32, train=4, test=2, paired=True, bands=4)

    def tool(*args: str) -> str:
        done = subprocess.run([sys.executable, str(ROOT / args[0]), *args[1:]], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    summary = tool("build_data.py", "--paired", "--X_input_dir", "ss/trainA", "--Y_input_dir", "ss/trainB",
                   "--output_file", "pairs.tfrecords")
    assert "3-channel uint8 in [0,255] and 4-channel uint16" in summary
    assert records.read_kind([str(tmp_path / "pairs.tfrecords")], records.PREFIX_B).channels == 4
    tool("train.py", "--model", "pix2pix", "--X", "pairs.tfrecords", "--netG", "resnet_6blocks", "--image_size", "32",
         "--ngf", "4", "--ndf", "4", "--max_steps", "2", "--checkpoint_dir", "run")
    tool("export_graph.py", "--checkpoint_dir", "run", "--XtoY_model", "labels2bands", "--YtoX_model", "")
    tool("inference.py", "--model", "labels2bands", "--input", "ss/testA/00000.png", "--output", "out.tif")
    out = tifffile.imread(tmp_path / "out.tif")
    assert out.shape == (32, 32, 4) and out.dtype == np.uint16


def test_the_python_api_translates_arrays_of_any_kind(tmp_path: Path) -> None:
    from cyclegan_tf import api

    kind = pixels.Kind(2, "uint16", (0.0,), (65535.0,))
    model = api.load_export(identity_export(tmp_path / "m", kind))
    a = np.random.default_rng(5).integers(0, 65536, (9, 11, 2)).astype(np.uint16)
    out = api.translate(model, a)
    assert out.dtype == np.uint16 and np.array_equal(out, a)
    with pytest.raises(UserError, match=r"expected \[H, W, 2\] or \[N, H, W, 2\] \(2-channel uint16"):
        api.translate(model, a[..., :1])
