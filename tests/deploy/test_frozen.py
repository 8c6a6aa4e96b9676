"""vanhuyz's frozen graphs (.pb) run by inference.py and wrapped into a SavedModel: graphs written by our
to_frozen_graph, one written as his TF1 export_graph.py did (v1 control flow), and damaged ones."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, write_bad, write_kind
from PIL import Image
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
from tensorflow.python.ops import control_flow_util

from cyclegan_tf import api
from cyclegan_tf.deploy import frozen
from cyclegan_tf.deploy.savedmodel import export, to_frozen_graph
from cyclegan_tf.deploy.translate import load_model, run
from cyclegan_tf.errors import UserError

S = 32  # the tiny run's training size


@pytest.fixture(scope="module")
def graphs(trained_run: Path, tmp_path_factory) -> dict[str, Path]:
    """The tiny run's XtoY export and the frozen graph we write of it (S × S), in another folder: a SavedModel
    beside a .pb of its name is what `--model name.pb` loads."""
    folder = tmp_path_factory.mktemp("frozen")
    saved = export(trained_run, "XtoY", folder / "x2y")
    (folder / "graphs").mkdir()
    return {"saved": saved, "pb": to_frozen_graph(saved, folder / "graphs" / "x2y.pb", S)}


@pytest.fixture(scope="module")
def saved_translate(graphs: dict[str, Path]):
    loaded = tf.saved_model.load(str(graphs["saved"]))
    return lambda x: loaded.translate(tf.constant(x, tf.float32))["images"].numpy()


def his_resize(images: np.ndarray, h: int, w: int) -> np.ndarray:
    """TF1's resize_images (bilinear, corners aligned to the top left): what his inference.py resized with."""
    return tf.raw_ops.ResizeBilinear(images=images.astype(np.float32), size=[h, w], align_corners=False,
                                     half_pixel_centers=False).numpy()


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, 128 + 60 * np.sin(xx / 3.0)], -1)
    return np.clip(base + np.random.default_rng(seed).normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)


