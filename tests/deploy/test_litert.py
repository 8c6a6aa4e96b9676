"""LiteRT files of an export: each variant against the SavedModel's `translate` on the same images."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from cyclegan_tf.deploy.litert import VARIANTS, run_tflite, to_tflite
from cyclegan_tf.deploy.savedmodel import export
from cyclegan_tf.errors import UserError

SIZE = 32
# Lower bounds of each variant's PSNR against the SavedModel on the tiny run (measured: fp32 > 100 dB,
# fp16 ≈ 80 dB, int8 ≈ 50 dB; int8's bound is loose, its error depends on the weights).
MIN_PSNR = {"fp32": 40.0, "fp16": 40.0, "int8": 30.0}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


@pytest.fixture(scope="module")
def exported(trained_run: Path, tmp_path_factory) -> Path:
    return export(trained_run, "XtoY", tmp_path_factory.mktemp("litert") / "x2y")


@pytest.fixture(scope="module")
def translate(exported: Path):
    loaded = tf.saved_model.load(str(exported))
    return lambda x: loaded.translate(tf.constant(x, tf.float32))["images"].numpy()


def images(h: int, w: int, n: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, h, w, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def files(exported: Path, tmp_path_factory) -> dict[str, Path]:
    """fp16 and int8 converted once, for any size (3-5 s each, most of it fixed cost)."""
    folder = tmp_path_factory.mktemp("tflite")
    return {v: to_tflite(exported, folder / f"g_{v}.tflite", v, 0) for v in ("fp16", "int8")}


def test_fp32_matches_the_saved_model_and_takes_only_its_size(exported: Path, translate, tmp_path: Path,
                                                              capfd) -> None:
    pytest.importorskip("ai_edge_litert", reason="the LiteRT runtime: pip install ai-edge-litert")
    path = tmp_path / "g.tflite"
    path.write_bytes(b"an older file")
    assert to_tflite(exported, path, "fp32", SIZE) == path
    assert path.read_bytes()[4:8] == b"TFL3"  # the flatbuffer's identifier: the older file was replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.tflite"]  # no temporaries left
    x = images(SIZE, SIZE, n=2)
    got = run_tflite(path, x)
    assert got.shape == x.shape and got.dtype == np.float32 and psnr(got, translate(x)) >= MIN_PSNR["fp32"]
    err = capfd.readouterr().err  # neither the converter's chatter nor the runtime's
    assert "SavedModel" not in err and "XNNPACK" not in err, err[-500:]
    with pytest.raises(UserError, match=r"takes 32×32 images, not 50×33"):  # resize_tensor_input would crop
        run_tflite(path, images(33, 50))


def test_fp16_and_int8_match_the_saved_model_at_any_size(files: dict[str, Path], translate) -> None:
    pytest.importorskip("ai_edge_litert", reason="the LiteRT runtime: pip install ai-edge-litert")
    for h, w in ((SIZE, SIZE), (33, 50), (7, 9)):  # no padding, padded by mirroring, a side below the padding
        x = images(h, w, n=2, seed=h)
        want = translate(x)
        for variant, path in files.items():
            assert psnr(run_tflite(path, x), want) >= MIN_PSNR[variant], (variant, h, w)
    assert files["int8"].stat().st_size < files["fp16"].stat().st_size


def test_errors(exported: Path, tmp_path: Path, monkeypatch) -> None:
    assert set(VARIANTS) == set(MIN_PSNR)  # every variant is tested above
    with pytest.raises(UserError, match="variant 'int4': choose fp32, fp16, int8"):
        to_tflite(exported, tmp_path / "g.tflite", "int4", SIZE)
    with pytest.raises(UserError, match="no SavedModel there"):
        to_tflite(tmp_path / "absent", tmp_path / "g.tflite", "fp32", SIZE)
    with pytest.raises(UserError, match="input size -1"):
        to_tflite(exported, tmp_path / "g.tflite", "fp32", -1)
    with pytest.raises(UserError, match="no such .tflite file"):
        run_tflite(tmp_path / "absent.tflite", images(SIZE, SIZE))
    (tmp_path / "junk.tflite").write_bytes(b"not a flatbuffer")
    if _installed():
        with pytest.raises(UserError, match="not a LiteRT model"):
            run_tflite(tmp_path / "junk.tflite", images(SIZE, SIZE))
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(UserError, match=r"needs ai-edge-litert: pip install"):
        run_tflite(tmp_path / "junk.tflite", images(SIZE, SIZE))
    assert not (tmp_path / "g.tflite").exists()


def _installed() -> bool:
    try:
        import ai_edge_litert  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
def test_exports_litert_cannot_take_are_refused(trained_run: Path, tmp_path: Path) -> None:
    half = export(trained_run, "XtoY", tmp_path / "half", precision="fp16")
    with pytest.raises(UserError, match="an export computing in fp16; LiteRT needs an fp32 export"):
        to_tflite(half, tmp_path / "g.tflite", "fp16", SIZE)
    square = export(trained_run, "XtoY", tmp_path / "sq", image_size=16)
    with pytest.raises(UserError, match="ScaleAndTranslate.*export without --image_size"):
        to_tflite(square, tmp_path / "g.tflite", "fp32", SIZE)
    assert not (tmp_path / "g.tflite").exists()
