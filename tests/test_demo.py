"""The reduced `make demo` path, end to end, with pix2pix beside CycleGAN (bf16): the same tools, tiny sizes."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT


@pytest.mark.slow  # 4 minutes on 2 cores: make test-slow (suite time)
def test_reduced_demo(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "cyclegan_tf.demo", "--reduced", f"--out={tmp_path / 'demo'}",
                        "--models=cycle_gan,pix2pix", "--precision=bf16", "--train_seed=3"],
                       capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not re.search(r"cudart_stub|cuInit|absl::InitializeLog", r.stdout + r.stderr)  # a newcomer's first output
    scores = json.loads((tmp_path / "demo/scores.json").read_text())
    for key in ("photo2labels", "pix2pix_photo2labels", "photo2labels_identity"):
        assert 0 <= scores[key]["pixel_accuracy"] <= 1 and "class_iou" in scores[key]
    for key in ("labels2photo", "pix2pix_labels2photo", "labels2photo_identity"):
        assert {"fid", "kid", "ssim", "psnr", "n_generated"} <= scores[key].keys()
    page = (tmp_path / "demo/index.html").read_text()
    # two directions × (input, CycleGAN, pix2pix, truth) × 6 test scenes
    assert page.count("<img") == 2 * 4 * 6 and "tensorboard --logdir" in page
    for img in page.split("src='")[1:]:
        assert (tmp_path / "demo" / img.split("'")[0]).exists()
    assert "demo finished" in r.stdout
    # every run evaluated on the test split during training, and has its report, linked from the page
    for run in ("checkpoints", "checkpoints_pix2pix_photo2labels", "checkpoints_pix2pix_labels2photo"):
        (line,) = (tmp_path / "demo" / run / "eval" / "scores.jsonl").read_text().splitlines()
        assert json.loads(line)["step"] == 4 and (tmp_path / "demo" / run / "eval" / "best.json").exists()
        assert (tmp_path / "demo" / run / "report.html").exists() and f"'{run}/report.html'" in page
    # each model's training cost, from its own runs: the logged speed and the train.py process's peak RSS
    for m in ("cycle_gan", "pix2pix"):
        cost = scores["cost"][m]
        assert 0 < cost["seconds_per_step"] < 60 and 300 < cost["peak_memory_mb"] < 20000, cost
        assert f"<td>{m}</td>" in page
    # bf16 training with another seed on the same data (how docs/benchmarks.md compares precisions)
    assert scores["plan"]["precision"] == "bf16" and scores["plan"]["train_seed"] == 3
    trains = [line for line in r.stdout.splitlines() if line.startswith("$ python") and "train.py" in line]
    assert len(trains) == 3 and all("--precision=bf16" in t and "--seed=3" in t for t in trains)