def test_his_command_on_a_graph_we_wrote_and_a_garbled_one(graphs: dict[str, Path], saved_translate,
                                                           tmp_path: Path) -> None:
    shutil.copy(graphs["pb"], tmp_path / "apple2orange.pb")
    img = rgb(S, S)
    Image.fromarray(img).save(tmp_path / "in.jpg", quality=95)
    cli = [sys.executable, str(ROOT / "inference.py")]
    r = subprocess.run([*cli, "--model", "apple2orange.pb", "--input", "in.jpg", "--output", "out.jpg"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0 and "translated 1 images" in r.stdout, r.stderr[-2000:]
    out = np.asarray(Image.open(tmp_path / "out.jpg"), np.float32)
    decoded = np.asarray(Image.open(tmp_path / "in.jpg"), np.float32)  # as inference.py reads it (PIL)
    expected = np.round(saved_translate(decoded[None])[0])
    # the output coded as a JPEG (quality 95, chroma subsampled), as the graph's own bytes are
    coded = np.asarray(tf.io.decode_jpeg(tf.io.encode_jpeg(expected.astype(np.uint8))), np.float32)
    assert out.shape == (S, S, 3) and np.abs(out - coded).mean() < 2.0, np.abs(out - coded).mean()
    (tmp_path / "garbled.pb").write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8)))
    r = subprocess.run([*cli, "--model=garbled.pb", "--input=in.jpg", "--output=x.jpg"], capture_output=True,
                       text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr and not (tmp_path / "x.jpg").exists()
    assert r.stderr.strip().splitlines()[-1] == ("error: --model=garbled.pb: not a frozen graph: the file is not a "
                                                 "TensorFlow GraphDef (damaged, truncated or another format)")


def test_any_size_goes_through_s_by_s_and_comes_back_at_its_own(graphs: dict[str, Path], saved_translate,
                                                                 tmp_path: Path) -> None:
    img = rgb(24, 40)
    Image.fromarray(img).save(tmp_path / "in.png")
    assert run(str(graphs["pb"]), str(tmp_path / "in.png"), str(tmp_path / "out.png")).written == 1
    out = np.asarray(Image.open(tmp_path / "out.png"), np.float32)
    square = np.round(saved_translate(his_resize(img[None], S, S)))  # the graph's uint8 pixels
    expected = np.clip(np.round(his_resize(square, 24, 40)[0]), 0, 255)
    assert out.shape == (24, 40, 3) and np.abs(out - expected).max() <= 1.0
    # the same through the module's function for one image, and square mode's S' × S'
    model = frozen.load(graphs["pb"])
    assert model.size == S and np.abs(model.translate_image(img).astype(np.float32) - expected).max() <= 1.0
    run(str(graphs["pb"]), str(tmp_path / "in.png"), str(tmp_path / "sq.png"), image_size=16)
    assert Image.open(tmp_path / "sq.png").size == (16, 16)


def test_names_under_export_dir_folders_globs_and_tiles(graphs: dict[str, Path], tmp_path: Path, capsys) -> None:
    (tmp_path / "pretrained").mkdir()
    shutil.copy(graphs["pb"], tmp_path / "pretrained" / "apple2orange.pb")
    src = tmp_path / "in"
    src.mkdir()
    for kind in ("jpg", "png_gray", "webp", "TIFF"):
        write_kind(src, kind)  # 32 × 24
    write_bad(src, "truncated")
    s = run("apple2orange.pb", str(src), str(tmp_path / "out"), export_dir=str(tmp_path / "pretrained"),
            batch_size=3, side_by_side=True, write_html=True)
    assert s.written == 4 and len(s.skipped) == 1 and "bad_truncated" in capsys.readouterr().err
    assert Image.open(tmp_path / "out/jpg_0.jpg").size == (64, 24)  # input | output
    assert (tmp_path / "out/index.html").read_text().count("<tr>") == 5
    s = run(str(tmp_path / "pretrained" / "apple2orange.pb"), str(src / "*_0.*"), str(tmp_path / "glob"), fmt="png")
    assert s.written == 4 and all(Image.open(p).size == (32, 24) for p in (tmp_path / "glob").iterdir())
    large = tmp_path / "large.png"
    Image.fromarray(rgb(40, 70)).save(large)
    with pytest.raises(UserError, match="norm statistics are computed inside the frozen graph") as e:
        run(str(graphs["pb"]), str(large), str(tmp_path / "t.png"), tile=S, overlap=8)
    assert str(e.value) == frozen.TILE_GLOBAL and not (tmp_path / "t.png").exists()
    assert run(str(graphs["pb"]), str(large), str(tmp_path / "t.png"), tile=S, overlap=8, norm_stats="tile").written
    assert Image.open(tmp_path / "t.png").size == (70, 40)


def test_a_savedmodel_beside_the_pb_is_preferred(graphs: dict[str, Path], tmp_path: Path) -> None:
    """export_graph.py --XtoY_model name.pb writes both: the SavedModel takes any size and tiles with shared
    statistics, so `--model name.pb` keeps meaning it, as before."""
    shutil.copy(graphs["pb"], tmp_path / "x2y.pb")
    assert load_model(str(tmp_path / "x2y.pb")).frozen_size == S
    shutil.copytree(graphs["saved"], tmp_path / "x2y")
    exported = load_model(str(tmp_path / "x2y.pb"))
    assert exported.frozen_size == 0 and exported.statistics is not None
    assert load_model(str(tmp_path / "x2y" / "saved_model.pb")).statistics is not None
    with pytest.raises(UserError) as e:
        load_model("apple2orange.pb", export_dir=str(tmp_path))
    assert str(e.value) == (f"--model=apple2orange.pb: no such frozen graph, nor a SavedModel of that name (here or "
                            f"under {tmp_path}/)")


def _write_graph(path: Path, fn, spec: tf.TensorSpec, output: str | None = "output_image") -> Path:
    """A frozen GraphDef of a tf.function (convert_variables_to_constants_v2), its output named `output`."""
    graph = convert_variables_to_constants_v2(tf.function(fn).get_concrete_function(spec)).graph
    graph_def = graph.as_graph_def()
    if output:
        node = graph_def.node.add(name=output, op="Identity", input=[graph.outputs[0].op.name])
        node.attr["T"].type = graph.outputs[0].dtype.as_datatype_enum
    path.write_bytes(graph_def.SerializeToString())
    return path


def _jpeg_of(x: tf.Tensor) -> tf.Tensor:
    return tf.io.encode_jpeg(tf.cast((x + 1) * 127.5, tf.uint8))


BAD = {
    "garbage": ("not a frozen graph: the file is not a TensorFlow GraphDef (damaged, truncated or another format)"),
    "empty": "empty file, not a frozen graph",
    "truncated": "not a frozen graph: the file is not a TensorFlow GraphDef (damaged, truncated or another format)",
    "no input_image": ("a GraphDef of <n> nodes without a placeholder 'input_image': not a frozen graph of vanhuyz's "
                       "export_graph.py"),
    "no output_image": ("a GraphDef of <n> nodes without a node 'output_image': not a frozen graph of vanhuyz's "
                        "export_graph.py"),
    "neither": ("a GraphDef of <n> nodes without a placeholder 'input_image' and without a node 'output_image': not "
                "a frozen graph of vanhuyz's export_graph.py"),
    "any size": ("'input_image' is float32 [?, ?, 3], not float32 [S, S, 3] (a square RGB image, as vanhuyz's "
                 "export_graph.py wrote)"),
    "uint8": ("'input_image' is uint8 [8, 8, 3], not float32 [S, S, 3] (a square RGB image, as vanhuyz's "
              "export_graph.py wrote)"),
    "float output": "'output_image' is float32, not a string (the JPEG bytes of vanhuyz's graphs)",
    "dangling": "cannot import the graph (Node 'Tanh': Unknown input node 'Conv2D')",
}


def _is(message: str, expected: str) -> bool:
    return re.fullmatch(re.escape(expected).replace("<n>", r"\d+"), message) is not None


def _bad(kind: str, folder: Path, good: Path) -> Path:
    p = folder / "bad.pb"
    spec = tf.TensorSpec([8, 8, 3], tf.float32, name="input_image")
    if kind == "garbage":
        p.write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 2000, np.uint8)))
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "truncated":
        p.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "no input_image":
        _write_graph(p, _jpeg_of, tf.TensorSpec([8, 8, 3], tf.float32, name="x"))
    elif kind == "no output_image":
        _write_graph(p, _jpeg_of, spec, output=None)
    elif kind == "neither":
        _write_graph(p, _jpeg_of, tf.TensorSpec([8, 8, 3], tf.float32, name="x"), output=None)
    elif kind == "any size":
        _write_graph(p, _jpeg_of, tf.TensorSpec([None, None, 3], tf.float32, name="input_image"))
    elif kind == "uint8":
        _write_graph(p, lambda x: tf.io.encode_jpeg(x), tf.TensorSpec([8, 8, 3], tf.uint8, name="input_image"))
    elif kind == "float output":
        _write_graph(p, lambda x: tf.tanh(x), spec)
    elif kind == "dangling":  # a node whose input is gone
        graph_def = vanhuyz_graph(8)
        del graph_def.node[next(i for i, n in enumerate(graph_def.node) if n.op == "Conv2D")]
        p.write_bytes(graph_def.SerializeToString())
    return p


