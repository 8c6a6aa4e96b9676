"""The run report: a page built from a synthetic run folder with real TensorBoard event files, checked for
what it says and, in headless Chromium, for what it shows."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from cyclegan_tf.evaluation import report

LOSSES = ("G", "D_Y", "F", "D_X", "cycle_X", "cycle_Y")
EVAL_STEPS = (100, 150, 200)


def _fid(step: int, direction: str) -> float:
    return 300.0 - step * 0.5 - (0 if step != 150 else 40) + (10 if direction == "YtoX" else 0)


def _scores(step: int) -> dict:
    scores = {}
    for d in ("XtoY", "YtoX"):
        scores[f"fid_{d}"] = _fid(step, d)
        scores[f"kid_{d}"] = _fid(step, d) / 1000
        scores[f"ssim_{d}"] = 0.2 + step / 1000
        scores[f"is_mean_{d}"] = 1.5 + step / 500
    scores["ssim_YtoX"] = None  # NaN, as the evaluator writes it
    return scores


def _gallery(path: Path, seed: int) -> None:
    """Four 32-px inputs over their translations, as the evaluator saves it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:128]
    rgb = np.stack([xx * 2, yy * 4, (xx + yy) % 256], -1) + rng.integers(0, 40, (64, 128, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path)


def make_run(folder: Path, evaluation: bool = True) -> Path:
    """A run folder as train.py leaves it: flags.json, event files of 20 logged steps (losses, learning rate,
    speed, previews; with `evaluation` the eval/* scalars too), and eval/ with scores, best and galleries."""
    folder.mkdir(parents=True)
    flags = {"model": "cycle_gan", "X": "data/horse.tfrecords", "Y": "data/zebra.tfrecords", "image_size": 64,
             "batch_size": 1, "max_steps": 300, "epochs": 100, "epochs_decay": 100, "learning_rate": 2e-4,
             "lambda1": 10.0, "netG": "resnet_6blocks", "ngf": 32, "use_dropout": False, "checkpoint_dir": "",
             "nce_layers": [0, 4, 8]}
    if evaluation:
        flags |= {"eval_every": 50, "eval_X": "data/testA", "eval_Y": "data/testB"}
    (folder / "flags.json").write_text(json.dumps(flags, indent=2, sort_keys=True))
    rng = np.random.default_rng(0)
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        for step in range(10, 201, 10):
            for i, name in enumerate(LOSSES):
                tf.summary.scalar(f"loss/{name}", (1 + i) * (0.3 + 2 / math.sqrt(step)) + rng.normal(0, 0.05), step)
            tf.summary.scalar("learning_rate", 2e-4, step)
            tf.summary.scalar("perf/steps_per_sec", 2.0 + rng.normal(0, 0.1), step)
            tf.summary.scalar("perf/images_per_sec", 2.0, step)
            if step % 100 == 0:
                tf.summary.image("XtoY", tf.random.stateless_uniform([1, 32, 96, 3], [step, 0]), step)
            if evaluation and step in EVAL_STEPS:
                for name, value in _scores(step).items():
                    tf.summary.scalar(f"eval/{name}", math.nan if value is None else value, step)
                tf.summary.scalar("eval/seconds", 12.5, step)
    writer.close()
    if evaluation:
        lines = [{"step": 150, "seconds": 9.0, "n": {"X": 20, "Y": 20}, "scores": {"fid_XtoY": 999.0}}]  # redone
        lines += [{"step": s, "seconds": 12.5, "n": {"X": 20, "Y": 20}, "scores": _scores(s)} for s in EVAL_STEPS]
        (folder / "eval").mkdir()
        (folder / "eval" / "scores.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        (folder / "eval" / "best.json").write_text(json.dumps(
            {"metric": "fid_XtoY", "step": 150, "value": _fid(150, "XtoY"), "checkpoint": "best-150",
             "scores": _scores(150)}))
        for step in EVAL_STEPS:
            for seed, direction in enumerate(("XtoY", "YtoX")):
                _gallery(folder / "eval" / f"step-{step}" / f"{direction}.png", step + seed)
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("report") / "run")


@pytest.fixture(scope="module")
def page(run) -> tuple[Path, str, float]:
    start = time.perf_counter()
    out = report.write_report(run)
    return out, out.read_text(), time.perf_counter() - start


def test_page_says_what_the_run_did(run, page):
    out, text, seconds = page
    assert out == run / "report.html"
    assert seconds < 15, f"the report took {seconds:.1f} s"
    assert "cycle_gan" in text and "data/horse.tfrecords" in text
    assert "200 of 300" in text  # steps done (the newest event) of --max_steps
    assert "best-150" in text and "best · step 150" in text and "latest · step 200" in text
    assert f"<b>{_fid(150, 'XtoY'):.1f}</b>" in text  # the best value, from best.json
    assert f">{_fid(200, 'YtoX'):.1f}<" in text  # a latest score, from scores.jsonl
    assert "999.0" not in text  # the step evaluated again: its last line wins
    assert f"tensorboard --logdir {run.resolve()}" in text
    assert "<td>lambda1</td>" not in text and ">lambda1</td><td>10.0</td>" in text  # a table, not JSON
    assert "[0, 4, 8]" in text  # a model's own option, not a TrainConfig field
    assert "no evaluation" not in text.lower()


