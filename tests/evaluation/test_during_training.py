"""Evaluation during training: held-out sets, scores in TensorBoard and scores.jsonl, the best checkpoint."""
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import event_tags, shapescapes_pairs, texture_records
from PIL import Image

from cyclegan_tf import models
from cyclegan_tf.config import TrainConfig
from cyclegan_tf.data import synthetic
from cyclegan_tf.errors import UserError
from cyclegan_tf.evaluation import during_training
from cyclegan_tf.training import runs
from cyclegan_tf.training.loop import train

TINY = dict(image_size=32, load_size=36, netG="resnet_6blocks", ngf=4, ndf=4, pool_size=3, log_every=2,
            summary_every=100, save_every=100)


def _held_out(tmp_path: Path, n: int) -> tuple[dict, Path, Path]:
    """Training records, n held-out X images and truth for G(held-out X), named as them (any Y-domain
    pictures will do here)."""
    data = texture_records(tmp_path / "data", 6)
    held_x = tmp_path / "heldX"
    synthetic.write_folder(synthetic.textures(n, 40, 5), held_x)
    truth = tmp_path / "truthY"
    truth.mkdir()
    for i, f in enumerate(sorted(held_x.iterdir())):
        Image.fromarray(synthetic.textures(1, 40, 20 + i)[0]).save(truth / f"{f.stem}.png")
    return data, held_x, truth