@pytest.mark.parametrize("kind", BAD)
def test_bad_graphs_are_one_line(kind: str, graphs: dict[str, Path], tmp_path: Path) -> None:
    p = _bad(kind, tmp_path, graphs["pb"])
    with pytest.raises(UserError) as e:
        frozen.load(p)
    assert _is(str(e.value), f"{p}: {BAD[kind]}"), str(e.value)
    src = write_kind(tmp_path, "jpg")
    with pytest.raises(UserError) as e:  # inference.py names the flag
        run("bad.pb", str(src), str(tmp_path / "out.png"), export_dir=str(tmp_path))
    assert _is(str(e.value), f"--model=bad.pb ({p}): {BAD[kind]}") and not (tmp_path / "out.png").exists()
    with pytest.raises(UserError) as e:  # and so does the wrapping, before anything is written
        frozen.export(p, tmp_path / "wrapped")
    assert _is(str(e.value), f"{p}: {BAD[kind]}") and not (tmp_path / "wrapped").exists()


def vanhuyz_graph(size: int) -> tf.compat.v1.GraphDef:
    """A graph as his export_graph.py wrote them in TF1: a placeholder, a conv with a frozen variable, his
    batch_convert2int (tf.map_fn, v1 control flow with TensorArrays) and encode_jpeg, frozen by
    convert_variables_to_constants in a session."""
    v1 = tf.compat.v1
    was = control_flow_util.ENABLE_CONTROL_FLOW_V2
    control_flow_util.ENABLE_CONTROL_FLOW_V2 = False  # TF1's while loops, as his graphs hold
    try:
        graph = tf.Graph()
        with graph.as_default():
            x = v1.placeholder(tf.float32, [size, size, 3], name="input_image")
            kernel = v1.get_variable("k", initializer=np.random.default_rng(0).normal(0, 0.4, (3, 3, 3, 3))
                                     .astype(np.float32))
            y = tf.tanh(tf.nn.conv2d(tf.pad(x[None], [[0, 0], [1, 1], [1, 1], [0, 0]], "REFLECT"), kernel, 1, "VALID"))
            pixels = tf.map_fn(lambda t: tf.image.convert_image_dtype((t + 1.0) / 2.0, tf.uint8), y,
                               fn_output_signature=tf.uint8)
            out = tf.identity(tf.image.encode_jpeg(tf.squeeze(pixels, [0])), name="output_image")
            with v1.Session(graph=graph) as sess:
                sess.run(v1.global_variables_initializer())
                return v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), [out.op.name])
    finally:
        control_flow_util.ENABLE_CONTROL_FLOW_V2 = was