def test_page_is_offline_and_its_images_exist(run, page):
    out, text, _ = page
    sources = [s.split('"')[0] for s in text.split('src="')[1:]]
    assert len(sources) >= 4 + 4 + 1 + 2  # 2 directions x 2 galleries, 4 metrics, previews, losses, lr
    for src in sources:
        assert not src.startswith(("http:", "https:", "//")), src
        assert (out.parent / src).is_file(), src
    assert "<script" not in text and "<link" not in text and "@import" not in text
    names = {Path(s).name for s in sources}
    assert {p.name for p in (run / "report_files").iterdir()} == names  # nothing unreferenced is left


def test_run_without_evaluation_and_a_rewrite(tmp_path):
    run = make_run(tmp_path / "run", evaluation=False)
    out = report.write_report(run, tmp_path / "page.html")
    text = out.read_text()
    assert "No evaluation: train with --eval_every N --eval_X … --eval_Y …" in text
    assert "Training previews" in text and "losses-" in text
    files = tmp_path / "page_files"
    first = sorted(p.name for p in files.iterdir())
    stale = files / "losses-0123456789ab.png"  # a plot of an earlier version of the page
    stale.write_bytes(b"old")
    report.write_report(run, out)
    assert sorted(p.name for p in files.iterdir()) == first  # named by content: the same names again
    assert not stale.exists()


def test_resumed_run_keeps_the_history_that_led_to_its_checkpoint(tmp_path):
    """A session logged steps 10–50 and stopped; the next resumed from step 30 and logged 40–60 again."""
    for i, (steps, value) in enumerate((((10, 20, 30, 40, 50), 1.0), ((40, 50, 60), 2.0))):
        folder = tmp_path / f"session{i}"
        with tf.summary.create_file_writer(str(folder)).as_default():
            for s in steps:
                tf.summary.scalar("loss/G", value, s)
        (file,) = folder.iterdir()
        parts = file.name.split(".")
        parts[3] = str(1_700_000_000 + i)  # the creation time in the name orders the sessions
        file.rename(tmp_path / ".".join(parts))
    events = report.read_events(tmp_path)
    assert events.series("loss/G") == ([10, 20, 30, 40, 50, 60], [1.0, 1.0, 1.0, 2.0, 2.0, 2.0])
    assert events.last_step == 60


def test_total_steps_from_the_learning_rate_once_it_decays():
    events = report.Events(scalars={"learning_rate": {100: 2e-4, 150: 1e-4}})
    flags = {"epochs": 1, "epochs_decay": 1, "learning_rate": 2e-4, "max_steps": 0}
    assert report.total_steps(flags, events) == (200, True)  # 100 steps per epoch
    events = report.Events(scalars={"learning_rate": {100: 2e-4}})
    assert report.total_steps(flags, events) == (None, False)
    assert report.total_steps({**flags, "max_steps": 500}, events) == (500, False)


def test_metric_names():
    assert report.split_metric("is_mean_YtoX") == ("is_mean", "YtoX")
    assert report.split_metric("fid_XtoY") == ("fid", "XtoY")
    assert report.split_metric("seconds") == ("seconds", "")
    assert report.fmt(None) == "—" and report.fmt(float("nan")) == "—" and report.fmt(254.96) == "255.0"
    assert report.fmt(0.2) == "0.200" and report.fmt(0.01234) == "0.0123" and report.fmt(12345.6) == "12,346"


@pytest.mark.parametrize("kind", ["empty", "flags_only", "missing", "bad_flags"])
def test_not_a_run_is_one_line(tmp_path, capsys, kind):
    folder = tmp_path / "run"
    if kind != "missing":
        folder.mkdir()
    if kind in ("flags_only", "bad_flags"):
        (folder / "flags.json").write_text("{" if kind == "bad_flags" else "{}")
    if kind == "bad_flags":
        with tf.summary.create_file_writer(str(folder)).as_default():
            tf.summary.scalar("loss/G", 1.0, 1)
    assert report.main([str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {folder}"), err
    assert "Traceback" not in err
    assert not (folder / "report.html").exists()


def test_bad_out_is_one_line(run, tmp_path, capsys):
    assert report.main([str(run), "--out", str(tmp_path / "no" / "such" / "page.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out=" in err and "does not exist" in err


def _browser() -> str | None:
    return next((b for b in map(shutil.which, ("chromium", "chromium-browser")) if b), None)


def test_screenshot_in_headless_chromium(run, page, tmp_path):
    """The page drawn by a real browser: an image, not blank, with the plots' colours where the plots are."""
    browser = _browser()
    if browser is None:
        pytest.skip("no chromium or chromium-browser on PATH (Debian/Ubuntu: apt-get install chromium)")
    out, _, _ = page
    shot = tmp_path / "report.png"
    command = [browser, "--headless", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
               f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2000",
               out.resolve().as_uri()]
    if os.geteuid() == 0:
        command.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    subprocess.run(command, capture_output=True, timeout=120, check=True)
    if os.environ.get("REPORT_SCREENSHOT"):
        shutil.copy(shot, os.environ["REPORT_SCREENSHOT"])  # to look at it
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape == (2000, 1200, 3)
    colours = np.unique(image.reshape(-1, 3).astype(np.int32) @ np.array([65536, 256, 1], np.int32))
    assert len(colours) > 200, "a near-blank page"
    assert (image > 245).all(-1).mean() > 0.4, "the page's white background is missing"
    # XtoY's blue (#1f77b4) of the evaluation plots, drawn in the second half of the screenshot.
    blue = (np.abs(image[1000:].astype(int) - (0x1F, 0x77, 0xB4)).sum(-1) < 40).sum()
    assert blue > 200, f"no evaluation plot visible ({blue} blue pixels)"
