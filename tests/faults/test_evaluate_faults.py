"""`python -m cyclegan_tf.evaluate` on its fault paths: too few images for FID/KID (which used to hang in
scipy's sqrtm), and damaged exports given to --model."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import write_kind
from harness import cli, error_line

from cyclegan_tf.deploy.savedmodel import export
from cyclegan_tf.errors import UserError
from cyclegan_tf.evaluation import score


def _folder(path: Path, n: int) -> Path:
    path.mkdir()
    for i in range(n):
        write_kind(path, "jpg", seed=i)
    return path


def test_one_image_is_a_one_line_error_not_a_hang(tmp_path: Path) -> None:
    one, three = _folder(tmp_path / "one", 1), _folder(tmp_path / "three", 3)
    r = cli("cyclegan_tf.evaluate", "--generated", str(one), "--real", str(three), cwd=tmp_path, timeout=120)
    error_line(r, f"error: {one}: FID/KID need at least 2 images per set, found 1")
    with pytest.raises(UserError, match=re.escape(f"{one}: FID/KID need at least 2 images per set, found 1")):
        score.evaluate(three, real=one)
    assert score.evaluate(one, truth=one)["psnr"] > 100  # paired scores need no second image


def test_fid_and_kid_refuse_one_sample_and_never_hang_on_nan() -> None:
    a = np.random.default_rng(0).normal(size=(5, 64))
    with pytest.raises(ValueError, match="at least 2"):
        score.fid(a[:1], a)
    with pytest.raises(ValueError, match="at least 2"):
        score.kid(a, a[:1])
    nan = a.copy()
    nan[0, 0] = np.nan
    assert np.isnan(score.fid(nan, a))  # scipy's sqrtm would never return on this


def test_damaged_model_is_one_line(trained_run: Path, tmp_path: Path) -> None:
    model = export(trained_run, "XtoY", tmp_path / "x2y")
    shutil.rmtree(model / "variables")
    photos = _folder(tmp_path / "photos", 2)
    r = cli("cyclegan_tf.evaluate", "--model", str(model), "--input", str(photos), "--real", str(photos),
            cwd=tmp_path, timeout=300)
    error_line(r, f"error: --model={model}: damaged export: {model}: variables/ is missing")