def run_his_way(graph_def, image: np.ndarray, tensor: str) -> np.ndarray:
    """`tensor` of the graph fed as his inference.py fed it, in a TF1 session."""
    v1 = tf.compat.v1
    x = his_resize(image[None], *[graph_def_size(graph_def)] * 2)[0] / 127.5 - 1
    with tf.Graph().as_default() as graph:
        [t] = tf.import_graph_def(graph_def, input_map={"input_image": tf.constant(x)}, return_elements=[tensor],
                                  name="output")
        with v1.Session(graph=graph) as sess:
            return sess.run(t)


def graph_def_size(graph_def) -> int:
    node = next(n for n in graph_def.node if n.name == "input_image")
    return node.attr["shape"].shape.dim[0].size


def test_his_tf1_graph_gives_the_pixels_its_jpeg_encodes(tmp_path: Path) -> None:
    graph_def = vanhuyz_graph(16)
    assert {"Enter", "TensorArrayV3"} <= {n.op for n in graph_def.node}
    (tmp_path / "his.pb").write_bytes(graph_def.SerializeToString())
    model = frozen.load(tmp_path / "his.pb")
    img = rgb(16, 16)
    squeeze = next(n for n in graph_def.node if n.op == "EncodeJpeg").input[0]
    assert not model._decode and np.array_equal(model.translate_image(img), run_his_way(graph_def, img, squeeze + ":0"))
    # his bytes are those pixels, JPEG-coded
    assert run_his_way(graph_def, img, "output_image:0") == tf.io.encode_jpeg(model.translate_image(img)).numpy()
    # non-square: his resize to 16 × 16, then back
    assert model.translate_image(rgb(10, 30)).shape == (10, 30, 3)


