"""Evaluation in the data's units (any pixels, data/pixels.py): held-out images read as their domain's kind,
MAE/RMSE/PSNR/SSIM with the domain's range, Inception's scores for photos only, galleries people can look at,
and the report and the evaluate command saying what was left out."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tifffile
from PIL import Image

from cyclegan_tf import models
from cyclegan_tf.config import TrainConfig
from cyclegan_tf.data import convert
from cyclegan_tf.data.pixels import Kind
from cyclegan_tf.errors import UserError
from cyclegan_tf.evaluation import during_training, metrics, report, score
from cyclegan_tf.training.loop import with_pixels

SCAN = Kind(1, "uint16", (0.0,), (4095.0,))  # 12-bit scans stored as 16-bit
TINY = dict(image_size=32, netG="resnet_6blocks", ngf=4, ndf=4, pool_size=3, lambda_identity=0.0)
SCAN_NOTE = "FID/KID/IS need RGB photos; X is 1-channel uint16: not computed"
BANDS_NOTE = "FID/KID/IS need RGB photos; Y is 2-channel float32: not computed"


def _scans(folder: Path, names: list[str], seed: int) -> dict[str, np.ndarray]:
    """16-bit grey PNGs of values in [0, 4095], by name."""
    folder.mkdir(parents=True, exist_ok=True)
    rng, (yy, xx) = np.random.default_rng(seed), np.mgrid[0:32, 0:32]
    out = {}
    for name in names:
        out[name] = (xx * 60 + yy * 40 + rng.integers(0, 800, (32, 32))).astype(np.uint16)[..., None]
        (folder / f"{name}.png").write_bytes(tf.io.encode_png(out[name]).numpy())
    return out


def _bands(folder: Path, names: list[str], seed: int) -> dict[str, np.ndarray]:
    """2-band float32 TIFFs: a reflectance in [0, 1] and a height in [-1000, 1000] metres, by name."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for name in names:
        out[name] = np.stack([rng.uniform(0, 1, (32, 32)), rng.uniform(-1000, 1000, (32, 32))], -1).astype(np.float32)
        tifffile.imwrite(folder / f"{name}.tif", out[name], photometric="minisblack", planarconfig="contig")
    return out


@pytest.fixture(scope="module")
def domains(tmp_path_factory) -> dict:
    """X: 1-channel uint16 scans in [0, 4095]; Y: 2-band float32 with a range per band; records of both, a
    held-out folder of X, and truth folders for both directions (named as their inputs)."""
    tmp = tmp_path_factory.mktemp("pixels")
    _scans(tmp / "X", [f"x{i}" for i in range(6)], 0)
    _bands(tmp / "Y", [f"y{i}" for i in range(6)], 1)
    plans = []
    for d, text in (("X", "0,4095"), ("Y", "0,1;-1000,1000")):
        plan = convert.plan_folder(d, str(tmp / d), str(tmp / f"{d}.tfrecords"), flag=f"--{d}_input_dir", seed=None)
        plan.ranges = (text,)
        plans.append(plan)
    convert.build_all(plans, workers=1)
    held = [f"h{i}" for i in range(6)]
    return {"tmp": tmp, "held_X": _scans(tmp / "heldX", held, 2), "truth_Y": _bands(tmp / "truthY", held, 3),
            "truth_X": _scans(tmp / "truthX", [f"y{i}" for i in range(6)], 4)}


def _cfg(domains: dict, **kw) -> TrainConfig:
    tmp = domains["tmp"]
    kw = dict(eval_X=str(tmp / "heldX"), eval_Y=str(tmp / "Y.tfrecords")) | kw
    cfg = TrainConfig(X=str(tmp / "X.tfrecords"), Y=str(tmp / "Y.tfrecords"), checkpoint_dir=str(tmp / "run"),
                      eval_every=2, **TINY, **kw)
    return with_pixels(cfg.resolved(), models.get("cycle_gan"))


