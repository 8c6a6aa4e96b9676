"""The reduced `make demo` path, end to end: the same tools in the same order, tiny sizes."""
import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_reduced_demo(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "cyclegan_tf.demo", "--reduced", f"--out={tmp_path / 'demo'}"],
                       capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    scores = json.loads((tmp_path / "demo/scores.json").read_text())
    for key in ("photo2labels", "photo2labels_identity"):
        assert 0 <= scores[key]["pixel_accuracy"] <= 1 and "class_iou" in scores[key]
    for key in ("labels2photo", "labels2photo_identity"):
        assert {"fid", "kid", "ssim", "psnr", "n_generated"} <= scores[key].keys()
    page = (tmp_path / "demo/index.html").read_text()
    assert page.count("<img") == 2 * 3 * 6 and "tensorboard --logdir" in page
    for img in page.split("src='")[1:]:
        assert (tmp_path / "demo" / img.split("'")[0]).exists()
    assert "demo finished" in r.stdout
