"""Tiled translation: windows, tile positions, global norm statistics against plain tiling, bounded memory."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT
from PIL import Image

from cyclegan_tf.deploy.savedmodel import export
from cyclegan_tf.deploy.tiling import check, positions, translate_tiled, window
from cyclegan_tf.deploy.translate import load_model
from cyclegan_tf.deploy.translate import run as translate_files
from cyclegan_tf.errors import UserError


@pytest.fixture(scope="module")
def exported(trained_run: Path, tmp_path_factory) -> Path:
    return export(trained_run, "XtoY", tmp_path_factory.mktemp("tiling") / "x2y")


def scene(h: int, w: int) -> np.ndarray:
    """Content that differs from tile to tile (a dark and a bright half, gradients, texture): what makes
    each tile's own norm statistics differ from the whole image's."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w * 255, yy / h * 255, 128 + 100 * np.sin(xx / 5) * np.cos(yy / 7)], -1)
    img[:, : w // 2] *= 0.3
    return img.clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("n,tile,overlap", [(300, 128, 32), (128, 128, 32), (97, 40, 8), (50, 64, 16)])
def test_tiles_cover_every_pixel_and_blend_to_one(n: int, tile: int, overlap: int) -> None:
    starts = positions(n, tile, overlap)
    side = min(tile, n)
    assert starts[0] == 0 and starts[-1] + side == n
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
    total = np.zeros(n, np.float32)
    for s in starts:
        total[s:s + side] += window(side, overlap, s == 0, s + side == n)
    assert total.min() > 0
    if len(starts) == 1 or all(b - a == tile - overlap for a, b in zip(starts, starts[1:])):
        np.testing.assert_allclose(total, 1, atol=1e-6)  # regular overlaps: the weights are a partition of 1


def test_global_statistics_match_the_whole_image_far_better_than_plain_tiles(exported: Path) -> None:
    model = load_model(str(exported))
    img = scene(128, 192)
    whole = np.round(model.translate(images=tf.constant(img[None].astype(np.float32)))["images"].numpy()[0])
    error = {}
    for mode, stats_size in (("tile", 1024), ("global", 1024), ("global", 64)):
        out = translate_tiled(model, img, 64, 32, 4, mode, stats_size)
        assert out.shape == img.shape and out.dtype == np.uint8
        error[mode, stats_size] = np.abs(out.astype(np.float32) - whole).mean()
    print("mean abs difference from the whole-image output:", error)
    # statistics of the whole image at full size: the tiles are the whole image's, up to their borders' context
    # (wide for this 3-step model; docs/benchmarks.md has a trained one's figures)
    assert error["global", 1024] < error["tile", 1024] / 4, error
    # measured on a downscaled copy: an approximation, still far closer than each tile's own
    assert error["global", 64] < error["tile", 1024], error


def test_small_images_are_not_tiled_and_flags_are_checked(exported: Path, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    Image.fromarray(scene(40, 60)).save(tmp_path / "in/small.png")
    Image.fromarray(scene(70, 90)).save(tmp_path / "in/large.png")
    whole = translate_files(str(exported), str(tmp_path / "in/small.png"), str(tmp_path / "a.png"))
    tiled = translate_files(str(exported), str(tmp_path / "in/small.png"), str(tmp_path / "b.png"), tile=64, overlap=8)
    assert whole.written == tiled.written == 1
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png")))
    s = translate_files(str(exported), str(tmp_path / "in"), str(tmp_path / "out"), tile=48, overlap=8, batch_size=2)
    assert s.written == 2 and Image.open(tmp_path / "out/large.png").size == (90, 70)
    for args, message in (((64, 64, "global", 1024), "overlap < tile"), ((64, 8, "mean", 1024), "--norm_stats=mean"),
                          ((-1, 8, "global", 1024), "--tile=-1"), ((64, 8, "global", 4), "--stats_size=4")):
        with pytest.raises(UserError, match=message):
            check(*args)


def test_an_export_without_statistics_is_one_line(trained_run: Path, tmp_path: Path) -> None:
    square = export(trained_run, "XtoY", tmp_path / "square", image_size=32)  # square mode: no statistics
    Image.fromarray(scene(70, 90)).save(tmp_path / "large.png")
    r = subprocess.run([sys.executable, str(ROOT / "inference.py"), f"--model={square}",
                        f"--input={tmp_path / 'large.png'}", f"--output={tmp_path / 'out.png'}", "--tile=48",
                        "--overlap=8"], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "no 'statistics' signature" in r.stderr.strip().splitlines()[-1]
    s = translate_files(str(square), str(tmp_path / "large.png"), str(tmp_path / "out.png"), tile=48, overlap=8,
                        norm_stats="tile")  # plain tiling needs only translate
    assert s.written == 1 and Image.open(tmp_path / "out.png").size == (90, 70)


# Runs a script as __main__ and reports its own peak resident memory (VmHWM, kB) last on stderr. Not
# getrusage: a child's ru_maxrss starts at its parent's resident size at the fork, here pytest's own.
_PEAK = """import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    print(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")), file=sys.stderr)
"""


@pytest.mark.slow
def test_a_6000_by_4000_photo_translates_within_4_gb(exported: Path, tmp_path: Path) -> None:
    h, w = 4000, 6000
    Image.fromarray(scene(h // 8, w // 8)).resize((w, h), Image.BILINEAR).save(tmp_path / "big.jpg", quality=90)
    r = subprocess.run([sys.executable, "-c", _PEAK, str(ROOT / "inference.py"), f"--model={exported}",
                        f"--input={tmp_path / 'big.jpg'}", f"--output={tmp_path / 'out.jpg'}", "--tile=512"],
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-2000:]
    peak = int(r.stderr.strip().splitlines()[-1].split()[1]) * 1024
    assert Image.open(tmp_path / "out.jpg").size == (w, h)
    assert 2**28 < peak < 4 * 2**30, f"peak resident memory {peak / 2**30:.2f} GiB"