def test_errors_of_a_16_bit_domain_are_in_its_units_by_hand() -> None:
    truth = np.full((2, 16, 16, 1), 1000, np.uint16)
    fake = truth.astype(np.float32) + np.array([100.0, -300.0], np.float32)[:, None, None, None]
    scores, bands = during_training.truth_scores(fake, truth, SCAN)
    assert bands == {}  # one band: its scores are the scores
    assert scores["mae"] == pytest.approx(200.0)  # (100 + 300) / 2 counts, not 8-bit levels
    assert scores["rmse"] == pytest.approx(math.sqrt((100**2 + 300**2) / 2))
    # PSNR per image with the domain's data range 4095, then the mean over images
    assert scores["psnr"] == pytest.approx((20 * math.log10(4095 / 100) + 20 * math.log10(4095 / 300)) / 2)
    # flat images: SSIM is its luminance term (2μxμy + C1) / (μx² + μy² + C1), C1 = (0.01 · 4095)²
    c1 = (0.01 * 4095) ** 2
    lum = [(2 * 1000 * m + c1) / (1000**2 + m**2 + c1) for m in (1100, 700)]
    assert scores["ssim"] == pytest.approx(np.mean(lum), rel=1e-6)
    same = during_training.truth_scores(truth.astype(np.float32), truth, SCAN)[0]
    assert same["mae"] == 0 and same["psnr"] == math.inf and same["ssim"] == pytest.approx(1.0)


def test_each_band_is_scored_with_its_own_range() -> None:
    kind = Kind(2, "float32", (0.0, -1000.0), (1.0, 1000.0))
    truth = np.zeros((1, 16, 16, 2), np.float32)
    fake = truth + np.array([0.1, 100.0], np.float32)
    scores, bands = during_training.truth_scores(fake, truth, kind)
    assert bands["mae"] == pytest.approx([0.1, 100.0]) and scores["mae"] == pytest.approx(50.05)
    assert bands["psnr"] == pytest.approx([20.0, 20 * math.log10(2000 / 100)])  # ranges 1 and 2000
    assert scores["psnr"] == pytest.approx(np.mean(bands["psnr"])) and len(bands["ssim"]) == 2


def test_inception_sees_rgb_and_grey_photos_only() -> None:
    assert metrics.inception_view(Kind(), "Y") == (True, "")
    seen, note = metrics.inception_view(Kind(1, "uint8", (0.0,), (255.0,)), "Y")
    assert seen and "grey replicated" in note
    assert metrics.inception_view(SCAN, "X") == (False, SCAN_NOTE)
    grey = np.arange(4, dtype=np.float32).reshape(1, 2, 2, 1) * 60.4  # a translation in the data's units
    photos = metrics.as_photos(grey)
    assert photos.dtype == np.uint8 and photos.shape == (1, 2, 2, 3) and photos[0, 1, 1].tolist() == [181] * 3


def test_options_for_domains_without_photos(tmp_path: Path) -> None:
    cycle_gan = models.get("cycle_gan")
    scans = dict(input_nc=1, output_nc=1, X_dtype="uint16", Y_dtype="uint16", X_range="0,4095", Y_range="0,4095",
                 lambda_identity=0.0, eval_every=5, eval_X=str(tmp_path), eval_Y=str(tmp_path))

    def check(**kw) -> str:
        cfg = TrainConfig(**{**scans, **kw}).resolved()
        during_training.validate(cfg, cycle_gan)
        return during_training.best_metric(cfg, cycle_gan)

    # the default ranks by what exists: PSNR where there is truth, else nothing (no FID of scans)
    assert check(eval_truth_Y=str(tmp_path)) == "psnr_XtoY" and check() == ""
    with pytest.raises(UserError, match=r"^--keep_best=fid_XtoY: FID/KID/IS need RGB photos; Y is 1-channel uint16; "
                                        r"rank by psnr_XtoY or mae_XtoY \(with --eval_truth_Y\), or none$"):
        check(keep_best="fid_XtoY")
    assert check(keep_best="mae_YtoX", eval_truth_X=str(tmp_path)) == "mae_YtoX"
    with pytest.raises(UserError, match=r"--keep_best=rmse_XtoY needs paired truth \(--eval_truth_Y\)"):
        check(keep_best="rmse_XtoY")
    with pytest.raises(UserError, match="--eval_labels_Y: label maps are 8-bit RGB colours, and Y is 1-channel uint16"):
        check(eval_labels_Y="0,0,0;255,255,255", eval_truth_Y=str(tmp_path))
    grey = dict(X_dtype="uint8", Y_dtype="uint8", X_range="", Y_range="")
    assert check(**grey) == "fid_XtoY"  # grey photos have a (replicated) FID
    # lower is better for the errors
    assert during_training.better("mae_XtoY", 1.0, 2.0) and not during_training.better("rmse_XtoY", 3.0, 2.0)