def test_a_graph_whose_bytes_are_not_one_encode_jpeg_away_is_decoded(tmp_path: Path) -> None:
    def png_of(x: tf.Tensor) -> tf.Tensor:  # PNG, lossless: the decoded bytes are the pixels themselves
        return tf.io.encode_png(tf.cast(tf.round((1 - x) * 127.5), tf.uint8))

    model = frozen.load(_write_graph(tmp_path / "png.pb", png_of, tf.TensorSpec([8, 8, 3], tf.float32,
                                                                                  name="input_image")))
    img = rgb(8, 8)
    assert model._decode and np.abs(model.translate_image(img).astype(int) - (255 - img.astype(int))).max() <= 1


def test_wrapped_savedmodel_loads_plainly_and_translates_like_the_pb(graphs: dict[str, Path], tmp_path: Path) -> None:
    target = frozen.export(graphs["pb"], tmp_path / "apple2orange")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["apple2orange"]  # no temporary folders left
    loaded = tf.saved_model.load(str(target))
    assert loaded.frozen_graph.numpy() == b"x2y.pb" and int(loaded.image_size.numpy()) == S
    assert loaded.input_channels.numpy() == 3 and loaded.output_dtype.numpy() == b"uint8"
    x = np.stack([rgb(21, 40, seed) for seed in range(3)]).astype(np.float32)
    want = frozen.as_export(graphs["pb"]).translate(images=tf.constant(x))["images"].numpy()
    got = loaded.signatures["translate"](images=tf.constant(x))["images"].numpy()
    assert got.shape == (3, 21, 40, 3) and np.abs(got - want).max() < 1e-3
    png = loaded.signatures["serving_default"](image_bytes=tf.stack([tf.io.encode_png(x[0].astype(np.uint8))]))
    assert tf.io.decode_png(png["image_bytes"][0]).shape == (21, 40, 3)
    # the Python API takes it as it takes any export, and the .pb's module alike
    assert np.array_equal(api.translate(loaded, x[1].astype(np.uint8)),
                          api.translate(frozen.load(graphs["pb"]), x[1].astype(np.uint8)))
    # inference.py takes it as any export, and knows it cannot share statistics between tiles
    exported = load_model(str(target))
    assert exported.frozen_size == S and exported.statistics is None
    Image.fromarray(rgb(21, 40)).save(tmp_path / "in.png")
    with pytest.raises(UserError, match="inside the frozen graph"):
        run(str(target), str(tmp_path / "in.png"), str(tmp_path / "out.png"), tile=16, overlap=4)
    # replaced atomically; a folder that is not an export is refused
    frozen.export(graphs["pb"], target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["apple2orange", "in.png"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(UserError, match="not an export of export_graph.py"):
        frozen.export(graphs["pb"], tmp_path / "mine")


def test_wrapped_savedmodel_converts_to_litert(graphs: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("ai_edge_litert")
    from cyclegan_tf.deploy.litert import run_tflite, to_tflite

    target = frozen.export(graphs["pb"], tmp_path / "x2y")
    x = rgb(20, 28)[None].astype(np.float32)
    want = tf.saved_model.load(str(target)).signatures["translate"](images=tf.constant(x))["images"].numpy()
    got = run_tflite(to_tflite(target, tmp_path / "x2y.tflite", "fp32", 0), x)
    assert np.abs(got - want).max() < 0.01
    # his own graphs keep TF1's TensorArrays (his map_fn), which LiteRT's builtin ops lack
    (tmp_path / "his.pb").write_bytes(vanhuyz_graph(16).SerializeToString())
    with pytest.raises(UserError, match="TensorArray"):
        to_tflite(frozen.export(tmp_path / "his.pb", tmp_path / "his"), tmp_path / "his.tflite", "fp32", 0)


def test_export_graph_wraps_a_pb_with_its_flag(graphs: dict[str, Path], tmp_path: Path) -> None:
    cli = [sys.executable, str(ROOT / "export_graph.py"), f"--from_frozen_graph={graphs['pb']}"]
    r = subprocess.run([*cli, "--XtoY_model=apple2orange"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "vanhuyz's graph, wrapped" in r.stdout and (tmp_path / "pretrained/apple2orange/saved_model.pb").exists()
    r = subprocess.run([*cli, "--XtoY_model=a2o.pb"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith(
        "error: --from_frozen_graph writes a SavedModel")