def test_periodic_evaluation_logs_scores_and_keeps_the_best_checkpoint(tmp_path: Path, capsys) -> None:
    data, held_x, truth = _held_out(tmp_path, 6)
    run = tmp_path / "run"
    # F's held-out translations scored as label maps against themselves: the FCN protocol's path
    palette = "0,0,0;255,255,255;255,0,0"
    cfg = TrainConfig(X=data["X"], Y=data["Y"], checkpoint_dir=str(run), max_steps=4, eval_every=2,
                      eval_X=str(held_x), eval_Y=data["Y"], eval_truth_Y=str(truth), keep_checkpoints=1,
                      eval_truth_X=str(tmp_path / "data" / "Y"), eval_labels_X=palette, **TINY)
    assert train(cfg) == 0
    out = capsys.readouterr().out
    assert "eval at step 2" in out and "eval at step 4" in out

    history = [json.loads(line) for line in (run / "eval" / "scores.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [2, 4]
    assert history[0]["n"] == {"X": 6, "Y": 6}
    for d in ("XtoY", "YtoX"):
        for metric in ("fid", "kid", "precision", "recall", "density", "coverage"):
            assert math.isfinite(history[1]["scores"][f"{metric}_{d}"]), (metric, d)
    assert {"psnr_XtoY", "ssim_XtoY", "psnr_YtoX", "class_iou_YtoX"} <= set(history[0]["scores"])
    assert "class_iou_XtoY" not in history[0]["scores"] and 0 <= history[0]["scores"]["pixel_accuracy_YtoX"] <= 1
    tags = event_tags(run)
    assert tags["eval/fid_XtoY"] == 2 and tags["eval/coverage_YtoX"] == 2 and tags["eval/XtoY"] == 2
    gallery = np.asarray(Image.open(run / "eval" / "step-4" / "YtoX.png"))
    assert gallery.shape == (64, 6 * 32, 3)
    assert len(list((run / "eval").glob("inception-*.npy"))) == 2  # the real X and Y features, cached

    best = json.loads((run / "eval" / "best.json").read_text())
    fids = {h["step"]: h["scores"]["fid_XtoY"] for h in history}
    assert best["metric"] == "fid_XtoY" and best["value"] == min(fids.values())
    assert best["step"] == min(fids, key=lambda s: (fids[s], s)) and best["checkpoint"] == f"best-{best['step']}"
    assert sorted(f.name.split(".")[0] for f in run.glob("best-*")) == [f"best-{best['step']}"] * 2
    assert runs.checkpoints(run) == [4]  # --keep_checkpoints 1 pruned ckpt-2; a best-2 would have stayed
    _, _, _, step = runs.restore_generators(run, which="best")
    assert step == best["step"]
    assert runs.restore_generators(run, which="4")[3] == 4
    with pytest.raises(UserError, match="no checkpoint of step 3 .it has 4"):
        runs.restore_generators(run, which="3")


def test_evaluation_options_are_checked_before_a_run_starts(tmp_path: Path) -> None:
    cycle_gan, pix2pix = models.get("cycle_gan"), models.get("pix2pix")
    folder = tmp_path / "held"
    folder.mkdir()

    def check(model_cls, **kw) -> None:
        during_training.validate(TrainConfig(**kw).resolved(), model_cls)

    check(cycle_gan)  # no evaluation asked for
    with pytest.raises(UserError, match="--eval_X is only read with --eval_every"):
        check(cycle_gan, eval_X=str(folder))
    with pytest.raises(UserError, match="--eval_Y is required"):
        check(cycle_gan, eval_every=5, eval_X=str(folder))
    with pytest.raises(UserError, match="give one of them"):
        check(cycle_gan, eval_every=5, eval_every_epochs=1, eval_X=str(folder), eval_Y=str(folder))
    with pytest.raises(UserError, match="--eval_Y=nowhere: no such folder or TFRecord file"):
        check(cycle_gan, eval_every=5, eval_X=str(folder), eval_Y="nowhere")
    with pytest.raises(UserError, match="--keep_best=fid_AtoB: choose"):
        check(cycle_gan, eval_every=5, eval_X=str(folder), eval_Y=str(folder), keep_best="fid_AtoB")
    with pytest.raises(UserError, match="--keep_best=psnr_YtoX needs paired truth .--eval_truth_X"):
        check(cycle_gan, eval_every=5, eval_X=str(folder), eval_Y=str(folder), keep_best="psnr_YtoX")
    check(cycle_gan, eval_every=5, eval_X=str(folder), eval_Y=str(folder), keep_best="coverage_YtoX")
    check(pix2pix, eval_every=5, eval_X=str(folder), keep_best="psnr_XtoY")
    with pytest.raises(UserError, match="--eval_labels_X scores translations into X against their truth: give "
                                        "--eval_truth_X"):
        check(cycle_gan, eval_every=5, eval_X=str(folder), eval_Y=str(folder), eval_labels_X="0,0,0;255,255,255")
    with pytest.raises(UserError, match="--eval_labels_Y=0,0: expected colours"):
        check(pix2pix, eval_every=5, eval_X=str(folder), eval_labels_Y="0,0")
    with pytest.raises(UserError, match="--keep_best=class_iou_XtoY needs label maps in Y .--eval_labels_Y"):
        check(pix2pix, eval_every=5, eval_X=str(folder), keep_best="class_iou_XtoY")
    check(pix2pix, eval_every=5, eval_X=str(folder), keep_best="class_iou_XtoY", eval_labels_Y="0,0,0;9,9,9")
    with pytest.raises(UserError, match="--eval_Y: a paired model evaluates on --eval_X's pairs alone"):
        check(pix2pix, eval_every=5, eval_X=str(folder), eval_Y=str(folder))


def test_best_is_strictly_better_and_never_nan() -> None:
    nan = float("nan")
    assert during_training.better("fid_XtoY", 3.0, None) and during_training.better("fid_XtoY", 3.0, 4.0)
    assert not during_training.better("fid_XtoY", 4.0, 4.0)  # a tie keeps the earlier checkpoint
    assert not during_training.better("kid_YtoX", 5.0, 4.0)
    assert during_training.better("coverage_XtoY", 0.5, 0.4) and not during_training.better("psnr_XtoY", 20.0, 21.0)
    assert not during_training.better("fid_XtoY", nan, None) and not during_training.better("fid_XtoY", nan, 4.0)
    assert during_training.better("fid_XtoY", 9.0, nan)


def test_held_out_pairs_follow_the_direction_and_resize_label_maps_nearest(tmp_path: Path) -> None:
    pairs = shapescapes_pairs(tmp_path, size=40, train=3, test=1)
    pix2pix = models.get("pix2pix")
    cfg = pix2pix.configure(TrainConfig(X=pairs["records"], image_size=32, eval_every=1, eval_X=pairs["records"],
                                        direction="BtoA"), set()).resolved()
    (held,) = during_training.load_held_out(cfg, pix2pix)
    assert held.direction == "XtoY" and held.inputs.shape == (3, 32, 32, 3) and held.truth is held.real
    # BtoA: the input is the pair's photo (B) and the truth its label map (A)
    ab_cfg = dataclasses.replace(cfg, direction="AtoB", extra={**cfg.extra, "label_nc": 4})
    (ab,) = during_training.load_held_out(ab_cfg, pix2pix)
    np.testing.assert_array_equal(ab.real, held.inputs)
    # a label-map input is resized nearest: only palette colours, never blends of two
    assert len(np.unique(ab.inputs.reshape(-1, 3), axis=0)) <= 4 < len(np.unique(held.real.reshape(-1, 3), axis=0))


def test_keeping_a_best_checkpoint_replaces_only_the_previous_best(tmp_path: Path) -> None:
    v = tf.Variable(1.0)
    for step in (3, 5):
        v.assign(float(step))
        tf.train.Checkpoint(v=v).write(str(tmp_path / f"ckpt-{step}"))
    mine = tmp_path / "best-notes.txt"  # not a checkpoint file: never touched
    mine.write_text("keep")
    assert runs.save_best(tmp_path, 3, {"metric": "fid_XtoY", "step": 3, "value": 2.0}) == "best-3"
    assert runs.save_best(tmp_path, 5, {"metric": "fid_XtoY", "step": 5, "value": 1.0}) == "best-5"
    assert sorted(f.name for f in tmp_path.glob("best-*")) == ["best-5.data-00000-of-00001", "best-5.index",
                                                              "best-notes.txt"]
    (tmp_path / "ckpt-5.index").unlink()  # pruned later by the checkpointer: the best stays whole
    restored = tf.Variable(0.0)
    tf.train.Checkpoint(v=restored).read(runs.choose_checkpoint(tmp_path, "best")).assert_consumed()
    assert float(restored.numpy()) == 5.0
    # A kill after copying a new best but before best.json named it: the orphan is cleaned on the next start.
    tf.train.Checkpoint(v=v).write(str(tmp_path / "best-9"))
    runs.clean_best(tmp_path)
    assert not list(tmp_path.glob("best-9.*")) and (tmp_path / "best-5.index").exists() and mine.exists()
    with pytest.raises(UserError, match="--checkpoint=newest: give latest, best or a step number"):
        runs.choose_checkpoint(tmp_path, "newest")


def test_patience_stops_a_stalled_run_and_keeps_its_best_checkpoint(tmp_path: Path, capsys) -> None:
    data, held_x, truth = _held_out(tmp_path, 4)
    run = tmp_path / "run"
    # a learning rate of 1e-12 moves no 8-bit output: every evaluation after the first one equals it, no gain
    cfg = TrainConfig(X=data["X"], Y=data["Y"], checkpoint_dir=str(run), max_steps=12, eval_every=2,
                      eval_X=str(held_x), eval_Y=data["Y"], eval_truth_Y=str(truth), keep_best="mae_XtoY",
                      patience=2, learning_rate=1e-12, **TINY)
    assert train(cfg) == 0
    out = capsys.readouterr().out
    assert "stopping early at step 6: 2 evaluations without a better mae_XtoY (--patience 2)" in out
    assert "training stopped early: 6 steps" in out and "--checkpoint best" in out
    assert [json.loads(line)["step"] for line in (run / "eval" / "scores.jsonl").read_text().splitlines()] == [2, 4, 6]
    assert max(runs.checkpoints(run)) == 6 and runs.restore_generators(run, which="best")[3] == 2
    stopped = json.loads((run / "eval" / "stopped.json").read_text())
    assert stopped["step"] == 6 and "best-2" in stopped["reason"]
    from cyclegan_tf.evaluation import report

    page = report.write_report(run).read_text()
    assert "stopped early" in page and "<h2>Health</h2>" in page
    # the monitors ran at each evaluation and on the logged losses: rows, scalars
    monitors = {json.loads(line)["monitor"] for line in (run / "health.jsonl").read_text().splitlines()}
    assert {"inversion", "identity", "collapse", "saturation", "checkerboard", "stalled", "diverging"} <= monitors
    tags = event_tags(run)
    assert tags.get("health/collapse_XtoY") == 3 and tags.get("health/stalled") == 3 and "health/d_dominance" in tags
    assert train(cfg) == 0  # the same command again: still stalled, nothing trained
    assert max(runs.checkpoints(run)) == 6
    with pytest.raises(UserError, match="--patience=2 counts evaluations: give --eval_every"):
        train(dataclasses.replace(cfg, eval_every=0, eval_X="", eval_Y="", eval_truth_Y="",
                                  checkpoint_dir=str(tmp_path / "other")))