def test_evaluation_of_scans_and_bands_in_their_units(domains: dict, capsys) -> None:
    """A fresh CycleGAN between 16-bit scans and 2-band floats: held-out images as stored, translations in the
    domains' units, errors by hand, no FID (with the reason), per-band scores, the report saying so."""
    tmp = domains["tmp"]
    cfg = _cfg(domains, eval_truth_Y=str(tmp / "truthY"), eval_truth_X=str(tmp / "truthX"))
    cycle_gan = models.get("cycle_gan")
    during_training.validate(cfg, cycle_gan)
    run = tmp / "run"
    judge = during_training.Evaluator.open(cfg, cycle_gan, run)
    assert capsys.readouterr().err.splitlines() == [f"note: XtoY: {BANDS_NOTE}", f"note: YtoX: {SCAN_NOTE}"]
    x2y, y2x = judge.sets
    assert x2y.inputs.dtype == np.uint16 and x2y.real.dtype == np.float32 and x2y.real.shape[1:] == (32, 32, 2)
    np.testing.assert_array_equal(x2y.inputs, np.stack([domains["held_X"][f"h{i}"] for i in range(6)]))
    np.testing.assert_array_equal(x2y.truth, np.stack([domains["truth_Y"][f"h{i}"] for i in range(6)]))

    model = cycle_gan(cfg, 10, 1)
    writer = tf.summary.create_file_writer(str(run))
    scores = judge.run(model, 2, writer)
    writer.close()
    assert not any(k.split("_")[0] in during_training.INCEPTION_METRICS for k in scores)
    assert {f"{m}_{d}" for m in ("mae", "rmse", "psnr", "ssim") for d in ("XtoY", "YtoX")} == set(scores)

    # F's translations into X by hand: [-1, 1] by each band's range, back to counts by X's
    lo, hi = np.array([0.0, -1000.0]), np.array([1.0, 1000.0])
    unit = (np.clip(y2x.inputs, lo, hi) - lo) / ((hi - lo) / 2) - 1
    fake = np.clip((model.nets["F"](unit.astype(np.float32), training=False).numpy() + 1) * 4095 / 2, 0, 4095)
    truth = np.stack([domains["truth_X"][name] for name in sorted(domains["truth_X"])]).astype(np.float64)
    assert scores["mae_YtoX"] == pytest.approx(np.abs(fake - truth).mean(), rel=1e-5)
    mse = ((fake - truth) ** 2).mean(axis=(1, 2, 3))
    assert scores["psnr_YtoX"] == pytest.approx(np.mean(10 * np.log10(4095**2 / mse)), rel=1e-5)

    record = json.loads((run / "eval" / "scores.jsonl").read_text())
    assert record["notes"] == {"XtoY": BANDS_NOTE, "YtoX": SCAN_NOTE}
    assert list(record["bands"]) == ["XtoY"] and len(record["bands"]["XtoY"]["psnr"]) == 2
    assert record["scores"]["mae_XtoY"] == pytest.approx(np.mean(record["bands"]["XtoY"]["mae"]))
    assert json.loads((run / "eval" / "best.json").read_text())["metric"] == "psnr_XtoY"
    gallery = np.asarray(Image.open(run / "eval" / "step-2" / "XtoY.png"))
    assert gallery.shape == (64, 6 * 32, 3) and gallery.dtype == np.uint8
    top = gallery[:32]  # the grey scans, shown grey
    assert (top[..., 0] == top[..., 1]).all() and (top[..., 1] == top[..., 2]).all()

    cfg.save(run / "flags.json")
    page = report.write_report(run).read_text()
    assert "FID/KID/IS need RGB photos; Y is 2-channel float32: not computed." in page
    assert "X → Y per band · step 2" in page and "Y → X per band" not in page  # one band: its mean is all
    assert "X 1-channel uint16 in [0,4095] · Y 2-channel float32 in [0,1] [-1000,1000]" in page
    assert ">MAE<" in page and ">RMSE<" in page


def test_held_out_records_of_another_kind_are_one_line(domains: dict) -> None:
    tmp = domains["tmp"]
    cfg = _cfg(domains, eval_Y=str(tmp / "X.tfrecords"))
    where = re.escape(str(tmp / "X.tfrecords"))
    with pytest.raises(UserError, match=f"^--eval_Y={where}: holds 1-channel uint16 images, but Y is 2-channel "
                                        "float32: build it as the training data$"):
        during_training.load_held_out(cfg, models.get("cycle_gan"))


def test_grey_photos_get_a_replicated_fid(tmp_path: Path) -> None:
    cycle_gan = models.get("cycle_gan")
    cfg = TrainConfig(input_nc=1, output_nc=1, X_dtype="uint8", Y_dtype="uint8", **TINY).resolved()
    rng = np.random.default_rng(0)
    x, y = (rng.integers(0, 256, (6, 32, 32, 1), dtype=np.uint8) for _ in range(2))
    grey = Kind(1, "uint8", (0.0,), (255.0,))
    sets = [during_training.HeldOut("XtoY", x, y, y, kind_in=grey, kind_out=grey)]
    judge = during_training.Evaluator(cfg, cycle_gan, tmp_path, sets, log=lambda _: None)
    assert "grey replicated" in judge.notes["XtoY"]
    scores, galleries = judge.scores(cycle_gan(cfg, 10, 1))
    assert math.isfinite(scores["fid_XtoY"]) and "mae_XtoY" in scores and galleries["XtoY"].shape == (64, 192, 3)


def test_gallery_shows_the_chosen_bands() -> None:
    kind = Kind(4, "float32", (0.0,), (1.0,))
    images = np.zeros((2, 8, 8, 4), np.float32)
    images[..., 3] = 1.0  # only band 3 is bright
    held = during_training.HeldOut("XtoY", images, images, kind_in=kind, kind_out=kind)
    shown = during_training.gallery(held, images, bands=(3, 2, 1))
    assert shown.shape == (16, 16, 3) and (shown[..., 0] == 255).all() and (shown[..., 1:] == 0).all()
    assert (during_training.gallery(held, images)[..., 0] == 0).all()  # default bands 0, 1, 2


def test_evaluate_command_scores_16_bit_images_in_their_units(tmp_path: Path, capsys) -> None:
    names = [f"s{i}" for i in range(3)]
    truth = _scans(tmp_path / "truth", names, 0)
    gen = tmp_path / "gen"
    gen.mkdir()
    for name in names:  # every translation 40 counts too bright
        (gen / f"{name}.png").write_bytes(tf.io.encode_png(truth[name] + 40).numpy())
    out = tmp_path / "scores.json"
    args = ["--generated", str(gen), "--truth", str(tmp_path / "truth"), "--real", str(tmp_path / "truth"),
            "--range", "0,4095", "--json", str(out)]
    assert score.main(args) == 0
    s = json.loads(out.read_text())
    assert s["mae"] == pytest.approx(40.0) and s["rmse"] == pytest.approx(40.0)
    assert s["psnr"] == pytest.approx(20 * math.log10(4095 / 40))  # the data range is --range's, not 65535
    assert s["note"] == f"FID/KID/IS need RGB photos; {gen} is 1-channel uint16: not computed" and "fid" not in s
    assert "note" in capsys.readouterr().out
    assert score.main([*args[:4], "--json", str(out)]) == 0  # without --range: the type's full range
    assert json.loads(out.read_text())["psnr"] == pytest.approx(20 * math.log10(65535 / 40))
    _bands(tmp_path / "floats", names, 1)
    assert score.main(["--generated", str(tmp_path / "floats"), "--truth", str(tmp_path / "floats")]) == 2
    assert capsys.readouterr().err.strip() == "error: --range is needed for float32 images (lo,hi)"


def test_columns_of_the_evaluate_command_share_one_data_range() -> None:
    """Without --range, --generated and --identity columns take the --model exports' range when they share
    one, so that their PSNRs compare; else each type's full range."""
    export = ("0,4095", "the range of --model=m")
    columns = {"m": "tmp/0", "identity": "in"}
    assert score._column_ranges(columns, {"m": export}) == {"m": export, "identity": export}
    two = {"m": export, "n": ("0,1023", "the range of --model=n")}
    assert score._column_ranges({**columns, "n": "tmp/1"}, two)["identity"] == ("", "--range")
    assert score._column_ranges(columns, {"m": ("", "the range of --model=m")})["identity"] == ("", "--range")
